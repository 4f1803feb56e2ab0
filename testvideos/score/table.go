package score

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable prints one line per result (and one for the raw detector of the first result, and
// of the first motion-driven one):
// precision, recall, MOTA, MOTP, IDF1, HOTA (DetA, AssA), ID switches, FP, FN, in percent
// where a ratio.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clip\ttracker\tframes\tinferences\tprecision\trecall\tMOTA\tMOTP\tIDF1\tIDP\tIDR\tHOTA\tDetA\tAssA\tIDsw\tfrag\tFP\tFN\tGT\tids\t")
	pc := func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }
	for i, r := range results {
		m := r.Metrics
		motion := strings.HasSuffix(r.Tracker, MotionSuffix)
		if i == 0 || motion && !strings.HasSuffix(results[i-1].Tracker, MotionSuffix) { // the detector as each mode ran it
			d := r.Detector
			name := "detector"
			if motion {
				name += MotionSuffix
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t%d\t%d\t%d\t-\t\n", r.GT, name, r.Frames,
				pc(d.Precision), pc(d.Recall), pc(d.MOTA), pc(d.MOTP), d.FP, d.FN, d.GT)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", r.GT, r.Tracker, r.Frames, r.Inferences,
			pc(m.Precision), pc(m.Recall), pc(m.MOTA), pc(m.MOTP), pc(m.IDF1), pc(m.IDP), pc(m.IDR), pc(m.HOTA.HOTA), pc(m.HOTA.DetA), pc(m.HOTA.AssA),
			m.IDSwitches, m.Frag, m.FP, m.FN, m.GT, m.HypIDs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if len(r.Reasons) > 0 { // motion-driven: why the detector ran where it did
			fmt.Fprintf(w, "%s: frames by motion plan:", r.Tracker)
			for _, k := range slices.Sorted(maps.Keys(r.Reasons)) {
				fmt.Fprintf(w, " %s %d", k, r.Reasons[k])
			}
			fmt.Fprintln(w)
		}
		ids := slices.Collect(maps.Keys(r.Metrics.FPByID))
		slices.SortFunc(ids, func(a, b uint64) int {
			return cmp.Or(cmp.Compare(r.Metrics.FPByID[b], r.Metrics.FPByID[a]), cmp.Compare(a, b))
		})
		if len(ids) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s: most false positives:", r.Tracker)
		for _, id := range ids[:min(3, len(ids))] {
			fmt.Fprintf(w, " id %d (%d boxes)", id, r.Metrics.FPByID[id])
		}
		fmt.Fprintln(w)
	}
	return nil
}
