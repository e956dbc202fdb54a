module alpenrose.example/worker

go 1.22
