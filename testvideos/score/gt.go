// Package score measures how well Vigil follows people against MOTChallenge ground truth:
// CLEAR-MOT (MOTA, MOTP, ID switches, fragmentations), identity metrics (IDF1, IDP, IDR) and
// detection precision and recall, all at IoU >= 0.5. Run drives the real pipeline pieces
// (file source → decoder → ONNX detector → tracker) over a clip and scores the tracks; a plain
// greedy-IoU tracker (Greedy) is the baseline the ByteTrack-style tracker must beat.
//
// Detections are cached per (model sha256, clip sha256, detector settings, frame) under the
// user cache folder, so tracker variants and repeated runs cost one detector pass.
package score

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-edge/vigil/models"
)

// Object is one box with an identity on one frame (a ground-truth person or a track).
type Object struct {
	ID  uint64
	Box models.Box
}

// Sequence is a ground-truth sequence.
type Sequence struct {
	Name          string
	Width, Height int     // from seqinfo.ini; 0 when unknown
	FrameRate     float64 // from seqinfo.ini; 0 when unknown
	Length        int     // frames, from seqinfo.ini; else the last frame with a box
	GT
}

// GT is the content of a gt.txt, by frame (from 1), each frame's boxes sorted by id.
type GT struct {
	Frames  map[int][]Object // the boxes that count (conf != 0)
	Ignored map[int][]Object // conf 0: objects neither to be found nor to be held against a tracker
}

// ErrBadGT: a ground-truth file is malformed.
var ErrBadGT = errors.New("bad ground truth")

// maxFrame bounds frame numbers so that a corrupt file cannot make callers loop for ever.
const maxFrame = 10_000_000

// ParseGT reads a MOTChallenge gt.txt: one box per line, "frame,id,x,y,w,h,conf,..." with
// (x, y) the top-left corner and w, h the size in pixels, frames from 1. Rows with conf 0
// (ignored objects) go to Ignored; a row of six fields has conf 1. Blank lines are skipped.
// Errors wrap ErrBadGT and name the line.
func ParseGT(r io.Reader) (GT, error) {
	frames, ignored := map[int][]Object{}, map[int][]Object{}
	seen := map[[2]int64]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) < 6 {
			return GT{}, fmt.Errorf("%w: line %d: %d fields, want at least 6 (frame,id,x,y,w,h)", ErrBadGT, line, len(fields))
		}
		var v [7]float64
		v[6] = 1
		for i := 0; i < min(len(fields), 7); i++ {
			f, err := strconv.ParseFloat(strings.TrimSpace(fields[i]), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return GT{}, fmt.Errorf("%w: line %d: field %d (%q) is not a finite number", ErrBadGT, line, i+1, fields[i])
			}
			v[i] = f
		}
		fr, id := v[0], v[1]
		switch {
		case fr != math.Trunc(fr) || fr < 1 || fr > maxFrame:
			return GT{}, fmt.Errorf("%w: line %d: frame %v must be a whole number from 1", ErrBadGT, line, fr)
		case id != math.Trunc(id) || id < 0 || id > math.MaxInt32:
			return GT{}, fmt.Errorf("%w: line %d: id %v must be a whole number >= 0", ErrBadGT, line, id)
		case v[4] < 0 || v[5] < 0:
			return GT{}, fmt.Errorf("%w: line %d: negative size %vx%v", ErrBadGT, line, v[4], v[5])
		case math.Abs(v[2]) > 1e6 || math.Abs(v[3]) > 1e6 || v[4] > 1e6 || v[5] > 1e6:
			return GT{}, fmt.Errorf("%w: line %d: box out of range", ErrBadGT, line)
		}
		key := [2]int64{int64(fr), int64(id)}
		if seen[key] {
			return GT{}, fmt.Errorf("%w: line %d: id %d appears twice on frame %d", ErrBadGT, line, key[1], key[0])
		}
		seen[key] = true
		b := models.Box{X1: float32(v[2]), Y1: float32(v[3]), X2: float32(v[2] + v[4]), Y2: float32(v[3] + v[5])}
		dst := frames
		if v[6] == 0 {
			dst = ignored
		}
		dst[int(fr)] = append(dst[int(fr)], Object{ID: uint64(id), Box: b})
	}
	if err := sc.Err(); err != nil {
		return GT{}, fmt.Errorf("%w: line %d: %w", ErrBadGT, line+1, err)
	}
	for _, m := range []map[int][]Object{frames, ignored} {
		for _, objs := range m {
			slices.SortFunc(objs, func(a, b Object) int { return cmp.Compare(a.ID, b.ID) })
		}
	}
	return GT{Frames: frames, Ignored: ignored}, nil
}

// ParseSeqInfo reads the [Sequence] section of a MOTChallenge seqinfo.ini into s (name,
// frameRate, seqLength, imWidth, imHeight). Unknown keys and sections are ignored.
func ParseSeqInfo(r io.Reader, s *Sequence) error {
	sc := bufio.NewScanner(r)
	section := ""
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == ';' || text[0] == '#' {
			continue
		}
		if strings.HasPrefix(text, "[") && strings.HasSuffix(text, "]") {
			section = strings.ToLower(strings.TrimSpace(text[1 : len(text)-1]))
			continue
		}
		k, val, ok := strings.Cut(text, "=")
		if !ok {
			return fmt.Errorf("%w: seqinfo.ini line %d: no '='", ErrBadGT, line)
		}
		if section != "sequence" {
			continue
		}
		k, val = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(val)
		num := func(dst *int) error {
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: seqinfo.ini line %d: %s=%q is not a whole number >= 0", ErrBadGT, line, k, val)
			}
			*dst = n
			return nil
		}
		var err error
		switch k {
		case "name":
			s.Name = val
		case "framerate":
			f, perr := strconv.ParseFloat(val, 64)
			if perr != nil || !(f > 0) || math.IsInf(f, 0) {
				err = fmt.Errorf("%w: seqinfo.ini line %d: frameRate=%q is not a positive number", ErrBadGT, line, val)
			}
			s.FrameRate = f
		case "seqlength":
			err = num(&s.Length)
		case "imwidth":
			err = num(&s.Width)
		case "imheight":
			err = num(&s.Height)
		}
		if err != nil {
			return err
		}
	}
	return sc.Err()
}

// LoadGT reads a MOTChallenge sequence folder: dir/gt/gt.txt (or dir/gt.txt) and, if there,
// dir/seqinfo.ini.
func LoadGT(dir string) (Sequence, error) {
	s := Sequence{Name: filepath.Base(dir)}
	path := filepath.Join(dir, "gt", "gt.txt")
	if _, err := os.Stat(path); err != nil {
		path = filepath.Join(dir, "gt.txt")
	}
	f, err := os.Open(path)
	if err != nil {
		return s, fmt.Errorf("ground truth: %w", err)
	}
	defer f.Close()
	if s.GT, err = ParseGT(f); err != nil {
		return s, fmt.Errorf("ground truth %s: %w", path, err)
	}
	if ini, err := os.Open(filepath.Join(dir, "seqinfo.ini")); err == nil {
		defer ini.Close()
		if err := ParseSeqInfo(ini, &s); err != nil {
			return s, fmt.Errorf("ground truth %s: %w", dir, err)
		}
	}
	if s.Length == 0 {
		for fr := range s.Frames {
			s.Length = max(s.Length, fr)
		}
		for fr := range s.Ignored {
			s.Length = max(s.Length, fr)
		}
	}
	return s, nil
}
