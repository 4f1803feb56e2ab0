package score

import (
	"maps"
	"math"
	"slices"

	"github.com/vigil-edge/vigil/pipeline/track/lap"
)

// MinIoU is the least IoU at which a hypothesis box counts as covering a ground-truth box.
const MinIoU = 0.5

// Metrics are the scores of one hypothesis (tracker output) against ground truth.
type Metrics struct {
	Frames int // frames evaluated
	GT     int // ground-truth boxes
	Hyp    int // hypothesis boxes

	// CLEAR-MOT (Bernardin & Stiefelhagen 2008), matching at IoU >= MinIoU and keeping a
	// ground-truth object's previous match while it stays valid.
	TP, FP, FN int
	IDSwitches int     // a ground-truth object matched to a different track id than before
	Frag       int     // a ground-truth object matched again after a stretch unmatched
	MOTA       float64 // 1 - (FN + FP + IDSwitches) / GT
	MOTP       float64 // mean IoU of the matched pairs (higher is better; not a distance)

	// Identity metrics (Ristani et al. 2016): one global best bipartite matching of
	// ground-truth ids to track ids over the whole sequence.
	IDTP, IDFP, IDFN int
	IDF1, IDP, IDR   float64

	// Precision = TP / Hyp and Recall = TP / GT of the per-frame matches.
	Precision, Recall float64

	GTIDs, HypIDs int // distinct ids

	// HOTA (Luiten et al. 2020) with its detection, association and localisation parts,
	// averaged over alpha 0.05..0.95; zero for EvaluateDetections.
	HOTA HOTAResult

	// FPByID counts the false-positive boxes of each hypothesis id (nil without identities):
	// one id with many is usually a static thing the detector takes for a person.
	FPByID map[uint64]int
}

// Evaluate scores hyp against gt over the given frames (keys of both maps are frame numbers;
// frames nil means every frame of either, in order). Frames are visited in increasing order.
func Evaluate(gt, hyp map[int][]Object, frames []int) Metrics {
	m := evaluate(gt, hyp, frames, true)
	m.HOTA = HOTA(gt, hyp, frames)
	return m
}

// EvaluateDetections scores boxes without identities (raw detections) against gt: each frame
// is matched on its own, and the identity fields stay zero; MOTA is then MODA (no switches).
func EvaluateDetections(gt, dets map[int][]Object, frames []int) Metrics {
	// Give every box its own id, so that no match is kept from one frame to the next.
	unique := make(map[int][]Object, len(dets))
	var id uint64
	for _, f := range slices.Sorted(maps.Keys(dets)) {
		for _, o := range dets[f] {
			id++
			unique[f] = append(unique[f], Object{ID: id, Box: o.Box})
		}
	}
	m := evaluate(gt, unique, frames, false)
	m.IDSwitches, m.Frag, m.HypIDs = 0, 0, 0
	if m.GT > 0 {
		m.MOTA = 1 - float64(m.FN+m.FP)/float64(m.GT)
	}
	return m
}

func evaluate(gt, hyp map[int][]Object, frames []int, identity bool) Metrics {
	if frames == nil {
		set := map[int]bool{}
		for f := range gt {
			set[f] = true
		}
		for f := range hyp {
			set[f] = true
		}
		frames = slices.Sorted(maps.Keys(set))
	} else {
		frames = slices.Sorted(slices.Values(frames))
	}
	var m Metrics
	last := map[uint64]uint64{}  // gt id → the hyp id it was last matched to
	status := map[uint64]int8{}  // gt id → 0 never matched, 1 matched, 2 unmatched after a match
	gtCount := map[uint64]int{}  // boxes per gt id
	hypCount := map[uint64]int{} // boxes per hyp id
	co := map[[2]uint64]int{}    // (gt id, hyp id) → frames both present at IoU >= MinIoU
	iouSum := 0.0
	for _, f := range frames {
		g, h := gt[f], hyp[f]
		m.Frames++
		m.GT += len(g)
		m.Hyp += len(h)
		for _, o := range g {
			gtCount[o.ID]++
		}
		for _, o := range h {
			hypCount[o.ID]++
		}
		for _, a := range g {
			for _, b := range h {
				if identity && a.Box.IoU(b.Box) >= MinIoU {
					co[[2]uint64{a.ID, b.ID}]++
				}
			}
		}

		// CLEAR-MOT: keep each object's last match where it is still valid (as py-motmetrics
		// does), then match the rest optimally.
		match := make([]int, len(g)) // index into h, or -1
		usedH := make([]bool, len(h))
		for i := range match {
			match[i] = -1
		}
		for i, a := range g {
			prev, ok := last[a.ID]
			if !ok {
				continue
			}
			for j, b := range h {
				if b.ID == prev && !usedH[j] && a.Box.IoU(b.Box) >= MinIoU {
					match[i], usedH[j] = j, true
					break
				}
			}
		}
		var rows, cols []int
		for i := range g {
			if match[i] < 0 {
				rows = append(rows, i)
			}
		}
		for j := range h {
			if !usedH[j] {
				cols = append(cols, j)
			}
		}
		if len(rows) > 0 && len(cols) > 0 {
			cost := make([][]float64, len(rows))
			for a, i := range rows {
				cost[a] = make([]float64, len(cols))
				for b, j := range cols {
					if iou := g[i].Box.IoU(h[j].Box); iou >= MinIoU {
						cost[a][b] = 1 - float64(iou)
					} else {
						cost[a][b] = math.Inf(1)
					}
				}
			}
			for _, p := range lap.Assign(cost, 1-MinIoU) {
				match[rows[p.Row]] = cols[p.Col]
			}
		}
		for i, a := range g {
			j := match[i]
			if j < 0 {
				m.FN++
				if status[a.ID] == 1 {
					status[a.ID] = 2
				}
				continue
			}
			m.TP++
			iouSum += float64(a.Box.IoU(h[j].Box))
			if prev, ok := last[a.ID]; ok && prev != h[j].ID {
				m.IDSwitches++
			}
			if status[a.ID] == 2 {
				m.Frag++
			}
			last[a.ID], status[a.ID] = h[j].ID, 1
		}
		m.FP += len(h) - countMatched(match)
		if identity {
			matched := make([]bool, len(h))
			for _, j := range match {
				if j >= 0 {
					matched[j] = true
				}
			}
			for j, b := range h {
				if !matched[j] {
					if m.FPByID == nil {
						m.FPByID = map[uint64]int{}
					}
					m.FPByID[b.ID]++
				}
			}
		}
	}
	if m.GT > 0 {
		m.MOTA = 1 - float64(m.FN+m.FP+m.IDSwitches)/float64(m.GT)
		m.Recall = float64(m.TP) / float64(m.GT)
	}
	if m.Hyp > 0 {
		m.Precision = float64(m.TP) / float64(m.Hyp)
	}
	if m.TP > 0 {
		m.MOTP = iouSum / float64(m.TP)
	}

	if !identity {
		return m
	}
	// Identity: best global matching of gt ids to hyp ids by frames covered together.
	gtIDs := slices.Sorted(maps.Keys(gtCount))
	hypIDs := slices.Sorted(maps.Keys(hypCount))
	m.GTIDs, m.HypIDs = len(gtIDs), len(hypIDs)
	if len(gtIDs) > 0 && len(hypIDs) > 0 {
		cost := make([][]float64, len(gtIDs))
		for a, gid := range gtIDs {
			cost[a] = make([]float64, len(hypIDs))
			for b, hid := range hypIDs {
				if n := co[[2]uint64{gid, hid}]; n > 0 {
					cost[a][b] = -float64(n)
				} else {
					cost[a][b] = math.Inf(1)
				}
			}
		}
		for _, p := range lap.Assign(cost, 0) {
			m.IDTP += co[[2]uint64{gtIDs[p.Row], hypIDs[p.Col]}]
		}
	}
	m.IDFN, m.IDFP = m.GT-m.IDTP, m.Hyp-m.IDTP
	if m.GT+m.Hyp > 0 {
		m.IDF1 = 2 * float64(m.IDTP) / float64(m.GT+m.Hyp)
	}
	if m.Hyp > 0 {
		m.IDP = float64(m.IDTP) / float64(m.Hyp)
	}
	if m.GT > 0 {
		m.IDR = float64(m.IDTP) / float64(m.GT)
	}
	return m
}

func countMatched(match []int) int {
	n := 0
	for _, j := range match {
		if j >= 0 {
			n++
		}
	}
	return n
}
