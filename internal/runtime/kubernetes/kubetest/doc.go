// Package kubetest starts a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler from one binary
// built from the nested Go module test/k8s/stack, and kwok, which plays the
// kubelet of fake Nodes so that Pods become Ready without running containers.
// The binaries are built once per machine and cached under the user's cache
// directory, because a cold build takes minutes; each cluster then starts in
// seconds on loopback ports with its own temporary etcd, certificates and
// admin kubeconfig, and every process dies with the test binary. Tests run
// with -short skip it.
package kubetest
