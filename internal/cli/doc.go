// Package cli is the socle command line: cobra commands that either work
// offline on a directory (validate, plan, schema, init) or on a data
// directory, or speak to a socle server over its REST API.
package cli
