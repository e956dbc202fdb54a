// Package tfprovider holds socletest, the Terraform provider socle's
// tests build from source (cmd/terraform-provider-socletest), the helper
// that installs it through a filesystem mirror (tfprovidertest), and the
// tests that drive it through socle's stack.Runner with the real
// terraform binary.
package tfprovider
