package models

import (
	"cmp"
	"slices"
)

// NMS is class-aware greedy non-maximum suppression: detections are taken in order of
// descending score, and one is kept unless a kept detection of the same class overlaps it with
// IoU > iouThreshold. It works in place: dets is reordered and the result, sorted by score
// (ties keep their input order), is a prefix of it. An iouThreshold >= 1 keeps everything.
func NMS(dets []Detection, iouThreshold float32) []Detection {
	return NMSBy(dets, iouThreshold, func(d *Detection) *Detection { return d })
}

// NMSBy is NMS over any element that carries a Detection (det returns it), so that callers
// can keep their own data beside each detection (tiling keeps which tile edges cut a box).
func NMSBy[T any](items []T, iouThreshold float32, det func(*T) *Detection) []T {
	slices.SortStableFunc(items, func(a, b T) int { return cmp.Compare(det(&b).Score, det(&a).Score) })
	kept := 0
	for i := range items {
		d := det(&items[i])
		suppressed := false
		for j := 0; j < kept; j++ {
			if k := det(&items[j]); k.ClassID == d.ClassID && k.Box.IoU(d.Box) > iouThreshold {
				suppressed = true
				break
			}
		}
		if !suppressed {
			items[kept] = items[i]
			kept++
		}
	}
	return items[:kept]
}
