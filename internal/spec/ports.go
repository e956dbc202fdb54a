package spec

import "slices"

// PrimaryPort chooses which of a service's named ports is served on
// <app>.<env>.localhost (by socle's proxy, or a cluster's gateway): the one named "http" if any, otherwise the first name
// in sorted order; "" when there are none. Score keeps ports in a map, so a
// rule that does not depend on order is needed.
func PrimaryPort(ports []string) string {
	if len(ports) == 0 {
		return ""
	}
	if slices.Contains(ports, "http") {
		return "http"
	}
	return slices.Min(ports)
}
