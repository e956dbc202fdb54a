// Package imports checks the import rules of the tree (issue 16): the
// seams between the parts hold only while nothing reaches across them, and
// a reviewer does not see an import added three files away.
package imports

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/socle-dev/socle"

type pkg struct {
	ImportPath string
	Imports    []string // direct
	Deps       []string // transitive
	Dir        string
	GoFiles    []string
	Module     *struct{ Main bool }
}

// load lists every package of the module and what it imports, with the
// go command (the same view the compiler has, build tags included).
func load(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Deps,Module,Dir,GoFiles", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module != nil && p.Module.Main {
			pkgs[p.ImportPath] = p
			// Read by the test, the files are part of its cached result:
			// without this, go test would answer from its cache after an
			// import was added (it does not see what go list read). The
			// directory is read too, so that a new file counts.
			if _, err := os.ReadDir(p.Dir); err != nil {
				t.Fatal(err)
			}
			for _, f := range p.GoFiles {
				if _, err := os.Stat(filepath.Join(p.Dir, f)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages of the module: the test does not see the tree", len(pkgs))
	}
	return pkgs
}

func ours(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

func under(path, dir string) bool {
	dir = module + "/" + dir
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// concrete are the implementations only the wiring picks: a part that
// imported one would no longer work with the others (PostgreSQL, a
// container runtime).
var concrete = []string{"internal/store/sqlite", "internal/runtime/local", "internal/runtime/kubernetes"}

// apiValues are the only socle packages internal/api imports: value types
// of the API's own vocabulary, with no behaviour of socle's behind them.
// money.Amount is an exact decimal with its JSON and its schema (a string,
// never a float); a copy of it in the API would be the same code twice.
// Every other answer is a type of internal/api, converted from socle's
// internal types at the server's handlers (internal/server/wire.go): an
// internal struct served as an answer would change the API whenever it
// changed. The list only shrinks.
var apiValues = []string{"internal/money"}

func TestImportRules(t *testing.T) {
	pkgs := load(t)
	for _, p := range pkgs {
		switch {
		// spec is the language of the repository: it stands alone, so
		// that validating a repository needs nothing of socle's machinery.
		case under(p.ImportPath, "internal/spec"):
			for _, d := range p.Deps {
				if ours(d) && !under(d, "internal/spec") {
					t.Errorf("%s depends on %s: spec imports no socle package", p.ImportPath, d)
				}
			}
		// Drivers run units; they know neither the engine that schedules
		// them nor socle's proxy, which is one router among others.
		case under(p.ImportPath, "internal/runtime"):
			for _, d := range p.Deps {
				if under(d, "internal/reconcile") || under(d, "internal/proxy") {
					t.Errorf("%s depends on %s: drivers import neither reconcile nor proxy", p.ImportPath, d)
				}
			}
		}
		// Only the wiring imports concrete stores and drivers (and they
		// their own subpackages, and their tests theirs).
		for _, imp := range p.Imports {
			for _, c := range concrete {
				if under(imp, c) && !under(p.ImportPath, "internal/wiring") && !under(p.ImportPath, c) {
					t.Errorf("%s imports %s: only internal/wiring imports concrete stores and drivers", p.ImportPath, imp)
				}
			}
		}
	}
	// The CLI reaches the server through its constructor only (socle up),
	// and stores and drivers through the wiring, as the server does.
	for _, imp := range pkgs[module+"/internal/cli"].Imports {
		if under(imp, "internal/server") && imp != module+"/internal/server" {
			t.Errorf("internal/cli imports %s: the server's internals are its own", imp)
		}
	}
	api, ok := pkgs[module+"/internal/api"]
	if !ok {
		t.Fatal("no internal/api in the tree")
	}
	for _, imp := range api.Imports {
		if ours(imp) && !under(imp, "internal/api") && !slices.Contains(apiValues, strings.TrimPrefix(imp, module+"/")) {
			t.Errorf("internal/api imports %s: API wire types are the API's own, converted at the server's handlers", imp)
		}
	}
	for _, e := range apiValues {
		if !slices.Contains(api.Imports, module+"/"+e) {
			t.Errorf("internal/api no longer imports %s: remove it from apiValues", e)
		}
	}
}
