package api_test

import (
	"os"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/apitest"
)

// TestMain checks every request the tests send to a server they start, and
// every answer, against the OpenAPI document (see apitest.Watch).
func TestMain(m *testing.M) {
	apitest.Install()
	os.Exit(m.Run())
}

// TestContractCompiles compiles every schema of every operation's request
// and answers with the JSON Schema 2020-12 validator, as a strict client
// generator or validator would: every $ref resolves.
func TestContractCompiles(t *testing.T) {
	c, err := api.LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	paths := c.Document()["paths"].(map[string]any)
	for path, item := range paths {
		for method, o := range item.(map[string]any) {
			op := o.(map[string]any)
			var pointers []string
			if rb, ok := op["requestBody"].(map[string]any); ok {
				for ct := range rb["content"].(map[string]any) {
					pointers = append(pointers, api.Pointer("paths", path, method, "requestBody", "content", ct, "schema"))
				}
			}
			for code, r := range op["responses"].(map[string]any) {
				content, _ := r.(map[string]any)["content"].(map[string]any)
				for ct := range content {
					pointers = append(pointers, api.Pointer("paths", path, method, "responses", code, "content", ct, "schema"))
				}
			}
			for _, p := range pointers {
				n++
				if _, err := c.Schema(p); err != nil {
					t.Errorf("%s %s: %v", strings.ToUpper(method), path, err)
				}
			}
		}
	}
	if _, err := c.Schema("/components/responses/Error/content/application~1json/schema"); err != nil {
		t.Error(err)
	}
	if n < len(api.Operations) {
		t.Errorf("only %d schemas compiled for %d operations", n, len(api.Operations))
	}
}
