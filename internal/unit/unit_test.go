package unit

import (
	"slices"
	"testing"
)

func TestKeyOrder(t *testing.T) {
	keys := []Key{
		{Kind: "stack", Name: "net", Env: "prod"},
		{Kind: "app", Name: "web", Env: "prod"},
		{Kind: "app", Name: "api", Env: "prod"},
		{Kind: "app", Name: "web", Env: "dev"},
		{Kind: "resource", Name: "web", Env: "dev"},
	}
	slices.SortFunc(keys, Key.Compare)
	var got []string
	for _, k := range keys {
		got = append(got, k.String())
	}
	want := []string{"app web @ dev", "resource web @ dev", "app api @ prod", "stack net @ prod", "app web @ prod"}
	if !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
}
