// Package template renders golden-path templates (templates/<name>/ of the
// platform repository, which spec loads and checks) into an app's files,
// resolves the parameters a caller gives against the template's, and
// upgrades an app made from an older version of its template by a
// three-way merge. It owns no commit and no rule of who may create what:
// the server does.
package template
