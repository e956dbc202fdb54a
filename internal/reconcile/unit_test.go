package reconcile

import "testing"

// TestCanaryReplicas: beside n old pods, the canary's share of pods is
// about the step's weight, never zero and never more than the release's.
func TestCanaryReplicas(t *testing.T) {
	for _, tc := range []struct{ n, weight, want int }{
		{1, 50, 1}, {1, 10, 1}, {9, 10, 1}, {4, 20, 1}, {3, 50, 3}, {10, 50, 10}, {6, 25, 2}, {2, 90, 2},
	} {
		if got := canaryReplicas(tc.n, tc.weight); got != tc.want {
			t.Errorf("canaryReplicas(%d, %d%%) = %d, want %d", tc.n, tc.weight, got, tc.want)
		}
	}
}
