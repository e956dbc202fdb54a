package resource

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/safefile"
	"github.com/socle-dev/socle/internal/seal"
	"github.com/socle-dev/socle/internal/unit"
)

// record is what is kept of a provisioned unit: the desired state it was
// provisioned for (its hash says whether the desired state changed, and a
// unit removed from Git is deprovisioned, or retained, by it) and the
// outputs the driver returned.
type record struct {
	Spec          Desired           `json:"spec"`
	Hash          string            `json:"hash"`
	Outputs       map[string]string `json:"outputs"`
	ProvisionedAt time.Time         `json:"provisionedAt"`
}

// records keeps the records sealed in a directory of the data directory,
// <dir>/<env>/<name>.sealed, and in memory: runtimes read outputs at every
// replica they start, the app kind at every pass of an app (its release
// hash).
//
// The data directory, not the store: like a stack's outputs they are the
// state of what this socle provisioned on this machine (a PostgreSQL
// server it runs), they are sealed with its secret as the stacks' are,
// and the store keeps no per-kind state beside units' operations (a table
// would be a change of every store and its suite).
type records struct {
	dir string
	key *seal.Key

	mu     sync.Mutex
	cache  map[unit.Key]*record // read, or nil: known to have none
	listed map[unit.Key]bool    // the units that have a record; nil until dir is first read
}

const sealedExt = ".sealed"

func newRecords(dir string, secret []byte) (*records, error) {
	key, err := seal.New(secret)
	if err != nil {
		return nil, fmt.Errorf("the resources' outputs are sealed with the data directory's secret: %w", err)
	}
	return &records{dir: dir, key: key, cache: map[unit.Key]*record{}}, nil
}

func (r *records) path(k unit.Key) string {
	return filepath.Join(r.dir, k.Env, k.Name+sealedExt)
}

// aad binds a sealed record to its unit: a file moved to another unit's
// place does not open.
func aad(k unit.Key) []byte { return []byte("resource\x00" + k.Env + "\x00" + k.Name) }

// get returns k's record, nil when there is none.
func (r *records) get(k unit.Key) (*record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec, ok := r.cache[k]; ok {
		return rec, nil
	}
	b, err := os.ReadFile(r.path(k))
	if errors.Is(err, fs.ErrNotExist) {
		r.cache[k] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	plain, err := r.key.Open(b, aad(k))
	if err != nil {
		return nil, fmt.Errorf("reading the outputs of resource %s @ %s: %w", k.Name, k.Env, err)
	}
	var rec record
	if err := json.Unmarshal(plain, &rec); err != nil {
		return nil, fmt.Errorf("reading the outputs of resource %s @ %s: %w", k.Name, k.Env, err)
	}
	r.cache[k] = &rec
	return &rec, nil
}

// put keeps k's record, durably, before it is read.
func (r *records) put(k unit.Key, rec *record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	sealed, err := r.key.Seal(b, aad(k))
	if err != nil {
		return err
	}
	p := r.path(k)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	if err := safefile.Write(p, sealed); err != nil {
		return fmt.Errorf("keeping the outputs of resource %s @ %s: %w", k.Name, k.Env, err)
	}
	r.mu.Lock()
	r.cache[k] = rec
	if r.listed != nil {
		r.listed[k] = true
	}
	r.mu.Unlock()
	return nil
}

// remove forgets k's record.
func (r *records) remove(k unit.Key) error {
	err := os.Remove(r.path(k))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	r.mu.Lock()
	r.cache[k] = nil
	delete(r.listed, k)
	r.mu.Unlock()
	return nil
}

// keys lists the units that have a record, in key order: the directory
// is read once, then put and remove keep the list (the redactor asks at
// every rebuild, the API at every request).
func (r *records) keys() ([]unit.Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listed == nil {
		listed, err := r.list()
		if err != nil {
			return nil, err
		}
		r.listed = listed
	}
	return slices.SortedFunc(maps.Keys(r.listed), unit.Key.Compare), nil
}

// list reads the units that have a record from the directory.
func (r *records) list() (map[unit.Key]bool, error) {
	out := map[unit.Key]bool{}
	envs, err := os.ReadDir(r.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range envs {
		if !e.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(r.dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if name, ok := strings.CutSuffix(f.Name(), sealedExt); ok && !f.IsDir() {
				out[unit.Key{Kind: KindID, Name: name, Env: e.Name()}] = true
			}
		}
	}
	return out, nil
}

// all returns every record, read.
func (r *records) all() (map[unit.Key]*record, error) {
	keys, err := r.keys()
	if err != nil {
		return nil, err
	}
	out := make(map[unit.Key]*record, len(keys))
	var errs []error
	for _, k := range keys {
		rec, err := r.get(k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rec != nil {
			out[k] = rec
		}
	}
	return out, errors.Join(errs...)
}
