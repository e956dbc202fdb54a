package resource

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/provision/builtin"
	"github.com/socle-dev/socle/internal/provision/static"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store/sqlite"
	"github.com/socle-dev/socle/internal/syncbuf"
	"github.com/socle-dev/socle/internal/unit"
	"github.com/socle-dev/socle/internal/wiring"
)

// testDirDriver is a provisioner driver for these tests: a resource is a
// directory of its own, its password a file in it made once; Check fails
// when the directory is gone, as a process driver's does when its server
// died. hold, while open, keeps Provision from returning: a test sees
// what waits meanwhile. fail, checkFail and deprovisionFail make each
// call fail.
type testDirDriver struct {
	dir string

	mu              sync.Mutex
	provisions      int
	checks          int
	removed         []string
	hold            chan struct{}
	fail            error
	checkFail       error
	deprovisionFail error
}

func (d *testDirDriver) Name() string { return "testdir" }

func (d *testDirDriver) path(r provision.Request) string { return filepath.Join(d.dir, r.Env, r.Name) }

func (d *testDirDriver) Provision(ctx context.Context, r provision.Request) (map[string]string, error) {
	d.mu.Lock()
	hold, fail := d.hold, d.fail
	d.provisions++
	d.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		return nil, fail
	}
	p := d.path(r)
	if err := os.MkdirAll(p, 0o700); err != nil {
		return nil, err
	}
	pw, err := os.ReadFile(filepath.Join(p, "password"))
	if errors.Is(err, fs.ErrNotExist) {
		b := make([]byte, 12)
		rand.Read(b)
		pw = []byte(hex.EncodeToString(b))
		err = os.WriteFile(filepath.Join(p, "password"), pw, 0o600)
	}
	if err != nil {
		return nil, err
	}
	return map[string]string{"host": "127.0.0.1", "port": "5432", "database": r.Name, "password": string(pw),
		"url": "postgres://" + r.Name + ":" + string(pw) + "@127.0.0.1:5432/" + r.Name}, nil
}

func (d *testDirDriver) Check(_ context.Context, r provision.Request) error {
	d.mu.Lock()
	d.checks++
	fail := d.checkFail
	d.mu.Unlock()
	if fail != nil {
		return fail
	}
	if _, err := os.Stat(filepath.Join(d.path(r), "password")); err != nil {
		return fmt.Errorf("the database of %s is gone", r.Name)
	}
	return nil
}

func (d *testDirDriver) Deprovision(_ context.Context, r provision.Request) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.deprovisionFail != nil {
		return d.deprovisionFail
	}
	d.removed = append(d.removed, r.Env+"/"+r.Name)
	return os.RemoveAll(d.path(r))
}

func (d *testDirDriver) count() int { d.mu.Lock(); defer d.mu.Unlock(); return d.provisions }

// testHostDriver serves queues whose host is the content of a file, as a
// stack provisioner's outputs are the stack's last apply's: Changed
// reports another host. It returns an output no provisioner declares.
type testHostDriver struct{ file string }

func (d *testHostDriver) Name() string { return "testhost" }

func (d *testHostDriver) Provision(context.Context, provision.Request) (map[string]string, error) {
	b, err := os.ReadFile(d.file)
	return map[string]string{"host": string(b), "undeclared": "not kept"}, err
}

func (d *testHostDriver) Check(context.Context, provision.Request) error { return nil }

func (d *testHostDriver) Changed(ctx context.Context, r provision.Request, last map[string]string) (bool, error) {
	outs, err := d.Provision(ctx, r)
	return err == nil && outs["host"] != last["host"], err
}

func (d *testHostDriver) Deprovision(context.Context, provision.Request) error { return nil }

func (d *testHostDriver) Leaves(provision.Request) string { return "the host file stays" }
func (d *testDirDriver) checked() int                     { d.mu.Lock(); defer d.mu.Unlock(); return d.checks }

// set changes the driver's fields under its lock.
func (d *testDirDriver) set(f func(d *testDirDriver)) { d.mu.Lock(); defer d.mu.Unlock(); f(d) }

// testAppKind stands for the app kind in these tests: a unit "starts"
// (a step that Starts, held by the engine until its resources are
// Synced) by reading its resources' outputs, as a runtime resolving
// ${resources.…} does, and starts again when they change.
type testAppKind struct {
	res *Kind
	mu  sync.Mutex
	saw map[string]map[string]provision.Outputs // app → what it read at its last start
}

type appStart struct{ hash string }

func (appStart) Starts() bool     { return true }
func (appStart) String() string   { return "start" }
func (a *testAppKind) ID() string { return "app" }
func (a *testAppKind) Start(context.Context, reconcile.Host) ([]unit.Key, error) {
	return nil, nil
}
func (a *testAppKind) Decode(raw json.RawMessage) (any, error) {
	var u plan.Unit
	return &u, json.Unmarshal(raw, &u)
}
func (a *testAppKind) Observe(_ context.Context, u *reconcile.Unit) (any, error) {
	return a.res.OutputsHash(u.Spec.(*plan.Unit)), nil
}
func (a *testAppKind) Plan(u *reconcile.Unit, obs any) reconcile.Step {
	if started, ok := u.Memo.(string); ok && started == obs.(string) {
		return nil
	}
	return appStart{obs.(string)}
}
func (a *testAppKind) Apply(_ context.Context, u *reconcile.Unit, s reconcile.Step) error {
	d := u.Spec.(*plan.Unit)
	outs, err := a.res.Outputs(d)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.saw[d.App] = outs
	a.mu.Unlock()
	u.Memo = s.(appStart).hash
	return nil
}
func (a *testAppKind) Health(u *reconcile.Unit, _ any) reconcile.UnitStatus {
	if _, ok := u.Memo.(string); ok {
		return reconcile.UnitStatus{Phase: reconcile.Synced}
	}
	return reconcile.UnitStatus{Phase: reconcile.Pending}
}
func (a *testAppKind) Prune(context.Context, *reconcile.Unit) (bool, error) { return true, nil }

func (a *testAppKind) seen(app string) map[string]provision.Outputs {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.saw[app]
}

type harness struct {
	t      *testing.T
	drv    *testDirDriver
	host   *testHostDriver
	kind   *Kind
	apps   *testAppKind
	e      *reconcile.Engine
	st     *sqlite.DB
	repo   *spec.Repo
	logs   *syncbuf.Buffer
	redact []string
}

// testRepo has dev (local, first of the line) and prod (promoted from
// dev: production), and a static provisioner of redis in prod.
func testRepo(redisHost string) *spec.Repo {
	local := spec.Runtime{Type: spec.RuntimeLocal}
	return &spec.Repo{
		Platform: spec.Platform{Environments: []spec.Environment{
			{Name: "dev", Runtime: local, Sync: spec.SyncAuto},
			{Name: "prod", Runtime: local, Sync: spec.SyncAuto, Promotion: &spec.Promotion{From: "dev"}},
		}},
		Provisioners: []*spec.Provisioner{
			{Name: "dir-postgres", Match: spec.ProvisionerMatch{Type: "postgres"}, Driver: "testdir", Data: true,
				Outputs: []spec.ProvisionerOutput{{Name: "host"}, {Name: "port"}, {Name: "database"}, {Name: "password", Secret: true}, {Name: "url", Secret: true}}},
			{Name: "file-queue", Match: spec.ProvisionerMatch{Type: "queue"}, Driver: "testhost", Outputs: []spec.ProvisionerOutput{{Name: "host"}}},
			{Name: "prod-redis", Match: spec.ProvisionerMatch{Type: "redis", Environments: []string{"prod"}}, Driver: static.Name,
				Outputs: []spec.ProvisionerOutput{{Name: "host"}, {Name: "password", Secret: true}},
				Config:  map[string]any{"outputs": map[string]any{"host": redisHost, "password": map[string]any{"secretFromEnv": "SOCLE_TEST_REDIS_PASSWORD"}}}},
		},
	}
}

func startHarness(t *testing.T, hold bool) *harness {
	t.Helper()
	return startHarnessClock(t, hold, nil)
}

// startHarnessClock starts the harness with the engine on clk (nil: the
// system's).
func startHarnessClock(t *testing.T, hold bool, clk clock.Clock) *harness {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, st: st, drv: &testDirDriver{dir: t.TempDir()}, host: &testHostDriver{file: filepath.Join(t.TempDir(), "host")}, repo: testRepo("redis.prod.internal"), logs: &syncbuf.Buffer{}}
	if hold {
		h.drv.hold = make(chan struct{})
	}
	log := slog.New(slog.NewTextHandler(h.logs, nil))
	h.kind, err = New(Config{Dir: filepath.Join(t.TempDir(), "resource-outputs"), Secret: []byte("0123456789abcdef0123456789abcdef"),
		Drivers: map[string]provision.Driver{"testdir": h.drv, "testhost": h.host, static.Name: static.New(),
			builtin.Name: builtin.New(builtin.Config{ProxyAddr: "127.0.0.1:7080", Host: wiring.ProxyHost})}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h.apps = &testAppKind{res: h.kind, saw: map[string]map[string]provision.Outputs{}}
	h.e, err = reconcile.New(reconcile.Config{Store: st, Kinds: []reconcile.Kind{h.apps, h.kind}, Resync: time.Hour, Logger: log, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { h.e.Run(ctx); close(done) }()
	t.Cleanup(func() {
		if h.drv.hold != nil {
			h.release()
		}
		cancel()
		<-done
	})
	return h
}

func (h *harness) release() {
	h.drv.mu.Lock()
	if h.drv.hold != nil {
		close(h.drv.hold)
		h.drv.hold = nil
	}
	h.drv.mu.Unlock()
}

// app is a desired app unit whose workload has resources.
func app(name, env string, res map[string]types.Resource) *plan.Unit {
	return &plan.Unit{App: name, Env: env, Runtime: spec.RuntimeLocal, Resources: res,
		Containers: map[string]types.Container{"main": {Image: ".", Variables: map[string]string{"DATABASE_URL": "${resources.db.url}"}}}}
}

func pg(id string) types.Resource {
	r := types.Resource{Type: "postgres"}
	if id != "" {
		r.Id = &id
	}
	return r
}

// apply hands the engine the desired apps and their resource units, as
// the server does.
func (h *harness) apply(units ...*plan.Unit) []unit.Desired {
	h.t.Helper()
	var ds []unit.Desired
	for _, u := range units {
		b, err := json.Marshal(u)
		if err != nil {
			h.t.Fatal(err)
		}
		ds = append(ds, unit.Desired{Key: unit.Key{Kind: "app", Name: u.App, Env: u.Env}, Spec: b})
	}
	res, apps := h.kind.Units(h.repo, ds)
	h.e.Apply(append(apps, res...))
	return res
}

// until looks at k until cond holds for its status.
func (h *harness) until(k unit.Key, what string, cond func(reconcile.UnitStatus) bool) reconcile.UnitStatus {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last reconcile.UnitStatus
	for time.Now().Before(deadline) {
		found := false
		for _, s := range h.e.Status() {
			if s.Key() == k {
				found = true
				if last = s; cond(s) {
					return s
				}
			}
		}
		if !found && cond(reconcile.UnitStatus{Phase: "gone"}) {
			return reconcile.UnitStatus{Phase: "gone"}
		}
		h.e.Trigger(k)
		time.Sleep(time.Millisecond)
	}
	h.t.Fatalf("%s never %s; last status %+v", k, what, last)
	return last
}

func phase(p reconcile.Phase) func(reconcile.UnitStatus) bool {
	return func(s reconcile.UnitStatus) bool { return s.Phase == p }
}

var appKey = func(name, env string) unit.Key { return unit.Key{Kind: "app", Name: name, Env: env} }

// noSecret fails if a secret value shows in a status, persisted or not,
// or in the log.
func (h *harness) noSecret(secrets ...string) {
	h.t.Helper()
	states, err := h.st.UnitStates(h.t.Context())
	if err != nil {
		h.t.Fatal(err)
	}
	all, _ := json.Marshal(h.e.Status())
	for _, s := range states {
		all = append(all, s.Status...)
	}
	for _, v := range secrets {
		if v == "" {
			h.t.Fatal("no secret to look for")
		}
		if bytes.Contains(all, []byte(v)) || strings.Contains(h.logs.String(), v) {
			h.t.Errorf("secret output %q shows in a status or the log", v)
		}
	}
}

// TestProvisionedBeforeTheApp: an app that uses a resource waits, with
// the resource in its words, until the resource is Synced; then it reads
// the outputs; two apps sharing an id share one unit, provisioned once;
// no secret output shows in a status or the log.
func TestProvisionedBeforeTheApp(t *testing.T) {
	h := startHarness(t, true)
	res := h.apply(
		app("api", "dev", map[string]types.Resource{"db": pg("")}),
		app("web", "dev", map[string]types.Resource{"db": pg("shared-db"), "cache": {Type: "mysql"}, "data": {Type: "volume"}}),
		app("worker", "dev", map[string]types.Resource{"db": pg("shared-db")}),
	)
	var names []string
	for _, r := range res {
		names = append(names, r.Key.String())
	}
	// mysql has no provisioner, volume is not provisioned:
	// no unit, the app reads what it did before.
	if want := "resource api-db @ dev,resource shared-db @ dev"; strings.Join(names, ",") != want {
		t.Fatalf("resource units %q, want %q", names, want)
	}
	st := h.until(appKey("api", "dev"), "waits for its database", func(s reconcile.UnitStatus) bool {
		return s.Reason == reconcile.ReasonDependencyNotReady
	})
	if st.Message != "Waiting: resource api-db (postgres) provisioning" {
		t.Errorf("the waiting app says %q", st.Message)
	}
	if h.apps.seen("api") != nil {
		t.Fatal("the app started before its resource was provisioned")
	}
	h.release()
	for _, a := range []string{"api", "web", "worker"} {
		h.until(appKey(a, "dev"), "starts", phase(reconcile.Synced))
	}
	if n := h.drv.count(); n != 2 {
		t.Errorf("%d provisions, want 2: one per resource unit, the shared one once", n)
	}
	web, worker, api := h.apps.seen("web")["db"], h.apps.seen("worker")["db"], h.apps.seen("api")["db"]
	if web.Values["database"] != "shared-db" || !maps.Equal(web.Values, worker.Values) || api.Values["database"] != "api-db" || !api.Secret["password"] || api.Secret["host"] {
		t.Errorf("outputs read: web %v, worker %v, api %v", web, worker, api)
	}
	if _, ok := h.apps.seen("web")["cache"]; ok {
		t.Error("a resource no provisioner serves has provisioned outputs")
	}
	st = h.until(Key("shared-db", "dev"), "is Synced", phase(reconcile.Synced))
	if st.Message != "postgres provisioned by dir-postgres (testdir) for web, worker" {
		t.Errorf("the resource says %q", st.Message)
	}
	h.noSecret(api.Values["password"], web.Values["password"], api.Values["url"])
	secrets := h.kind.SecretValues()
	for _, v := range []string{api.Values["password"], api.Values["url"], web.Values["password"]} {
		if !strings.Contains(strings.Join(secrets, "\n"), v) {
			t.Errorf("SecretValues lacks %q", v)
		}
	}
	// The outputs are sealed at rest: one file per resource unit, none
	// holding a password in clear.
	files := 0
	err := filepath.WalkDir(h.kind.cfg.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(api.Values["password"])) || bytes.Contains(b, []byte(web.Values["password"])) {
			t.Errorf("%s holds a password in clear", p)
		}
		return nil
	})
	if err != nil || files != 2 {
		t.Errorf("the kept outputs: %d files, want 2 (%v)", files, err)
	}
}

// TestCheckFailedProvisionsAgain: what was provisioned is gone (a server
// killed): the next pass says so and provisions it again.
func TestCheckFailedProvisionsAgain(t *testing.T) {
	h := startHarness(t, false)
	h.apply(app("api", "dev", map[string]types.Resource{"db": pg("")}))
	h.until(appKey("api", "dev"), "starts", phase(reconcile.Synced))
	first := h.apps.seen("api")["db"].Values["password"]
	if err := os.RemoveAll(filepath.Join(h.drv.dir, "dev", "api-db")); err != nil {
		t.Fatal(err)
	}
	k := Key("api-db", "dev")
	h.until(k, "is provisioned again", func(reconcile.UnitStatus) bool { return h.drv.count() == 2 })
	h.until(k, "is Synced", phase(reconcile.Synced))
	// A new password: the app starts again with it.
	h.until(appKey("api", "dev"), "reads the new outputs", func(s reconcile.UnitStatus) bool {
		pw := h.apps.seen("api")["db"].Values["password"]
		return s.Phase == reconcile.Synced && pw != "" && pw != first
	})
}

// TestFailedProvisionBacksOff: a driver that fails makes the unit Failed
// with its error, and the app waits with it in its words.
func TestFailedProvisionBacksOff(t *testing.T) {
	h := startHarness(t, false)
	h.drv.fail = errors.New("initdb: no space left on device")
	h.apply(app("api", "dev", map[string]types.Resource{"db": pg("")}))
	st := h.until(Key("api-db", "dev"), "fails", phase(reconcile.Failed))
	if st.Reason != ReasonProvisionFailed || !strings.Contains(st.Message, "no space left on device") || st.RetryAt.IsZero() {
		t.Errorf("status %+v", st)
	}
	st = h.until(appKey("api", "dev"), "waits", func(s reconcile.UnitStatus) bool { return strings.Contains(s.Message, "failed") })
	if !strings.HasPrefix(st.Message, "Waiting: resource api-db (postgres) failed: provisioning postgres with dir-postgres failed: initdb: no space left") {
		t.Errorf("the app says %q", st.Message)
	}
}

// TestRemoved: a resource no app uses any more is deprovisioned in dev;
// a data-bearing one in production is retained, and says so.
func TestRemoved(t *testing.T) {
	h := startHarness(t, false)
	h.apply(app("api", "dev", map[string]types.Resource{"db": pg("")}), app("api", "prod", map[string]types.Resource{"db": pg("")}))
	h.until(appKey("api", "dev"), "starts", phase(reconcile.Synced))
	h.until(appKey("api", "prod"), "starts", phase(reconcile.Synced))
	h.apply(app("api", "dev", nil), app("api", "prod", nil))
	h.until(Key("api-db", "dev"), "is deprovisioned", phase("gone"))
	st := h.until(Key("api-db", "prod"), "is retained", phase(reconcile.Orphaned))
	if st.Reason != ReasonRetained || st.Message != "Retained: data-bearing resource kept in production; an admin deletes it with socle resource delete api-db --env prod" {
		t.Errorf("prod's database says %+v", st)
	}
	h.drv.mu.Lock()
	removed := strings.Join(h.drv.removed, ",")
	h.drv.mu.Unlock()
	if removed != "dev/api-db" {
		t.Errorf("deprovisioned %q, want dev/api-db only", removed)
	}
	if _, err := os.Stat(filepath.Join(h.drv.dir, "prod", "api-db", "password")); err != nil {
		t.Errorf("prod's database is gone: %v", err)
	}
}

// TestStaticChangeReprovisions: a static provisioner's outputs edited
// provision the resource again, and the app reads the new ones.
func TestStaticChangeReprovisions(t *testing.T) {
	t.Setenv("SOCLE_TEST_REDIS_PASSWORD", "redis-secret-in-env")
	h := startHarness(t, false)
	web := app("web", "prod", map[string]types.Resource{"cache": {Type: "redis"}})
	h.apply(web)
	h.until(appKey("web", "prod"), "starts", phase(reconcile.Synced))
	if got := h.apps.seen("web")["cache"].Values; got["host"] != "redis.prod.internal" || got["password"] != "redis-secret-in-env" {
		t.Fatalf("outputs %v", got)
	}
	h.repo = testRepo("redis2.prod.internal")
	h.apply(web)
	h.until(appKey("web", "prod"), "reads the new host", func(s reconcile.UnitStatus) bool {
		return s.Phase == reconcile.Synced && h.apps.seen("web")["cache"].Values["host"] == "redis2.prod.internal"
	})
	h.noSecret("redis-secret-in-env")
}

// TestRestartBeforeRevision: socle restarted, before a revision is in
// force, desires the resources provisioned before as they were (none is
// deprovisioned for not being known yet) and gives apps their outputs,
// not made-up ones.
func TestRestartBeforeRevision(t *testing.T) {
	h := startHarness(t, false)
	api := app("api", "dev", map[string]types.Resource{"db": pg(""), "cache": {Type: "mysql"}})
	h.apply(api)
	h.until(appKey("api", "dev"), "starts", phase(reconcile.Synced))
	want := h.apps.seen("api")["db"].Values

	again, err := New(Config{Dir: h.kind.cfg.Dir, Secret: h.kind.cfg.Secret, Drivers: h.kind.cfg.Drivers})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(api)
	res, apps := again.Units(nil, []unit.Desired{{Key: appKey("api", "dev"), Spec: b}})
	if len(res) != 1 || res[0].Key != Key("api-db", "dev") || len(apps) != 1 || len(apps[0].DependsOn) != 1 || apps[0].DependsOn[0] != res[0].Key {
		t.Fatalf("before a revision: resources %v, apps %v", res, apps)
	}
	d, err := again.Decode(res[0].Spec)
	if err != nil || d.(*Desired).hash() != mustDecode(t, h.kind, h.repo, api).hash() {
		t.Errorf("the resource kept is not desired as it was provisioned (%v)", err)
	}
	outs, err := again.Outputs(api)
	if err != nil || !maps.Equal(outs["db"].Values, want) {
		t.Errorf("outputs before a revision: %v, %v; want %v", outs, err, want)
	}
	if _, ok := outs["cache"]; ok {
		t.Error("a resource never provisioned has outputs")
	}
}

// TestNoDriver: a provisioner whose driver this socle lacks (here the
// built-in redis's process driver, which the harness does not have) still
// makes a unit, which fails saying so; the app waits with that reason
// rather than read outputs that nothing provides.
func TestNoDriver(t *testing.T) {
	h := startHarness(t, false)
	res := h.apply(app("api", "dev", map[string]types.Resource{"cache": {Type: "redis"}}))
	if len(res) != 1 || res[0].Key != Key("api-cache", "dev") {
		t.Fatalf("resource units %v, want api-cache @ dev", res)
	}
	want := `Waiting: resource api-cache (redis) failed: provisioner builtin/redis names driver "process", which this socle does not have`
	st := h.until(appKey("api", "dev"), "waits for the driver", func(s reconcile.UnitStatus) bool { return s.Message == want })
	if st.Phase == reconcile.Synced || h.apps.seen("api") != nil {
		t.Errorf("the app started without its resource: %+v", st)
	}
}

// mustDecode is the desired state of api's database by repo.
func mustDecode(t *testing.T, k *Kind, repo *spec.Repo, u *plan.Unit) *Desired {
	t.Helper()
	b, _ := json.Marshal(u)
	res, _, _ := units(repo, []unit.Desired{{Key: appKey(u.App, u.Env), Spec: b}}, nil, nil)
	for _, r := range res {
		if r.Key == Key(u.App+"-db", u.Env) {
			d, err := k.Decode(r.Spec)
			if err != nil {
				t.Fatal(err)
			}
			return d.(*Desired)
		}
	}
	t.Fatalf("no unit for %s's database", u.App)
	return nil
}

// TestOutputsChanged: a resource whose driver reports other outputs
// than those kept (a stack applied again) is provisioned again, and the
// app that uses it reads the new ones; an output the provisioner does
// not declare is not kept.
func TestOutputsChanged(t *testing.T) {
	h := startHarness(t, false)
	if err := os.WriteFile(h.host.file, []byte("q1.internal"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.apply(app("api", "dev", map[string]types.Resource{"q": {Type: "queue"}}))
	h.until(appKey("api", "dev"), "Synced", phase(reconcile.Synced))
	if got := h.apps.seen("api")["q"].Values; !maps.Equal(got, map[string]string{"host": "q1.internal"}) {
		t.Fatalf("api read %v, want the host alone", got)
	}
	if err := os.WriteFile(h.host.file, []byte("q2.internal"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.until(Key("api-q", "dev"), "provisioned again", func(reconcile.UnitStatus) bool {
		return h.apps.seen("api")["q"].Values["host"] == "q2.internal"
	})
	// Removed: its outputs are forgotten, and what the driver leaves is
	// said.
	h.apply()
	h.until(Key("api-q", "dev"), "gone", phase("gone"))
	if _, err := os.Stat(h.host.file); err != nil || !strings.Contains(h.logs.String(), "left=\"the host file stays\"") {
		t.Errorf("removed: the host file %v; the log:\n%s", err, h.logs.String())
	}
}

// TestCheckFailingAfterProvisionBacksOff: what the driver provisions and
// its check then says does not work is provisioned again after a backoff
// that doubles, as a failure to provision is, not at every pass; once the
// check passes, the resource is Synced and the failures in a row end. The
// engine runs on a clock the test moves.
func TestCheckFailingAfterProvisionBacksOff(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	h := startHarnessClock(t, false, clk)
	h.drv.set(func(d *testDirDriver) { d.checkFail = errors.New("the server does not answer on 127.0.0.1:5432") })
	h.apply(app("api", "dev", map[string]types.Resource{"db": pg("")}))
	k := Key("api-db", "dev")
	backsOff := func(retryAt time.Time) reconcile.UnitStatus {
		t.Helper()
		st := h.until(k, "backs off until "+retryAt.String(), func(s reconcile.UnitStatus) bool { return s.RetryAt.Equal(retryAt) })
		if st.Phase != reconcile.Degraded || st.Reason != ReasonCheckFailed ||
			!strings.HasPrefix(st.Message, "the server does not answer on 127.0.0.1:5432 right after it was provisioned; it is provisioned again at ") {
			t.Errorf("status %+v", st)
		}
		// Passes within the backoff check, and provision nothing.
		n, provisions := h.drv.checked(), h.drv.count()
		h.until(k, "is looked at again", func(reconcile.UnitStatus) bool { return h.drv.checked() >= n+3 })
		if got := h.drv.count(); got != provisions {
			t.Errorf("%d provisions within the backoff, want %d", got, provisions)
		}
		return st
	}
	backsOff(t0.Add(time.Second))
	if n := h.drv.count(); n != 1 {
		t.Errorf("%d provisions, want 1", n)
	}
	clk.Advance(time.Second)
	backsOff(t0.Add(time.Second + 2*time.Second)) // doubled
	if n := h.drv.count(); n != 2 {
		t.Errorf("%d provisions, want 2", n)
	}
	// The check passes again (the server came up): Synced, with no
	// provision more.
	h.drv.set(func(d *testDirDriver) { d.checkFail = nil })
	clk.Advance(2 * time.Second)
	st := h.until(k, "is Synced", phase(reconcile.Synced))
	if n := h.drv.count(); n != 2 || !st.RetryAt.IsZero() {
		t.Errorf("%d provisions, want 2; retry at %v", n, st.RetryAt)
	}
	h.until(appKey("api", "dev"), "starts", phase(reconcile.Synced))
	// The failures in a row ended: a check failing later provisions at
	// once, and backs off from 1 s when it fails right after.
	h.drv.set(func(d *testDirDriver) { d.checkFail = errors.New("the server does not answer on 127.0.0.1:5432") })
	backsOff(t0.Add(3*time.Second + time.Second))
	if n := h.drv.count(); n != 3 {
		t.Errorf("%d provisions, want 3", n)
	}
}

// TestDeleteRetained: a data-bearing resource retained in production is
// deleted on request: not while Git declares it, not when unknown; a
// driver that fails leaves its record, and the deletion is retried; then
// it is deprovisioned, its sealed outputs removed, and its unit gone.
func TestDeleteRetained(t *testing.T) {
	h := startHarness(t, false)
	h.apply(app("api", "prod", map[string]types.Resource{"db": pg("")}))
	h.until(appKey("api", "prod"), "starts", phase(reconcile.Synced))
	k := Key("api-db", "prod")
	if _, err := h.kind.Delete(t.Context(), k); !errors.Is(err, ErrDeclared) {
		t.Errorf("deleting a resource Git declares: %v, want ErrDeclared", err)
	}
	if _, err := h.kind.Delete(t.Context(), Key("nothing", "prod")); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting an unknown resource: %v, want ErrNotFound", err)
	}
	h.apply(app("api", "prod", nil))
	h.until(k, "is retained", func(s reconcile.UnitStatus) bool { return s.Reason == ReasonRetained })
	sealed := filepath.Join(h.kind.cfg.Dir, "prod", "api-db"+sealedExt)
	if _, err := os.Stat(sealed); err != nil {
		t.Fatalf("the retained resource's outputs: %v", err)
	}

	h.drv.set(func(d *testDirDriver) { d.deprovisionFail = errors.New("dropping database api-db: connection refused") })
	if _, err := h.kind.Delete(t.Context(), k); err == nil || !strings.Contains(err.Error(), "dropping database api-db: connection refused") {
		t.Errorf("a driver that fails: %v", err)
	}
	if rs, _ := h.kind.Resources(); len(rs) != 1 || rs[0].Key != k {
		t.Errorf("after a failed deletion: %+v, want the record kept", rs)
	}
	if _, err := os.Stat(sealed); err != nil {
		t.Errorf("after a failed deletion, the outputs: %v", err)
	}

	h.drv.set(func(d *testDirDriver) { d.deprovisionFail = nil })
	x, err := h.kind.Delete(t.Context(), k)
	if err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if x.Key != k || x.Spec.Type != "postgres" || x.Spec.Provisioner != "dir-postgres" || strings.Join(x.Spec.Apps, ",") != "api" || x.Outputs["database"] != "api-db" {
		t.Errorf("deleted %+v", x)
	}
	h.drv.mu.Lock()
	removed := strings.Join(h.drv.removed, ",")
	h.drv.mu.Unlock()
	if removed != "prod/api-db" {
		t.Errorf("deprovisioned %q, want prod/api-db", removed)
	}
	if _, err := os.Stat(filepath.Join(h.drv.dir, "prod", "api-db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the database is still there: %v", err)
	}
	if _, err := os.Stat(sealed); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the sealed outputs are still there: %v", err)
	}
	if rs, err := h.kind.Resources(); len(rs) != 0 || err != nil {
		t.Errorf("after the deletion: %+v %v", rs, err)
	}
	h.until(k, "is gone", phase("gone"))
	if _, err := h.kind.Delete(t.Context(), k); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting it twice: %v, want ErrNotFound", err)
	}
}

// TestBuiltinTypes: environment, dns and service-port resources are
// provisioned by socle's built-in provisioners with no provisioner file,
// before the app that reads them: the environment's variables (a
// variable changed in Git reaches the app), a host name under the
// environment's domain, and the proxy's address of another workload's
// port, its primary port on the workload's own host name.
func TestBuiltinTypes(t *testing.T) {
	h := startHarness(t, false)
	web := &spec.App{Name: "web", Workload: &types.Workload{Service: &types.WorkloadService{Ports: types.WorkloadServicePorts{
		"http": {Port: 8080}, "metrics": {Port: 9090}}}}}
	withVars := func(vars map[string]string) *spec.Repo {
		r := testRepo("redis.prod.internal")
		r.Platform.Environments[0].Variables = vars
		r.Apps = []*spec.App{web}
		return r
	}
	h.repo = withVars(map[string]string{"GREETING": "hello", "REGION": "eu"})
	shop := app("shop", "dev", map[string]types.Resource{
		"env":     {Type: spec.TypeEnvironment},
		"dns":     {Type: spec.TypeDNS},
		"web":     {Type: spec.TypeServicePort, Params: map[string]any{"workload": "web", "port": "http"}},
		"metrics": {Type: spec.TypeServicePort, Params: map[string]any{"workload": "web", "port": "metrics"}},
	})
	res := h.apply(shop)
	if len(res) != 4 {
		t.Fatalf("%d resource units, want 4: %v", len(res), res)
	}
	h.until(appKey("shop", "dev"), "starts", phase(reconcile.Synced))
	seen := h.apps.seen("shop")
	for name, want := range map[string]map[string]string{
		"env":     {"GREETING": "hello", "REGION": "eu"},
		"dns":     {"host": "shop-dns.dev.localhost"},
		"web":     {"hostname": "web.dev.localhost", "port": "7080"},
		"metrics": {"hostname": "metrics.web.dev.localhost", "port": "7080"},
	} {
		if !maps.Equal(seen[name].Values, want) {
			t.Errorf("resource %s: outputs %v, want %v", name, seen[name].Values, want)
		}
	}
	st := h.until(Key("shop-env", "dev"), "is Synced", phase(reconcile.Synced))
	if st.Message != "environment provisioned by builtin/environment (builtin) for shop" {
		t.Errorf("the environment resource says %q", st.Message)
	}
	// A variable changed in socle.yaml: the app reads the new value.
	h.repo = withVars(map[string]string{"GREETING": "bonjour", "REGION": "eu"})
	h.apply(shop)
	h.until(appKey("shop", "dev"), "reads the new variable", func(s reconcile.UnitStatus) bool {
		return s.Phase == reconcile.Synced && h.apps.seen("shop")["env"].Values["GREETING"] == "bonjour"
	})
}

// TestRetentionFollowsGit: a database provisioned in dev, whose
// environment then becomes production (dev moved into prod's zone),
// is retained when it is removed from Git, though it was not
// provisioned again: what decides retention is Git's, not what it was
// when it was provisioned.
func TestRetentionFollowsGit(t *testing.T) {
	h := startHarness(t, false)
	h.apply(app("api", "dev", map[string]types.Resource{"db": pg("")}))
	h.until(appKey("api", "dev"), "starts", phase(reconcile.Synced))
	provisions := h.drv.count()
	repo := testRepo("")
	for i := range repo.Platform.Environments {
		repo.Platform.Environments[i].Zone = "apps-prod"
	}
	if !repo.Production("dev") {
		t.Fatal("dev in prod's zone is not production: the test's premise is wrong")
	}
	h.repo = repo
	h.apply(app("api", "dev", map[string]types.Resource{"db": pg("")}))
	k := Key("api-db", "dev")
	h.until(k, "is recorded as production", func(reconcile.UnitStatus) bool {
		rec, err := h.kind.rec.get(k)
		return err == nil && rec != nil && rec.Spec.Production
	})
	h.apply(app("api", "dev", nil))
	st := h.until(k, "is retained", phase(reconcile.Orphaned))
	if st.Reason != ReasonRetained || h.drv.count() != provisions {
		t.Errorf("dev's database, removed: %+v; %d provisions, want %d (none again)", st, h.drv.count(), provisions)
	}
	h.drv.mu.Lock()
	removed := strings.Join(h.drv.removed, ",")
	h.drv.mu.Unlock()
	if removed != "" {
		t.Errorf("deprovisioned %q, want nothing", removed)
	}
}

// TestRetainedWhenTheSameRevisionMakesItProduction: one revision moves
// dev into prod's zone (production) and removes its database: the
// database is retained, though its record was never told of production.
func TestRetainedWhenTheSameRevisionMakesItProduction(t *testing.T) {
	h := startHarness(t, false)
	h.apply(app("api", "dev", map[string]types.Resource{"db": pg("")}))
	h.until(appKey("api", "dev"), "starts", phase(reconcile.Synced))
	repo := testRepo("")
	for i := range repo.Platform.Environments {
		repo.Platform.Environments[i].Zone = "apps-prod"
	}
	h.repo = repo
	h.apply(app("api", "dev", nil))
	st := h.until(Key("api-db", "dev"), "is retained", phase(reconcile.Orphaned))
	h.drv.mu.Lock()
	removed := strings.Join(h.drv.removed, ",")
	h.drv.mu.Unlock()
	if st.Reason != ReasonRetained || removed != "" {
		t.Errorf("dev's database, removed as dev became production: %+v; deprovisioned %q", st, removed)
	}
}
