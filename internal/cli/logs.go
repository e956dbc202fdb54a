package cli

import (
	"bufio"
	"encoding/json"
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
			path := fmt.Sprintf("/api/v1/apps/%s/envs/%s/logs?follow=%t", url.PathEscape(args[0]), url.PathEscape(env), follow)
			resp, err := g.client().Request(cmd.Context(), http.MethodGet, path, nil, nil)
			if err != nil {
				return g.apiErr(err)
			}
			defer resp.Body.Close()
			if g.json() {
				err = jsonLines(resp.Body, g)
			} else {
				// An app's output is anyone's words: its control characters
				// are escaped like all human output; -o json has them exact.
				_, err = io.Copy(g.stdout, resp.Body)
			}
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

// jsonLines prints each "[replica] line" of a log stream as a JSON object.
func jsonLines(r io.Reader, g *globals) error {
	return eachJSONLine(r, g, func(line string) any {
		replica := ""
		if rest, ok := strings.CutPrefix(line, "["); ok {
			if i := strings.Index(rest, "] "); i >= 0 {
				replica, line = rest[:i], rest[i+2:]
			}
		}
		return map[string]string{"replica": replica, "line": line}
	})
}

// eachJSONLine prints what object makes of each line of r as a JSON
// object of its own.
func eachJSONLine(r io.Reader, g *globals, object func(line string) any) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(g.raw)
	for sc.Scan() {
		if err := enc.Encode(object(sc.Text())); err != nil {
			return err
		}
	}
	return sc.Err()
}
