package agent_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/pipeline/mask"
	"github.com/vigil-edge/vigil/pipeline/rules"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestEventsAlertsAndRedactedSnapshotsOnPETS runs the whole agent on the PETS09 clip over RTSP
// with one line, one zone and one privacy mask: events and alerts arrive over MQTT and match
// their schemas, snapshots are served, and the masked area is black in them.
func TestEventsAlertsAndRedactedSnapshotsOnPETS(t *testing.T) {
	rtsp := startRTSP(t, "", "", petsClip)
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	col := subscribe(t, broker.URL)
	cam := config.Camera{ID: "pets", URL: rtsp.URL("pedestrians_pets09_s2l1_vtest"), DetectFPS: 10,
		Rules: []rules.Rule{
			{ID: "centre-line", Type: rules.TypeLine, A: &rules.Point{X: 0.5, Y: 0.2}, B: &rules.Point{X: 0.5, Y: 0.98}},
			{ID: "lower-square", Type: rules.TypeZone, Polygon: []rules.Point{{X: 0.05, Y: 0.55}, {X: 0.95, Y: 0.55}, {X: 0.95, Y: 0.98}, {X: 0.05, Y: 0.98}}, MinDwell: time.Second},
		},
		// The masked corner: the top left of the scene.
		PrivacyMasks: []mask.Mask{{ID: "corner", Mode: mask.ModeBlack, Points: mask.Polygon{{0, 0}, {0.2, 0}, {0.2, 0.2}, {0, 0.2}}}},
	}
	ra := startAgent(t, baseConfig(t, broker.URL, cam))

	var events []wire.Event
	var alerts []wire.Alert
	decode := func() {
		events, alerts = nil, nil
		for _, b := range col.get(wire.KindEvents) {
			testharness.MustValidateJSON(t, "event", b)
			var e wire.Event
			json.Unmarshal(b, &e)
			events = append(events, e)
		}
		for _, b := range col.get(wire.KindAlerts) {
			testharness.MustValidateJSON(t, "alert", b)
			var a wire.Alert
			json.Unmarshal(b, &a)
			alerts = append(alerts, a)
		}
	}
	hasAlert := func(typ string) bool {
		for _, a := range alerts {
			if a.RuleType == typ {
				return true
			}
		}
		return false
	}
	waitFor(t, 90*time.Second, "events, a line crossing and a zone entry", func() bool {
		decode()
		return len(events) >= 3 && hasAlert(rules.TypeLine) && hasAlert(rules.TypeZone)
	})

	// Events: a person's event starts as new with no before, and every event id is a ULID
	// that the alerts refer to.
	ids := map[string]bool{}
	persons := 0
	snapshotPath := ""
	for _, e := range events {
		if e.Type == wire.EventNew && e.Before != nil {
			t.Errorf("new event %s has a before state", e.After.ID)
		}
		if e.After.Label == "person" {
			persons++
		}
		ids[e.After.ID] = true
		if e.After.HasSnapshot && snapshotPath == "" {
			snapshotPath = e.After.Snapshot
		}
	}
	if persons == 0 {
		t.Error("no event of a person on PETS")
	}
	for _, a := range alerts {
		if a.RuleType == rules.TypeLine && a.Kind != rules.AToB && a.Kind != rules.BToA {
			t.Errorf("line alert with kind %q", a.Kind)
		}
		for _, id := range a.EventIDs {
			if !ids[id] {
				t.Errorf("alert %s names event %s that was never sent", a.AlertID, id)
			}
		}
	}
	if v := metricValue(scrape(t, ra.HTTPAddr()), "vigil_line_crossings_total", `rule="centre-line"`); v < 1 {
		t.Errorf("vigil_line_crossings_total = %v", v)
	}

	// The snapshot is served and the masked corner is black in it.
	if snapshotPath == "" {
		t.Fatal("no event says it has a snapshot")
	}
	resp, err := http.Get("http://" + ra.HTTPAddr() + snapshotPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("GET %s: %d %s", snapshotPath, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	checkMaskedCorner(t, "agent snapshot", body)

	// The snapshots also went to the broker, on their own topic, each naming a sent event,
	// masked the same way.
	waitFor(t, 20*time.Second, "snapshots over MQTT", func() bool { return len(col.get(wire.KindSnapshots)) > 0 })
	// An event's first snapshot is stored just before the event itself: wait for the events
	// of the snapshots received so far.
	snaps := col.get(wire.KindSnapshots)
	waitFor(t, 20*time.Second, "the events of the snapshots", func() bool {
		decode()
		for _, e := range events {
			ids[e.After.ID] = true
		}
		for _, b := range snaps {
			if p, err := wire.DecodePicture(b, wire.MaxPictureBytes); err == nil && !ids[p.EventID] {
				return false
			}
		}
		return true
	})
	for i, b := range snaps {
		p, err := wire.DecodePicture(b, wire.MaxPictureBytes)
		if err != nil {
			t.Fatalf("snapshot message %d: %v", i, err)
		}
		if p.Schema != wire.SchemaSnapshot || p.DeviceID != "test-edge" || p.Camera != "pets" || !ids[p.EventID] || p.Width == 0 {
			t.Errorf("snapshot header %+v", p)
		}
		if i == 0 {
			checkMaskedCorner(t, "snapshot over MQTT", b)
		}
	}
}

// checkMaskedCorner decodes a snapshot and checks that its top-left fifth (the test's privacy
// mask) is black and that the scene shows elsewhere.
func checkMaskedCorner(t *testing.T, what string, body []byte) {
	t.Helper()
	img, err := gocv.IMDecode(body, gocv.IMReadColor)
	if err != nil || img.Empty() {
		t.Fatalf("%s is not a JPEG: %v", what, err)
	}
	defer img.Close()
	w, h := img.Cols(), img.Rows()
	dark, total := 0, 0
	for y := 3; y < h/5-3; y += 2 {
		for x := 3; x < w/5-3; x += 2 {
			v := img.GetVecbAt(y, x)
			total++
			if int(v[0])+int(v[1])+int(v[2]) < 30 {
				dark++
			}
		}
	}
	if dark*100 < total*95 {
		t.Errorf("%s: masked corner: only %d of %d pixels are black", what, dark, total)
	}
	// Outside the mask the scene is there.
	bright := 0
	for y := h / 2; y < h; y += 8 {
		for x := w / 2; x < w; x += 8 {
			v := img.GetVecbAt(y, x)
			if int(v[0])+int(v[1])+int(v[2]) > 150 {
				bright++
			}
		}
	}
	if bright == 0 {
		t.Errorf("%s: the unmasked part is black too", what)
	}
}
