package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
)

// parseSets reads --set NAME=VALUE flags.
func parseSets(sets []string) (map[string]any, error) {
	out := map[string]any{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: give NAME=VALUE", s)
		}
		out[k] = v
	}
	return out, nil
}

func newNewCmd(g *globals) *cobra.Command {
	var tmpl string
	var sets []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "new APP --template NAME [--set NAME=VALUE]…",
		Short: "Create an app from a golden-path template, as a commit by you",
		Long: `New renders the template's files (templates/NAME/files/ of the platform
repository) with its parameters into apps/APP/, with apps/APP/.template.yaml
recording the template, its version and the parameters (for socle template
status and upgrade). The server validates the repository with the new app
and plans its units, with the policies' verdicts; that is shown first, and
--dry-run stops there. Then the server commits the files with you as the
author, and socle builds the app and deploys it to the environments that
follow Git, with no other step.

Parameters are given with --set NAME=VALUE; at a terminal socle asks for
those missing (a default is taken with Enter), elsewhere a missing required
parameter is an error that names it. The owner parameter of the demo's
templates lists your teams: you create apps for a team you are a developer,
an approver or an admin of.

  socle new payments --template go-service --set owner=bookings`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tmpl == "" {
				return withCode(ExitUsage, errors.New("--template is required: the template to create the app from (socle template list)"))
			}
			params, err := parseSets(sets)
			if err != nil {
				return withCode(ExitUsage, err)
			}
			c := g.client()
			if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				list, err := c.Templates(cmd.Context())
				if err != nil {
					return g.apiErr(err)
				}
				i := slices.IndexFunc(list.Items, func(t api.Template) bool { return t.Name == tmpl })
				if i >= 0 {
					if err := ask(bufio.NewReader(f), g.stderr, list.Items[i], params); err != nil {
						return withCode(ExitUsage, err)
					}
				}
			}
			req := api.NewApp{App: args[0], Template: tmpl, Parameters: params, DryRun: true}
			plan, err := c.CreateApp(cmd.Context(), req)
			if err != nil {
				return g.newAppErr(err)
			}
			if dryRun {
				if g.json() {
					return g.printJSON(plan)
				}
				renderNewApp(g.stdout, plan)
				fmt.Fprintln(g.stdout, "\nDry run: nothing committed.")
				return nil
			}
			if !g.json() {
				renderNewApp(g.stdout, plan)
			}
			req.DryRun = false
			res, err := c.CreateApp(cmd.Context(), req)
			if err != nil {
				return g.newAppErr(err)
			}
			if g.json() {
				return g.printJSON(res)
			}
			fmt.Fprintf(g.stdout, "\nCommitted %s by %s: socle builds %s and deploys it now (socle status %s).\n", abbrev(res.Commit.SHA, 7), res.Commit.Author, res.App, res.App)
			return nil
		},
	}
	cmd.Flags().StringVar(&tmpl, "template", "", "the template (required)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "a parameter, NAME=VALUE (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the files and the plan, commit nothing")
	return cmd
}

// ask prompts for every parameter of t that params lacks, the required
// ones until answered.
func ask(in *bufio.Reader, out io.Writer, t api.Template, params map[string]any) error {
	for _, p := range t.Parameters {
		if _, ok := params[p.Name]; ok {
			continue
		}
		// An owner picker of one team needs no answer.
		picked := ""
		if p.Source == "teams" && len(p.Enum) == 1 && p.Default == nil {
			picked = p.Enum[0]
		}
		for {
			prompt := p.Name
			if p.Description != "" {
				prompt += " (" + p.Description + ")"
			}
			if len(p.Enum) > 0 {
				prompt += " [" + strings.Join(p.Enum, ", ") + "]"
			}
			if p.Default != nil {
				prompt += fmt.Sprintf(" default %v", p.Default)
			} else if picked != "" {
				prompt += " default " + picked
			}
			fmt.Fprintf(out, "%s: ", prompt)
			line, err := in.ReadString('\n')
			line = strings.TrimSpace(line)
			if line != "" {
				params[p.Name] = line
				break
			}
			if picked != "" {
				params[p.Name] = picked
				break
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", p.Name, err)
			}
			if !p.Required || p.Default != nil {
				break
			}
			fmt.Fprintf(out, "%s is required.\n", p.Name)
		}
	}
	return nil
}

// details decodes an API error's details into v.
func details(e *client.Error, v any) bool {
	b, err := json.Marshal(e.Details)
	return err == nil && e.Details != nil && json.Unmarshal(b, v) == nil
}

// newAppErr shows what a refused creation would have made and why.
func (g *globals) newAppErr(err error) error {
	var e *client.Error
	if errors.As(err, &e) && !g.json() {
		var res api.NewAppResult
		if (e.Code == "invalid" || e.Code == "denied") && details(e, &res) {
			for _, p := range res.Problems {
				fmt.Fprintln(g.stderr, problemLine(p))
			}
			if e.Code == "denied" {
				renderNewApp(g.stderr, res)
			}
		}
	}
	return g.apiErr(err)
}

func problemLine(p api.Problem) string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// renderNewApp shows the files and the plan of a new app.
func renderNewApp(w io.Writer, r api.NewAppResult) {
	var ps []string
	for _, k := range slices.Sorted(maps.Keys(r.Parameters)) {
		ps = append(ps, fmt.Sprintf("%s=%v", k, r.Parameters[k]))
	}
	fmt.Fprintf(w, "%s from template %s v%d (%s):\n", r.App, r.Template, r.Version, strings.Join(ps, ", "))
	for _, f := range r.Files {
		fmt.Fprintf(w, "  + %s (%d lines)\n", f.Path, strings.Count(f.Content, "\n"))
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "  "+problemLine(p))
	}
	fmt.Fprintln(w, "\nPlan:")
	verdicts := map[string]api.PolicyVerdicts{}
	for _, d := range r.Decisions {
		verdicts[d.App+"@"+d.Env] = d.Verdicts
	}
	t := newTable(w)
	for _, c := range r.Changes {
		vs := verdicts[c.App+"@"+c.Env]
		allowed, notes := 0, []string{}
		for _, v := range vs {
			if v.Allowed {
				allowed++
			} else {
				mark := "!"
				if v.Severity == "deny" {
					mark = "✗"
				}
				notes = append(notes, fmt.Sprintf("%s %s: %s", mark, v.Policy, v.Message))
			}
		}
		t.row("  "+planMark(c.Action)+" "+c.App+" @ "+c.Env, fmt.Sprintf("policies: %d of %d allowed", allowed, len(vs)), strings.Join(notes, "; "))
	}
	t.flush()
}

func planMark(action string) string {
	switch action {
	case "create":
		return "+"
	case "delete":
		return "-"
	case "update":
		return "~"
	}
	return " "
}

func newTemplateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "template",
		Short: "List the golden-path templates, the apps behind them, and upgrade an app to its template's version",
		Long: `Templates live in templates/<name>/ of the platform repository: a
template.yaml (its version and parameters) and the files it renders into an
app (socle new). Every app made from one records its template, version and
parameters in apps/<app>/.template.yaml; when the template's version is
raised, socle template status lists the apps behind it and socle template
upgrade brings one up to date, keeping the app's own edits. Talks to the
server (--server, SOCLE_SERVER or socle login).`,
	}
	cmd.AddCommand(newTemplateListCmd(g), newTemplateStatusCmd(g), newTemplateUpgradeCmd(g))
	return cmd
}

func newTemplateListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "The templates and their parameters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Templates(cmd.Context())
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(list)
			}
			for i, t := range list.Items {
				if i > 0 {
					fmt.Fprintln(g.stdout)
				}
				fmt.Fprintf(g.stdout, "%s v%d: %s\n", t.Name, t.Version, t.Description)
				tw := newTable(g.stdout)
				for _, p := range t.Parameters {
					var notes []string
					if p.Required {
						notes = append(notes, "required")
					}
					if p.Default != nil {
						notes = append(notes, fmt.Sprintf("default %v", p.Default))
					}
					if len(p.Enum) > 0 {
						notes = append(notes, "one of "+strings.Join(p.Enum, ", "))
					}
					tw.row("  "+p.Name, p.Type, strings.Join(notes, "; "), p.Description)
				}
				tw.flush()
			}
			return nil
		},
	}
}

func newTemplateStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "The apps made from templates, and how many versions behind their template each is",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Templates(cmd.Context())
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(list)
			}
			t := newTable(g.stdout, "APP", "OWNER", "TEMPLATE", "VERSION", "STATUS")
			behind := 0
			for _, tm := range list.Items {
				for _, a := range tm.Apps {
					status := "up to date"
					if a.Behind > 0 {
						behind++
						status = fmt.Sprintf("behind by %d: socle template upgrade %s", a.Behind, a.App)
					}
					t.row(a.App, a.Owner, tm.Name, fmt.Sprintf("v%d of v%d", a.Version, tm.Version), status)
				}
			}
			for _, a := range list.Orphans {
				t.row(a.App, a.Owner, "?", fmt.Sprintf("v%d", a.Version), "its template is no longer in templates/")
			}
			t.flush()
			fmt.Fprintf(g.stdout, "%d app%s behind %s template.\n", behind, plural(behind), map[bool]string{true: "its", false: "their"}[behind == 1])
			return nil
		},
	}
}

func newTemplateUpgradeCmd(g *globals) *cobra.Command {
	var sets []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "upgrade APP [--set NAME=VALUE]…",
		Short: "Bring an app up to its template's current version, keeping the app's own edits, as a commit by you",
		Long: `Upgrade renders the template's version the app was made from with its
recorded parameters, then the current version, and merges the difference
into the app's current files (a three-way merge, git merge-file's): what the
app changed stays, what the template changed comes in. The diff of every file
is shown, then committed with you as the author. When the app and the template
changed the same lines, the conflicts are shown, marked, and nothing is
committed: make the app's lines agree with the template's, then upgrade
again. --set gives parameters the new version asks for, or changes one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			params, err := parseSets(sets)
			if err != nil {
				return withCode(ExitUsage, err)
			}
			res, err := g.client().UpgradeApp(cmd.Context(), args[0], api.TemplateUpgradeRequest{Parameters: params, DryRun: dryRun})
			var e *client.Error
			if errors.As(err, &e) && e.Code == "conflict" && details(e, &res) && !g.json() {
				renderUpgrade(g.stdout, res)
			}
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(res)
			}
			renderUpgrade(g.stdout, res)
			switch {
			case res.Commit != nil:
				fmt.Fprintf(g.stdout, "Committed %s by %s: socle deploys %s now.\n", abbrev(res.Commit.SHA, 7), res.Commit.Author, res.App)
			case len(res.Files) == 0 && res.From == res.To:
				fmt.Fprintf(g.stdout, "%s is up to date with template %s v%d.\n", res.App, res.Template, res.To)
			default:
				fmt.Fprintln(g.stdout, "Dry run: nothing committed.")
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "a parameter, NAME=VALUE (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the merge, commit nothing")
	return cmd
}

func renderUpgrade(w io.Writer, r api.TemplateUpgrade) {
	fmt.Fprintf(w, "%s: template %s v%d → v%d\n", r.App, r.Template, r.From, r.To)
	for _, f := range r.Files {
		note := ""
		if f.Conflicts > 0 {
			note = fmt.Sprintf(" (%d conflict%s)", f.Conflicts, plural(f.Conflicts))
		}
		fmt.Fprintf(w, "%s %s%s\n", planMark(f.Action), f.Path, note)
		io.WriteString(w, f.Diff)
	}
}
