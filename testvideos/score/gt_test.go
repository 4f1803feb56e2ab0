package score

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/testvideos/data"
)

var gtCases = []struct {
	name, in string
	frames   map[int]int // boxes per frame
	ignored  int
	err      string
}{
	{name: "MOT rows", in: "1,1,10,20,30,40,1,-1,-1,-1\n1,2,50,20,30,40,1,-1,-1,-1\n2,1,12,20,30,40,1,-1,-1,-1\n", frames: map[int]int{1: 2, 2: 1}},
	{name: "six fields, blanks and spaces", in: "\n 3, 7, 1.5, 2.5, 10, 20 \n\n", frames: map[int]int{3: 1}},
	{name: "conf 0 is ignored", in: "1,1,0,0,10,10,0\n1,2,0,0,10,10,1\n", frames: map[int]int{1: 1}, ignored: 1},
	{name: "empty", in: "", frames: map[int]int{}},
	{name: "too few fields", in: "1,1,0,0,10\n", err: "line 1: 5 fields"},
	{name: "not a number", in: "1,1,0,0,10,10\n1,x,0,0,1,1\n", err: "line 2: field 2"},
	{name: "NaN", in: "1,1,NaN,0,10,10\n", err: "not a finite number"},
	{name: "frame 0", in: "0,1,0,0,10,10\n", err: "frame 0"},
	{name: "fractional frame", in: "1.5,1,0,0,10,10\n", err: "frame 1.5"},
	{name: "negative size", in: "1,1,0,0,-10,10\n", err: "negative size"},
	{name: "duplicate id", in: "4,9,0,0,10,10\n4,9,5,5,10,10\n", err: "id 9 appears twice on frame 4"},
}

func TestParseGT(t *testing.T) {
	for _, c := range gtCases {
		t.Run(c.name, func(t *testing.T) {
			gt, err := ParseGT(strings.NewReader(c.in))
			if c.err != "" {
				if err == nil || !errors.Is(err, ErrBadGT) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want ErrBadGT with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(gt.Frames) != len(c.frames) {
				t.Fatalf("frames %v, want %v", gt.Frames, c.frames)
			}
			for f, n := range c.frames {
				if len(gt.Frames[f]) != n {
					t.Fatalf("frame %d: %v, want %d boxes", f, gt.Frames[f], n)
				}
			}
			n := 0
			for _, objs := range gt.Ignored {
				n += len(objs)
			}
			if n != c.ignored {
				t.Fatalf("ignored %v, want %d", gt.Ignored, c.ignored)
			}
		})
	}
	gt, _ := ParseGT(strings.NewReader("3,7,1.5,2.5,10,20\n"))
	if got, want := gt.Frames[3][0], (Object{ID: 7, Box: models.Box{X1: 1.5, Y1: 2.5, X2: 11.5, Y2: 22.5}}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func FuzzParseGT(f *testing.F) {
	for _, c := range gtCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		gt, err := ParseGT(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrBadGT) {
				t.Fatalf("error without ErrBadGT: %v", err)
			}
			return
		}
		for _, m := range []map[int][]Object{gt.Frames, gt.Ignored} {
			for fr, objs := range m {
				if fr < 1 {
					t.Fatalf("frame %d", fr)
				}
				for i, o := range objs {
					if o.Box.X2 < o.Box.X1 || o.Box.Y2 < o.Box.Y1 {
						t.Fatalf("inverted box %+v", o)
					}
					if i > 0 && objs[i-1].ID >= o.ID {
						t.Fatalf("frame %d: ids not sorted and unique: %v", fr, objs)
					}
				}
			}
		}
	})
}

var seqInfoCases = []struct {
	name, in string
	want     Sequence
	err      string
}{
	{name: "MOT", in: "[Sequence]\nname=TUD-Campus\nimDir=img1\nframeRate=25\nseqLength=71\nimWidth=640\nimHeight=480\nimExt=.jpg\n",
		want: Sequence{Name: "TUD-Campus", FrameRate: 25, Length: 71, Width: 640, Height: 480}},
	{name: "other sections ignored", in: "; comment\n[Other]\nname=x\n[Sequence]\nframeRate=7.5\n", want: Sequence{FrameRate: 7.5}},
	{name: "no equals", in: "[Sequence]\nname\n", err: "no '='"},
	{name: "bad rate", in: "[Sequence]\nframeRate=-1\n", err: "frameRate"},
	{name: "bad width", in: "[Sequence]\nimWidth=wide\n", err: "imwidth"},
}

func TestParseSeqInfo(t *testing.T) {
	for _, c := range seqInfoCases {
		var s Sequence
		err := ParseSeqInfo(strings.NewReader(c.in), &s)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: got %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || s.Name != c.want.Name || s.FrameRate != c.want.FrameRate || s.Length != c.want.Length ||
			s.Width != c.want.Width || s.Height != c.want.Height {
			t.Errorf("%s: got %+v %v, want %+v", c.name, s, err, c.want)
		}
	}
}

func FuzzParseSeqInfo(f *testing.F) {
	for _, c := range seqInfoCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var s Sequence
		if err := ParseSeqInfo(strings.NewReader(in), &s); err == nil && (s.Width < 0 || s.Height < 0 || s.Length < 0 || s.FrameRate < 0) {
			t.Fatalf("negative values accepted: %+v", s)
		}
	})
}

func TestLoadGT(t *testing.T) {
	s, err := LoadGT(data.MustPath(t, "gt/mot15/TUD-Campus"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, objs := range s.Frames {
		n += len(objs)
	}
	if s.Name != "TUD-Campus" || s.Length != 71 || s.Width != 640 || s.FrameRate != 25 || n != 359 {
		t.Fatalf("%s %d frames %dx%d %v fps, %d boxes", s.Name, s.Length, s.Width, s.Height, s.FrameRate, n)
	}
	// Without seqinfo.ini the length comes from the boxes.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gt.txt"), []byte("5,1,0,0,1,1\n9,1,0,0,1,1,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadGT(dir); err != nil || s.Length != 9 || s.Width != 0 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := LoadGT(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing folder: no error")
	}
}
