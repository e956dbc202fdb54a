package spec

import "testing"

func TestPrimaryPort(t *testing.T) {
	for _, tt := range []struct {
		ports []string
		want  string
	}{
		{nil, ""},
		{[]string{"metrics", "http"}, "http"},
		{[]string{"web", "admin"}, "admin"},
	} {
		if got := PrimaryPort(tt.ports); got != tt.want {
			t.Errorf("PrimaryPort(%q) = %q, want %q", tt.ports, got, tt.want)
		}
	}
}
