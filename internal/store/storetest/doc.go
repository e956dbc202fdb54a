// Package storetest is the conformance suite of store.Store. Every
// implementation runs it from its own tests, against a real database, with
//
//	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) { … })
//
// and must pass it unchanged: the suite, not an implementation, says what the
// interface means.
package storetest
