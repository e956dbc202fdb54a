package artifact

import (
	"fmt"
	"os"
	"strings"
	"testing"

	scoretypes "github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
)

func TestImageConfig(t *testing.T) {
	built := func(cmd, args []string, vars map[string]string) scoretypes.Container {
		return scoretypes.Container{Image: BuiltImage, Command: cmd, Args: args, Variables: vars}
	}
	for _, tc := range []struct {
		name       string
		containers map[string]scoretypes.Container
		execs      []string
		secrets    []string
		want       string // entrypoint | cmd | env, or the error
	}{
		{
			name:       "default entrypoint, variables without placeholders",
			containers: map[string]scoretypes.Container{"web": built(nil, nil, map[string]string{"B": "2", "A": "1", "DB": "${resources.db.password}"})},
			execs:      []string{"/app/tool", "/app/svc"},
			want:       "[/app/svc] | [] | [A=1 B=2]",
		},
		{
			name:       "a secret variable stays out of the image",
			containers: map[string]scoretypes.Container{"web": built(nil, nil, map[string]string{"API_KEY": "s3cret-value", "A": "1"})},
			execs:      []string{"/app/svc"},
			secrets:    []string{"API_KEY"},
			want:       "[/app/svc] | [] | [A=1]",
		},
		{
			name:       "Score command and args",
			containers: map[string]scoretypes.Container{"web": built([]string{"/app/bin/run", "-v"}, []string{"serve"}, nil)},
			execs:      []string{"/app/bin/run", "/app/bin/other"},
			want:       "[/app/bin/run -v] | [serve] | []",
		},
		{
			name:       "command with a placeholder is left to the runtime",
			containers: map[string]scoretypes.Container{"web": built([]string{"/app/svc", "--name=${metadata.name}"}, []string{"${metadata.name}"}, nil)},
			execs:      []string{"/app/svc"},
			want:       "[/app/svc] | [] | []",
		},
		{
			name:       "the only executable",
			containers: map[string]scoretypes.Container{"web": built(nil, nil, nil)},
			execs:      []string{"/app/bin/server"},
			want:       "[/app/bin/server] | [] | []",
		},
		{
			name:       "no way to choose",
			containers: map[string]scoretypes.Container{"web": built(nil, nil, nil)},
			execs:      []string{"/app/a", "/app/b"},
			want:       "cannot choose the image's entrypoint: the build wrote 2 executables and none is $SOCLE_OUT/svc; set the container's command in score.yaml",
		},
		{
			name: "several built containers with their own commands",
			containers: map[string]scoretypes.Container{
				"a":       built([]string{"/app/a"}, nil, map[string]string{"X": "1"}),
				"b":       built([]string{"/app/b"}, nil, nil),
				"sidecar": {Image: "nginx:1.27"},
			},
			execs: []string{"/app/a", "/app/b"},
			want:  "[] | [] | []",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &spec.App{
				Name:     "svc",
				Source:   "sha256:src",
				Workload: &scoretypes.Workload{Containers: tc.containers},
				Config:   spec.AppConfig{Build: &spec.Build{Command: "make"}, Secrets: tc.secrets},
			}
			cfg, err := imageConfig(app, source.Revision{SHA: "abc"}, tc.execs)
			got := fmt.Sprintf("%v | %v | %v", cfg.Entrypoint, cfg.Cmd, cfg.Env)
			if err != nil {
				got = err.Error()
			} else if cfg.WorkingDir != AppDir || cfg.Labels[LabelRevision] != "abc" || cfg.Labels[LabelSource] != "sha256:src" {
				t.Errorf("config %+v", cfg)
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLogTail(t *testing.T) {
	var w logWriter
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	w.file = f
	defer f.Close()
	for i := range 5000 {
		fmt.Fprintf(&w, "line %d\n", i)
	}
	tail := w.tail()
	lines := strings.Split(tail, "\n")
	if len(lines) != tailLines || lines[len(lines)-1] != "line 4999" || len(tail) > tailBytes {
		t.Errorf("tail of %d lines ends with %q", len(lines), lines[len(lines)-1])
	}
}
