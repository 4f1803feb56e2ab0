package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/testvideos/data"
)

func TestScoreCommand(t *testing.T) {
	var out, errb bytes.Buffer
	outDir := t.TempDir()
	args := []string{"score", "--clip", data.MustPath(t, "videos/mot15_tud_campus.mp4"),
		"--gt", data.MustPath(t, "gt/mot15/TUD-Campus"), "--max-frames", "20", "--out", outDir}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, want := range []string{"MOTA", "IDF1", "HOTA", "AssA", "detector", "bytetrack", "greedy", "TUD-Campus"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	// --out: one MOTChallenge file per tracker, frames 1..20, ten comma-separated fields.
	for _, tracker := range []string{"bytetrack", "greedy"} {
		b, err := os.ReadFile(filepath.Join(outDir, tracker, "TUD-Campus.txt"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) < 20 {
			t.Fatalf("%s: %d lines for 20 frames of a crowd:\n%s", tracker, len(lines), b)
		}
		for _, l := range lines {
			f := strings.Split(l, ",")
			n, err := strconv.Atoi(f[0])
			if len(f) != 10 || err != nil || n < 1 || n > 20 || f[7] != "-1" || f[9] != "-1" {
				t.Fatalf("%s: bad MOT line %q", tracker, l)
			}
		}
	}
	// --motion: a third row, ByteTrack through the agent's motion gate, with its inferences
	// (the first frame learns the background: a full-frame pass; at most one per frame).
	out.Reset()
	args = []string{"score", "--clip", data.MustPath(t, "videos/mot15_tud_campus.mp4"),
		"--gt", data.MustPath(t, "gt/mot15/TUD-Campus"), "--max-frames", "20", "--tracker", "bytetrack", "--motion"}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var motionRow []string
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[1] == "bytetrack-motion" {
			motionRow = f
		}
	}
	if motionRow == nil || !strings.Contains(out.String(), "detector-motion") {
		t.Fatalf("--motion: no bytetrack-motion and detector-motion rows in:\n%s", out.String())
	}
	if n, err := strconv.Atoi(motionRow[3]); err != nil || n < 1 || n > 20 || motionRow[2] != "20" {
		t.Errorf("--motion: frames %s, inferences %s; want 20 frames and 1-20 inferences", motionRow[2], motionRow[3])
	}
	for _, bad := range []string{"x", "1.5"} { // not a number; outside [0, 1]
		err := run(context.Background(), []string{"score", "--clip", data.MustPath(t, "videos/mot15_tud_campus.mp4"),
			"--gt", data.MustPath(t, "gt/mot15/TUD-Campus"), "--max-frames", "2", "--confirm-median", bad}, &out, &errb)
		if err == nil || !strings.Contains(err.Error()+errb.String(), "onfirm") {
			t.Errorf("--confirm-median %s: %v", bad, err)
		}
	}
	err := run(context.Background(), []string{"score", "--clip", "x.mp4", "--gt", "nowhere", "--tracker", "sort"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "unknown tracker") {
		t.Fatalf("got %v", err)
	}
}
