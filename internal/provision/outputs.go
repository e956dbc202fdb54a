package provision

// Outputs are a provisioned resource's outputs as the workloads that use
// it read them.
type Outputs struct {
	// Values are the outputs by name.
	Values map[string]string
	// Secret names the outputs that are secret (a password, a URL with
	// one): sealed at rest, redacted wherever socle shows them.
	Secret map[string]bool
}

// Secrets returns the values of the secret outputs.
func (o Outputs) Secrets() []string {
	var out []string
	for name, v := range o.Values {
		if o.Secret[name] && v != "" {
			out = append(out, v)
		}
	}
	return out
}
