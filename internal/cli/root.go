package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes that scripts can rely on.
const (
	ExitOK       = 0 // success
	ExitProblems = 1 // the input is invalid, or a check failed (validate, plan with denials)
	ExitUsage    = 2 // wrong flags or arguments
	ExitError    = 3 // anything else: I/O, server unreachable, internal error
)

// globals are the flags every command shares.
type globals struct {
	output string // "text" or "json"
	server string // socle server URL, for commands that speak to the API
	token  string // API token: --token, SOCLE_TOKEN or `socle login`'s config
	// stdout and stderr are for people: control characters in what goes
	// through them are escaped (text.go). raw is stdout as it is, for
	// output that programs read: JSON, YAML, CSV.
	stdout io.Writer
	stderr io.Writer
	raw    io.Writer
}

// flush writes what the escapers hold back at the end of a command.
func (g *globals) flush() {
	for _, w := range []io.Writer{g.stdout, g.stderr} {
		if e, ok := w.(*escaper); ok {
			e.Flush()
		}
	}
}

// json reports whether the user asked for JSON output.
func (g *globals) json() bool { return g.output == "json" }

// printJSON writes v as indented JSON to stdout, exactly: the encoder
// escapes control characters itself.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.raw)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode marks an error with the exit code the process should end with.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// silent is an error whose message was already printed.
var errSilent = errors.New("")

// NewRoot builds the socle command tree, writing to stdout and stderr.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	return newRoot(newGlobals(stdout, stderr))
}

// newGlobals writes human output to stdout and stderr through escapers,
// and machine output to stdout as it is.
func newGlobals(stdout, stderr io.Writer) *globals {
	return &globals{output: "text", stdout: newEscaper(stdout), stderr: newEscaper(stderr), raw: stdout}
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "socle",
		Short: "socle keeps what runs equal to what Git says, and promotes it from dev to prod behind gates",
		Long: `socle is a GitOps internal developer platform in one binary.

A platform team describes its landing zones, environments, applications, guardrails
and budgets in a Git repository; socle validates it, plans what would change, and
keeps what runs equal to what the repository says.

Commands that speak to a server (status, deploy, promote, approve, rollback,
pause, resume, logs, releases, audit, dora, cost, token) use --server or SOCLE_SERVER (default
http://127.0.0.1:7070) and a token from --token, SOCLE_TOKEN or the config file
that "socle login" writes. validate, plan, stack, schema and init work offline
on a directory. Every command prints JSON with -o json.

Exit codes:
  0  success
  1  invalid input, a failed check, or a refusal by the server (blocked by a
     gate or a policy, forbidden for your role, unknown app or environment)
  2  usage error (flags, arguments)
  3  anything else: server unreachable, no or a bad token, I/O or internal error`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// cobra's help and usage are socle's own words, written as they are.
	root.SetOut(g.raw)
	root.SetErr(g.stderr)
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.PersistentFlags().StringVar(&g.server, "server", "http://127.0.0.1:7070", "the socle server's `URL` (env SOCLE_SERVER, or the config file that \"socle login\" writes)")
	root.PersistentFlags().StringVar(&g.token, "token", "", "the `TOKEN` to call the API with (env SOCLE_TOKEN, or the config file that \"socle login\" writes)")
	root.PersistentPreRunE = g.preRun
	root.AddCommand(
		newValidateCmd(g),
		newPlanCmd(g),
		newStackCmd(g),
		newResourceCmd(g),
		newSchemaCmd(g),
		newInitCmd(g),
		newUpCmd(g),
		newProxyCmd(g),
		newStatusCmd(g),
		newTopCmd(g),
		newLogsCmd(g),
		newCostCmd(g),
		newPolicyCmd(g),
		newPromoteCmd(g),
		newApproveCmd(g),
		newRollbackCmd(g),
		newPauseCmd(g),
		newResumeCmd(g),
		newReleasesCmd(g),
		newAuditCmd(g),
		newDORACmd(g),
		newDeployCmd(g),
		newSecretCmd(g),
		newNewCmd(g),
		newTemplateCmd(g),
		newTokenCmd(g),
		newLoginCmd(g),
		newRenderCmd(),
	)
	return root
}

// outputsAnnotation names, on a command, the --output formats it and its
// subcommands write when they write more than text and json (cost: csv).
// A command says so rather than having a PersistentPreRun of its own:
// cobra runs only the nearest one, which would skip the root's.
const outputsAnnotation = "socle.dev/outputs"

// preRun runs before every command: it checks --output against what the
// command writes, then resolves the server and the token (flags,
// SOCLE_SERVER and SOCLE_TOKEN, the config file of socle login).
func (g *globals) preRun(cmd *cobra.Command, _ []string) error {
	outputs := []string{"text", "json"}
	for c := cmd; c != nil; c = c.Parent() {
		if v, ok := c.Annotations[outputsAnnotation]; ok {
			outputs = strings.Split(v, ",")
			break
		}
	}
	if !slices.Contains(outputs, g.output) {
		last := len(outputs) - 1
		return withCode(ExitUsage, fmt.Errorf("--output must be %s or %s, not %q", strings.Join(outputs[:last], ", "), outputs[last], g.output))
	}
	g.resolve(cmd)
	return nil
}

// Main runs the CLI on the process's arguments and returns its exit code;
// SIGINT and SIGTERM cancel the command's context.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdout, os.Stderr)
}

// Run runs one command line and returns its exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return RunIn(ctx, args, os.Stdin, stdout, stderr)
}

// RunIn is Run with stdin as the standard input (what socle secret set
// reads a value from).
func RunIn(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := newGlobals(stdout, stderr)
	defer g.flush()
	root := newRoot(g)
	root.SetIn(stdin)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitError
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if isUsage(err) {
		code = ExitUsage
	}
	if err.Error() != "" {
		fmt.Fprintln(g.stderr, "socle:", err) // the server's words may quote anything
	}
	return code
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
