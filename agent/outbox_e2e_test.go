package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestCorruptOutboxDoesNotStopTheAgent: an agent whose outbox file has scrambled meta pages
// (run exited with "invalid database") moves it aside, starts a new one and runs, saying so in
// its status, a metric and its status message; an outbox with one record failing its checksum
// (delivery stopped, an error every 20 ms) has that record skipped and counted and the others
// delivered.
func TestCorruptOutboxDoesNotStopTheAgent(t *testing.T) {
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	col := subscribe(t, broker.URL)
	cam := config.Camera{ID: "pets", URL: data.MustPath(t, petsClip), DetectFPS: 1}

	t.Run("scrambled file", func(t *testing.T) {
		cfg := baseConfig(t, broker.URL, cam)
		cfg.DeviceID = "corrupt-file"
		junk := make([]byte, 64<<10)
		for i := range junk {
			junk[i] = byte(i*7 + 3)
		}
		if err := os.WriteFile(cfg.Outbox.Path, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		ra := startAgent(t, cfg)
		waitFor(t, 30*time.Second, "the agent running on a new outbox", func() bool {
			st := ra.Status()
			return st.Outbox != nil && st.Outbox.Recovered != nil && st.MQTT.Connected
		})
		if _, err := os.Stat(ra.Status().Outbox.Recovered.MovedTo); err != nil {
			t.Errorf("the corrupt file was not kept: %v", err)
		}
		if v := metricValue(scrape(t, ra.HTTPAddr()), "vigil_outbox_recovered_total"); v != 1 {
			t.Errorf("vigil_outbox_recovered_total = %v, want 1", v)
		}
		waitFor(t, 10*time.Second, "a status message with outbox_lost", func() bool {
			for _, b := range col.get(wire.KindStatus) {
				var s wire.Status
				if json.Unmarshal(b, &s) == nil && s.DeviceID == cfg.DeviceID && s.OutboxLost != nil {
					testharness.MustValidateJSON(t, "status", b)
					return true
				}
			}
			return false
		})
	})

	t.Run("bad record", func(t *testing.T) {
		cfg := baseConfig(t, broker.URL, cam)
		cfg.DeviceID = "corrupt-record"
		ob, err := outbox.Open(cfg.Outbox.Path, outbox.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 20; i++ {
			_, err := ob.Append(context.Background(), frame.Outgoing{Class: frame.ClassTelemetry, CapturedAt: time.Now(),
				Topic: wire.Topic(cfg.DeviceID, "backlog", ""),
				Build: func(seq uint64) ([]byte, error) { return []byte(fmt.Sprintf(`{"n":%d}`, seq)), nil }})
			if err != nil {
				t.Fatal(err)
			}
		}
		ob.Close()
		db, err := bolt.Open(cfg.Outbox.Path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("msgs"))
			k := []byte{0, 0, 0, 0, 0, 0, 0, 7}
			v := append([]byte(nil), b.Get(k)...)
			v[len(v)-6] ^= 0x20 // a flipped bit in seq 7's payload
			return b.Put(k, v)
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		ra := startAgent(t, cfg)
		waitFor(t, 30*time.Second, "the 19 good backlog messages", func() bool { return len(col.get("backlog")) >= 19 })
		for _, b := range col.get("backlog") {
			var m struct{ N int }
			if json.Unmarshal(b, &m) != nil || m.N == 7 {
				t.Errorf("the corrupt record was delivered: %q", b)
			}
		}
		if v := metricValue(scrape(t, ra.HTTPAddr()), "vigil_outbox_corrupt_records_total"); v != 1 {
			t.Errorf("vigil_outbox_corrupt_records_total = %v, want 1", v)
		}
		if st := ra.Status(); st.Outbox == nil || st.Outbox.Corrupt != 1 {
			t.Errorf("status: %+v, want 1 corrupt record", st.Outbox)
		}
	})
}
