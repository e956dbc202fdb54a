package server

import (
	"fmt"
	"path/filepath"

	"github.com/socle-dev/socle/internal/sopsfile"
)

// AgeDir is where, in the data directory, socle reads the age identities
// (*.txt) that decrypt the apps' secret files.
const AgeDir = "age"

// loadKeyring reads the age identities socle is given: <data>/age/*.txt
// and the file cfg.AgeIdentities names. They are read once, at start.
func loadKeyring(cfg Config) (*sopsfile.Keyring, error) {
	var k sopsfile.Keyring
	if err := k.LoadDir(filepath.Join(cfg.Data, AgeDir)); err != nil {
		return nil, fmt.Errorf("reading age identities: %w", err)
	}
	if cfg.AgeIdentities != "" {
		if err := k.LoadFile(cfg.AgeIdentities); err != nil {
			return nil, fmt.Errorf("reading age identities: %w", err)
		}
	}
	return &k, nil
}
