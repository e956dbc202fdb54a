// Package sopsfile reads and writes the secret files of the platform
// repository in SOPS's format (getsops/sops v3, age recipients), so that a
// team's own sops CLI and .sops.yaml creation rules work on the same
// files: apps/<app>/secrets.<env>.yaml (or secrets.<zone>.yaml), flat
// NAME: value pairs, each value encrypted, the names in clear. It holds
// the age identities socle is given (Keyring) and the creation rules
// (Rules) that say which recipients a file is encrypted for. It knows
// nothing of apps, units or Git: the pipeline decides which file a unit
// reads, gitwrite commits what Encrypt returns.
package sopsfile
