package outbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAppendGroupCommit appends 400-byte messages from 64 concurrent producers: each
// Append waits for its fsync, and the committer writes all waiting messages in one
// transaction. Reported: messages/s and commits per 1000 messages.
func BenchmarkAppendGroupCommit(b *testing.B) {
	o, err := Open(filepath.Join(b.TempDir(), "o.db"), Options{MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	m := msg(ClassDetections, 400)
	c0 := o.Stats().Committed
	b.SetParallelism(256) // 256 × GOMAXPROCS producers
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := o.Append(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(o.Stats().Committed-c0)*1000/float64(b.N), "commits/1k")
}

// BenchmarkAppendSingleProducer is the worst case: one producer, one fsync per message.
func BenchmarkAppendSingleProducer(b *testing.B) {
	o, err := Open(filepath.Join(b.TempDir(), "o.db"), Options{MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	m := msg(ClassDetections, 400)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := o.Append(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
