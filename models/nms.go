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
	slices.SortStableFunc(dets, func(a, b Detection) int { return cmp.Compare(b.Score, a.Score) })
	kept := 0
	for i := range dets {
		d := dets[i]
		suppressed := false
		for j := 0; j < kept; j++ {
			if dets[j].ClassID == d.ClassID && dets[j].Box.IoU(d.Box) > iouThreshold {
				suppressed = true
				break
			}
		}
		if !suppressed {
			dets[kept] = d
			kept++
		}
	}
	return dets[:kept]
}
