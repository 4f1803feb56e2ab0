package registry

import (
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Devices whose clock is off are counted and shown; replayed and retained (status) messages,
// legitimately old, do not make a device look skewed.
func TestClockSkew(t *testing.T) {
	now := time.UnixMilli(1700000001000).UTC()
	r := New(Options{Now: func() time.Time { return now }})
	at := func(m msg, off time.Duration) msg {
		return with(m, func(o map[string]any) { o["captured_at"] = now.Add(off).UnixMilli() })
	}
	feed := func(m msg) {
		t.Helper()
		if err := r.HandleMessage(m.topic, m.payload); err != nil {
			t.Fatal(err)
		}
	}
	feed(at(detections("ahead", "c", 1), time.Hour))
	feed(at(detections("behind", "c", 1), -5*365*24*time.Hour))
	feed(at(detections("honest", "c", 1), -200*time.Millisecond))
	feed(at(detectionsIn("replaying", "c", testEpoch, 1, true), -3*time.Hour)) // from the backlog
	feed(at(status("retained", wire.StateOnline, "retained-s-1"), -24*time.Hour))

	want := map[string]Clock{
		"ahead":     {SkewKnown: true, Skew: time.Hour, Skewed: true},
		"behind":    {SkewKnown: true, Skew: -5 * 365 * 24 * time.Hour, Skewed: true},
		"honest":    {SkewKnown: true, Skew: -200 * time.Millisecond},
		"replaying": {},
		"retained":  {},
	}
	for id, w := range want {
		d, ok := r.Device(id)
		if !ok || d.Clock != w {
			t.Errorf("%s: clock %+v, want %+v", id, d.Clock, w)
		}
	}
	if n := r.Totals().ClockSkewed; n != 2 {
		t.Errorf("Totals.ClockSkewed = %d, want 2", n)
	}
	// Delivery delay only lowers a sample: the estimate is the window's largest.
	now = now.Add(10 * time.Second)
	feed(at(detections("honest", "c", 2), -20*time.Second))
	if d, _ := r.Device("honest"); d.Skew != -200*time.Millisecond || d.Skewed {
		t.Errorf("honest after a late message: %+v", d.Clock)
	}
	// A clock that was fixed is trusted again after the window.
	now = now.Add(2 * skewWindow)
	feed(at(detections("ahead", "c", 2), 0))
	if d, _ := r.Device("ahead"); d.Skewed {
		t.Errorf("ahead after its clock was fixed: %+v", d.Clock)
	}
}
