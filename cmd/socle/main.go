// Command socle is the socle GitOps platform: server, CLI and web UI in one binary.
package main

import (
	"os"
	_ "time/tzdata" // promotion windows name IANA zones; work on hosts without tzdata

	"github.com/socle-dev/socle/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
