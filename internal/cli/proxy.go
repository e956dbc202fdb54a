package cli

import (
	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/proxy/proxyd"
)

// newProxyCmd is `socle proxy`, the proxy's own process, which `socle up`
// starts and re-adopts (internal/proxy/proxyd). Hidden from help: people
// run socle up, not this; the README says what it is. Its flags are
// proxyd.Main's own (--data, --addr, --listen-fd, --ready-fd,
// --log-level).
func newProxyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "proxy",
		Short:              "Run socle's proxy as a process of its own (socle up starts it)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := proxyd.Main(cmd.Context(), args, g.stderr); code != 0 {
				return withCode(code, errSilent)
			}
			return nil
		},
	}
}
