package cli

import (
	"cmp"
	"context"
	"errors"
	goflag "flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/examples"
	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/trace"
	"github.com/socle-dev/socle/internal/wiring"
)

func newUpCmd(g *globals) *cobra.Command {
	var cfg server.Config
	var logLevel, clockFile, proxyMode string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start socle: follow the platform repository, validate, plan and record every revision",
		Long: `Up starts the socle server. It keeps a mirror of the platform repository (--repo),
validates and plans every new commit, and records revisions, plans and events in
its data directory (--data). It fetches every --poll interval, and at once when
something POSTs to /api/v1/hooks/git.

Without --repo, socle serves its demo platform: it copies examples/platform (or,
outside socle's source tree, the copy built into the binary) into a git
repository at <data>/repo. Edit and commit there to see socle follow.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if cfg.AgeIdentities == "" {
				cfg.AgeIdentities = os.Getenv("SOCLE_AGE_IDENTITIES")
			}
			if cfg.WebhookSecret == "" {
				cfg.WebhookSecret = os.Getenv("SOCLE_WEBHOOK_SECRET") // not a flag default: --help would print it
			}
			if cfg.Store == "" {
				cfg.Store = os.Getenv("SOCLE_STORE") // not a flag default: --help would print its password
			}
			if cfg.Store != "" && !wiring.IsPostgres(cfg.Store) {
				return withCode(ExitUsage, errors.New("--store: want a postgres:// or postgresql:// URL (or none: the SQLite file of the data directory)"))
			}
			level := slog.LevelInfo
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return withCode(ExitUsage, fmt.Errorf("--log-level: %w", err))
			}
			cfg.Logger = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			if err := cfg.ProxyTLS.Check("proxy-"); err != nil {
				return withCode(ExitUsage, err)
			}
			switch proxyMode {
			case "process":
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("--proxy process: finding socle's own executable: %w", err)
				}
				cfg.ProxyCommand = append(append([]string{exe, "proxy"}, cfg.ProxyEdge.Args()...), cfg.ProxyTLS.Args()...)
			case "inprocess":
			default:
				return withCode(ExitUsage, fmt.Errorf("--proxy must be process or inprocess, not %q", proxyMode))
			}
			if clockFile != "" {
				c, err := offsetClock(clockFile)
				if err != nil {
					return withCode(ExitUsage, err)
				}
				cfg.Clock = c
				cfg.Logger.Warn("socle's clock is moved by a file: for tests only", "clock_file", clockFile)
			}
			// Deployments are traces when OTEL_EXPORTER_OTLP_ENDPOINT names a
			// collector; the spans not sent yet are sent as socle stops.
			stopTraces, err := trace.Setup(ctx)
			if err != nil {
				return withCode(ExitUsage, err)
			}
			defer func() {
				flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := stopTraces(flush); err != nil {
					cfg.Logger.Warn("sending the last spans", "err", err)
				}
			}()
			// Builds and replicas run in directories of their own: every
			// path socle hands them derives from an absolute data directory.
			data, err := filepath.Abs(cfg.Data)
			if err != nil {
				return fmt.Errorf("--data: %w", err)
			}
			cfg.Data = data
			if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
				return err
			}
			demo := cfg.Repo == ""
			cfg.Demo = demo
			if demo {
				repo, err := demoRepo(ctx, cfg.Data, g)
				if err != nil {
					return err
				}
				cfg.Repo = repo
			}
			s, err := server.New(ctx, cfg)
			if err != nil {
				return err
			}
			tokenNote, tokenFile, err := firstAdminToken(ctx, s, cfg.Data, cfg.Store != "")
			if err != nil {
				return err
			}
			if g.json() {
				out := map[string]string{"server": "http://" + s.Addr(), "repository": cfg.Repo, "data": cfg.Data,
					"proxy": s.ProxyAddr(), "adminTokenFile": tokenFile}
				if a := s.ProxyTLSAddr(); a != "" {
					out["proxyTLS"] = a
				}
				g.printJSON(out)
				return s.Run(ctx)
			}
			if sb := s.Sandbox(); sb.Mode() != sandbox.Enforced {
				fmt.Fprintf(g.stderr, "socle: sandbox %s: %s\n", strings.ToUpper(string(sb.Mode())), sb.Message())
			}
			if a := s.ProxyTLSAddr(); a != "" {
				tokenNote = fmt.Sprintf("  apps over HTTPS      https://<app>.<env>.%s:%s (HTTP/1.1 and HTTP/2)\n", cmp.Or(cfg.ProxyTLS.Domain, "localhost"), portOf(a)) + tokenNote
			}
			hosts, hostsErr := s.FirstHosts()
			fmt.Fprintf(g.stdout, "socle is up on http://%s\n  portal               http://%s/ (log in with a token)\n  platform repository  %s\n  data directory       %s\n  apps                 %s\n  status               socle status --server http://%s\n%s",
				s.Addr(), s.Addr(), cfg.Repo, cfg.Data, appsLine(hosts, hostsErr, portOf(s.ProxyAddr())), s.Addr(), tokenNote)
			return s.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Repo, "repo", "", "platform repository: a path or a file://, https:// or ssh:// URL (default: the demo platform)")
	f.StringVar(&cfg.Branch, "branch", "", "branch to follow (default: the repository's default branch)")
	f.StringVar(&cfg.Data, "data", ".socle", "data directory")
	f.StringVar(&cfg.Store, "store", "", "database: a PostgreSQL URL, postgres://user:password@host:port/db?sslmode=…, migrated on start (default: the SQLite file socle.db of the data directory); env SOCLE_STORE")
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:7070", "API listen address")
	f.DurationVar(&cfg.Poll, "poll", 30*time.Second, "how often to fetch the repository")
	f.StringVar(&cfg.ProxyAddr, "proxy-addr", "127.0.0.1:7080", "where the built-in proxy serves the apps: http://<app>.<env>.localhost:<port>")
	f.StringVar(&proxyMode, "proxy", "process", "where the proxy runs: process (a process of its own, socle proxy, which outlives socle: killing, restarting or upgrading socle fails no request) or inprocess (inside socle, stopping with it)")
	edgeFlags := goflag.NewFlagSet("edge", goflag.ContinueOnError)
	cfg.ProxyEdge.Register(edgeFlags)
	cfg.ProxyTLS.Register(edgeFlags, "proxy-")
	f.AddGoFlagSet(edgeFlags)
	f.BoolVar(&cfg.InsecureNoSandbox, "insecure-no-sandbox", false, "run the apps' replicas and builds without a sandbox, as socle's user: they can read the data directory (admin token, secret key, database) and other apps' environments; only where bubblewrap or user namespaces are missing, and the status says so")
	f.BoolVar(&cfg.KeepRunning, "keep-running", false, "leave the apps and their proxy running when socle stops (the next start re-attaches to them: an upgrade)")
	f.Float64Var(&cfg.Scale.TargetInFlight, "scale-target", 10, "autoscaler: requests in flight per replica to aim for")
	f.DurationVar(&cfg.Scale.Cooldown, "scale-cooldown", 30*time.Second, "autoscaler: least time between two changes of a unit's size (scaling down waits twice as long)")
	f.BoolVar(&cfg.ApplyStacks, "apply-stacks", true, "plan the infrastructure stacks on each revision and apply them as they say (auto, or gated: held for approval); false: the API lists them, socle plans and applies none")
	f.BoolVar(&cfg.ProvisionResources, "provision-resources", true, "provision the resources workloads ask for (a PostgreSQL database, a redis) with the driver their provisioner names, before the apps that use them start; false: apps read made-up outputs of resources that do not exist")
	f.DurationVar(&cfg.Resync, "resync", 10*time.Second, "how often every unit is observed again without a trigger")
	f.StringVar(&cfg.WebhookSecret, "webhook-secret", "", "secret that git hosts sign webhooks with (GitHub X-Hub-Signature-256, GitLab X-Gitlab-Token); env SOCLE_WEBHOOK_SECRET")
	f.StringVar(&cfg.AgeIdentities, "age-identities", "", "file of age identities that decrypt the apps' secret files (SOPS), beside <data>/age/*.txt; env SOCLE_AGE_IDENTITIES")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the environments on Kubernetes (default: $KUBECONFIG, then ~/.kube/config)")
	f.DurationVar(&cfg.ProgressDeadline, "progress-deadline", 2*time.Minute, "how long a rollout may make no progress before it fails and is rolled back")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&clockFile, "clock-file", "", "for tests only: socle's time is the system's plus the duration this file holds (\"26h\"), read at every use, so that a test moves socle's clock past a soak or a freeze by rewriting the file")
	// Hidden: a clock that a file moves is for socle's own end-to-end
	// tests, never for running a platform.
	if err := f.MarkHidden("clock-file"); err != nil {
		panic(err)
	}
	return cmd
}

// offsetClock is the clock of --clock-file: the file must exist (empty is
// no offset) and hold a duration, so that a misspelt path or a bad offset
// fails at start instead of leaving a test with the system's time.
func offsetClock(path string) (clock.Offset, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return clock.Offset{}, fmt.Errorf("--clock-file: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return clock.Offset{}, fmt.Errorf("--clock-file: %w", err)
	}
	c := clock.Offset{Path: abs}
	if _, err := c.Check(); err != nil {
		return clock.Offset{}, fmt.Errorf("--clock-file: %w", err)
	}
	return c, nil
}

// bannerHosts is how many apps up's banner names; the portal lists them all.
const bannerHosts = 3

// appsLine is the banner's line on apps: the addresses of those the
// repository really has (server.FirstHosts), or why none is named.
func appsLine(hosts []string, err error, port string) string {
	pattern := "http://<app>.<env>.localhost:" + port
	switch {
	case err != nil:
		return pattern + " (the repository's head does not load: socle status says why)"
	case len(hosts) == 0:
		return "none yet in an environment that runs here on its own (each will be at " + pattern + ")"
	}
	urls := make([]string, 0, bannerHosts)
	for _, h := range hosts[:min(len(hosts), bannerHosts)] {
		urls = append(urls, "http://"+h+":"+port)
	}
	line := strings.Join(urls, ", ")
	if more := len(hosts) - bannerHosts; more > 0 {
		line += fmt.Sprintf(" and %d more", more)
	}
	return line + " (once built)"
}

func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return port
}

// demoRepo returns <data>/repo, creating it from the demo platform the first
// time: from examples/platform when run from socle's source tree, so that
// edits there show, else from the copy inside the binary; with the demo's
// secrets encrypted for age keys made in <data>/age (sealDemoSecrets).
func demoRepo(ctx context.Context, data string, g *globals) (string, error) {
	dst, err := filepath.Abs(filepath.Join(data, "repo"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dst, ".git")); err == nil {
		return dst, nil
	}
	tmp, err := os.MkdirTemp("", "socle-demo-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join("examples", "platform")
	if _, err := os.Stat(filepath.Join(src, "socle.yaml")); errors.Is(err, fs.ErrNotExist) {
		err = examples.WritePlatform(tmp)
	} else {
		err = os.CopyFS(tmp, os.DirFS(src))
	}
	if err != nil {
		return "", err
	}
	// The demo's secrets, encrypted for the demo's age keys made now.
	if err := sealDemoSecrets(tmp, data); err != nil {
		return "", fmt.Errorf("encrypting the demo's secrets: %w", err)
	}
	rev, err := source.Init(ctx, tmp, dst, "socle", "socle@localhost", "Start from socle's demo platform")
	if err != nil {
		return "", fmt.Errorf("creating the demo repository: %w", err)
	}
	fmt.Fprintf(g.stdout, "Created the demo platform repository %s at %s.\n", dst, rev.Short())
	return dst, nil
}

// firstAdminToken makes sure someone can log in, to the demo or to a new
// platform (server.FirstAdminToken), and returns what `up` should say about
// tokens.
func firstAdminToken(ctx context.Context, s *server.Server, data string, shared bool) (note, file string, err error) {
	env := ""
	if shared {
		env = "SOCLE_STORE=<the --store URL> " // not the URL: the banner would print its password
	}
	howto := fmt.Sprintf("  tokens               %ssocle token create --user USER --data %s (or, as an admin, through the API)\n", env, data)
	user, file, err := s.FirstAdminToken(ctx)
	switch {
	case err != nil:
		return "", "", err
	case file != "":
		return howto + fmt.Sprintf("  admin token          in %s: export SOCLE_TOKEN=$(cat %s) (%s's; revoke it once you have your own)\n", file, file, user), file, nil
	}
	if n, err := s.Store().Tokens(ctx, ""); err == nil && len(n) == 0 {
		howto += "  no token yet         teams.yaml names no admin: add one, or make a token with the line above\n"
	}
	return howto, "", nil
}
