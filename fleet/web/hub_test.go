package web

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

type sink struct{ err error }

func (s sink) HandleMessage(*wire.Decoded) error { return s.err }

// raw is a message as the subscriber hands it on (the hub reads only its topic and payload).
func raw(topic string, payload []byte) *wire.Decoded {
	return &wire.Decoded{Topic: topic, Payload: payload}
}

func event(device, camera, msgID, typ string) (string, []byte) {
	b, _ := json.Marshal(map[string]any{"schema": "vigil.event/1", "device_id": device, "msg_id": msgID, "seq": 1, "type": typ})
	return "vigil/v1/" + device + "/events/" + camera, b
}

// readEvents reads SSE events from the stream until n are read.
func readEvents(t *testing.T, sc *bufio.Scanner, n int) []Message {
	t.Helper()
	var out []Message
	name := ""
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var m Message
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m); err != nil {
				t.Fatalf("data %q: %v", line, err)
			}
			if name != m.Kind {
				t.Errorf("event %q carries kind %q", name, m.Kind)
			}
			out = append(out, m)
		}
	}
	if len(out) < n {
		t.Fatalf("stream ended after %d events: %v", len(out), sc.Err())
	}
	return out
}

func TestHubStream(t *testing.T) {
	hub := NewHub(HubOptions{})
	h := hub.Wrap(sink{})
	// Before any client: kept for replay (the telemetry, the event), or not passed on at all.
	topic, ev1 := event("edge-01", "gate", "edge-01-e-1", "loitering")
	_ = h.HandleMessage(raw(topic, ev1))
	_ = h.HandleMessage(raw(topic, ev1)) // a repeat
	_ = h.HandleMessage(raw("vigil/v1/edge-01/telemetry", []byte(`{"schema":"vigil.telemetry/1","model":{"version":"2.0"}}`)))
	_ = h.HandleMessage(raw("vigil/v1/edge-01/detections/gate", []byte(`{}`)))                               // not streamed
	_ = h.HandleMessage(raw("vigil/v1/edge-01/events/gate", []byte(`not json`)))                             // dropped
	_ = hub.Wrap(sink{errors.New("rejected")}).HandleMessage(raw(event("edge-02", "c", "edge-02-e-1", "x"))) // rejected by the registry

	srv := httptest.NewServer(hub)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	replay := readEvents(t, sc, 2)
	if replay[0].Kind != "telemetry" || replay[1].Kind != "events" || replay[1].Camera != "gate" || replay[1].Device != "edge-01" {
		t.Fatalf("replay %+v", replay)
	}

	// Live: wait until the handler has subscribed (the replay proves it), then publish.
	_, ev2 := event("edge-01", "yard", "edge-01-e-2", "crowding")
	_ = h.HandleMessage(raw("vigil/v1/edge-01/alerts/yard", ev2))
	live := readEvents(t, sc, 1)[0]
	var p struct{ Type string }
	if err := json.Unmarshal(live.Payload, &p); err != nil || live.Kind != "alerts" || p.Type != "crowding" {
		t.Errorf("live %+v (%v)", live, err)
	}
	if hub.Clients() != 1 {
		t.Errorf("clients %d", hub.Clients())
	}

	// Close ends the stream.
	hub.Close()
	done := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open after Close")
	}
	hub.Publish(topic, ev1) // no-op, no panic
}

func TestHubDropsForSlowClient(t *testing.T) {
	hub := NewHub(HubOptions{QueueLen: 2, MaxClients: 1})
	c, _, ok := hub.subscribe()
	if !ok {
		t.Fatal("subscribe")
	}
	if _, _, ok := hub.subscribe(); ok {
		t.Error("a second client got in past MaxClients 1")
	}
	for i := range 5 {
		topic, ev := event("d", "c", "d-e-"+string(rune('a'+i)), "x")
		hub.Publish(topic, ev)
	}
	if len(c.ch) != 2 || c.dropped.Load() != 3 || hub.Dropped() != 3 {
		t.Errorf("queued %d dropped %d/%d, want 2 and 3", len(c.ch), c.dropped.Load(), hub.Dropped())
	}
	hub.unsubscribe(c)
	if hub.Clients() != 0 {
		t.Error("client not removed")
	}
}

func TestPageIsPublicAndStrict(t *testing.T) {
	srv := httptest.NewServer(Page())
	defer srv.Close()
	for _, path := range []string{"/", "/static/app.js", "/static/style.css"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s: %d, CSP %q", path, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
		if !IsPage(httptest.NewRequest("GET", path, nil)) {
			t.Errorf("IsPage(%s) false", path)
		}
	}
	if IsPage(httptest.NewRequest("GET", "/api/v1/devices", nil)) || IsPage(httptest.NewRequest("POST", "/", nil)) {
		t.Error("IsPage too wide")
	}
}
