package stack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/socle-dev/socle/internal/safefile"
	"github.com/socle-dev/socle/internal/seal"
	"github.com/socle-dev/socle/internal/spec"
)

// The files of an instance's directory. Those that hold secrets (the
// state, the saved plan, the inputs, the outputs) are in clear only while
// terraform runs; at rest they are sealed (<name>.sealed) with the data
// directory's secret, bound to their instance and kind.
const (
	stateFile   = "terraform.tfstate"
	stateBackup = "terraform.tfstate.backup" // the local backend's own copy, in clear
	planFile    = "plan.tfplan"
	varsFile    = "inputs.tfvars.json"
	cacheFile   = "plan.json"
	runFile     = "run.json"
	outputsFile = "outputs.json"
	secretsFile = "secrets.json" // the plan's secret inputs, to redact outputs with
	sealedExt   = ".sealed"
	backupsDir  = "backups"
	historyDir  = "history"
)

// maxSealedBytes bounds what is read of a sealed file (it is opened whole
// in memory).
const maxSealedBytes = 256 << 20

// ErrNoSecret is a run that needs to seal or open a file and a Runner
// without the data directory's secret.
var ErrNoSecret = errors.New("the runner has no data directory secret to seal or open states, saved plans and outputs with")

// files are one instance's files.
type files struct {
	dir, stack, instance string
	// key is nil for a Runner without Secret: it plans for show only.
	key *seal.Key
	// own: the stack keeps its state in its own backend; socle neither
	// seals nor backs it up (there is no state file here).
	own bool
}

func (r *Runner) files(s *spec.Stack, instance string) *files {
	return &files{dir: instanceDir(r.Dir, s.Name, instance), stack: s.Name, instance: instance, key: r.sealKey(), own: s.Config.Backend == spec.StackBackendOwn}
}

func (f *files) path(name string) string { return filepath.Join(f.dir, name) }

// aad binds a sealed file to its instance and kind: a sealed state copied
// to another instance, or renamed a plan, does not open.
func (f *files) aad(kind string) []byte {
	return []byte("socle stack " + kind + "\x00" + f.stack + "/" + f.instance)
}

// kindOf is the kind a file is sealed as: backups are states.
func kindOf(name string) string {
	if strings.HasPrefix(name, backupsDir+string(filepath.Separator)) {
		return stateFile
	}
	return name
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// seal seals the clear file name into name.sealed and removes the clear
// one.
func (f *files) seal(name string) error {
	if f.key == nil {
		return ErrNoSecret
	}
	plain, err := readBounded(f.path(name))
	if err != nil {
		return err
	}
	b, err := f.key.Seal(plain, f.aad(kindOf(name)))
	if err != nil {
		return err
	}
	if err := writeFileSync(f.path(name+sealedExt), b); err != nil {
		return err
	}
	return os.Remove(f.path(name))
}

// open returns the clear content of name.sealed; ok is false when there
// is none.
func (f *files) open(name string) (plain []byte, ok bool, err error) {
	b, err := readBounded(f.path(name + sealedExt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if f.key == nil {
		return nil, false, fmt.Errorf("%s: %w", f.path(name+sealedExt), ErrNoSecret)
	}
	plain, err = f.key.Open(b, f.aad(kindOf(name)))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", f.path(name+sealedExt), err)
	}
	return plain, true, nil
}

// writeSealed writes v as JSON, sealed, at name.sealed.
func (f *files) writeSealed(name string, v any) error {
	if f.key == nil {
		return ErrNoSecret
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sealed, err := f.key.Seal(b, f.aad(name))
	if err != nil {
		return err
	}
	return writeFileSync(f.path(name+sealedExt), sealed)
}

// readSealed reads into v what writeSealed wrote; ok is false when there
// is none.
func (f *files) readSealed(name string, v any) (bool, error) {
	b, ok, err := f.open(name)
	if !ok || err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

// unseal writes the clear content of name.sealed at name, for terraform;
// ok is false when there is none.
func (f *files) unseal(name string) (bool, error) {
	plain, ok, err := f.open(name)
	if !ok || err != nil {
		return false, err
	}
	return true, writeFileSync(f.path(name), plain)
}

// openState puts the state read at the start of the run in clear for
// terraform (a clear one left there is used as it is: it is newer than
// the sealed one).
func (f *files) openState(st state) error {
	if f.own || !st.found || exists(f.path(stateFile)) {
		return nil
	}
	return writeFileSync(f.path(stateFile), st.plain)
}

// closeState seals the state terraform left in clear, and removes the
// local backend's copy of the previous one (socle keeps its own backups,
// sealed). Without a key (a Runner that plans for show only) the clear
// state stays: there is nothing to seal it with.
func (f *files) closeState() error {
	os.Remove(f.path(stateBackup))
	if f.own || f.key == nil || !exists(f.path(stateFile)) {
		return nil
	}
	return f.seal(stateFile)
}

// state is an instance's state in clear, read once per run: hashed for
// the cache key, then put in clear for terraform by openState, so that a
// sealed state is opened once, not once for each.
type state struct {
	plain []byte
	found bool // false: no state (none yet, or the stack's own backend)
}

// readState reads the state in clear: the one terraform left in clear,
// or the sealed one opened.
func (f *files) readState() (state, error) {
	if f.own {
		return state{}, nil
	}
	plain, err := readBounded(f.path(stateFile))
	if err == nil {
		return state{plain, true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return state{}, err
	}
	plain, ok, err := f.open(stateFile)
	return state{plain, ok}, err
}

// hash is the hash of the state in clear ("none": no state), sealed or
// not: sealing draws a fresh nonce each time, so the sealed bytes say
// nothing of whether the state changed.
func (s state) hash() string {
	if !s.found {
		return "none"
	}
	return contentHash(s.plain)
}

// discardPlan removes the saved plan and the cache of the last plan: the
// next step is a fresh plan.
func (f *files) discardPlan() error {
	var errs []error
	for _, n := range []string{planFile, planFile + sealedExt, secretsFile + sealedExt, cacheFile} {
		if err := os.Remove(f.path(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readBounded reads a file of at most maxSealedBytes.
func readBounded(p string) ([]byte, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxSealedBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSealedBytes {
		return nil, fmt.Errorf("%s is over %d bytes, the most socle reads", p, maxSealedBytes)
	}
	return b, nil
}

// writeFileSync writes a file readable by socle's user only, atomically
// (safefile): a crash leaves the old content or the new, never half of one.
func writeFileSync(p string, b []byte) error { return safefile.Write(p, b) }

// rotate keeps the last keep files of dir (their names sort by time).
func rotate(dir string, keep int) error {
	es, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(es))
	for _, e := range es {
		if !e.IsDir() && !safefile.IsTemp(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var errs []error
	for _, n := range names[:max(0, len(names)-keep)] {
		errs = append(errs, os.Remove(filepath.Join(dir, n)))
	}
	return errors.Join(errs...)
}
