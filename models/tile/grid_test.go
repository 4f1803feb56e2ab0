package tile

import (
	"fmt"
	"image"
	"testing"

	"github.com/vigil-edge/vigil/models"
)

// checkGrid asserts that tiles cover the w x h frame exactly, stay inside it, have one size,
// start at 0, end flush with the far edges, and overlap their neighbours by >= minOverlap px.
func checkGrid(t *testing.T, tiles []image.Rectangle, w, h, cols, rows, minOX, minOY int) {
	t.Helper()
	if len(tiles) != cols*rows {
		t.Fatalf("%d tiles, want %dx%d", len(tiles), cols, rows)
	}
	frame := image.Rect(0, 0, w, h)
	size := tiles[0].Size()
	for i, r := range tiles {
		if !r.In(frame) {
			t.Errorf("tile %d %v outside frame %v", i, r, frame)
		}
		if r.Size() != size {
			t.Errorf("tile %d size %v, tile 0 %v", i, r.Size(), size)
		}
	}
	// Coverage: every pixel of a coarse lattice plus the edges lies in some tile.
	for y := 0; y < h; y += max(1, h/97) {
		for x := 0; x < w; x += max(1, w/101) {
			covered(t, tiles, x, y)
		}
	}
	covered(t, tiles, w-1, h-1)
	covered(t, tiles, w-1, 0)
	covered(t, tiles, 0, h-1)
	if tiles[0].Min != (image.Point{}) {
		t.Errorf("first tile starts at %v", tiles[0].Min)
	}
	if last := tiles[len(tiles)-1]; last.Max != frame.Max {
		t.Errorf("last tile %v not flush with %v", last, frame.Max)
	}
	for r := range rows {
		for c := range cols - 1 {
			a, b := tiles[r*cols+c], tiles[r*cols+c+1]
			if ov := a.Max.X - b.Min.X; ov < minOX {
				t.Errorf("row %d tiles %d,%d overlap %d px, want >= %d", r, c, c+1, ov, minOX)
			}
		}
	}
	for r := range rows - 1 {
		a, b := tiles[r*cols], tiles[(r+1)*cols]
		if ov := a.Max.Y - b.Min.Y; ov < minOY {
			t.Errorf("rows %d,%d overlap %d px, want >= %d", r, r+1, ov, minOY)
		}
	}
}

func covered(t *testing.T, tiles []image.Rectangle, x, y int) {
	t.Helper()
	for _, r := range tiles {
		if image.Pt(x, y).In(r) {
			return
		}
	}
	t.Errorf("pixel (%d,%d) in no tile", x, y)
}

func TestGrid(t *testing.T) {
	cases := []struct {
		w, h, tw, th int
		overlap      float64
		cols, rows   int
	}{
		{2048, 1365, 416, 416, 0.2, 6, 4},  // the aerial test image
		{2048, 1365, 640, 640, 0.2, 4, 3},  // 640 tiles, downscaled into the model
		{2048, 1365, 832, 832, 0.25, 3, 2}, //
		{1920, 1080, 416, 416, 0, 5, 3},    // no overlap still covers
		{416, 416, 416, 416, 0.2, 1, 1},    // exactly one tile
		{417, 416, 416, 416, 0.2, 2, 1},    // one pixel more: two tiles
		{100, 50, 416, 416, 0.2, 1, 1},     // tiny image: one tile of the image's size
		{1000, 10, 416, 416, 0.5, 4, 1},    // thin strip
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%dx%d_%d_%v", c.w, c.h, c.tw, c.overlap), func(t *testing.T) {
			tiles := Grid(c.w, c.h, c.tw, c.th, c.overlap)
			tw, th := min(c.tw, c.w), min(c.th, c.h)
			minOX, minOY := int(c.overlap*float64(tw)), int(c.overlap*float64(th))
			if c.cols == 1 {
				minOX = 0
			}
			if c.rows == 1 {
				minOY = 0
			}
			checkGrid(t, tiles, c.w, c.h, c.cols, c.rows, minOX, minOY)
			if got := tiles[0].Size(); got != image.Pt(tw, th) {
				t.Errorf("tile size %v, want %dx%d", got, tw, th)
			}
		})
	}
}

func TestGridN(t *testing.T) {
	for _, c := range []struct {
		w, h, cols, rows int
		overlap          float64
	}{{2048, 1365, 3, 2, 0.2}, {4000, 3000, 6, 5, 0.2}, {640, 480, 1, 1, 0.2}, {5, 5, 3, 3, 0.5}, {1000, 1000, 4, 4, 0}} {
		t.Run(fmt.Sprintf("%dx%d_%dx%d", c.w, c.h, c.cols, c.rows), func(t *testing.T) {
			tiles := GridN(c.w, c.h, c.cols, c.rows, c.overlap)
			s := tiles[0].Size()
			checkGrid(t, tiles, c.w, c.h, c.cols, c.rows, int(c.overlap*float64(s.X)), int(c.overlap*float64(s.Y)))
		})
	}
}

func TestGridDegenerate(t *testing.T) {
	for _, g := range [][]image.Rectangle{Grid(0, 10, 416, 416, 0.2), Grid(10, 10, 0, 416, 0.2), GridN(10, 10, 0, 1, 0.2)} {
		if g != nil {
			t.Errorf("degenerate grid = %v, want nil", g)
		}
	}
}

func TestSubImageIsAView(t *testing.T) {
	w, h := 7, 5
	img := models.Image{Width: w, Height: h, Stride: 3*w + 2, Pix: make([]byte, (3*w+2)*h)}
	for y := range h {
		for x := range w {
			img.Pix[y*img.Stride+3*x] = byte(10*y + x)
		}
	}
	r := image.Rect(3, 2, 7, 5) // flush with the bottom-right corner
	sub := SubImage(img, r)
	if !sub.Valid() || sub.Width != 4 || sub.Height != 3 || sub.Stride != img.Stride {
		t.Fatalf("sub-image %dx%d stride %d valid %v", sub.Width, sub.Height, sub.Stride, sub.Valid())
	}
	for y := range sub.Height {
		for x := range sub.Width {
			if got, want := sub.Pix[y*sub.Stride+3*x], byte(10*(y+2)+x+3); got != want {
				t.Errorf("sub(%d,%d) = %d, want %d", x, y, got, want)
			}
		}
	}
	sub.Pix[0] = 255
	if img.Pix[2*img.Stride+9] != 255 {
		t.Error("sub-image does not share the parent's pixels")
	}
}

func TestGridForAltitude(t *testing.T) {
	o := Optics{} // defaults: 80° HFOV, 0.5 m person, 10 px in a 416 input
	for _, c := range []struct {
		alt        float64
		w, h       int
		cols, rows int
	}{
		{5, 4000, 3000, 1, 1},   // low: the whole frame is enough
		{20, 4000, 3000, 2, 2},  // the doc comment's example
		{60, 4000, 3000, 6, 5},  // the doc comment's example
		{200, 4000, 3000, 8, 8}, // capped
		{0, 4000, 3000, 1, 1},   // no altitude
		{40, 640, 480, 4, 3},    // person 4.8 px, tiles <= 198 px
	} {
		cols, rows := GridForAltitude(c.alt, c.w, c.h, o)
		if cols != c.cols || rows != c.rows {
			t.Errorf("GridForAltitude(%v m, %dx%d) = %dx%d, want %dx%d", c.alt, c.w, c.h, cols, rows, c.cols, c.rows)
		}
	}
	// Monotone: higher never needs fewer tiles.
	pc, pr := 0, 0
	for alt := 1.0; alt < 300; alt *= 1.1 {
		c, r := GridForAltitude(alt, 4000, 3000, o)
		if c < pc || r < pr {
			t.Errorf("at %.1f m grid %dx%d is smaller than %dx%d lower down", alt, c, r, pc, pr)
		}
		pc, pr = c, r
	}
}
