module alpenrose.example/{{ .app }}

go 1.22
