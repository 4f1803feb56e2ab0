package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/internal/testpub"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// settledGoroutines waits until the goroutine count is at most want, or 10 s pass.
func settledGoroutines(want int) (int, string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			return n, string(buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeAndWatch(t *testing.T) {
	before := runtime.NumGoroutine()
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	base := "http://" + httpAddr

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testharness.SyncBuffer
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve", "--mqtt-listen", mqttAddr, "--http", httpAddr, "--client-id", "fleet-serve-test", "--log-level", "warn"}, &logs, &logs)
	}()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-served:
			t.Fatalf("serve ended early: %v; logs:\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not healthy after 15s: %v; logs:\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	p := testpub.Connect(t, "tcp://"+mqttAddr, "edge-07")
	p.Online()
	for range 3 {
		p.Detections("cam1", "person", "car", "person")
	}
	p.DetectionsSeq("cam1", 2, false, "person", "car", "person") // repeat

	// watch polls until it has printed the device's full counts, then its duration ends it.
	var out testharness.SyncBuffer
	watched := make(chan error, 1)
	wctx, wcancel := context.WithCancel(ctx)
	go func() {
		watched <- run(wctx, []string{"watch", "--api", base, "--interval", "50ms", "--duration", "20s"}, &out, &out)
	}()
	want := "person=6 car=3"
	wdeadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), want) && time.Now().Before(wdeadline) {
		select {
		case err := <-watched:
			t.Fatalf("watch ended early: %v; output:\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	wcancel()
	if err := <-watched; err != nil {
		t.Errorf("watch: %v", err)
	}
	if !strings.Contains(out.String(), "edge-07/cam1") || !strings.Contains(out.String(), "online") {
		t.Errorf("watch output lacks the camera line:\n%s", out.String())
	}

	p.Disconnect()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return within 30s of cancel")
	}
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Error("API still answers after serve returned")
	}

	// Every goroutine serve and watch started has ended.
	client.CloseIdleConnections()
	if n, stacks := settledGoroutines(before); n > before {
		t.Errorf("%d goroutines before serve, %d after it returned:\n%s", before, n, stacks)
	}
}

func TestWatchDurationWithoutAPI(t *testing.T) {
	var out testharness.SyncBuffer
	err := run(context.Background(), []string{"watch", "--api", fmt.Sprintf("http://127.0.0.1:%d", testharness.FreePort(t)), "--interval", "10ms", "--duration", "100ms"}, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "poll:") {
		t.Errorf("no poll error printed:\n%s", out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"serve", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"serve", "extra"}, `serve: unexpected argument "extra"`},
		{[]string{"serve", "--log-level", "loud"}, `serve: --log-level "loud"`},
		{[]string{"serve", "--gap-timeout", "0s"}, "serve: --gap-timeout 0s: want > 0"},
		{[]string{"watch", "--interval", "0s"}, "watch: --interval must be > 0"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 2 {
				t.Errorf("err %v (exit %d), want %q and exit 2", err, exitCode(err), tt.want)
			}
		})
	}
}

func TestServeFailsOnBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Were the port free, serve would run until this context ends: bounded either way.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out testharness.SyncBuffer
	err = run(ctx, []string{"serve", "--mqtt-listen", "127.0.0.1:0", "--http", l.Addr().String(), "--log-level", "error"}, &out, &out)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "http: listen") {
		t.Errorf("err %v, want an http listen error", err)
	}
}

func TestRender(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	devices := []api.Device{
		{ID: "edge-01", Online: true, State: "online", Cameras: []api.Camera{
			{ID: "cam1", Rate: 4.8, Objects: map[string]uint64{"person": 1234, "car": 5, "bus": 5}},
			{ID: "cam2", Objects: map[string]uint64{}},
		}},
		{ID: "edge-02", State: "offline"},
		{ID: "edge-3", Cameras: []api.Camera{{ID: "c", Rate: 0.25, Objects: map[string]uint64{"dog": 1}}}},
	}
	var b bytes.Buffer
	render(&b, now, devices)
	want := `15:04:05  3 devices, 3 cameras
DEVICE/CAMERA  STATE    RATE       OBJECTS
edge-01/cam1   online   4.8 msg/s  person=1234 bus=5 car=5
edge-01/cam2   online   0.0 msg/s  -
edge-02        offline  -          -
edge-3/c       unknown  0.2 msg/s  dog=1
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	// A device that sent events and alerts gets a line with their counts.
	b.Reset()
	render(&b, now, []api.Device{{ID: "edge-9", State: "online", Messages: map[string]uint64{"events": 12, "alerts": 3},
		Cameras: []api.Camera{{ID: "gate", Rate: 1, Objects: map[string]uint64{"person": 2}}}}})
	if !strings.Contains(b.String(), "events=12 alerts=3") {
		t.Errorf("no events/alerts line:\n%s", b.String())
	}
}

// Device strings reach a terminal: escape sequences (cursor moves, screen clears, OSC 52
// clipboard writes), tabs that would shift the columns, bidi overrides and invalid UTF-8 are
// printed as escapes.
func TestRenderEscapesDeviceStrings(t *testing.T) {
	osc52 := "\x1b]52;c;cm0gLXJmIH4=\x07"
	var b bytes.Buffer
	render(&b, time.Now(), []api.Device{{ID: "edge\x1b[2J", State: "online\x9b31m", Cameras: []api.Camera{
		{ID: "gate\t\u202e", Rate: 1, Objects: map[string]uint64{"person" + osc52: 2, "car\xff": 1}}}}})
	out := b.String()
	for _, bad := range []string{"\x1b", "\x07", "\x9b", "\u202e", "\xff", "gate\t"} {
		if strings.Contains(out, bad) {
			t.Errorf("output holds %q:\n%q", bad, out)
		}
	}
	for _, want := range []string{`edge\x1b[2J/gate\x09\u202e`, `online\x9b31m`, `person\x1b]52;c;cm0gLXJmIH4=\x07=2`, `car\xff=1`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
