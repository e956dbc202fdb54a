// Command api is the Alpenrose booking API of socle's demo platform.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
)

var version = "dev"

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	// Report where the database is, never its credentials.
	dbHost := ""
	if u, err := url.Parse(os.Getenv("DATABASE_URL")); err == nil {
		dbHost = u.Host
	}
	mux := http.NewServeMux()
	// The root says where the API is, so that the address socle up prints
	// for this app answers something other than 404.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Alpenrose bookings API (version %s): GET /bookings\n", version)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready\n")) })
	mux.HandleFunc("GET /bookings", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"version":  version,
			"database": dbHost,
			"bookings": []map[string]string{{"guest": "A. Muster", "room": "204", "nights": "3"}},
		})
	})
	log.Printf("api %s listening on :%s", version, port)
	log.Fatal(http.ListenAndServe(":"+port, mux))
}
