package score

import (
	"maps"
	"math"
	"slices"

	"github.com/vigil-edge/vigil/pipeline/track/lap"
)

// HOTAResult is Higher Order Tracking Accuracy (Luiten et al., "HOTA: A Higher Order Metric
// for Evaluating Multi-Object Tracking", IJCV 2020), each figure averaged over the
// localisation thresholds alpha = 0.05, 0.10, ..., 0.95, as TrackEval computes it.
type HOTAResult struct {
	HOTA float64 // sqrt(DetA * AssA), averaged over alpha
	DetA float64 // TP / (TP + FN + FP)
	AssA float64 // mean over true positives of |TPA| / (|TPA| + |FNA| + |FPA|)
	LocA float64 // mean IoU of the true positives, over the alphas that have some
}

// hotaAlphas are the 19 localisation thresholds, exact multiples of 0.05.
func hotaAlphas() []float64 {
	a := make([]float64, 19)
	for i := range a {
		a[i] = float64(i+1) / 20
	}
	return a
}

// HOTA scores hyp against gt over frames (nil: every frame of either), like Evaluate. Each
// frame's boxes are matched by the Hungarian method on IoU weighted by how much each pair of
// ids overlaps over the whole sequence (the paper's alignment score), once for all alphas; a
// matched pair counts at alpha when its IoU >= alpha.
func HOTA(gt, hyp map[int][]Object, frames []int) HOTAResult {
	if frames == nil {
		set := map[int]bool{}
		for f := range gt {
			set[f] = true
		}
		for f := range hyp {
			set[f] = true
		}
		frames = slices.Sorted(maps.Keys(set))
	}
	iou := func(g, h []Object) [][]float64 {
		s := make([][]float64, len(g))
		for i := range g {
			s[i] = make([]float64, len(h))
			for j := range h {
				s[i][j] = float64(g[i].Box.IoU(h[j].Box))
			}
		}
		return s
	}
	type pair = [2]uint64
	// Pass 1: the alignment score of each (gt id, hyp id).
	gtCount, hypCount := map[uint64]float64{}, map[uint64]float64{}
	potential := map[pair]float64{}
	for _, f := range frames {
		g, h := gt[f], hyp[f]
		for _, o := range g {
			gtCount[o.ID]++
		}
		for _, o := range h {
			hypCount[o.ID]++
		}
		s := iou(g, h)
		rowSum := make([]float64, len(g))
		colSum := make([]float64, len(h))
		for i := range g {
			for j := range h {
				rowSum[i] += s[i][j]
				colSum[j] += s[i][j]
			}
		}
		for i := range g {
			for j := range h {
				if d := rowSum[i] + colSum[j] - s[i][j]; d > 0 && s[i][j] > 0 {
					potential[pair{g[i].ID, h[j].ID}] += s[i][j] / d
				}
			}
		}
	}
	align := func(gid, hid uint64) float64 {
		p := potential[pair{gid, hid}]
		if d := gtCount[gid] + hypCount[hid] - p; d > 0 {
			return p / d
		}
		return 0
	}
	// Pass 2: match each frame, count per alpha.
	alphas := hotaAlphas()
	tp := make([]float64, len(alphas))
	loc := make([]float64, len(alphas))
	matches := make([]map[pair]float64, len(alphas))
	for a := range matches {
		matches[a] = map[pair]float64{}
	}
	var nGT, nHyp float64
	for _, f := range frames {
		g, h := gt[f], hyp[f]
		nGT += float64(len(g))
		nHyp += float64(len(h))
		if len(g) == 0 || len(h) == 0 {
			continue
		}
		s := iou(g, h)
		cost := make([][]float64, len(g))
		for i := range g {
			cost[i] = make([]float64, len(h))
			for j := range h {
				cost[i][j] = -align(g[i].ID, h[j].ID) * s[i][j]
			}
		}
		for i, j := range lap.Solve(cost) {
			if j < 0 || s[i][j] <= 0 {
				continue
			}
			for a, alpha := range alphas {
				if s[i][j] >= alpha {
					tp[a]++
					loc[a] += s[i][j]
					matches[a][pair{g[i].ID, h[j].ID}]++
				}
			}
		}
	}
	var r HOTAResult
	locN := 0.0
	for a := range alphas {
		fn, fp := nGT-tp[a], nHyp-tp[a]
		var detA, assA, locA float64
		if d := tp[a] + fn + fp; d > 0 {
			detA = tp[a] / d
		}
		if tp[a] > 0 {
			for p, n := range matches[a] {
				assA += n * n / (gtCount[p[0]] + hypCount[p[1]] - n)
			}
			assA /= tp[a]
			locA = loc[a] / tp[a]
			locN++
		}
		r.HOTA += math.Sqrt(detA * assA)
		r.DetA += detA
		r.AssA += assA
		r.LocA += locA
	}
	n := float64(len(alphas))
	r.HOTA, r.DetA, r.AssA = r.HOTA/n, r.DetA/n, r.AssA/n
	if locN > 0 {
		r.LocA /= locN
	}
	return r
}
