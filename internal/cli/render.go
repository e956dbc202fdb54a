package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

// newRenderCmd is `socle render APP --env E`: the Kubernetes objects an app
// runs as in an environment, computed offline from a platform directory.
func newRenderCmd() *cobra.Command {
	var env, release, artifact, registry string
	cmd := &cobra.Command{
		Use:   "render APP [DIR] --env ENV",
		Short: "Print the Kubernetes objects an app runs as in an environment",
		Long: `Render reads a platform repository (default: the current directory) and prints
the objects socle applies for APP in ENV on Kubernetes, as a YAML stream that
kubectl reads (-o json: a List): the ConfigMaps and Secrets its pods mount, its
Deployment, Service, PodDisruptionBudget and, when its replicas have a range,
its HorizontalPodAutoscaler, labelled with app, environment, team, release and
revision. Nothing is applied and no server is asked. The environment's runtime
renders them (its namespace and registry); an environment on a runtime that
applies no objects, like local, is shown as it would run on Kubernetes, in
namespace default.

Secret values (variables socle.yaml marks secret, resource credentials) are
printed as REDACTED. An environment that does not sync automatically renders
the revision its release pins, or the head for an app it does not run yet. The
image is the release's artifact when one is pinned; otherwise socle builds it
at deploy time and its digest is shown as --artifact says.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, dir := args[0], dirArg(args[1:])
			repo, problems, err := loadDir(dir)
			if err != nil {
				return err
			}
			if problems.Errors() > 0 {
				for _, p := range problems {
					fmt.Fprintln(cmd.ErrOrStderr(), p)
				}
				return withCode(ExitProblems, fmt.Errorf("%s does not validate (%d problems): nothing to render", dir, problems.Errors()))
			}
			e := repo.Environment(env)
			if e == nil {
				return withCode(ExitUsage, fmt.Errorf("no environment %q in %s", env, filepath.Join(dir, "socle.yaml")))
			}
			u := unitOf(repo, app, e)
			if u == nil {
				return withCode(ExitUsage, fmt.Errorf("app %q does not run in %s (no apps/%s, or disabled there)", app, env, app))
			}
			if u.Artifact != "" {
				artifact = u.Artifact
			}
			w := runtime.Workload{Release: release, Unit: u, Artifact: artifact, Dedicated: u.Rollout.Strategy != "" && u.Rollout.Strategy != spec.StrategyRolling}
			us := runtime.UnitSpec{App: u.App, Env: u.Env, Workloads: []runtime.Workload{w}}
			if w.Dedicated {
				us.Serve = release
			}
			out, err := wiring.Render(runtimeTypes(), e, us, runtime.RenderOptions{Registry: registry, DefaultRegistry: serverHost(cmd), Redact: true})
			if err != nil {
				return withCode(ExitProblems, err)
			}
			if output, _ := cmd.Flags().GetString("output"); output == "json" {
				list := map[string]any{"apiVersion": "v1", "kind": "List", "items": out.Objects}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			_, err = cmd.OutOrStdout().Write(out.YAML)
			return err
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment to render for (required)")
	cmd.Flags().StringVar(&release, "release", "preview", "release name to label the objects with")
	cmd.Flags().StringVar(&artifact, "artifact", "sha256:built-at-deploy", "image digest, when the environment pins none")
	cmd.Flags().StringVar(&registry, "registry", "", "registry the cluster pulls from (default: the environment's runtime.registry, else the --server host)")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

// unitOf resolves app in environment e: as the environment runs it, or, for
// an environment that does not pin it yet, as the head would run there.
func unitOf(repo *spec.Repo, app string, e *spec.Environment) *plan.Unit {
	find := func(r *spec.Repo) *plan.Unit {
		for _, u := range plan.Desired(r, "", nil) {
			if u.App == app && u.Env == e.Name {
				return &u
			}
		}
		return nil
	}
	if u := find(repo); u != nil || e.Sync == spec.SyncAuto {
		return u
	}
	head := *repo
	head.Platform.Environments = slices.Clone(repo.Platform.Environments)
	for i := range head.Platform.Environments {
		if head.Platform.Environments[i].Name == e.Name {
			head.Platform.Environments[i].Sync = spec.SyncAuto
		}
	}
	return find(&head)
}

// serverHost is the host of --server: socle's registry is served there.
func serverHost(cmd *cobra.Command) string {
	server, _ := cmd.Flags().GetString("server")
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		return u.Host
	}
	return "127.0.0.1:7070"
}
