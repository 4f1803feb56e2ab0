package tile

import (
	"image"
	"testing"

	"github.com/vigil-edge/vigil/models"
)

func det(class int, score, x1, y1, x2, y2 float32) models.Detection {
	return models.Detection{ClassID: class, Score: score, Box: models.Box{X1: x1, Y1: y1, X2: x2, Y2: y2}}
}

// Two tiles side by side over a 800x400 frame, sharing x 333..416 (20 % of 416).
var (
	frame = image.Rect(0, 0, 749, 400)
	tileA = image.Rect(0, 0, 416, 400)
	tileB = image.Rect(333, 0, 749, 400)
	// Two tiles stacked, sharing y 300..400.
	tileTop    = image.Rect(0, 0, 400, 400)
	tileBottom = image.Rect(0, 300, 400, 700)
	frameV     = image.Rect(0, 0, 400, 700)
)

func TestMergeSeams(t *testing.T) {
	type in struct {
		d    models.Detection
		tile image.Rectangle
	}
	cases := []struct {
		name  string
		frame image.Rectangle
		in    []in
		want  []models.Box
	}{
		{
			name:  "object cut by the right edge of A, whole in B",
			frame: frame,
			in:    []in{{det(0, 0.6, 380, 100, 416, 200), tileA}, {det(0, 0.8, 378, 101, 450, 199), tileB}},
			want:  []models.Box{{X1: 378, Y1: 101, X2: 450, Y2: 199}}, // NMS already drops the piece
		},
		{
			name:  "object larger than the overlap, cut in both tiles",
			frame: frame,
			in:    []in{{det(0, 0.5, 200, 50, 416, 300), tileA}, {det(0, 0.7, 333, 52, 600, 298), tileB}},
			want:  []models.Box{{X1: 200, Y1: 50, X2: 600, Y2: 300}},
		},
		{
			name:  "object cut by a horizontal seam",
			frame: frameV,
			in:    []in{{det(2, 0.9, 100, 150, 220, 400), tileTop}, {det(2, 0.8, 102, 300, 218, 520), tileBottom}},
			want:  []models.Box{{X1: 100, Y1: 150, X2: 220, Y2: 520}},
		},
		{
			name:  "same object seen whole in both tiles: NMS keeps the best",
			frame: frame,
			in:    []in{{det(0, 0.6, 350, 100, 400, 200), tileA}, {det(0, 0.9, 351, 101, 401, 201), tileB}},
			want:  []models.Box{{X1: 351, Y1: 101, X2: 401, Y2: 201}},
		},
		{
			name:  "two separate people side by side, one cut at the seam",
			frame: frame,
			in: []in{
				{det(0, 0.6, 390, 100, 416, 200), tileA}, // piece of person 1
				{det(0, 0.8, 390, 100, 440, 200), tileB}, // person 1 whole
				{det(0, 0.8, 445, 100, 495, 200), tileB}, // person 2, just right of person 1
			},
			want: []models.Box{{X1: 390, Y1: 100, X2: 440, Y2: 200}, {X1: 445, Y1: 100, X2: 495, Y2: 200}},
		},
		{
			// Seen on the aerial image: a whole person that happens to end at A's edge and
			// the next person in file, starting inside the first, in B.
			name:  "box touching the seam and a neighbour starting inside it stay two",
			frame: frame,
			in:    []in{{det(0, 0.9, 300, 100, 415, 300), tileA}, {det(0, 0.8, 390, 110, 470, 310), tileB}},
			want:  []models.Box{{X1: 300, Y1: 100, X2: 415, Y2: 300}, {X1: 390, Y1: 110, X2: 470, Y2: 310}},
		},
		{
			name:  "box cut on its left and a neighbour ending inside it stay two",
			frame: frame,
			in:    []in{{det(0, 0.9, 334, 100, 400, 250), tileB}, {det(0, 0.8, 290, 100, 350, 250), tileA}},
			want:  []models.Box{{X1: 334, Y1: 100, X2: 400, Y2: 250}, {X1: 290, Y1: 100, X2: 350, Y2: 250}},
		},
		{
			name:  "cut box next to an object at another height stays",
			frame: frame,
			in:    []in{{det(0, 0.6, 380, 100, 416, 160), tileA}, {det(0, 0.8, 400, 200, 460, 260), tileB}},
			want:  []models.Box{{X1: 400, Y1: 200, X2: 460, Y2: 260}, {X1: 380, Y1: 100, X2: 416, Y2: 160}},
		},
		{
			name:  "different classes across a seam are not fused",
			frame: frame,
			in:    []in{{det(0, 0.6, 380, 100, 416, 200), tileA}, {det(2, 0.8, 380, 100, 450, 200), tileB}},
			want:  []models.Box{{X1: 380, Y1: 100, X2: 450, Y2: 200}, {X1: 380, Y1: 100, X2: 416, Y2: 200}},
		},
		{
			name:  "boxes at the frame's own edge are not cut",
			frame: frame,
			in:    []in{{det(0, 0.6, 700, 100, 749, 200), tileB}, {det(0, 0.8, 640, 100, 698, 200), tileB}},
			want:  []models.Box{{X1: 640, Y1: 100, X2: 698, Y2: 200}, {X1: 700, Y1: 100, X2: 749, Y2: 200}},
		},
		{
			name:  "small whole person inside a whole-frame group box is kept",
			frame: frame,
			in:    []in{{det(0, 0.5, 100, 100, 140, 200), tileA}, {det(0, 0.7, 90, 90, 300, 210), image.Rectangle{}}},
			want:  []models.Box{{X1: 90, Y1: 90, X2: 300, Y2: 210}, {X1: 100, Y1: 100, X2: 140, Y2: 200}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var dets []models.Detection
			var tiles []image.Rectangle
			for _, i := range c.in {
				dets = append(dets, i.d)
				tiles = append(tiles, i.tile)
			}
			got := Merge(dets, tiles, c.frame, 0.45, DefaultMergeIoS)
			if len(got) != len(c.want) {
				t.Fatalf("got %d boxes %v, want %v", len(got), got, c.want)
			}
			for i := range got {
				if got[i].Box != c.want[i] {
					t.Errorf("box %d = %v, want %v", i, got[i].Box, c.want[i])
				}
			}
			if len(c.want) == 1 {
				var best float32
				for _, d := range dets {
					best = max(best, d.Score)
				}
				if got[0].Score != best {
					t.Errorf("merged score %v, want the best %v", got[0].Score, best)
				}
			}
		})
	}
}

// TestMergeThreeTiles: an object spanning three tiles, cut in each, becomes one box.
func TestMergeThreeTiles(t *testing.T) {
	fr := image.Rect(0, 0, 1082, 400)
	a, b, c := image.Rect(0, 0, 416, 400), image.Rect(333, 0, 749, 400), image.Rect(666, 0, 1082, 400)
	dets := []models.Detection{det(0, 0.5, 300, 10, 416, 390), det(0, 0.6, 333, 12, 749, 388), det(0, 0.4, 666, 11, 800, 389)}
	got := Merge(dets, []image.Rectangle{a, b, c}, fr, 0.45, DefaultMergeIoS)
	if want := (models.Box{X1: 300, Y1: 10, X2: 800, Y2: 390}); len(got) != 1 || got[0].Box != want {
		t.Fatalf("got %v, want one box %v", got, want)
	}
}
