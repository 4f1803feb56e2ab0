package publish_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/publish"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// payload400 is a 400-byte JSON message.
var payload400 = append(append([]byte(`{"schema":"bench/1","pad":"`), make400()...), `"}`...)

func make400() []byte {
	b := make([]byte, 400-29)
	for i := range b {
		b[i] = 'x'
	}
	return b
}

// BenchmarkReplay compares, in one run against one Mosquitto on loopback (set_tcp_nodelay
// true), the publisher replaying a backlog from the outbox (read, publish QoS 1 with 64 in
// flight, delete on PUBACK) with a raw paho loop publishing the same messages with the same
// window: the limit. Reported in msgs/s; the replay target is >= 0.8 of raw.
func BenchmarkReplay(b *testing.B) {
	broker := testharness.StartMosquitto(b, testharness.MosquittoOptions{})
	const window = 64

	b.Run("raw-paho", func(b *testing.B) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("raw").SetMaxResumePubInFlight(window))
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		defer c.Disconnect(100)
		sem := make(chan struct{}, window)
		var wg sync.WaitGroup
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sem <- struct{}{}
			tok := c.Publish("vigil/v1/bench/detections/c", 1, false, payload400)
			wg.Add(1)
			go func() { tok.Wait(); <-sem; wg.Done() }()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("outbox-replay", func(b *testing.B) {
		ob, err := outbox.Open(filepath.Join(b.TempDir(), "o.db"), outbox.Options{MaxBytes: 1 << 30, HardMaxBytes: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		defer ob.Close()
		// The backlog, stored while "offline", from many producers (group commit).
		var wg sync.WaitGroup
		per := (b.N + 63) / 64
		for p := 0; p < 64; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					ob.Append(context.Background(), frame.Outgoing{Class: frame.ClassDetections, Topic: "vigil/v1/bench/detections/c",
						Build: func(uint64) ([]byte, error) { return payload400, nil }})
				}
			}()
		}
		wg.Wait()
		total := ob.Stats().Messages
		pub, err := publish.New(publish.Config{DeviceID: "bench", Epoch: ob.Epoch(), URL: broker.URL, MaxInflight: window}, ob, metrics.NewUnregistered(), quiet())
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		pub.Start()
		for ob.Stats().Messages > 0 {
			time.Sleep(2 * time.Millisecond)
		}
		el := time.Since(start)
		b.StopTimer()
		pub.Close(time.Second)
		b.ReportMetric(float64(total)/el.Seconds(), "msgs/s")
	})
}
