package api

// SecretValue is the body of PUT /api/v1/apps/{app}/secrets/{name}: the
// value, which socle encrypts at once and never shows, logs or stores in
// clear.
type SecretValue struct {
	Value string `json:"value"`
}

// SecretRotateRequest is the body of POST /api/v1/secrets/rotate: which
// secret files to re-encrypt. Empty fields mean every app, every
// environment.
type SecretRotateRequest struct {
	// App rotates only this app's files.
	App string `json:"app,omitempty"`
	// Env rotates only the files that give values in this environment:
	// its own and its zone's.
	Env string `json:"env,omitempty"`
}

// SecretFile is one secret file of the platform repository, as socle
// lists it: the names in it, never a value.
type SecretFile struct {
	App string `json:"app"`
	// Path is the file's path in the repository.
	Path string `json:"path"`
	// For is the environment or the zone the file is for; Scope says
	// which ("env" or "zone").
	For   string `json:"for"`
	Scope string `json:"scope"`
	// Environments are the environments the file gives values in.
	Environments []string `json:"environments"`
	// Names are the names of the values it holds, in its order.
	Names []string `json:"names"`
	// Recipients are the age recipients it is encrypted for; Held says
	// whether socle holds an identity of one (it can decrypt the file).
	Recipients []string `json:"recipients"`
	Held       bool     `json:"held"`
	// Rules are the recipients the repository's .sops.yaml gives the file
	// now, when a rule matches: a rotation encrypts it for them.
	Rules []string `json:"rules,omitempty"`
	// LastChange is the last commit that changed the file.
	LastChange *Commit `json:"lastChange,omitempty"`
}

// SecretList is the answer of GET /api/v1/secrets.
type SecretList struct {
	// Revision is the head of the platform repository the files are read at.
	Revision string       `json:"revision"`
	Items    []SecretFile `json:"items"`
}

// SecretChange is the answer of a secret set or a rotation: the commit
// that made it and the files it wrote, as they are now.
type SecretChange struct {
	Commit Commit       `json:"commit"`
	Files  []SecretFile `json:"files"`
	// Name is the secret set, for a set; Created says it is new in its file.
	Name    string `json:"name,omitempty"`
	Created bool   `json:"created,omitempty"`
}
