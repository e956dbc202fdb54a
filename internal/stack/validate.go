package stack

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/socle-dev/socle/internal/spec"
)

// Validate runs terraform validate over each stack of repo and returns
// what it finds as problems at the repository's file:line:column. It
// checks what socle's own reading of *.tf files does not: references to
// variables, resources and modules that are not declared, arguments a
// resource type does not take, types, a module's inputs.
//
// Each stack is checked once, not once per instance (validate reads the
// configuration, not the inputs), Parallel at a time, in a scratch copy
// under Dir/.validate; nothing is planned and no state is read. validate
// needs the providers the stack uses: a stack whose `terraform init
// -backend=false` fails (a provider this machine cannot install) gives a
// warning saying it was not checked, not an error, so that validate stays
// usable where providers are not reachable. The repository must have
// loaded without problems (the files are those it hashed).
func (r *Runner) Validate(ctx context.Context, repo *spec.Repo, fsys fs.FS) spec.Problems {
	found := make([]spec.Problems, len(repo.Stacks))
	r.each(len(repo.Stacks), func(i int) {
		found[i] = r.validate(ctx, fsys, repo.Stacks[i])
	})
	var out spec.Problems
	for _, ps := range found {
		out = append(out, ps...)
	}
	return out
}

func (r *Runner) validate(ctx context.Context, fsys fs.FS, s *spec.Stack) spec.Problems {
	dir := filepath.Join(r.Dir, ".validate", s.Name)
	notChecked := func(err error) spec.Problems {
		return spec.Problems{{File: spec.StacksDir + "/" + s.Name + "/" + spec.StackFile, Field: "stack", Warning: true,
			Message: "not checked by terraform validate: " + lastLines(err.Error(), 3)}}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return notChecked(err)
	}
	defer os.RemoveAll(dir)
	work, err := prepare(fsys, &Instance{Stack: s}, dir)
	if err != nil {
		return notChecked(err)
	}
	env, err := r.env()
	if err != nil {
		return notChecked(err)
	}
	tf, err := r.terraform(ctx, work, env, nil)
	if err != nil {
		return notChecked(err)
	}
	if err := r.step(ctx, func(ctx context.Context) error { return tf.Init(ctx, tfexec.Backend(false)) }); err != nil {
		return notChecked(fmt.Errorf("terraform init -backend=false: %w", err))
	}
	var out *tfjson.ValidateOutput
	if err := r.step(ctx, func(ctx context.Context) (err error) { out, err = tf.Validate(ctx); return err }); err != nil {
		return notChecked(fmt.Errorf("terraform validate: %w", err))
	}
	var ps spec.Problems
	for _, d := range out.Diagnostics {
		p := spec.Problem{File: spec.StacksDir + "/" + s.Name + "/" + spec.StackFile, Field: "terraform",
			Message: d.Summary, Warning: d.Severity != tfjson.DiagnosticSeverityError}
		if d.Detail != "" {
			p.Message += ": " + d.Detail
		}
		if d.Range != nil && d.Range.Filename != "" {
			p.File, p.Line, p.Column = repoPath(s.Name, d.Range.Filename), d.Range.Start.Line, d.Range.Start.Column
			p.Field = ""
		}
		ps = append(ps, p)
	}
	return ps
}

// repoPath is the repository's path of a file terraform names relative to
// the stack's root module (a local module: ../../modules/net/main.tf).
func repoPath(stack, name string) string {
	name = filepath.ToSlash(name)
	if path.IsAbs(name) {
		return name // not one of the repository's: said as terraform said it
	}
	return path.Join(spec.StacksDir, stack, name)
}

// lastLines keeps the last n non-empty lines of s: the end of terraform's
// output is where it says what failed.
func lastLines(s string, n int) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep[max(len(keep)-n, 0):], " ")
}
