package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/hal/geo"
	"github.com/vigil-edge/vigil/hal/sim"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// geoError is how far (metres) an object's published geo lies from the point the simulated
// drone's true pose at captured_at gives for the same pixel.
func geoError(t *testing.T, d *sim.Drone, home sim.DroneConfig, hfov float64, msg wire.Detections, o wire.Object) float64 {
	t.Helper()
	st := d.TrueState(time.UnixMilli(msg.CapturedAt))
	in, err := geo.IntrinsicsFromHFOV(msg.FrameWidth, msg.FrameHeight, hfov)
	if err != nil {
		t.Fatal(err)
	}
	cam := geo.Camera{Intrinsics: in, Mount: geo.Mount{Mode: geo.MountHeading, Roll: st.GimbalRoll, Pitch: st.GimbalPitch, Yaw: st.GimbalYaw}}
	v := geo.Vehicle{Lat: st.Lat, Lon: st.Lon, AltMSL: st.AltMSL, Roll: st.Roll, Pitch: st.Pitch, Yaw: st.Yaw}
	u, px := float64(o.BoxPx[0]+o.BoxPx[2])/2, float64(o.BoxPx[3])
	want, err := geo.Locate(cam, v, u, px, geo.Ground{AltMSL: home.HomeAlt})
	if err != nil {
		t.Fatalf("expected point for pixel (%g, %g): %v", u, px, err)
	}
	n, e := geo.NEDOffset(want.Lat, want.Lon, home.HomeAlt, o.Geo.Lat, o.Geo.Lon)
	return math.Hypot(n, e)
}

// TestDroneGeoAndTelemetry runs the agent in drone mode against the MAVLink simulator (a 100 m
// orbit with a nadir gimbal, over UDP), a test RTSP camera and Mosquitto: every object carries
// a geo that agrees with the simulated pose at its frame's capture time; telemetry reports the
// position and the board; a telemetry gap turns geo into geo_status "stale", counts a link
// loss, and geo comes back after it.
func TestDroneGeoAndTelemetry(t *testing.T) {
	const hfov = 60.0
	rtsp := startRTSP(t, "", "", petsClip)
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	col := subscribe(t, broker.URL)

	port := freeUDPPort(t)
	sc := sim.DefaultDroneConfig()
	sc.Target = fmt.Sprintf("127.0.0.1:%d", port)
	drone, err := sim.NewDrone(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := drone.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = drone.Close() })

	name := strings.TrimSuffix(filepath.Base(petsClip), filepath.Ext(petsClip))
	cfg := baseConfig(t, broker.URL, config.Camera{ID: "pets", URL: rtsp.URL(name)})
	cfg.Drone.MAVLink = fmt.Sprintf("udp://127.0.0.1:%d", port)
	cfg.Cameras[0].Optics = &config.Optics{HFOVDeg: hfov, UseGimbal: true}
	cfg.Telemetry.Interval = time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ra := startAgent(t, cfg)

	// decoded detections messages, each validated against the schema
	detections := func() []wire.Detections {
		var out []wire.Detections
		for _, b := range col.get(wire.KindDetections) {
			testharness.MustValidateJSON(t, "detections", b)
			var d wire.Detections
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		return out
	}
	located := func(d wire.Detections) bool {
		for _, o := range d.Objects {
			if o.Geo == nil {
				return false
			}
		}
		return d.GeoStatus == ""
	}
	countWhere := func(after time.Time, ok func(wire.Detections) bool) int {
		n := 0
		for _, d := range detections() {
			if time.UnixMilli(d.CapturedAt).After(after) && ok(d) {
				n++
			}
		}
		return n
	}

	// 1. Geo on every object.
	waitFor(t, 40*time.Second, "5 detections messages with geo on every object", func() bool {
		return countWhere(time.Time{}, located) >= 5
	})

	// 2. Telemetry with position and board health.
	// (a report made before the first pose has no position)
	telemetry := func() []wire.Telemetry {
		var out []wire.Telemetry
		for _, b := range col.get(wire.KindTelemetry) {
			testharness.MustValidateJSON(t, "telemetry", b)
			var tm wire.Telemetry
			if err := json.Unmarshal(b, &tm); err != nil {
				t.Fatal(err)
			}
			if tm.Geo != nil {
				out = append(out, tm)
			}
		}
		return out
	}
	waitFor(t, 10*time.Second, "2 telemetry messages with a position", func() bool { return len(telemetry()) >= 2 })
	for _, tm := range telemetry() {
		b, _ := json.Marshal(tm)
		if tm.Geo.Source != "mavlink" {
			t.Errorf("telemetry position is not the drone's: %s", b)
		}
		st := drone.TrueState(time.UnixMilli(tm.CapturedAt))
		if n, e := geo.NEDOffset(st.Lat, st.Lon, st.AltMSL, tm.Geo.Lat, tm.Geo.Lon); math.Hypot(n, e) > 20 || math.Abs(tm.Geo.AltM-st.AltMSL) > 1 {
			t.Errorf("telemetry position %+v is %.1f m from the drone", tm.Geo, math.Hypot(n, e))
		}
		if tm.Board == nil || tm.Board.MemTotal == nil || tm.Board.Load1 == nil || tm.Board.DiskFree == nil {
			t.Errorf("telemetry without board health: %s", b)
		}
		if len(tm.Cameras) != 1 || tm.Cameras[0].ID != "pets" || tm.Model == nil || tm.Outbox == nil {
			t.Errorf("telemetry cameras/model/outbox: %s", b)
		}
	}

	// Events carry geo too: where the tracked object stands.
	waitFor(t, 20*time.Second, "an event with geo", func() bool {
		for _, b := range col.get(wire.KindEvents) {
			testharness.MustValidateJSON(t, "event", b)
			var ev wire.Event
			if json.Unmarshal(b, &ev) == nil && ev.After.Geo != nil {
				st := drone.TrueState(time.UnixMilli(ev.CapturedAt))
				if n, e := geo.NEDOffset(st.Lat, st.Lon, st.AltMSL, ev.After.Geo.Lat, ev.After.Geo.Lon); math.Hypot(n, e) > 200 {
					t.Errorf("event geo is %.0f m from the drone at 100 m up with a 60° camera", math.Hypot(n, e))
				}
				return true
			}
		}
		return false
	})

	// 3. A telemetry gap: stale, and a link loss.
	gapStart := time.Now()
	drone.SetGap(true)
	stale := func(d wire.Detections) bool {
		for _, o := range d.Objects {
			if o.Geo != nil {
				return false
			}
		}
		return d.GeoStatus == wire.GeoStale
	}
	waitFor(t, 15*time.Second, "a detections message with geo_status stale", func() bool {
		return countWhere(gapStart.Add(cfg.Drone.MaxAge+200*time.Millisecond), stale) >= 1
	})
	waitFor(t, 15*time.Second, "a MAVLink link loss in /metrics", func() bool {
		return metricValue(scrape(t, ra.HTTPAddr()), "vigil_mavlink_link_losses_total") >= 1
	})
	gapEnd := time.Now()
	drone.SetGap(false)

	// 4. Geo resumes.
	waitFor(t, 15*time.Second, "detections with geo after the gap", func() bool {
		return countWhere(gapEnd.Add(time.Second), located) >= 2
	})

	// Every geo outside the gap (and the second after it, when a frame's pose may still be
	// interpolated across the gap) agrees with the simulated truth.
	var checked int
	var worst float64
	for _, d := range detections() {
		at := time.UnixMilli(d.CapturedAt)
		if at.After(gapStart.Add(-200*time.Millisecond)) && at.Before(gapEnd.Add(time.Second)) {
			continue
		}
		for _, o := range d.Objects {
			if o.Geo == nil {
				continue
			}
			if o.Geo.ErrM <= 0 || o.Geo.ErrM > 50 {
				t.Errorf("err_m %g out of the plausible range", o.Geo.ErrM)
			}
			worst = math.Max(worst, geoError(t, drone, sc, hfov, d, o))
			checked++
		}
	}
	t.Logf("%d geo-referenced objects checked against the simulated pose: worst error %.2f m", checked, worst)
	if worst > 2 {
		t.Errorf("a published geo is %.2f m from the simulated truth (want <= 2 m)", worst)
	}

	exp := scrape(t, ra.HTTPAddr())
	if v := metricValue(exp, "vigil_geo_located_total", `camera="pets"`); v < float64(checked) {
		t.Errorf("vigil_geo_located_total = %g, want >= %d", v, checked)
	}
	if v := metricValue(exp, "vigil_geo_unlocated_total", `reason="stale"`); v < 1 {
		t.Errorf("vigil_geo_unlocated_total{reason=stale} = %g", v)
	}
	for _, m := range []string{"vigil_mavlink_messages_total", "vigil_board_memory_total_bytes"} {
		if !strings.Contains(exp, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}
