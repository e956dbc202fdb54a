// Command web is the Alpenrose guest web site of socle's demo platform.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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
	// /sign signs its msg with SESSION_KEY (HMAC-SHA256, in hex): the key
	// is a secret that socle decrypts from apps/web/secrets.<zone>.yaml.
	sessionKey := os.Getenv("SESSION_KEY")
	mux.HandleFunc("/sign", func(w http.ResponseWriter, r *http.Request) {
		m := hmac.New(sha256.New, []byte(sessionKey))
		m.Write([]byte(r.URL.Query().Get("msg")))
		fmt.Fprintln(w, hex.EncodeToString(m.Sum(nil)))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (version %s)\n", greeting, version)
	})
	// Every response names the version, so a rollout is visible from outside.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", version)
		mux.ServeHTTP(w, r)
	})
	log.Printf("web %s listening on :%s", version, port)
	log.Fatal(http.ListenAndServe(":"+port, handler))
}
