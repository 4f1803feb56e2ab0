package lap

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteSolve is the least total cost over every injective row→column map (rows <= cols).
func bruteSolve(cost [][]float64) float64 {
	n, m := len(cost), len(cost[0])
	best := math.Inf(1)
	used := make([]bool, m)
	var rec func(i int, sum float64)
	rec = func(i int, sum float64) {
		if i == n {
			best = min(best, sum)
			return
		}
		for j := 0; j < m; j++ {
			if !used[j] {
				used[j] = true
				rec(i+1, sum+cost[i][j])
				used[j] = false
			}
		}
	}
	rec(0, 0)
	return best
}

// bruteAssign is the least sum of (cost - limit) over every partial matching of allowed pairs.
func bruteAssign(cost [][]float64, limit float64) float64 {
	n, m := len(cost), len(cost[0])
	best := 0.0
	used := make([]bool, m)
	var rec func(i int, sum float64)
	rec = func(i int, sum float64) {
		if i == n {
			best = min(best, sum)
			return
		}
		rec(i+1, sum) // row i unpaired
		for j := 0; j < m; j++ {
			if c := cost[i][j]; !used[j] && c <= limit && !math.IsInf(c, 0) {
				used[j] = true
				rec(i+1, sum+c-limit)
				used[j] = false
			}
		}
	}
	rec(0, 0)
	return best
}

func randMatrix(r *rand.Rand, n, m int, withInf bool) [][]float64 {
	c := make([][]float64, n)
	for i := range c {
		c[i] = make([]float64, m)
		for j := range c[i] {
			// Coarse values make ties common, which is where solvers go wrong.
			c[i][j] = float64(r.IntN(8)) / 8
			if withInf && r.IntN(4) == 0 {
				c[i][j] = math.Inf(1)
			}
		}
	}
	return c
}

func TestSolveMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 500; k++ {
		n, m := 1+r.IntN(5), 1+r.IntN(5)
		c := randMatrix(r, n, m, false)
		got := Solve(c)
		if len(got) != n {
			t.Fatalf("len %d, want %d", len(got), n)
		}
		seen := map[int]bool{}
		sum, paired := 0.0, 0
		for i, j := range got {
			if j < 0 {
				continue
			}
			if seen[j] {
				t.Fatalf("%v: column %d used twice: %v", c, j, got)
			}
			seen[j] = true
			sum += c[i][j]
			paired++
		}
		if paired != min(n, m) {
			t.Fatalf("%v: %d pairs, want %d", c, paired, min(n, m))
		}
		var want float64
		if n <= m {
			want = bruteSolve(c)
		} else {
			tr := make([][]float64, m)
			for j := range tr {
				tr[j] = make([]float64, n)
				for i := range c {
					tr[j][i] = c[i][j]
				}
			}
			want = bruteSolve(tr)
		}
		if math.Abs(sum-want) > 1e-9 {
			t.Fatalf("%v: total %v, brute force %v (%v)", c, sum, want, got)
		}
	}
}

func TestAssignMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for k := 0; k < 500; k++ {
		n, m := 1+r.IntN(5), 1+r.IntN(5)
		c := randMatrix(r, n, m, true)
		limit := float64(r.IntN(9)) / 8
		pairs := Assign(c, limit)
		rows, cols := map[int]bool{}, map[int]bool{}
		sum := 0.0
		for _, p := range pairs {
			if rows[p.Row] || cols[p.Col] {
				t.Fatalf("%v: row or column used twice: %v", c, pairs)
			}
			rows[p.Row], cols[p.Col] = true, true
			if c[p.Row][p.Col] > limit {
				t.Fatalf("%v limit %v: pair %v above the limit", c, limit, p)
			}
			sum += c[p.Row][p.Col] - limit
		}
		if want := bruteAssign(c, limit); math.Abs(sum-want) > 1e-9 {
			t.Fatalf("%v limit %v: objective %v, brute force %v (%v)", c, limit, sum, want, pairs)
		}
	}
}

func TestAssignDeterministic(t *testing.T) {
	// All equal: the lowest indices pair up, the same way every time.
	c := [][]float64{{0.5, 0.5}, {0.5, 0.5}}
	for k := 0; k < 10; k++ {
		got := Assign(c, 0.8)
		if len(got) != 2 || got[0] != (Pair{0, 0}) || got[1] != (Pair{1, 1}) {
			t.Fatalf("got %v", got)
		}
	}
	if got := Assign(nil, 1); got != nil {
		t.Fatalf("empty: %v", got)
	}
	if got := Solve([][]float64{{}, {}}); len(got) != 2 || got[0] != -1 || got[1] != -1 {
		t.Fatalf("no columns: %v", got)
	}
}

func BenchmarkAssign20(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	c := make([][]float64, 20)
	for i := range c {
		c[i] = make([]float64, 20)
		for j := range c[i] {
			c[i][j] = r.Float64()
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		Assign(c, 0.8)
	}
}
