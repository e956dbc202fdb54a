package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

func newLogsCmd(g *globals) *cobra.Command {
	var env string
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs APP --env ENV [-f]",
		Short: "Print an app's output in an environment, every replica's lines prefixed with its name",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required"))
			}
			u := fmt.Sprintf("%s/api/v1/apps/%s/envs/%s/logs?follow=%t", strings.TrimRight(g.server, "/"), url.PathEscape(args[0]), url.PathEscape(env), follow)
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, u, nil)
			if err != nil {
				return withCode(ExitUsage, err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return withCode(ExitError, fmt.Errorf("socle server at %s: %w (is `socle up` running? set --server or SOCLE_SERVER)", g.server, err))
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return withCode(ExitError, apiError(resp))
			}
			_, err = io.Copy(g.stdout, resp.Body)
			if cmd.Context().Err() != nil {
				return nil // interrupted while following
			}
			return err
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	return cmd
}
