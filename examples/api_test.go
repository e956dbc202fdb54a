package examples

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socle-dev/socle/test/pgtest"
)

// TestAPIBookings builds the demo's api as its socle.yaml does (go build
// in its directory, from the modules building socle fetched) and runs it
// against a real PostgreSQL server whose database comes after the app, as
// a provisioned one may: the api waits for it, then writes and reads
// bookings there, and says it is not ready once the server is gone, never
// telling its password.
func TestAPIBookings(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo's api and runs PostgreSQL")
	}
	bin := filepath.Join(t.TempDir(), "api")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("platform", "apps", "api")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the demo's api: %v\n%s", err, out)
	}

	srv := pgtest.Start(t)
	password := randomHex(t)
	dbHost := net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port))
	dbURL := url.URL{Scheme: "postgres", User: url.UserPassword("api", password), Host: dbHost, Path: "/api", RawQuery: "sslmode=disable"}
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	api := exec.Command(bin)
	api.Env = []string{"PORT=" + strconv.Itoa(port), "DATABASE_URL=" + dbURL.String()}
	// One writer for both: exec copies into it from one goroutine, and
	// the test reads it once the api has exited.
	var log bytes.Buffer
	api.Stdout, api.Stderr = &log, &log
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- api.Wait() }()
	t.Cleanup(func() {
		api.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the api did not stop cleanly on SIGTERM: %v\n%s", err, &log)
			}
		case <-time.After(30 * time.Second):
			api.Process.Kill()
			<-exited
			t.Errorf("the api did not stop within 30 s of SIGTERM\n%s", &log)
		}
		if strings.Contains(log.String(), password) {
			t.Errorf("the api's log tells the database password:\n%s", &log)
		}
		if !strings.Contains(log.String(), "database="+dbHost) {
			t.Errorf("the api's log does not name the database's host %s:\n%s", dbHost, &log)
		}
	})

	// No role and no database yet: the api answers, not ready, and says why.
	code, body := waitFor(t, base+"/readyz", http.StatusServiceUnavailable)
	if !strings.Contains(body, "waiting for the database at "+dbHost) || strings.Contains(body, password) {
		t.Errorf("/readyz before the database exists: %d %q, want the database's host and not its password", code, body)
	}

	admin := srv.Connect(t, "postgres")
	for _, q := range []string{"CREATE ROLE api LOGIN PASSWORD '" + password + "'", "CREATE DATABASE api OWNER api"} {
		if _, err := admin.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, base+"/readyz", http.StatusOK)

	code, body = do(t, http.MethodPost, base+"/bookings", `{"guest": "Heidi Alder", "room": "204", "nights": 3}`)
	var made struct {
		ID     int64
		Guest  string
		Room   string
		Nights int
	}
	if err := json.Unmarshal([]byte(body), &made); err != nil || code != http.StatusCreated ||
		made.ID == 0 || made.Guest != "Heidi Alder" || made.Room != "204" || made.Nights != 3 {
		t.Fatalf("POST /bookings: %d %s (%v)", code, body, err)
	}

	for _, c := range []struct{ name, body, want string }{
		{"no nights", `{"guest": "Heidi Alder", "room": "204"}`, "nights"},
		{"no guest", `{"room": "204", "nights": 2}`, "guest"},
		{"unknown field", `{"guest": "Heidi Alder", "room": "204", "nights": 2, "paid": true}`, `unknown field "paid"`},
		{"two objects", `{"guest": "A", "room": "1", "nights": 1} {}`, "one JSON object"},
		{"not JSON", `guest=Heidi`, "a booking is JSON"},
	} {
		code, body := do(t, http.MethodPost, base+"/bookings", c.body)
		var answer struct{ Error string }
		if err := json.Unmarshal([]byte(body), &answer); err != nil || code != http.StatusBadRequest || !strings.Contains(answer.Error, c.want) {
			t.Errorf("POST /bookings with %s: %d %s, want 400 naming %q", c.name, code, body, c.want)
		}
	}
	huge := `{"guest": "` + strings.Repeat("x", 8<<10) + `", "room": "204", "nights": 1}`
	if code, body := do(t, http.MethodPost, base+"/bookings", huge); code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /bookings of 8 KiB: %d %s, want 413", code, body)
	}

	code, body = do(t, http.MethodGet, base+"/bookings", "")
	var list struct {
		Version, Database string
		Bookings          []struct {
			ID    int64
			Guest string
		}
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != http.StatusOK {
		t.Fatalf("GET /bookings: %d %s (%v)", code, body, err)
	}
	if list.Database != dbHost || len(list.Bookings) != 1 || list.Bookings[0].ID != made.ID || list.Bookings[0].Guest != "Heidi Alder" {
		t.Errorf("GET /bookings: %s, want the booking made, in the database at %s", body, dbHost)
	}
	// The row is in the database itself, not in the api's memory.
	var guest string
	if err := srv.Connect(t, "api").QueryRow(context.Background(), "SELECT guest FROM bookings WHERE id = $1", made.ID).Scan(&guest); err != nil || guest != "Heidi Alder" {
		t.Errorf("booking %d in the database: %q, %v", made.ID, guest, err)
	}

	srv.Stop(t)
	code, body = do(t, http.MethodGet, base+"/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "database at "+dbHost) || strings.Contains(body, password) {
		t.Errorf("/readyz with PostgreSQL stopped: %d %q, want 503 naming the database's host, not its password", code, body)
	}
	if code, body := do(t, http.MethodGet, base+"/bookings", ""); code != http.StatusServiceUnavailable || strings.Contains(body, password) {
		t.Errorf("GET /bookings with PostgreSQL stopped: %d %s, want 503", code, body)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// do sends a request and returns the status and body.
func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitFor polls url until it answers with code, for up to a minute: the
// api may not listen yet, and retries its database with backoff.
func waitFor(t *testing.T, url string, code int) (int, string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	last := "no answer"
	for {
		if resp, err := client.Get(url); err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == code {
				return resp.StatusCode, string(b)
			}
			last = resp.Status + " " + string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within a minute; last: %s", url, code, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
