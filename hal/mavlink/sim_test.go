package mavlink_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gomavlib/v3/pkg/dialect"
	"github.com/bluenviron/gomavlib/v3/pkg/dialects/common"
	"github.com/bluenviron/gomavlib/v3/pkg/frame"
	"github.com/bluenviron/gomavlib/v3/pkg/streamwriter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-edge/vigil/hal/geo"
	"github.com/vigil-edge/vigil/hal/mavlink"
	"github.com/vigil-edge/vigil/hal/sim"
)

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

type rig struct {
	client *mavlink.Client
	drone  *sim.Drone
	addr   string
	reg    *prometheus.Registry
}

// newRig starts a client listening on a free loopback port and a drone sending to it.
func newRig(t *testing.T, dcfg sim.DroneConfig, ccfg mavlink.Config) *rig {
	t.Helper()
	port := freeUDPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ccfg.Endpoint = "udp://" + addr
	reg := prometheus.NewRegistry()
	ccfg.Registerer = reg
	c, err := mavlink.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	dcfg.Target = addr
	d, err := sim.NewDrone(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &rig{client: c, drone: d, addr: addr, reg: reg}
}

// eventually polls cond every 20 ms until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func poseOK(c *mavlink.Client) func() bool {
	return func() bool { _, err := c.PoseAt(time.Now()); return err == nil }
}

func angleDiff(a, b float64) float64 {
	return math.Abs(math.Remainder(a-b, 360))
}

// comparePose checks a reconstructed pose against the simulator's truth.
func comparePose(t *testing.T, p mavlink.Pose, s sim.State) {
	t.Helper()
	comparePoseTol(t, p, s, 1)
}

func comparePoseTol(t *testing.T, p mavlink.Pose, s sim.State, angTol float64) {
	t.Helper()
	n, e := geo.NEDOffset(s.Lat, s.Lon, s.AltMSL, p.Lat, p.Lon)
	if d := math.Hypot(n, e); d > 1 {
		t.Errorf("position off by %.2f m (n %.2f e %.2f)", d, n, e)
	}
	if math.Abs(p.AltMSL-s.AltMSL) > 0.5 || math.Abs(p.AltRel-s.AltRel) > 0.5 {
		t.Errorf("alt %.2f/%.2f, want %.2f/%.2f", p.AltMSL, p.AltRel, s.AltMSL, s.AltRel)
	}
	for _, a := range []struct {
		name      string
		got, want float64
	}{{"roll", p.Roll, s.Roll}, {"pitch", p.Pitch, s.Pitch}, {"yaw", p.Yaw, s.Yaw}} {
		if angleDiff(a.got, a.want) > angTol {
			t.Errorf("%s %.2f°, want %.2f°", a.name, a.got, a.want)
		}
	}
	if p.Gimbal == nil || math.Abs(p.Gimbal.Pitch-s.GimbalPitch) > 1 {
		t.Errorf("gimbal %+v, want pitch %.1f", p.Gimbal, s.GimbalPitch)
	}
	if p.Fix != mavlink.Fix3D || p.Sats != 12 || p.PositionSigma <= 0 {
		t.Errorf("gps fix %d sats %d sigma %.2f", p.Fix, p.Sats, p.PositionSigma)
	}
}

func TestSimPoseAgreesWithTruth(t *testing.T) {
	for _, pat := range []sim.Pattern{sim.Orbit, sim.Lawnmower} {
		t.Run(string(pat), func(t *testing.T) {
			dc := sim.DefaultDroneConfig()
			dc.Pattern, dc.Speed = pat, 15
			dc.Spacing, dc.Length = 60, 120 // frequent turns, 30 m radius, 37° bank
			dc.GimbalPitch = -60
			r := newRig(t, dc, mavlink.Config{MaxAge: 2 * time.Second})
			eventually(t, "a history", func() bool {
				_, err := r.client.PoseAt(time.Now().Add(-400 * time.Millisecond))
				return err == nil
			})
			// Interpolated poses (in the past) must match to 1°; extrapolated ones (now) too on
			// the orbit, where the rates are constant. On the lawn-mower the roll rate jumps when a
			// turn starts or ends (the sim ramps the bank over 2 s, < 20°/s), so extrapolating the
			// newest sample over its age may be off by up to 20°/s × that age.
			angTol := func(p mavlink.Pose) float64 {
				if pat == sim.Lawnmower {
					return 1 + 20*p.Extrapolated.Seconds()
				}
				return 1
			}
			var maxErr float64
			for i := range 30 {
				now := time.Now()
				for _, at := range []time.Time{now, now.Add(-300 * time.Millisecond)} {
					p, err := r.client.PoseAt(at)
					if err != nil {
						t.Fatalf("PoseAt #%d: %v", i, err)
					}
					s := r.drone.TrueState(at)
					comparePoseTol(t, p, s, angTol(p))
					n, e := geo.NEDOffset(s.Lat, s.Lon, 0, p.Lat, p.Lon)
					maxErr = max(maxErr, math.Hypot(n, e))
				}
				time.Sleep(67 * time.Millisecond)
			}
			t.Logf("%s: largest position error %.3f m", pat, maxErr)

			st := r.client.Stats()
			for _, name := range []string{"HEARTBEAT", "GLOBAL_POSITION_INT", "ATTITUDE", "GPS_RAW_INT", "SYSTEM_TIME", "GIMBAL_DEVICE_ATTITUDE_STATUS"} {
				if st.Messages[name] == 0 {
					t.Errorf("no %s counted: %v", name, st.Messages)
				}
			}
			// rates: ATTITUDE 25 Hz vs GLOBAL_POSITION_INT 10 Hz (ratio, not timing)
			if ratio := float64(st.Messages["ATTITUDE"]) / float64(st.Messages["GLOBAL_POSITION_INT"]); ratio < 2 || ratio > 3 {
				t.Errorf("ATTITUDE/GLOBAL_POSITION_INT = %.2f, want 2.5", ratio)
			}
			if !st.LinkUp || st.LinkLosses != 0 || st.ParseErrors != 0 || st.Rejected != 0 {
				t.Errorf("stats %+v", st)
			}
			snap := r.client.Snapshot()
			if snap.Pose == nil || !snap.Armed || snap.SystemID != 1 || snap.AutopilotTime.IsZero() {
				t.Errorf("snapshot %+v", snap)
			}
			if d := snap.AutopilotTime.Sub(snap.Time).Abs(); d > 2*time.Second {
				t.Errorf("autopilot clock %v off host clock", d)
			}
			metrics := gather(t, r.reg)
			if metrics["vigil_mavlink_link_up"] != 1 || metrics["vigil_mavlink_gps_fix_type"] != 3 || metrics["vigil_mavlink_messages_total{type=ATTITUDE}"] == 0 {
				t.Errorf("metrics %v", metrics)
			}
		})
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Gauge != nil:
				out[name] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func TestTelemetryGapAndGPSLoss(t *testing.T) {
	r := newRig(t, sim.DefaultDroneConfig(), mavlink.Config{MaxAge: 300 * time.Millisecond, LinkTimeout: time.Second})
	eventually(t, "a pose", poseOK(r.client))
	beforeGap := time.Now()

	r.drone.SetGap(true)
	eventually(t, "ErrStale", func() bool {
		_, err := r.client.PoseAt(time.Now())
		return errors.Is(err, mavlink.ErrStale)
	})
	eventually(t, "link loss", func() bool { st := r.client.Stats(); return !st.LinkUp && st.LinkLosses == 1 })
	if snap := r.client.Snapshot(); snap.Pose != nil || snap.PoseError == "" || snap.LinkUp {
		t.Errorf("snapshot during gap %+v", snap)
	}
	// the history still answers for a frame captured before the gap
	if p, err := r.client.PoseAt(beforeGap); err != nil {
		t.Errorf("pose before the gap: %v", err)
	} else {
		comparePose(t, p, r.drone.TrueState(beforeGap))
	}

	r.drone.SetGap(false)
	eventually(t, "pose after the gap", poseOK(r.client))
	eventually(t, "link up", func() bool { return r.client.Stats().LinkUp })
	now := time.Now()
	if p, err := r.client.PoseAt(now); err == nil {
		comparePose(t, p, r.drone.TrueState(now))
	}
	if st := r.client.Stats(); st.LinkLosses != 1 {
		t.Errorf("link losses %d, want 1", st.LinkLosses)
	}

	r.drone.SetGPSLoss(true)
	eventually(t, "ErrNoFix", func() bool {
		_, err := r.client.PoseAt(time.Now())
		return errors.Is(err, mavlink.ErrNoFix)
	})
	if m := gather(t, r.reg); m["vigil_mavlink_gps_fix_type"] != 0 || m["vigil_mavlink_link_losses_total"] != 1 {
		t.Errorf("metrics %v", m)
	}
	r.drone.SetGPSLoss(false)
	eventually(t, "fix back", poseOK(r.client))
}

func TestMalformedDatagrams(t *testing.T) {
	r := newRig(t, sim.DefaultDroneConfig(), mavlink.Config{MaxAge: 2 * time.Second})
	eventually(t, "a pose", poseOK(r.client))

	rw := &dialect.ReadWriter{Dialect: common.Dialect}
	if err := rw.Initialize(); err != nil {
		t.Fatal(err)
	}
	var good []byte
	{
		var buf bytesBuf
		fw := &frame.Writer{ByteWriter: &buf, DialectRW: rw}
		if err := fw.Initialize(); err != nil {
			t.Fatal(err)
		}
		sw := &streamwriter.Writer{FrameWriter: fw, Version: streamwriter.V2, SystemID: 1, ComponentID: 1}
		if err := sw.Initialize(); err != nil {
			t.Fatal(err)
		}
		if err := sw.Write(&common.MessageAttitude{TimeBootMs: 1, Roll: 3}); err != nil {
			t.Fatal(err)
		}
		good = buf
	}
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0x5a

	// each malformed kind from its own socket (its own gomavlib channel), as a real stray
	// sender would be
	send := func(payloads ...[]byte) {
		conn, err := net.Dial("udp4", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, p := range payloads {
			if _, err := conn.Write(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	var random [][]byte
	for range 20 {
		b := make([]byte, 64)
		rand.Read(b)
		b[0] = 0x42 // not a magic byte: at least one parse error per datagram
		random = append(random, b)
	}
	send(random...)
	send(badCRC, badCRC, badCRC)
	send(good[:7], good[:3], append([]byte{0xfd, 0xff}, good[2:]...)) // truncated frames
	send([]byte{0xfd}, []byte{}, make([]byte, 1400))

	eventually(t, "parse errors counted", func() bool { return r.client.Stats().ParseErrors >= 23 })
	// the real stream is unaffected; a bad checksum never reaches the state
	now := time.Now()
	p, err := r.client.PoseAt(now)
	if err != nil {
		t.Fatal(err)
	}
	comparePose(t, p, r.drone.TrueState(now))
	// garbage does not take the link down (eventually: on a loaded machine the simulator's
	// heartbeat itself can be late for a moment)
	eventually(t, "the link up after garbage", func() bool { return r.client.Stats().LinkUp })
	if m := gather(t, r.reg); m["vigil_mavlink_parse_errors_total"] < 23 {
		t.Errorf("parse error metric %v", m["vigil_mavlink_parse_errors_total"])
	}
}

type bytesBuf []byte

func (b *bytesBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// TestGeoFromSimPose: a pose from the simulated drone and its nadir gimbal camera put the image
// centre on the drone's true ground position; an oblique gimbal puts it where the truth says.
func TestGeoFromSimPose(t *testing.T) {
	dc := sim.DefaultDroneConfig()
	dc.Speed = 12
	r := newRig(t, dc, mavlink.Config{MaxAge: 2 * time.Second})
	eventually(t, "a pose", poseOK(r.client))
	in, err := geo.IntrinsicsFromHFOV(1280, 720, 80)
	if err != nil {
		t.Fatal(err)
	}
	ground := geo.Ground{AltMSL: dc.HomeAlt}
	for range 10 {
		now := time.Now()
		p, err := r.client.PoseAt(now)
		if err != nil {
			t.Fatal(err)
		}
		if p.Gimbal == nil || p.Gimbal.YawEarth {
			t.Fatalf("gimbal %+v", p.Gimbal)
		}
		pt, err := geo.Locate(geo.Camera{Intrinsics: in, Mount: p.Gimbal.Mount()}, p.Vehicle(), 640, 360, ground)
		if err != nil {
			t.Fatal(err)
		}
		s := r.drone.TrueState(now)
		n, e := geo.NEDOffset(s.Lat, s.Lon, dc.HomeAlt, pt.Lat, pt.Lon)
		if d := math.Hypot(n, e); d > 1 {
			t.Errorf("nadir centre %.2f m from the drone's true position", d)
		}
		// an oblique view through the same (body-fixed here) chain, checked against the truth
		cam := geo.Camera{Intrinsics: in, Mount: geo.Mount{Mode: geo.MountBody, Pitch: -50}}
		got, err1 := geo.Locate(cam, p.Vehicle(), 900, 500, ground)
		want, err2 := geo.Locate(cam, geo.Vehicle{Lat: s.Lat, Lon: s.Lon, AltMSL: s.AltMSL, Roll: s.Roll, Pitch: s.Pitch, Yaw: s.Yaw}, 900, 500, ground)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		n, e = geo.NEDOffset(want.Lat, want.Lon, dc.HomeAlt, got.Lat, got.Lon)
		if d := math.Hypot(n, e); d > 2.5 { // 1° of attitude at ~150 m slant is 2.6 m
			t.Errorf("oblique point %.2f m from the truth", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
