package kubernetes

import (
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/runtimetest"
)

// TestConformance runs the replica-level suite against bare pods of the
// test cluster. Its nodes are kwok's, so the driver declares Simulated: the
// lifecycle is checked (start, ready, list, refuse a twin or a bad spec,
// stop, unknown handles, watch), not what needs a running process.
func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		Open: func(t *testing.T) (runtime.Driver, func() runtime.Driver) {
			d, ns, _ := open(t, time.Minute)
			return d.Replicas(ns), func() runtime.Driver { return d.Replicas(ns) }
		},
		Server: func(t *testing.T, args ...string) runtime.ReplicaSpec {
			return runtime.ReplicaSpec{Image: "registry.test:5000/testserver@" + testDigest, Command: append([]string{"/testserver"}, args...)}
		},
	})
}
