// Package lap solves the linear assignment problem: given a cost for every (row, column)
// pair, choose pairs, each row and column at most once, so that the total cost is least.
// It is the Hungarian method in its shortest-augmenting-path form (Jonker-Volgenant style
// potentials, O(n²m)), written for the small matrices of multi-object tracking (tens of
// tracks against tens of detections) and for scoring (ground-truth ids against track ids).
//
// Results are deterministic: ties go to the lowest index, in the order the algorithm scans.
package lap

import (
	"math"
	"slices"
)

// Pair is one chosen (row, column) pair.
type Pair struct {
	Row, Col int
}

// Solve assigns every row of a rectangular matrix to a distinct column (or, when there are
// more rows than columns, every column to a distinct row) at least total cost. It returns,
// for each row, its column, or -1 when the row was left out. Costs must be finite; cost
// must be rectangular (every row the same length). An empty matrix gives an empty answer.
func Solve(cost [][]float64) []int {
	n := len(cost)
	if n == 0 {
		return nil
	}
	m := len(cost[0])
	if m == 0 {
		out := make([]int, n)
		for i := range out {
			out[i] = -1
		}
		return out
	}
	if n <= m {
		return hungarian(n, m, func(i, j int) float64 { return cost[i][j] })
	}
	// More rows than columns: solve the transpose and invert.
	colToRow := hungarian(m, n, func(i, j int) float64 { return cost[j][i] })
	out := make([]int, n)
	for i := range out {
		out[i] = -1
	}
	for c, r := range colToRow {
		out[r] = c
	}
	return out
}

// hungarian solves an n×m problem with n <= m through cost(i, j); it returns each row's column.
func hungarian(n, m int, cost func(i, j int) float64) []int {
	inf := math.Inf(1)
	u := make([]float64, n+1)
	v := make([]float64, m+1)
	p := make([]int, m+1) // p[j]: row (1-based) assigned to column j; p[0] is the row being added
	way := make([]int, m+1)
	minv := make([]float64, m+1)
	used := make([]bool, m+1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j] = inf
			used[j] = false
		}
		for {
			used[j0] = true
			i0 := p[j0]
			delta := inf
			j1 := 0
			for j := 1; j <= m; j++ {
				if used[j] {
					continue
				}
				cur := cost(i0-1, j-1) - u[i0] - v[j]
				if cur < minv[j] {
					minv[j] = cur
					way[j] = j0
				}
				if minv[j] < delta {
					delta = minv[j]
					j1 = j
				}
			}
			for j := 0; j <= m; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	out := make([]int, n)
	for j := 1; j <= m; j++ {
		if p[j] != 0 {
			out[p[j]-1] = j - 1
		}
	}
	return out
}

// Assign chooses a partial assignment: a pair whose cost is above limit, +Inf or NaN is never
// chosen, and among the rest the chosen pairs minimise the sum of (cost - limit), so a pair is
// made only when it lowers the total (as lapjv's cost_limit does). Rows and columns may stay
// unpaired. Pairs come back sorted by row. cost must be rectangular.
//
// The rows and columns linked by allowed pairs fall apart into independent groups (objects
// far apart never compete); each group is solved alone, which keeps sparse problems cheap.
func Assign(cost [][]float64, limit float64) []Pair {
	n := len(cost)
	if n == 0 || len(cost[0]) == 0 {
		return nil
	}
	m := len(cost[0])
	allowed := func(c float64) bool { return c <= limit && !math.IsNaN(c) && !math.IsInf(c, 0) }
	// Union-find over rows 0..n-1 and columns n..n+m-1.
	parent := make([]int, n+m)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(x int) int {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for i := range n {
		for j := range m {
			if allowed(cost[i][j]) {
				a, b := find(i), find(n+j)
				if a != b {
					parent[max(a, b)] = min(a, b)
				}
			}
		}
	}
	groups := map[int]*[2][]int{} // root → rows, cols (in index order)
	var roots []int
	for x := range n + m {
		r := find(x)
		g, ok := groups[r]
		if !ok {
			g = &[2][]int{}
			groups[r] = g
			roots = append(roots, r)
		}
		if x < n {
			g[0] = append(g[0], x)
		} else {
			g[1] = append(g[1], x-n)
		}
	}
	var out []Pair
	for _, r := range roots {
		g := groups[r]
		rows, cols := g[0], g[1]
		if len(rows) == 0 || len(cols) == 0 {
			continue
		}
		if len(rows) == 1 && len(cols) == 1 { // the common case: one object, one detection
			out = append(out, Pair{Row: rows[0], Col: cols[0]})
			continue
		}
		sub := make([][]float64, len(rows))
		for a, i := range rows {
			sub[a] = make([]float64, len(cols))
			for b, j := range cols {
				sub[a][b] = cost[i][j]
			}
		}
		for _, p := range assignDense(sub, limit, allowed) {
			out = append(out, Pair{Row: rows[p.Row], Col: cols[p.Col]})
		}
	}
	slices.SortFunc(out, func(a, b Pair) int { return a.Row - b.Row })
	return out
}

// assignDense is Assign on one group, through the (n+m)² extension: row i may go to its own
// dummy column m+i, column j to its own dummy row n+j, at limit/2 each; dummy meets dummy at
// 0. A forbidden pair costs more than any all-allowed assignment, and one always exists
// (every row to its dummy).
func assignDense(cost [][]float64, limit float64, allowed func(float64) bool) []Pair {
	n, m := len(cost), len(cost[0])
	big := 1.0 + float64(n+m)*math.Abs(limit)
	for i := range cost {
		for _, c := range cost[i] {
			if allowed(c) {
				big += math.Abs(c)
			}
		}
	}
	N := n + m
	half := limit / 2
	ext := func(i, j int) float64 {
		switch {
		case i < n && j < m:
			if c := cost[i][j]; allowed(c) {
				return c
			}
			return big
		case i < n: // row i to a dummy column
			if j-m == i {
				return half
			}
			return big
		case j < m: // dummy row to column j
			if i-n == j {
				return half
			}
			return big
		default:
			return 0
		}
	}
	cols := hungarian(N, N, ext)
	var out []Pair
	for i := 0; i < n; i++ {
		if j := cols[i]; j < m && allowed(cost[i][j]) {
			out = append(out, Pair{Row: i, Col: j})
		}
	}
	return out
}
