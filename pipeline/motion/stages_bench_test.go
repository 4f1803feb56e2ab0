//go:build unix

package motion

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: on a shared machine, wall time per op
// counts the time other processes hold the cores; CPU time does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUpdate720pCPU is BenchmarkUpdate720p reporting CPU time per frame (cpu-ns/op).
func BenchmarkUpdate720pCPU(b *testing.B) {
	s := newScene(1280, 720, 12)
	d := newDetector(b, Config{})
	still := s.frame(1, 0)
	moving := s.frame(1, 0, rect{x: 400, y: 300, w: 80, h: 160, grey: 240}, rect{x: 900, y: 100, w: 60, h: 40, grey: 10})
	d.Update(still, s.w, s.h, s.stride)
	b.ResetTimer()
	start := cpuTime()
	for i := range b.N {
		f := still
		if i%2 == 1 {
			f = moving
		}
		d.Update(f, s.w, s.h, s.stride)
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func BenchmarkUpdateStages(b *testing.B) {
	s := newScene(1280, 720, 12)
	d := newDetector(b, Config{})
	still := s.frame(1, 0)
	d.Update(still, s.w, s.h, s.stride)
	d.Update(still, s.w, s.h, s.stride)
	b.Run("downsample", func(b *testing.B) {
		start := cpuTime()
		for range b.N {
			d.downsample(still, s.stride)
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
	b.Run("blur", func(b *testing.B) {
		start := cpuTime()
		for range b.N {
			d.blur()
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
	b.Run("fit", func(b *testing.B) {
		start := cpuTime()
		for range b.N {
			d.fit()
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
	b.Run("compare", func(b *testing.B) {
		start := cpuTime()
		for range b.N {
			d.compare()
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
	b.Run("dilate", func(b *testing.B) {
		start := cpuTime()
		for range b.N {
			d.dilate(0, d.ah-1)
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
	b.Run("components", func(b *testing.B) {
		start := cpuTime()
		for range b.N {
			d.components(0, d.ah-1)
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
	b.Run("update-still", func(b *testing.B) {
		start := cpuTime()
		for range b.N {
			d.Update(still, s.w, s.h, s.stride)
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
}
