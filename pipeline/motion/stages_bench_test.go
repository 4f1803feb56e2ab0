package motion

import "testing"

func BenchmarkUpdateStages(b *testing.B) {
	s := newScene(1280, 720, 12)
	d := newDetector(b, Config{})
	still := s.frame(1, 0)
	d.Update(still, s.w, s.h, s.stride)
	d.Update(still, s.w, s.h, s.stride)
	b.Run("downsample", func(b *testing.B) {
		for range b.N {
			d.downsample(still, s.stride)
		}
	})
	b.Run("blur", func(b *testing.B) {
		for range b.N {
			d.blur()
		}
	})
	b.Run("fit", func(b *testing.B) {
		for range b.N {
			d.fit()
		}
	})
	b.Run("compare", func(b *testing.B) {
		for range b.N {
			d.compare()
		}
	})
	b.Run("dilate", func(b *testing.B) {
		for range b.N {
			d.dilate(0, d.ah-1)
		}
	})
	b.Run("components", func(b *testing.B) {
		for range b.N {
			d.components(0, d.ah-1)
		}
	})
	b.Run("update-still", func(b *testing.B) {
		for range b.N {
			d.Update(still, s.w, s.h, s.stride)
		}
	})
}
