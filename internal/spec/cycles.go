package spec

import "slices"

// findCycles searches a graph depth first, from each of nodes in turn,
// for cycles: edges(n) are the edges from node n, each leading to to(e).
// found is called once for each edge that closes a cycle, with the
// cycle's edges, from the node it returns to back to that node.
func findCycles[E any](nodes []string, edges func(string) []E, to func(E) string, found func(cycle []E)) {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var path []string // the active nodes, path[i+1] reached by via[i]
	var via []E
	var visit func(n string)
	visit = func(n string) {
		state[n] = active
		path = append(path, n)
		for _, e := range edges(n) {
			switch next := to(e); state[next] {
			case unseen:
				via = append(via, e)
				visit(next)
				via = via[:len(via)-1]
			case active:
				i := slices.Index(path, next)
				found(append(slices.Clone(via[i:]), e))
			}
		}
		path = path[:len(path)-1]
		state[n] = done
	}
	for _, n := range nodes {
		if state[n] == unseen {
			visit(n)
		}
	}
}
