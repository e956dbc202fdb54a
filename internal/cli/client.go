package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
)

// config is what `socle login` keeps in the user's config directory.
type config struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// configPath is $XDG_CONFIG_HOME/socle/config.json (or the platform's
// equivalent); SOCLE_CONFIG overrides it.
func configPath() (string, error) {
	if p := os.Getenv("SOCLE_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "socle", "config.json"), nil
}

func loadConfig() config {
	var c config
	if p, err := configPath(); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			json.Unmarshal(b, &c)
		}
	}
	return c
}

func saveConfig(c config) (string, error) {
	p, err := configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return p, os.WriteFile(p, append(b, '\n'), 0o600)
}

// resolve fills the server and the token: flags, then SOCLE_SERVER and
// SOCLE_TOKEN, then the config file, then the default server.
func (g *globals) resolve(cmd *cobra.Command) {
	c := loadConfig()
	if !cmd.Flags().Changed("server") {
		switch {
		case os.Getenv("SOCLE_SERVER") != "":
			g.server = os.Getenv("SOCLE_SERVER")
		case c.Server != "":
			g.server = c.Server
		}
	}
	if g.token == "" {
		g.token = os.Getenv("SOCLE_TOKEN")
	}
	if g.token == "" {
		g.token = c.Token
	}
}

// client is the API client of the command's server and token.
func (g *globals) client() *client.Client { return client.New(g.server, g.token) }

// apiErr turns an API call's error into the CLI's exit codes: a verdict of
// the server (blocked, refused, forbidden, invalid) exits 1; no or a bad
// token, an unreachable server or a server fault exits 3.
func (g *globals) apiErr(err error) error {
	if err == nil {
		return nil
	}
	var e *client.Error
	if !errors.As(err, &e) {
		return withCode(ExitError, fmt.Errorf("socle server at %s: %w (is `socle up` running? set --server or SOCLE_SERVER)", g.server, err))
	}
	if g.json() {
		g.printJSON(map[string]any{"error": e.ErrorBody})
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return withCode(ExitError, errors.New(unauthorized(e)))
	case http.StatusConflict, http.StatusForbidden, http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity:
		return withCode(ExitProblems, errors.New(e.Error()))
	}
	return withCode(ExitError, errors.New(e.Error()))
}

// get calls the API and decodes the JSON answer into out.
func (g *globals) get(cmd *cobra.Command, path string, out any) error {
	return g.apiErr(g.client().Get(cmd.Context(), path, out))
}

// unauthorized says how to get a token: the file the server names (to a
// caller on its machine), else where `socle up` keeps it by default.
func unauthorized(e *client.Error) string {
	var hint api.Unauthorized
	if b, err := json.Marshal(e.Details); err == nil {
		_ = json.Unmarshal(b, &hint)
	}
	if f := hint.AdminTokenFile; f != "" {
		return fmt.Sprintf("no valid token: export SOCLE_TOKEN=$(cat %s) (the first admin's token, which socle up keeps there), or log in with `socle login`; an admin makes tokens with `socle token create`", f)
	}
	return e.Message + ": log in with `socle login`, or set SOCLE_TOKEN (socle up keeps the first admin's token in admin.token in its data directory: export SOCLE_TOKEN=$(cat .socle/admin.token) where it runs with the default --data); an admin makes tokens with `socle token create`"
}
