package local

import (
	"encoding/binary"
	"strings"
	"testing"
)

// procargs lays out a kern.procargs2 buffer as XNU does (a stand-in: macOS
// cannot run here).
func procargs(path string, args, env, apple []string) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(len(args)))
	b = append(b, path...)
	b = append(b, make([]byte, 8-len(path)%8)...) // NUL and padding
	for _, s := range args {
		b = append(append(b, s...), 0)
	}
	for _, s := range env {
		b = append(append(b, s...), 0)
	}
	b = append(b, 0)
	for _, s := range apple {
		b = append(append(b, s...), 0)
	}
	return b
}

func TestProcargsVar(t *testing.T) {
	marker := markerVar + "=/data/local/web.dev/r3"
	for _, c := range []struct {
		name string
		b    []byte
		want string
		ok   bool
	}{
		{"marker", procargs("/app/web", []string{"socle:web.dev/r3/0 /app/web", "-v"}, []string{"PORT=8080", marker, "PATH=/bin"}, nil), "/data/local/web.dev/r3", true},
		{"an argument is not the environment", procargs("/app/web", []string{marker}, []string{"PORT=8080"}, nil), "", false},
		{"nor are Apple's strings", procargs("/app/web", nil, []string{"PORT=8080"}, []string{marker}), "", false},
		{"a longer name", procargs("/a", nil, []string{markerVar + "X=1"}, nil), "", false},
		{"no arguments", procargs("/a", nil, []string{marker}, nil), "/data/local/web.dev/r3", true},
		{"truncated", procargs("/app/web", []string{"a", "b"}, nil, nil)[:12], "", false},
		{"empty", nil, "", false},
	} {
		got, ok := procargsVar(c.b, markerVar)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: procargsVar = %q, %v; want %q, %v (buffer %q)", c.name, got, ok, c.want, c.ok, strings.ReplaceAll(string(c.b), "\x00", "|"))
		}
	}
}
