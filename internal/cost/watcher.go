package cost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Watcher imports the billing exports that land in the drop directory that
// socle.yaml's costs.drop names (relative to the data directory). It polls,
// which works on every file system, including network mounts that inotify
// does not see.
//
// The files of one directory that changed since the last poll form one
// batch, imported once the directory has been quiet for a whole interval,
// so that the parts of an export being copied in are imported together and
// complete. A file whose content was imported before (by its SHA-256,
// remembered in the store) is not imported again, so a restart does not
// add an old copy next to its restated version.
type Watcher struct {
	svc     *Service
	dataDir string
	// Interval between polls (default 10 s).
	Interval time.Duration
	// BudgetEvery is how often budgets are checked and pending alerts
	// retried without an import (default 1 h).
	BudgetEvery time.Duration

	seen       map[string]fileState // state of each file at the last poll
	done       map[string]fileState // state of each file when last handled
	lastBudget time.Time
}

type fileState struct {
	size int64
	mod  time.Time
}

// NewWatcher returns a watcher of the drop directory of svc's repository,
// resolved against dataDir.
func NewWatcher(svc *Service, dataDir string) *Watcher {
	return &Watcher{svc: svc, dataDir: dataDir, seen: map[string]fileState{}, done: map[string]fileState{}}
}

// Dir returns the drop directory in force, or "" when socle.yaml names none.
func (w *Watcher) Dir() string {
	r := w.svc.repo()
	if r == nil || r.Platform.Costs == nil || r.Platform.Costs.Drop == "" {
		return ""
	}
	d := r.Platform.Costs.Drop
	if !filepath.IsAbs(d) {
		d = filepath.Join(w.dataDir, d)
	}
	return d
}

// Run polls until ctx ends. Failures are logged and retried when the files
// change; Run returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	iv := w.Interval
	if iv <= 0 {
		iv = 10 * time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		w.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll looks at the drop directory once and imports what is ready.
func (w *Watcher) Poll(ctx context.Context) {
	log := w.svc.log()
	every := w.BudgetEvery
	if every <= 0 {
		every = time.Hour
	}
	if now := w.svc.now(); now.Sub(w.lastBudget) >= every {
		w.lastBudget = now
		if _, err := w.svc.CheckBudgets(ctx); err != nil {
			log.Warn("checking budgets", "err", err)
		}
	}
	dir := w.Dir()
	if dir == "" {
		return
	}
	cur := map[string]fileState{}
	byDir := map[string][]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // a file removed while walking
		}
		if d.IsDir() || !IsBillingFile(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		cur[p] = fileState{info.Size(), info.ModTime()}
		byDir[filepath.Dir(p)] = append(byDir[filepath.Dir(p)], p)
		return nil
	})
	if err != nil {
		if !os.IsNotExist(err) {
			log.Warn("reading the cost drop directory", "dir", dir, "err", err)
		}
		return
	}
	prev := w.seen
	w.seen = cur
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		paths := byDir[d]
		quiet, changed := true, false
		for _, p := range paths {
			if prev[p] != cur[p] {
				quiet = false
			}
			if w.done[p] != cur[p] {
				changed = true
			}
		}
		if !quiet || !changed {
			continue
		}
		var batch []File
		for _, p := range paths {
			if w.done[p] == cur[p] {
				continue
			}
			w.done[p] = cur[p]
			sum, err := fileSHA256(p)
			if err != nil {
				log.Warn("reading a cost file", "file", p, "err", err)
				continue
			}
			if ok, err := w.svc.Store.Imported(ctx, sum); err != nil {
				log.Warn("checking cost imports", "err", err)
				continue
			} else if ok {
				continue
			}
			rel, _ := filepath.Rel(dir, p)
			batch = append(batch, File{Path: p, Name: filepath.ToSlash(rel)})
		}
		if len(batch) == 0 {
			continue
		}
		if _, err := w.svc.Import(ctx, batch, Replace); err != nil {
			log.Error("importing dropped cost files", "dir", d, "err", err)
		}
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
