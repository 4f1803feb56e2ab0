package exporter_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/exporter"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/fleet/subscriber"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// feed gives reg detections of dev under the given seqs of epoch "e1"; a negative seq is the
// replay of -seq.
func feed(t *testing.T, reg *registry.Registry, dev string, seqs ...int) {
	t.Helper()
	for _, s := range seqs {
		seq, replayed := uint64(s), false
		if s < 0 {
			seq, replayed = uint64(-s), true
		}
		d := wire.Detections{Header: wire.Header{Schema: wire.SchemaDetections, DeviceID: dev, Seq: seq,
			MsgID: fmt.Sprintf("%s-e1-%d", dev, seq), Replayed: replayed}, Camera: "cam1",
			FrameSeq: seq, FrameWidth: 640, FrameHeight: 480, Model: wire.Model{Name: "m"}, Objects: []wire.Object{{Label: "car", Score: 0.5}}}
		b, _ := json.Marshal(d)
		if err := reg.HandleMessage(wire.Topic(dev, wire.KindDetections, "cam1"), b); err != nil {
			t.Fatal(err)
		}
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return string(b)
}

func TestMetrics(t *testing.T) {
	clk := &clock{t: time.Unix(1700000000, 0)}
	reg := registry.New(registry.Options{GapTimeout: time.Minute, Now: clk.now})
	st, _ := json.Marshal(wire.Status{Header: wire.Header{Schema: wire.SchemaStatus, DeviceID: "edge-01", MsgID: "s1"}, State: wire.StateOnline})
	if err := reg.HandleMessage(wire.Topic("edge-01", wire.KindStatus, ""), st); err != nil {
		t.Fatal(err)
	}
	feed(t, reg, "edge-01", 1, 2, 5, 2, -3)                       // 4 missing; 2 repeated; 3 replayed
	feed(t, reg, "edge-02", 1, 3, 5, 6, 6)                        // 2 and 4 missing; 6 repeated
	_ = reg.HandleMessage("vigil/v1/edge-03/status", []byte("{")) // rejected
	sub, err := subscriber.New(subscriber.Config{BrokerURL: "tcp://127.0.0.1:1", ClientID: "x"},
		subscriber.HandlerFunc(func(m *wire.Decoded) error { _, err := reg.Accept(m); return err }))
	if err != nil {
		t.Fatal(err)
	}

	check := func(exp string, want map[string]float64) {
		t.Helper()
		for key, v := range want {
			name, labels, _ := strings.Cut(strings.TrimSuffix(key, "}"), "{")
			got, ok := testharness.MetricValue(exp, name, labels)
			if !ok || got != v {
				t.Errorf("%s = %v (present %v), want %v", key, got, ok, v)
			}
		}
	}
	h := exporter.Handler(exporter.New(reg, sub, exporter.Options{}), nil)
	exp := scrape(t, h)
	testharness.LintMetrics(t, exp)
	check(exp, map[string]float64{
		`vigil_fleet_messages_received_total{kind="detections"}`: 10,
		`vigil_fleet_messages_received_total{kind="status"}`:     1,
		`vigil_fleet_messages_received_total{kind="events"}`:     0,
		`vigil_fleet_duplicates_total`:                           2,
		`vigil_fleet_replayed_total`:                             1,
		`vigil_fleet_seq_missing`:                                3,
		`vigil_fleet_seq_lost_total`:                             0,
		`vigil_fleet_epoch_changes_total`:                        0,
		`vigil_fleet_rejected_total{reason="bad_json"}`:          1,
		`vigil_fleet_rejected_total{reason="stale_epoch"}`:       0,
		`vigil_fleet_devices{state="online"}`:                    1,
		`vigil_fleet_devices{state="offline"}`:                   0,
		`vigil_fleet_devices{state="unknown"}`:                   1,
		`vigil_fleet_devices_with_gaps`:                          2,
		`vigil_fleet_mqtt_connected`:                             0,
	})
	if strings.Contains(exp, "vigil_fleet_device_") {
		t.Errorf("per-device series without the option:\n%s", exp)
	}
	if !strings.Contains(exp, "go_goroutines") || !strings.Contains(exp, "# HELP vigil_fleet_seq_missing ") {
		t.Errorf("exposition lacks Go metrics or HELP:\n%s", exp)
	}

	// The gap timeout passes: missing seqs become lost, without any new message.
	clk.t = clk.t.Add(time.Minute)
	exp = scrape(t, exporter.Handler(exporter.New(reg, sub, exporter.Options{PerDevice: true}), nil))
	testharness.LintMetrics(t, exp)
	check(exp, map[string]float64{
		`vigil_fleet_seq_missing`:                                0,
		`vigil_fleet_seq_lost_total`:                             3,
		`vigil_fleet_devices_with_gaps`:                          0,
		`vigil_fleet_device_seq_lost_total{device="edge-01"}`:    1,
		`vigil_fleet_device_seq_lost_total{device="edge-02"}`:    2,
		`vigil_fleet_device_duplicates_total{device="edge-02"}`:  1,
		`vigil_fleet_device_seq_missing{device="edge-01"}`:       0,
		`vigil_fleet_messages_received_total{kind="detections"}`: 10,
	})
}
