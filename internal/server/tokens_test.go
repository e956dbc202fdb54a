package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/clock"
)

// TestTokenExpiresOnTheServersClock: a token made through the API expires
// by the server's clock, the one its authenticator reads. Dated by the
// system's time, a token made while socle's clock is ahead (as a test
// moves it) would be expired as it is made.
func TestTokenExpiresOnTheServersClock(t *testing.T) {
	t.Parallel()
	at := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	s := startWith(t, Config{Repo: gitRepo(t), Data: t.TempDir(), Clock: clock.NewFake(at)})
	defer s.stop()
	s.waitFor(t, "teams.yaml in force, which makes admin an admin", func(st Status) bool { return st.LastGood != nil })

	body, _ := json.Marshal(api.NewToken{User: "admin", Description: "a day", Expires: "1d"})
	req, _ := http.NewRequest(http.MethodPost, s.url+"/api/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var created api.CreatedToken
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating a token: %s %v", resp.Status, err)
	}
	if want := at.Add(24 * time.Hour); !created.ExpiresAt.Equal(want) {
		t.Errorf("the token expires at %v, want a day after the server's now, %v", created.ExpiresAt, want)
	}
	req, _ = http.NewRequest(http.MethodGet, s.url+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+created.Secret)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the new token is refused: %s", resp.Status)
	}
}
