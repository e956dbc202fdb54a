package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"

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
			path := fmt.Sprintf("/api/v1/apps/%s/envs/%s/logs?follow=%t", url.PathEscape(args[0]), url.PathEscape(env), follow)
			resp, err := g.client().Request(cmd.Context(), http.MethodGet, path, nil, nil)
			if err != nil {
				return g.apiErr(err)
			}
			defer resp.Body.Close()
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
