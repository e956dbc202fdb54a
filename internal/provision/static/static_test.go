package static

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/provision"
)

func TestStatic(t *testing.T) {
	env := map[string]string{"DB_PASSWORD": "s3cret-from-env"}
	d := &Driver{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	req := func(outputs any) provision.Request {
		return provision.Request{Name: "db", Env: "prod", Type: "postgres", Config: map[string]any{"outputs": outputs}}
	}
	for _, tc := range []struct {
		name    string
		outputs any
		want    map[string]string
		err     string
	}{
		{name: "values and a secret from the environment",
			outputs: map[string]any{"host": "db.example.com", "port": 5432, "password": map[string]any{"secretFromEnv": "DB_PASSWORD"}},
			want:    map[string]string{"host": "db.example.com", "port": "5432", "password": "s3cret-from-env"}},
		{name: "unset variable", outputs: map[string]any{"password": map[string]any{"secretFromEnv": "NOPE"}},
			err: "output password: environment variable NOPE is not set"},
		{name: "unknown key beside secretFromEnv", outputs: map[string]any{"password": map[string]any{"secretFromEnv": "DB_PASSWORD", "x": 1}},
			err: "{secretFromEnv: NAME}, with nothing else"},
		{name: "a list", outputs: map[string]any{"hosts": []any{"a"}}, err: "output hosts: a value is a string"},
		{name: "not a map", outputs: "host=x", err: "a map of output to value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Provision(context.Background(), req(tc.outputs))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "resource db") {
					t.Fatalf("error %v, want one naming resource db and saying %q", err, tc.err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("outputs %v (%v), want %v", got, err, tc.want)
			}
		})
	}
	if _, err := d.Provision(context.Background(), provision.Request{Name: "db"}); err == nil || !strings.Contains(err.Error(), "no outputs") {
		t.Errorf("a config without outputs: %v", err)
	}
	if err := d.Check(context.Background(), req(nil)); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := d.Deprovision(context.Background(), req(nil)); err != nil {
		t.Errorf("Deprovision: %v", err)
	}
}

// TestStaticReadsSocleEnvironment: without LookupEnv, socle's own
// environment is read.
func TestStaticReadsSocleEnvironment(t *testing.T) {
	t.Setenv("SOCLE_TEST_STATIC_PASSWORD", "from-the-process")
	got, err := New().Provision(context.Background(), provision.Request{Name: "db",
		Config: map[string]any{"outputs": map[string]any{"password": map[string]any{"secretFromEnv": "SOCLE_TEST_STATIC_PASSWORD"}}}})
	if err != nil || got["password"] != "from-the-process" {
		t.Fatalf("outputs %v, %v", got, err)
	}
}
