package postgres_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// BenchmarkSharedRegistryFlush is one second of city-scale traffic for the registry: 1000
// devices, 5000 messages split between two shared registries (two instances) on one
// PostgreSQL, then both flush (merge their deltas under FOR UPDATE and reload what changed).
// ns/op is the time of one such second's flushes: well under the 1 s flush interval means
// the registry keeps up at 5,000 msg/s.
func BenchmarkSharedRegistryFlush(b *testing.B) {
	pg := testharness.StartPostgres(b)
	open := func() *registry.Registry {
		st, err := postgres.OpenRegistryStore(ctx, pg.DSN)
		if err != nil {
			b.Fatal(err)
		}
		r, err := registry.OpenStore(st, registry.Options{Shared: true, FlushInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = r.Close() })
		return r
	}
	regs := []*registry.Registry{open(), open()}
	const devices, perSecond = 1000, 5000
	msgs := make([]*wire.Decoded, 0, perSecond)
	seq := make([]uint64, devices)
	next := func() {
		msgs = msgs[:0]
		for i := range perSecond {
			d := i % devices
			seq[d]++
			dev := fmt.Sprintf("dev-%04d", d)
			payload, _ := json.Marshal(wire.Detections{
				Header: wire.Header{Schema: wire.SchemaDetections, DeviceID: dev, Seq: seq[d],
					MsgID: wire.MessageID(dev, "e1", seq[d]), CapturedAt: time.Now().UnixMilli()},
				Camera: fmt.Sprintf("cam%d", seq[d]%2), FrameSeq: seq[d], FrameWidth: 640, FrameHeight: 480,
				Model: wire.Model{Name: "m", Version: "1"}, Objects: []wire.Object{{Label: "person", Score: 0.9}}})
			m, err := wire.Decode(wire.Topic(dev, wire.KindDetections, fmt.Sprintf("cam%d", seq[d]%2)), payload)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, m)
		}
	}
	feedAndFlush := func() {
		for i, m := range msgs {
			if _, err := regs[i%2].Accept(m); err != nil {
				b.Fatal(err)
			}
		}
	}
	next()
	feedAndFlush() // the devices' rows exist from here on
	for _, r := range regs {
		if err := r.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		next()
		feedAndFlush()
		b.StartTimer()
		for _, r := range regs {
			if err := r.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	d, _ := regs[1].Device("dev-0007")
	if d.Missing != 0 || d.HighestSeq != seq[7] || d.Messages["detections"] != seq[7] {
		b.Fatalf("dev-0007 after the run: %+v %v, want all %d seqs", d.Stream, d.Messages, seq[7])
	}
}
