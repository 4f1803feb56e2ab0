package mavlink_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/hal/geo"
	"github.com/vigil-edge/vigil/hal/mavlink"
	"github.com/vigil-edge/vigil/hal/sim"
)

// TestSigningAndPinnedSystem: a client with the signing key and the vehicle's system id
// follows the signed drone only; an impostor claiming the same system id without the key, one
// signing with another key, and a signed sender of another system id are ignored and counted.
// Before, the client followed whichever system sent the first heartbeat and took every frame.
func TestSigningAndPinnedSystem(t *testing.T) {
	key := [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}
	wrong := key
	wrong[0] ^= 0xff

	dc := sim.DefaultDroneConfig()
	dc.SystemID, dc.Key = 1, &key
	r := newRig(t, dc, mavlink.Config{MaxAge: 2 * time.Second, SystemID: 1, Key: &key})

	impostor := func(sys uint8, k *[32]byte, lat float64) {
		c := sim.DefaultDroneConfig()
		c.SystemID, c.Key, c.Target = sys, k, r.addr
		c.HomeLat = lat // far from the real vehicle: a pose taken from it would show
		d, err := sim.NewDrone(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
	}
	impostor(1, nil, 47.5)    // unsigned, same system id
	impostor(1, &wrong, 47.6) // signed with another key
	impostor(42, &key, 47.7)  // the key, but not the pinned system

	eventually(t, "a pose, frames ignored for their signature and their system", func() bool {
		st := r.client.Stats()
		_, err := r.client.PoseAt(time.Now().Add(-300 * time.Millisecond))
		return err == nil && st.Unsigned > 20 && st.Foreign > 20
	})
	var maxErr float64
	for range 20 {
		at := time.Now().Add(-300 * time.Millisecond)
		p, err := r.client.PoseAt(at)
		if err != nil {
			t.Fatal(err)
		}
		s := r.drone.TrueState(at)
		n, e := geo.NEDOffset(s.Lat, s.Lon, 0, p.Lat, p.Lon)
		maxErr = max(maxErr, math.Hypot(n, e))
		time.Sleep(50 * time.Millisecond)
	}
	if maxErr > 1 {
		t.Fatalf("the pose strays %.1f m from the signed vehicle: an impostor's frames were taken", maxErr)
	}
	if snap := r.client.Snapshot(); snap.SystemID != 1 {
		t.Fatalf("following system %d, want 1", snap.SystemID)
	}
	st := r.client.Stats()
	t.Logf("ignored: %d unsigned or wrongly signed, %d foreign; largest position error %.3f m", st.Unsigned, st.Foreign, maxErr)
}
