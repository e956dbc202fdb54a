module alpenrose.example/api

go 1.22
