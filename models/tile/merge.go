package tile

import (
	"slices"

	"github.com/vigil-edge/vigil/models"
)

// merge turns the detections of all tiles into one set:
//
//  1. class-aware NMS at iou drops the duplicates that overlapping tiles see twice;
//  2. a box cut at an inner tile edge is fused (union, best score) with a box of its class
//     that it lies mostly inside (intersection over the smaller >= ios), or with the box
//     that continues it across the seam: one that shares >= ios of its extent along the
//     seam, reaches past the cut, and starts where it starts (within a tenth of its size:
//     the object whole in the next tile) or at its own tile's edge inside it (cut there too);
//  3. a last NMS at iou, since unions may now overlap.
//
// Boxes that touch no inner tile edge are never fused, so two separate objects side by
// side stay two. The result is sorted by descending score.
func merge(all []tagged, iou, ios float32) []tagged {
	kept := nmsTagged(all, iou)
	for fused := true; fused; {
		fused = false
	outer:
		for i := len(kept) - 1; i >= 0; i-- { // weakest first: fragments usually score low
			a := kept[i]
			if a.cut == ([4]bool{}) {
				continue
			}
			for j := range kept {
				if j == i || kept[j].ClassID != a.ClassID || !fuses(a, kept[j], ios) {
					continue
				}
				kept[j] = union(kept[j], a)
				kept = slices.Delete(kept, i, i+1)
				fused = true
				break outer
			}
		}
	}
	return nmsTagged(kept, iou)
}

// fuses reports whether a, cut at some inner tile edge, is a piece of the object b.
func fuses(a, b tagged, ios float32) bool {
	if iosBox(a.Box, b.Box) >= ios {
		return true
	}
	ab, bb := a.Box, b.Box
	sx := max(edgeTol, 0.1*(ab.X2-ab.X1))
	sy := max(edgeTol, 0.1*(ab.Y2-ab.Y1))
	yShare := ios1(ab.Y1, ab.Y2, bb.Y1, bb.Y2) >= ios
	xShare := ios1(ab.X1, ab.X2, bb.X1, bb.X2) >= ios
	// b continues a across the seam if it starts where a starts (the object whole in the
	// next tile) or at its own tile's edge inside a (cut there too), and reaches past the cut.
	switch {
	case a.cut[2] && yShare && bb.X1 <= ab.X2+edgeTol && bb.X2 > ab.X2+edgeTol && bb.X1 >= ab.X1-sx &&
		(bb.X1 <= ab.X1+sx || b.cut[0]): // a cut on its right
		return true
	case a.cut[0] && yShare && bb.X2 >= ab.X1-edgeTol && bb.X1 < ab.X1-edgeTol && bb.X2 <= ab.X2+sx &&
		(bb.X2 >= ab.X2-sx || b.cut[2]): // a cut on its left
		return true
	case a.cut[3] && xShare && bb.Y1 <= ab.Y2+edgeTol && bb.Y2 > ab.Y2+edgeTol && bb.Y1 >= ab.Y1-sy &&
		(bb.Y1 <= ab.Y1+sy || b.cut[1]): // a cut at its bottom
		return true
	case a.cut[1] && xShare && bb.Y2 >= ab.Y1-edgeTol && bb.Y1 < ab.Y1-edgeTol && bb.Y2 <= ab.Y2+sy &&
		(bb.Y2 >= ab.Y2-sy || b.cut[3]): // a cut at its top
		return true
	}
	return false
}

// union is b grown to cover a, with the better score; a side stays cut if the side of the
// union comes from a box that was cut there.
func union(b, a tagged) tagged {
	u := b
	u.Box = models.Box{X1: min(a.Box.X1, b.Box.X1), Y1: min(a.Box.Y1, b.Box.Y1), X2: max(a.Box.X2, b.Box.X2), Y2: max(a.Box.Y2, b.Box.Y2)}
	if a.Score > b.Score {
		u.Score = a.Score
	}
	side := func(bx models.Box) [4]float32 { return [4]float32{bx.X1, bx.Y1, bx.X2, bx.Y2} }
	us, as, bs := side(u.Box), side(a.Box), side(b.Box)
	for s := range 4 {
		u.cut[s] = a.cut[s] && as[s] == us[s] || b.cut[s] && bs[s] == us[s]
	}
	return u
}

// iosBox is the intersection of two boxes over the smaller one's area.
func iosBox(a, b models.Box) float32 {
	ix := min(a.X2, b.X2) - max(a.X1, b.X1)
	iy := min(a.Y2, b.Y2) - max(a.Y1, b.Y1)
	small := min(a.Area(), b.Area())
	if ix <= 0 || iy <= 0 || small <= 0 {
		return 0
	}
	return ix * iy / small
}

// ios1 is the intersection of two intervals over the shorter one.
func ios1(a1, a2, b1, b2 float32) float32 {
	in := min(a2, b2) - max(a1, b1)
	short := min(a2-a1, b2-b1)
	if in <= 0 || short <= 0 {
		return 0
	}
	return in / short
}

// nmsTagged is models.NMS for tagged detections.
func nmsTagged(all []tagged, iou float32) []tagged {
	return models.NMSBy(all, iou, func(t *tagged) *models.Detection { return &t.Detection })
}
