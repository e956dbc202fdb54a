package spec

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// TemplateBuiltins are the values every template file may use beside its
// parameters: .app is the new app's name.
var TemplateBuiltins = []string{"app"}

// ParseTemplateFile parses one file of a template the way socle renders
// it: Go's text/template, a missing value an error.
func ParseTemplateFile(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Parse(text)
}

// templateLine reads the line out of a text/template error
// ("template: NAME:LINE: message").
var templateLine = regexp.MustCompile(`^template: [^:]*:(\d+):(?:\d+:)? ?(.*)$`)

// loadTemplate reads templates/<name>/template.yaml and its files, and
// checks the parameters and every file's template.
func (l *loading) loadTemplate(name string) {
	f := path.Join(TemplatesDir, name, TemplateFile)
	d := l.read(f, true, "template")
	if d == nil {
		return
	}
	var t Template
	l.decode(d, &t)
	if t.Metadata.Name != "" && t.Metadata.Name != name {
		l.add(d.problem(fmt.Sprintf("template is named %q but lives in templates/%s/", t.Metadata.Name, name), "metadata", "name"))
	}
	l.repo.Templates[name] = &t
	known := map[string]bool{}
	for _, b := range TemplateBuiltins {
		known[b] = true
	}
	for i, p := range t.Parameters {
		at := []string{"parameters", idx(i)}
		switch {
		case p.Name == "":
		case known[p.Name]:
			l.add(d.problem(fmt.Sprintf("parameter %q is defined twice, or is socle's own (.app is the app's name)", p.Name), append(at, "name")...))
		}
		known[p.Name] = true
		typ := cmp.Or(p.Type, "string")
		if len(p.Enum) > 0 && typ != "string" {
			l.add(d.problem("enum lists strings: only a string parameter has one", append(at, "enum")...))
		}
		if p.Source == SourceTeams && typ != "string" {
			l.add(d.problem("an owner picker (source: teams) is a string parameter", append(at, "source")...))
		}
		var re *regexp.Regexp
		if p.Pattern != "" {
			var err error
			if re, err = regexp.Compile("^(?:" + p.Pattern + ")$"); err != nil {
				l.add(d.problem("pattern: "+err.Error(), append(at, "pattern")...))
			}
		}
		if p.Default != nil {
			if _, err := CheckParameter(p, p.Default, re); err != nil {
				l.add(d.problem("default: "+err.Error(), append(at, "default")...))
			}
		}
	}
	t.Files = map[string]string{}
	dir := path.Join(TemplatesDir, name, TemplateFilesDir)
	err := fs.WalkDir(l.fsys, dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if e.Type() == fs.ModeSymlink {
			l.add(linkError(l.fsys, p).Problem())
			return nil
		}
		data, err := readFile(l.fsys, p, l.budget.limits())
		if err != nil {
			l.add(FileProblem(p, err))
			return nil
		}
		rel := strings.TrimPrefix(p, dir+"/")
		t.Files[rel] = string(data)
		l.checkTemplateFile(p, string(data), known)
		return nil
	})
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		l.add(Problem{File: dir, Message: err.Error()})
	case len(t.Files) == 0:
		l.add(d.problem(fmt.Sprintf("the template has no file to render: put the app's files (score.yaml, socle.yaml, its source) under %s/", dir)))
	}
}

// checkTemplateFile parses one template file and checks that every value
// it reads at the top level (.name) is a parameter or socle's own.
func (l *loading) checkTemplateFile(file, text string, known map[string]bool) {
	t, err := ParseTemplateFile(file, text)
	if err != nil {
		p := Problem{File: file, Message: err.Error()}
		if m := templateLine.FindStringSubmatch(err.Error()); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Message = m[2]
		}
		l.add(p)
		return
	}
	var walk func(n parse.Node, top bool)
	walk = func(n parse.Node, top bool) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c, top)
			}
		case *parse.ActionNode:
			walk(n.Pipe, top)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c, top)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a, top)
			}
		case *parse.FieldNode:
			if top && !known[n.Ident[0]] {
				loc, _ := t.ErrorContext(n)
				p := Problem{File: file, Field: "." + n.Ident[0], Message: fmt.Sprintf("no parameter %q: the template's parameters and .app (the app's name) are what a file may use", n.Ident[0])}
				if parts := strings.Split(loc, ":"); len(parts) >= 3 {
					p.Line, _ = strconv.Atoi(parts[1])
					p.Column, _ = strconv.Atoi(parts[2])
				}
				l.add(p)
			}
		case *parse.IfNode:
			walk(n.Pipe, top)
			walk(n.List, top)
			walk(n.ElseList, top)
		case *parse.RangeNode: // dot changes inside: only the pipe is checked
			walk(n.Pipe, top)
			walk(n.List, false)
			walk(n.ElseList, top)
		case *parse.WithNode:
			walk(n.Pipe, top)
			walk(n.List, false)
			walk(n.ElseList, top)
		}
	}
	walk(t.Tree.Root, true)
}

// CheckParameter checks v, a value given for p (a string from a command
// line, or a JSON or YAML value), and returns it as p's type: a string,
// an int64 or a bool. re is p's compiled pattern, nil to compile it here.
func CheckParameter(p Parameter, v any, re *regexp.Regexp) (any, error) {
	switch cmp.Or(p.Type, "string") {
	case "integer":
		switch n := v.(type) {
		case int:
			return int64(n), nil
		case int64:
			return n, nil
		case float64:
			if n == float64(int64(n)) {
				return int64(n), nil
			}
		case string:
			if i, err := strconv.ParseInt(n, 10, 64); err == nil {
				return i, nil
			}
		}
		return nil, fmt.Errorf("%v is not an integer", v)
	case "boolean":
		switch b := v.(type) {
		case bool:
			return b, nil
		case string:
			if x, err := strconv.ParseBool(b); err == nil {
				return x, nil
			}
		}
		return nil, fmt.Errorf("%v is not a boolean (true or false)", v)
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%v is not a string", v)
	}
	if len(p.Enum) > 0 && !slices.Contains(p.Enum, s) {
		return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(p.Enum, ", "))
	}
	if p.Pattern != "" {
		if re == nil {
			var err error
			if re, err = regexp.Compile("^(?:" + p.Pattern + ")$"); err != nil {
				return nil, err
			}
		}
		if !re.MatchString(s) {
			return nil, fmt.Errorf("%q does not match %s", s, p.Pattern)
		}
	}
	return s, nil
}
