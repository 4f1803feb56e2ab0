package events

import (
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// BenchmarkUpdate feeds a Manager frames of 30 walking people, each in one zone.
func BenchmarkUpdate(b *testing.B) {
	m := New(seeded(8))
	zones := []string{"yard"}
	zonesOf := func(uint64) []string { return zones }
	ts := make([]frame.Track, 30)
	i := 0
	for b.Loop() {
		at := time.Duration(i) * 40 * time.Millisecond
		for k := range ts {
			ts[k] = person(uint64(k+1), float32(k*40)+float32(i%200), float32(k*20), 0.8, at)
			ts[k].VX = 25
		}
		m.Update(tracks(at, ts...), zonesOf)
		i++
	}
}
