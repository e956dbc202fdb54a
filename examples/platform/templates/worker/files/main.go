// Command {{ .app }}: {{ .description }}.
package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set at build time from the platform revision.
var version = "dev"

func main() {
	interval, err := time.ParseDuration(os.Getenv("INTERVAL"))
	if err != nil || interval <= 0 {
		interval = 5 * time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Printf("{{ .app }} %s polling %s every %s", version, os.Getenv("QUEUE"), interval)
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			log.Printf("{{ .app }} %s: stopping after %d rounds", version, n-1)
			return
		case <-t.C:
			log.Printf("round %d: nothing to do", n)
		}
	}
}
