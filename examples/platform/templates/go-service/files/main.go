// Command {{ .app }}: {{ .description }}.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

// version is set at build time from the platform revision.
var version = "dev"

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	greeting := os.Getenv("GREETING")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ready") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from {{ .app }} (version %s)\n", greeting, version)
	})
	log.Printf("{{ .app }} %s listening on :%s", version, port)
	log.Fatal(http.ListenAndServe(":"+port, mux))
}
