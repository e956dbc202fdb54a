// Package secretref resolves references to secret managers
// (ref+vault://apps/web#password) that stand for a secret's value in the
// platform repository: a Provider per scheme, made by a Factory from the
// environment's secret stores (spec.SecretStores), and a Registry that
// keeps one provider per store so that a login lasts from one resolution
// to the next. Only HashiCorp Vault's KV v2 is implemented; AWS Secrets
// Manager, Azure Key Vault and Google Secret Manager register the same
// way. It resolves; it keeps no value: the caller gives the value to the
// replica and to the redactor, never to the store, a plan or a log.
package secretref
