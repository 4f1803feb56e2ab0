package score

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
)

// MOTRow is one box of a tracker's output: Frame numbered as in the ground truth (from 1).
type MOTRow struct {
	Frame int
	ID    uint64
	Box   Object
	Score float32
}

// WriteMOT writes rows in the MOTChallenge results format that the devkit, TrackEval and
// py-motmetrics read: one line per box, `frame,id,left,top,width,height,conf,-1,-1,-1`, by
// frame then id.
func WriteMOT(w io.Writer, rows []MOTRow) error {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b MOTRow) int {
		return cmp.Or(cmp.Compare(a.Frame, b.Frame), cmp.Compare(a.ID, b.ID))
	})
	bw := bufio.NewWriter(w)
	for _, r := range rows {
		b := r.Box.Box
		fmt.Fprintf(bw, "%d,%d,%.2f,%.2f,%.2f,%.2f,%.4f,-1,-1,-1\n", r.Frame, r.ID, b.X1, b.Y1, b.X2-b.X1, b.Y2-b.Y1, r.Score)
	}
	return bw.Flush()
}
