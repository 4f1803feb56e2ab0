package mask

import "testing"

// BenchmarkApply redacts a 1280x720 frame with one blurred and one black mask.
func BenchmarkApply(b *testing.B) {
	img := pattern(1280, 720, 3*1280)
	masks := []Mask{
		{ID: "window", Mode: ModeBlur, Points: Polygon{{0.1, 0.1}, {0.35, 0.12}, {0.33, 0.45}, {0.12, 0.4}}},
		{ID: "neighbour", Mode: ModeBlack, Points: Polygon{{0.6, 0.5}, {0.95, 0.5}, {0.95, 0.95}, {0.6, 0.95}}},
	}
	b.SetBytes(int64(len(img.Pix)))
	for b.Loop() {
		if err := Apply(img, masks); err != nil {
			b.Fatal(err)
		}
	}
}
