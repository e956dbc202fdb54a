// Package registrytest serves socle's registry on loopback for tests.
package registrytest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/artifact/registry"
)

// Serve opens the registry store in dir and serves it over HTTP on loopback
// until the test ends. It returns the store and the registry's host:port.
func Serve(t testing.TB, dir string) (*registry.Store, string) {
	t.Helper()
	s, err := registry.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.NewHandler(s, nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, strings.TrimPrefix(srv.URL, "http://")
}
