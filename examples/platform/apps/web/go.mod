module alpenrose.example/web

go 1.22
