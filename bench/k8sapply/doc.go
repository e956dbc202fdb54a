// Package k8sapply is a bench, run as a test because it needs the test
// cluster of package kubetest: it applies N apps × 2 environments to a real
// API server (kwok makes their pods ready), and prints the time until every
// unit is healthy, the time of a resync that changes nothing, and the peak
// memory of the process that drives them.
//
//	go test ./bench/k8sapply -run Bench -v -timeout 60m -args -apps 1000
//
// Without -apps it does nothing, so that go test ./... stays quick.
package k8sapply
