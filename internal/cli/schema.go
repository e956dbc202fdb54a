package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

func newSchemaCmd(g *globals) *cobra.Command {
	var outDir string
	cmd := &cobra.Command{
		Use:   "schema [KIND]",
		Short: "Print the JSON Schema of socle's files, for editors",
		Long: `Schema prints the JSON Schema of one kind of socle file, or lists the kinds.
With --dir it writes every schema as <kind>.json into a directory. The platform's
describes the block of each runtime type socle is built with.

Editors that speak the YAML language server pick a schema from a first-line
comment: # yaml-language-server: $schema=https://socle.dev/schemas/v1/platform.json`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: spec.SchemaNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if outDir != "" {
				if err := os.MkdirAll(outDir, 0o755); err != nil {
					return err
				}
				for _, name := range spec.SchemaNames() {
					b, err := wiring.Schema(name, runtimeTypes())
					if err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(outDir, name+".json"), b, 0o644); err != nil {
						return err
					}
				}
				return nil
			}
			if len(args) == 0 {
				if g.json() {
					return g.printJSON(spec.SchemaNames())
				}
				for _, name := range spec.SchemaNames() {
					fmt.Fprintf(g.stdout, "%-12s %s%s.json\n", name, spec.SchemaBaseURL, name)
				}
				return nil
			}
			b, err := wiring.Schema(args[0], runtimeTypes())
			if err != nil {
				return withCode(ExitUsage, err)
			}
			_, err = g.raw.Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&outDir, "dir", "", "write every schema into this directory")
	return cmd
}
