// Command attacker is the app of the sandbox tests: it tries to read each
// file its arguments name ("environ:<pid>" is /proc/<pid>/environ), and
// reports what it could read as one line of JSON (sandboxtest.Report):
// served at / when $PORT is set (a replica), printed otherwise (a build).
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
)

func main() {
	report := map[string]string{} // what was read, by the argument naming it
	for _, arg := range os.Args[1:] {
		path := arg
		if pid, ok := strings.CutPrefix(arg, "environ:"); ok {
			path = "/proc/" + pid + "/environ"
		}
		if b, err := os.ReadFile(path); err == nil {
			report[arg] = string(b[:min(len(b), 4096)])
		}
	}
	line, _ := json.Marshal(report)
	port := os.Getenv("PORT")
	if port == "" {
		fmt.Printf("REPORT %s\n", line)
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.Write(line) })
	if err := http.ListenAndServe("127.0.0.1:"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
