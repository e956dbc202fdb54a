// Package spec defines the platform repository's files (socle.yaml, teams.yaml,
// apps/*/score.yaml and apps/*/socle.yaml, releases/*.yaml, budgets.yaml,
// policies/*.yaml, templates/*/template.yaml, stacks/*/stack.yaml beside
// their Terraform configuration), loads them from any fs.FS and validates
// them in one pass, reporting every problem with its file, line, column and
// field. It is the root of socle's import graph: it imports only the
// standard library, YAML and JSON Schema libraries, the Score project's own
// Go library and HashiCorp's HCL parser (what a stack's *.tf declares),
// never another socle package. Running Terraform is package stack's.
package spec
