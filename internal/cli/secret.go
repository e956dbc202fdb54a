package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/socle-dev/socle/internal/api"
)

// maxSecretInput is the most socle secret set reads of a value.
const maxSecretInput = 32 << 10

// newSecretCmd sets, lists and rotates the apps' SOPS secret files through
// the server's API.
func newSecretCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Set, list and rotate the apps' secrets, kept encrypted in SOPS files in the platform repository",
		Long: `Set, list and rotate the values of the names an app's socle.yaml lists
under secrets:, kept in apps/<app>/secrets.<zone|env>.yaml, SOPS files whose
values are encrypted for the age recipients of the repository's .sops.yaml.
Each change is a commit socle makes on the platform repository with you as
its author, and a record in the audit trail; no value is ever shown, logged
or stored in clear. Talks to the server (--server, SOCLE_SERVER or socle login).`,
	}
	cmd.AddCommand(newSecretSetCmd(g), newSecretListCmd(g), newSecretRotateCmd(g))
	return cmd
}

func newSecretSetCmd(g *globals) *cobra.Command {
	var env string
	var envFile bool
	cmd := &cobra.Command{
		Use:   "set APP NAME --env ENV",
		Short: "Set a secret's value in an environment, as a commit of its encrypted file",
		Long: `Set reads the value from standard input (one trailing newline removed), or
asks for it without echo when standard input is a terminal; never from an
argument or a flag, which shells and process lists keep. The server writes it
to the file the value comes from in ENV now (the environment's file, then its
zone's), else to the environment's file (the zone's when only that exists);
--env-file writes the environment's own file. A new file is encrypted for the
recipients of the first .sops.yaml creation rule that matches it, which needs
no private key; an existing one is re-encrypted with a new data key.

Developers of the app's team set secrets where the environment's deployRoles
let them deploy; production needs an approver or an admin. NAME must be
listed under secrets: in the app's socle.yaml.

  printf %s "$TOKEN" | socle secret set web SESSION_KEY --env dev`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required: the environment the value is for"))
			}
			value, err := readSecret(cmd.InOrStdin(), g.stderr, args[1])
			if err != nil {
				return withCode(ExitUsage, err)
			}
			res, err := g.client().SetSecret(cmd.Context(), args[0], args[1], env, envFile, value)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(res)
			}
			verb := "Changed"
			if res.Created {
				verb = "Added"
			}
			f := res.Files[0]
			fmt.Fprintf(g.stdout, "%s %s in %s (for %s), commit %s by %s.\nsocle deploys it now: socle status\n",
				verb, res.Name, f.Path, strings.Join(f.Environments, ", "), abbrev(res.Commit.SHA, 7), res.Commit.Author)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment the value is for (required)")
	cmd.Flags().BoolVar(&envFile, "env-file", false, "write the environment's own file even when the value comes from its zone's")
	return cmd
}

// readSecret reads a secret's value: typed without echo at a terminal,
// else all of in, less one trailing newline.
func readSecret(in io.Reader, prompt io.Writer, name string) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(prompt, "Value of %s (not shown): ", name)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the value: %w", err)
		}
		return check(b)
	}
	b, err := io.ReadAll(io.LimitReader(in, maxSecretInput+2))
	if err != nil {
		return "", fmt.Errorf("reading the value from standard input: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return check(b)
}

func check(b []byte) (string, error) {
	switch {
	case len(b) == 0:
		return "", fmt.Errorf("no value: give it on standard input, or type it at the prompt")
	case len(b) > maxSecretInput:
		return "", fmt.Errorf("the value is over %d bytes", maxSecretInput)
	}
	return string(b), nil
}

func newSecretListCmd(g *globals) *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "list [APP] [--env ENV]",
		Short: "List the secret files: the names in each, its recipients and its last change, never a value",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app := ""
			if len(args) == 1 {
				app = args[0]
			}
			l, err := g.client().Secrets(cmd.Context(), app, env)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(l)
			}
			if len(l.Items) == 0 {
				fmt.Fprintln(g.stdout, "No secret file.")
				return nil
			}
			t := newTable(g.stdout, "FILE", "FOR", "NAMES", "RECIPIENTS", "LAST CHANGE")
			for _, f := range l.Items {
				t.row(f.Path, strings.Join(f.Environments, ", "), strings.Join(f.Names, ", "), recipientsCell(f), lastChange(f.LastChange))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only the files that give values in this environment")
	return cmd
}

// recipientsCell abbreviates a file's recipients and says whether socle
// can decrypt it, and whether a rotation would change them.
func recipientsCell(f api.SecretFile) string {
	rs := make([]string, len(f.Recipients))
	for i, r := range f.Recipients {
		rs[i] = abbrev(r, 12) + "…"
	}
	out := strings.Join(rs, ", ")
	if !f.Held {
		out += " (socle holds no key)"
	}
	if len(f.Rules) > 0 && strings.Join(f.Rules, ",") != strings.Join(f.Recipients, ",") {
		out += " (.sops.yaml differs: rotate)"
	}
	return out
}

func lastChange(c *api.Commit) string {
	if c == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s %s", abbrev(c.SHA, 7), c.Author, when(c.Time))
}

func newSecretRotateCmd(g *globals) *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "rotate [APP] [--env ENV]",
		Short: "Re-encrypt secret files for their current .sops.yaml recipients with a new data key, as one commit",
		Long: `Rotate re-encrypts the secret files of APP (every app without it) that give
values in ENV (every environment without it) for the recipients the
repository's .sops.yaml gives them now, with a new data key: the old data key
decrypts them no more, the values stay. A file no creation rule matches keeps
its recipients. The files are one commit, by you, audited. You need the right
to set the secrets of each file (see socle secret set), and socle an age
identity of each: otherwise nothing is rotated, and the error names the files.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.SecretRotateRequest{Env: env}
			if len(args) == 1 {
				req.App = args[0]
			}
			res, err := g.client().RotateSecrets(cmd.Context(), req)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(res)
			}
			fmt.Fprintf(g.stdout, "Rotated %d file%s, commit %s by %s:\n", len(res.Files), plural(len(res.Files)), abbrev(res.Commit.SHA, 7), res.Commit.Author)
			for _, f := range res.Files {
				fmt.Fprintf(g.stdout, "  %s, for %s\n", f.Path, strings.Join(f.Recipients, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only the files that give values in this environment")
	return cmd
}
