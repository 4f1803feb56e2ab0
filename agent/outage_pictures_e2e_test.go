package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestPicturesAcrossBrokerOutage: the real agent on PETS09 sends to the fleet through an
// external Mosquitto; for a while, as events happen, the agent cannot reach the broker (a
// TCP relay between them drops every connection and refuses new ones, as when the broker or
// the link is down; the fleet stays subscribed, so what the broker accepted reaches it).
//
//   - With room in the outbox, every picture taken during the outage reaches the fleet after
//     the broker is back, and no message is lost.
//   - With an outbox of 1 MiB and large pictures, the outbox fills: pictures are dropped and
//     counted (class snapshot) while no event or alert is dropped, and the events of the outage
//     reach the fleet.
func TestPicturesAcrossBrokerOutage(t *testing.T) {
	for _, tt := range []struct {
		name string
		full bool
	}{{"room", false}, {"full", true}} {
		t.Run(tt.name, func(t *testing.T) { outage(t, tt.full) })
	}
}

func outage(t *testing.T, full bool) {
	rtsp := startRTSP(t, "", "", petsClip)
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	link := newRelay(t, broker.Addr)
	core, err := fleet.New(fleet.Config{Broker: broker.URL, HTTPListen: "127.0.0.1:0", Logger: quietLog()})
	if err != nil {
		t.Fatalf("fleet: %v", err)
	}
	t.Cleanup(func() { core.Close() })
	base := "http://" + core.HTTPAddr()
	cfg := baseConfig(t, "tcp://"+link.addr, petsCamera(rtsp.URL("pedestrians_pets09_s2l1_vtest")))
	if full {
		cfg.Outbox.MaxBytes, cfg.Outbox.HardMaxBytes = 1<<20, 64<<20
		cfg.Snapshots.Quality = 100
	}
	ra := startAgent(t, cfg)

	waitFor(t, 90*time.Second, "a snapshot at the fleet", func() bool { return core.SnapshotStats()["stored"] > 0 })
	metrics := scrape(t, ra.HTTPAddr())
	picsBefore := metricValue(metrics, "vigil_pictures_stored_total", `kind="snapshot"`)
	eventsBefore := len(fleetRecords(t, base, "kind=event&limit=10000"))

	link.down()
	outageStart := time.Now()
	waitFor(t, 60*time.Second, "pictures taken during an outage of 5 s at least", func() bool {
		if time.Since(outageStart) < 5*time.Second {
			return false
		}
		m := scrape(t, ra.HTTPAddr())
		return metricValue(m, "vigil_pictures_stored_total", `kind="snapshot"`) >= picsBefore+3 &&
			(!full || metricValue(m, "vigil_outbox_dropped_total", `class="snapshot"`) > 0)
	})
	metrics = scrape(t, ra.HTTPAddr())
	during := metricValue(metrics, "vigil_pictures_stored_total", `kind="snapshot"`) - picsBefore
	dropped := metricValue(metrics, "vigil_outbox_dropped_total", `class="snapshot"`)
	// The snapshots the agent has saved by now: each went to the outbox when saved.
	files, _ := filepath.Glob(filepath.Join(cfg.Snapshots.Dir, "*.jpg"))
	t.Logf("outage of %s: %.0f pictures stored, %.0f dropped; outbox %+v", time.Since(outageStart).Round(time.Second), during, dropped, ra.Status().Outbox)
	for _, class := range []string{"event", "alert"} {
		if v := metricValue(metrics, "vigil_outbox_dropped_total", `class="`+class+`"`); v != 0 {
			t.Errorf("%.0f %s messages dropped from the outbox", v, class)
		}
	}

	link.up()
	// Never an event: every event with a snapshot saved by the end of the outage reaches the
	// fleet, full outbox or not.
	diag := func() string {
		d, _ := deviceInfo(t, base)
		_, _, health := httpGet(t, base+"/healthz", "")
		m := scrape(t, ra.HTTPAddr())
		var pub []string
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "vigil_mqtt_") || strings.HasPrefix(l, "vigil_outbox") {
				pub = append(pub, l)
			}
		}
		return fmt.Sprintf("device %+v; fleet %q; snapshots %v; agent %+v\n%s", d, strings.Join(strings.Fields(string(health)), " "),
			core.SnapshotStats(), ra.Status(), strings.Join(pub, "\n"))
	}
	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		have := map[string]bool{}
		for _, r := range fleetRecords(t, base, "kind=event&limit=10000") {
			have[r.EventID] = true
		}
		missing = missing[:0]
		for _, f := range files {
			if id := strings.TrimSuffix(filepath.Base(f), ".jpg"); !have[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 && len(have) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of %d of %d snapshots never reached the fleet: %v\n%s", len(missing), len(files), missing, diag())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(fleetRecords(t, base, "kind=event&limit=10000")); n <= eventsBefore {
		t.Errorf("no event record arrived after the outage (%d before, %d after)", eventsBefore, n)
	}
	if !full {
		// Every picture saved before the broker came back reaches the fleet.
		for deadline := time.Now().Add(60 * time.Second); ; {
			missing = missing[:0]
			for _, f := range files {
				id := strings.TrimSuffix(filepath.Base(f), ".jpg")
				if code, _, _ := httpGet(t, base+"/api/v1/events/"+id+"/snapshot.jpg", ""); code != 200 {
					missing = append(missing, id)
				}
			}
			if len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d snapshots never reached the fleet: %v\n%s", len(missing), len(files), missing, diag())
			}
			time.Sleep(200 * time.Millisecond)
		}
		waitFor(t, 60*time.Second, "no seq missing at the fleet", func() bool {
			d, _ := deviceInfo(t, base)
			return d.Missing == 0 && d.HighestSeq > 0
		})
		if d, _ := deviceInfo(t, base); d.Lost != 0 {
			t.Errorf("%d messages lost", d.Lost)
		}
		if dropped != 0 {
			t.Errorf("%.0f pictures dropped with room in the outbox", dropped)
		}
	} else if dropped == 0 {
		t.Error("the full outbox dropped no picture")
	}
	if n := core.SnapshotStats()["unknown_event"]; n != 0 {
		t.Errorf("%d snapshots arrived before their event", n)
	}
}

// deviceInfo is the fleet's view of test-edge's message stream.
func deviceInfo(t *testing.T, base string) (d struct {
	HighestSeq uint64 `json:"highest_seq"`
	Missing    uint64 `json:"missing"`
	Lost       uint64 `json:"lost"`
}, code int) {
	t.Helper()
	code, _, b := httpGet(t, base+"/api/v1/devices/test-edge", "")
	_ = json.Unmarshal(b, &d)
	return d, code
}

// relay forwards TCP connections from its address to a target; down drops them all and
// refuses new ones until up.
type relay struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newRelay(t *testing.T, target string) *relay {
	r := &relay{t: t, target: target, addr: fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), conns: map[net.Conn]bool{}}
	r.up()
	t.Cleanup(func() { r.down(); r.wg.Wait() })
	return r
}

func (r *relay) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("relay listen: %v", err)
	}
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", r.target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns[c], r.conns[b] = true, true
			r.mu.Unlock()
			for _, p := range [][2]net.Conn{{c, b}, {b, c}} {
				r.wg.Add(1)
				go func() {
					defer r.wg.Done()
					_, _ = io.Copy(p[0], p[1])
					p[0].Close()
					p[1].Close()
				}()
			}
		}
	}()
}

func (r *relay) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}
