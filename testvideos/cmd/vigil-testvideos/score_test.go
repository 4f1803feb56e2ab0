package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/testvideos/data"
)

func TestScoreCommand(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"score", "--clip", data.MustPath(t, "videos/mot15_tud_campus.mp4"),
		"--gt", data.MustPath(t, "gt/mot15/TUD-Campus"), "--max-frames", "20"}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, want := range []string{"MOTA", "IDF1", "detector", "bytetrack", "greedy", "TUD-Campus"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	err := run(context.Background(), []string{"score", "--clip", "x.mp4", "--gt", "nowhere", "--tracker", "sort"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "unknown tracker") {
		t.Fatalf("got %v", err)
	}
}
