package file_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/ingest/file"
	"github.com/vigil-edge/vigil/testvideos/data"
)

func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/a/b.mp4", "rel/c.avi", "file:///x/y.mp4", "file://localhost/x%20y.mp4",
		"file:rel.mp4", "file://host/z", "FILE:///Q", "file://", "", "a\x00b", "file:///%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := file.LocalPath(s)
		if err == nil && !filepath.IsAbs(p) {
			t.Fatalf("LocalPath(%q) = %q, not absolute", s, p)
		}
	})
}

// FuzzSource demuxes arbitrary bytes as a file: errors are fine, crashes and hangs are not.
func FuzzSource(f *testing.F) {
	f.Add([]byte("not a video"))
	f.Add([]byte("\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"))
	f.Add([]byte("RIFF\x00\x00\x00\x00AVI LIST"))
	for _, rel := range []string{"videos/mot15_tud_campus.mp4", "videos/pedestrians_pets09_s2l1_vtest.avi"} {
		if p, err := data.Path(rel); err == nil {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b[:32<<10]) // a clip's head, cut
			}
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "in")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		src, err := file.New(file.Config{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = src.Run(context.Background(), func(pkt frame.Packet) {
			n++
			if len(pkt.Data) == 0 || pkt.Codec == nil {
				t.Fatalf("packet %d: %d bytes, codec %v", n, len(pkt.Data), pkt.Codec)
			}
		})
		if err == nil || n > 0 && !errors.Is(err, io.EOF) && errors.Is(err, file.ErrNotVideo) {
			t.Fatalf("Run = %v after %d packets", err, n)
		}
	})
}
