package mavlink

import (
	"bufio"
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gomavlib/v3/pkg/dialect"
	"github.com/bluenviron/gomavlib/v3/pkg/dialects/common"
	"github.com/bluenviron/gomavlib/v3/pkg/frame"
	"github.com/bluenviron/gomavlib/v3/pkg/message"
	"github.com/bluenviron/gomavlib/v3/pkg/streamwriter"

	"github.com/vigil-edge/vigil/hal/geo"
)

func TestParseEndpoint(t *testing.T) {
	good := map[string]Endpoint{
		"udp://0.0.0.0:14550":               {Kind: "udp", Address: "0.0.0.0:14550"},
		"udp://:14550":                      {Kind: "udp", Address: ":14550"},
		"udpclient://192.168.1.10:14555":    {Kind: "udpclient", Address: "192.168.1.10:14555"},
		"tcp://localhost:5760":              {Kind: "tcp", Address: "localhost:5760"},
		"serial:///dev/ttyUSB0":             {Kind: "serial", Device: "/dev/ttyUSB0", Baud: 57600},
		"serial:///dev/ttyAMA0?baud=921600": {Kind: "serial", Device: "/dev/ttyAMA0", Baud: 921600},
	}
	for s, want := range good {
		got, err := ParseEndpoint(s)
		if err != nil || got != want {
			t.Errorf("ParseEndpoint(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	bad := map[string]string{
		"":                                 "empty endpoint",
		"127.0.0.1:14550":                  "unknown scheme", // url.Parse takes "127.0.0.1" as scheme? either way an error
		"udp://127.0.0.1":                  "want udp://host:port",
		"udp://127.0.0.1:0":                "port \"0\" must be 1..65535",
		"udp://127.0.0.1:70000":            "must be 1..65535",
		"tcp://:5760":                      "needs a host",
		"udpclient://h:1/path":             "nothing else",
		"serial://dev/ttyUSB0":             "three slashes",
		"serial:///dev/ttyUSB0?baud=fast":  "baud \"fast\"",
		"serial:///dev/ttyUSB0?speed=9600": "unknown option",
		"http://x:80":                      "unknown scheme \"http\"",
	}
	for s, want := range bad {
		_, err := ParseEndpoint(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			if s == "127.0.0.1:14550" && err != nil {
				continue
			}
			t.Errorf("ParseEndpoint(%q) err = %v, want it to contain %q", s, err, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "'endpoint'"},
		{Config{Endpoint: "udp://:1", MaxAge: -1}, "'max_age'"},
		{Config{Endpoint: "udp://:1", History: 10 * time.Millisecond}, "'history'"},
		{Config{Endpoint: "udp://:1", MinFix: 9}, "'min_fix'"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestLerpAngleShortestArc(t *testing.T) {
	for _, tc := range []struct{ a, b, f, want float64 }{
		{170, -170, 0.5, -180},
		{-170, 170, 0.25, -175},
		{10, 30, 0.5, 20},
		{-179, 179, 0.5, -180},
		{90, -90, 0, 90},
	} {
		if got := lerpAngle(tc.a, tc.b, tc.f); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("lerpAngle(%g, %g, %g) = %g, want %g", tc.a, tc.b, tc.f, got, tc.want)
		}
	}
}

func TestBootClock(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var c bootClock
	// latencies 30, 5, 20 ms: the epoch settles on the least delayed
	c.local(1000, t0.Add(1030*time.Millisecond))
	c.local(1100, t0.Add(1105*time.Millisecond))
	got := c.local(1200, t0.Add(1220*time.Millisecond))
	// (plus up to 100 ppm of drift allowance: 12 µs over 120 ms)
	if want := t0.Add(1205 * time.Millisecond); got.Sub(want).Abs() > 100*time.Microsecond {
		t.Errorf("mapped %v, want %v (latency 5 ms)", got.Sub(t0), want.Sub(t0))
	}
	// reboot: time_boot_ms jumps back
	got = c.local(50, t0.Add(5*time.Second))
	if want := t0.Add(5 * time.Second); !got.Equal(want) {
		t.Errorf("after reboot mapped %v, want %v", got.Sub(t0), want.Sub(t0))
	}
}

func TestHistoryBounded(t *testing.T) {
	var h history[gpsSample]
	t0 := time.Unix(0, 0)
	for i := range 5000 {
		h.add(gpsSample{t: t0.Add(time.Duration(i) * time.Millisecond)}, 2*time.Second)
	}
	if h.len() > maxSamples || h.newest().t.Sub(h.oldest().t) > 2*time.Second {
		t.Fatalf("history holds %d samples over %v", h.len(), h.newest().t.Sub(h.oldest().t))
	}
	if h.add(gpsSample{t: t0}, time.Second) {
		t.Error("old sample accepted")
	}
}

// feed builds a client with no endpoint opened and a fixed clock.
func newTestClient(t *testing.T, now time.Time) *Client {
	t.Helper()
	c, err := New(Config{Endpoint: "udp://127.0.0.1:14550", MaxAge: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return now }
	return c
}

func TestPoseInterpolation(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newTestClient(t, t0)
	if _, err := c.PoseAt(t0); !errors.Is(err, ErrNoTelemetry) {
		t.Fatalf("empty: err = %v", err)
	}
	c.handleMessage(1, 1, &common.MessageHeartbeat{Autopilot: common.MAV_AUTOPILOT_ARDUPILOTMEGA}, t0)
	// boot epoch t0: time_boot_ms maps to t0 + ms
	c.handleMessage(1, 1, &common.MessageGlobalPositionInt{TimeBootMs: 1000, Lat: 473977000, Lon: 85456000, Alt: 588000, RelativeAlt: 100000, Vx: 1000}, t0.Add(1000*time.Millisecond))
	c.handleMessage(1, 1, &common.MessageGlobalPositionInt{TimeBootMs: 1100, Lat: 473977100, Lon: 85456200, Alt: 590000, RelativeAlt: 102000, Vx: 1000}, t0.Add(1100*time.Millisecond))
	c.handleMessage(1, 1, &common.MessageAttitude{TimeBootMs: 1000, Roll: 0.1, Yaw: float32(179 * math.Pi / 180)}, t0.Add(1000*time.Millisecond))
	c.handleMessage(1, 1, &common.MessageAttitude{TimeBootMs: 1100, Roll: 0.3, Yaw: float32(-179 * math.Pi / 180)}, t0.Add(1100*time.Millisecond))
	c.handleMessage(1, 1, &common.MessageGpsRawInt{FixType: common.GPS_FIX_TYPE_3D_FIX, SatellitesVisible: 12, Eph: 90, Epv: 120}, t0.Add(900*time.Millisecond))
	w, x, y, z := geo.EulerToQuat(0, -45, 30)
	c.handleMessage(1, 154, &common.MessageGimbalDeviceAttitudeStatus{TimeBootMs: 5, Flags: common.GIMBAL_DEVICE_FLAGS_YAW_LOCK,
		Q: [4]float32{float32(w), float32(x), float32(y), float32(z)}}, t0.Add(1050*time.Millisecond))

	p, err := c.PoseAt(t0.Add(1050 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	approx := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.9f, want %.9f", name, got, want)
		}
	}
	approx("lat", p.Lat, 47.397705, 1e-9)
	approx("lon", p.Lon, 8.54561, 1e-9)
	approx("alt", p.AltMSL, 589, 1e-9)
	approx("rel alt", p.AltRel, 101, 1e-9)
	approx("roll", p.Roll, 0.2*180/math.Pi, 1e-3) // float32 radians
	approx("yaw across ±180", math.Abs(p.Yaw), 180, 1e-4)
	approx("hdop", p.HDOP, 0.9, 1e-12)
	approx("position sigma", p.PositionSigma, 0.9*DefaultUERE, 1e-12)
	if p.Fix != Fix3D || p.Sats != 12 || p.Extrapolated != 0 {
		t.Errorf("fix %d sats %d extrapolated %v", p.Fix, p.Sats, p.Extrapolated)
	}
	if p.Gimbal == nil || !p.Gimbal.YawEarth || math.Abs(p.Gimbal.Pitch+45) > 1e-4 || math.Abs(p.Gimbal.Yaw-30) > 1e-4 {
		t.Errorf("gimbal = %+v", p.Gimbal)
	}

	// 200 ms past the newest sample: extrapolated with the velocity (10 m/s north → 2 m)
	p, err = c.PoseAt(t0.Add(1300 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := geo.NEDOffset(47.39771, 8.5456200, 0, p.Lat, p.Lon)
	approx("extrapolated north", n, 2, 0.01)
	if p.Extrapolated != 200*time.Millisecond {
		t.Errorf("extrapolated %v", p.Extrapolated)
	}
	if _, err := c.PoseAt(t0.Add(1700 * time.Millisecond)); !errors.Is(err, ErrStale) {
		t.Errorf("600 ms past newest: err = %v, want ErrStale", err)
	}
	if _, err := c.PoseAt(t0.Add(500 * time.Millisecond)); !errors.Is(err, ErrNoTelemetry) {
		t.Errorf("before history: err = %v, want ErrNoTelemetry", err)
	}
	c.handleMessage(1, 1, &common.MessageGpsRawInt{FixType: common.GPS_FIX_TYPE_NO_FIX}, t0.Add(1080*time.Millisecond))
	if _, err := c.PoseAt(t0.Add(1090 * time.Millisecond)); !errors.Is(err, ErrNoFix) {
		t.Errorf("no fix: err = %v", err)
	}
	// garbage is rejected and counted, not stored
	c.handleMessage(1, 1, &common.MessageAttitude{TimeBootMs: 1200, Roll: float32(math.NaN())}, t0.Add(1200*time.Millisecond))
	c.handleMessage(1, 154, &common.MessageGimbalDeviceAttitudeStatus{TimeBootMs: 6}, t0.Add(1200*time.Millisecond))
	c.handleMessage(1, 1, &common.MessageGlobalPositionInt{TimeBootMs: 1200, Lat: 950000000}, t0.Add(1200*time.Millisecond))
	// another system is ignored
	c.handleMessage(2, 1, &common.MessageGlobalPositionInt{TimeBootMs: 1200, Lat: 1, Lon: 1}, t0.Add(1200*time.Millisecond))
	st := c.Stats()
	if st.Rejected != 3 || st.Messages["GLOBAL_POSITION_INT"] != 4 || st.Messages["GIMBAL_DEVICE_ATTITUDE_STATUS"] != 2 {
		t.Errorf("stats = %+v", st)
	}
	if c.pos.len() != 2 || c.att.len() != 2 {
		t.Errorf("history %d positions, %d attitudes", c.pos.len(), c.att.len())
	}
}

func encodeFrames(t testing.TB, msgs ...message.Message) []byte {
	t.Helper()
	rw := &dialect.ReadWriter{Dialect: common.Dialect}
	if err := rw.Initialize(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	fw := &frame.Writer{ByteWriter: &buf, DialectRW: rw}
	if err := fw.Initialize(); err != nil {
		t.Fatal(err)
	}
	sw := &streamwriter.Writer{FrameWriter: fw, Version: streamwriter.V2, SystemID: 1, ComponentID: 1}
	if err := sw.Initialize(); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := sw.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzFrames feeds arbitrary bytes through gomavlib's frame reader (the parse path of every
// endpoint) and every decoded message through the client's state update, then asks for a pose
// and a snapshot. Nothing may panic and the history must stay bounded.
func FuzzFrames(f *testing.F) {
	valid := encodeFrames(f,
		&common.MessageHeartbeat{Autopilot: common.MAV_AUTOPILOT_PX4},
		&common.MessageGlobalPositionInt{TimeBootMs: 10, Lat: 473977420, Lon: 85455940, Alt: 588000},
		&common.MessageAttitude{TimeBootMs: 10, Roll: 0.1},
		&common.MessageGpsRawInt{FixType: 3, SatellitesVisible: 12},
		&common.MessageGimbalDeviceAttitudeStatus{TimeBootMs: 10, Q: [4]float32{1, 0, 0, 0}},
		&common.MessageSystemTime{TimeUnixUsec: 1700000000000000, TimeBootMs: 10},
	)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(valid[3:])
	corrupt := bytes.Clone(valid)
	corrupt[12] ^= 0xff
	f.Add(corrupt)
	f.Add([]byte{0xfd, 0xff, 0, 0, 0, 1, 1, 0, 0, 0})
	f.Add([]byte{0xfe, 9, 0, 1, 1, 0})
	rw := &dialect.ReadWriter{Dialect: common.Dialect}
	if err := rw.Initialize(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		c := newTestClient(t, t0)
		r := &frame.Reader{BufByteReader: bufio.NewReaderSize(bytes.NewReader(data), 512), DialectRW: rw}
		if err := r.Initialize(); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			fr, err := r.Read()
			if err != nil {
				var re frame.ReadError
				if errors.As(err, &re) {
					c.parseErrs++
					continue
				}
				break // io.EOF or an unexpected EOF
			}
			c.handleMessage(fr.GetSystemID(), fr.GetComponentID(), fr.GetMessage(), t0.Add(time.Duration(i)*time.Millisecond))
		}
		for _, dt := range []time.Duration{0, time.Second, -time.Second} {
			if p, err := c.PoseAt(t0.Add(dt)); err == nil {
				if math.IsNaN(p.Lat) || math.IsNaN(p.Roll) || math.Abs(p.Lat) > 90 {
					t.Fatalf("pose %+v", p)
				}
			}
		}
		_ = c.Snapshot()
		if c.pos.len() > maxSamples || c.att.len() > maxSamples {
			t.Fatal("unbounded history")
		}
	})
}
