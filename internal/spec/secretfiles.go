package spec

import "path"

// SecretFiles are the files the values of an app's secrets (AppConfig's
// Secrets) come from in an environment, in the order they apply: the
// zone's, then the environment's, whose values win. They are SOPS files
// (internal/sopsfile) of flat NAME: value pairs, encrypted for the age
// recipients that the repository's .sops.yaml creation rules give their
// path: apps/<app>/secrets.<zone>.yaml, apps/<app>/secrets.<env>.yaml.
func SecretFiles(app string, env *Environment) []string {
	var out []string
	if env.Zone != "" && env.Zone != env.Name {
		out = append(out, SecretFile(app, env.Zone))
	}
	return append(out, SecretFile(app, env.Name))
}

// SecretFile is the secret file of an app for an environment or a zone.
func SecretFile(app, envOrZone string) string {
	return path.Join("apps", app, "secrets."+envOrZone+".yaml")
}
