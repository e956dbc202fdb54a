package stack

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestMasked: what policies see of a plan's values.
func TestMasked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		v, sens, unknown, want any
	}{
		{"sensitive as a whole", map[string]any{"a": "x"}, true, nil, Redacted},
		{"a sensitive key", map[string]any{"a": "x", "b": "y"}, map[string]any{"a": true}, nil, map[string]any{"a": Redacted, "b": "y"}},
		{"a sensitive list element", []any{"x", "y"}, []any{false, true}, nil, []any{"x", Redacted}},
		{"a secret inside a string", map[string]any{"dsn": "pg://u:s3cr3t-pw@h"}, nil, nil, map[string]any{"dsn": Redacted}},
		{"unknown, absent from the value", map[string]any{"a": "x"}, nil, map[string]any{"id": true}, map[string]any{"a": "x", "id": Unknown}},
		{"unknown inside a list", []any{"x", nil}, nil, []any{false, true}, []any{"x", Unknown}},
		{"numbers", map[string]any{"n": json.Number("3.5"), "b": true}, nil, nil, map[string]any{"n": 3.5, "b": true}},
		{"nothing", nil, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Masked(tt.v, tt.sens, tt.unknown, []string{"s3cr3t-pw"}); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Masked = %#v, want %#v", got, tt.want)
			}
		})
	}
}
