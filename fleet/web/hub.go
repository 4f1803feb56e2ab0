// Package web is the fleet controller's dashboard: a plain HTML page with a small vanilla
// script (embedded, no build step) served at GET /, and the live stream it reads, GET
// /api/v1/stream (server-sent events), fed by a fan-out [Hub] that sees what the MQTT
// subscriber receives.
//
//	subscriber ──HandleMessage──▶ Hub.Wrap(registry) ──▶ registry
//	                              │ accepted status, events, alerts, telemetry
//	                              ▼
//	                             Hub ──one buffered queue per client──▶ GET /api/v1/stream
//
// A slow dashboard never stalls ingest: its queue drops and counts, and the client is told
// how many messages it missed. The hub keeps the last events and alerts and each device's
// last telemetry, and replays them to a client that connects, so a fresh page is not empty.
//
// The page itself is public (it holds no data); it calls the API with a bearer token it
// takes from the URL fragment (/#token=...: a fragment is never sent to the server) or from
// its login field, keeps it in the tab's sessionStorage and sends it in the Authorization
// header: a read-only token is enough. The stream is read with fetch() rather than
// EventSource, which cannot send that header, so no token ever appears in a URL.
package web

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Kinds the hub passes on (detections are too many for a page: the device table shows their
// counts from the API instead).
var streamKinds = map[string]bool{
	wire.KindStatus:    true,
	wire.KindEvents:    true,
	wire.KindAlerts:    true,
	wire.KindTelemetry: true,
	wire.KindSnapshots: true, // {"event_id": …}: that event's picture arrived
}

// Message is one item of the stream: a message the subscriber received, with its topic
// parts. It is the data of an SSE event named after Kind.
type Message struct {
	Kind       string          `json:"kind"` // status, events, alerts, telemetry, snapshots
	Device     string          `json:"device"`
	Camera     string          `json:"camera,omitempty"`
	Topic      string          `json:"topic"`
	ReceivedAt time.Time       `json:"received_at"`
	Payload    json.RawMessage `json:"payload"` // the message as the device sent it
}

// HubOptions tune a Hub; zero fields take the defaults.
type HubOptions struct {
	Recent     int // events and alerts kept for new clients; 50
	QueueLen   int // messages queued per client before it drops; 256
	MaxClients int // concurrent streams; more get 503; 32
	MaxDevices int // devices whose last telemetry is kept; 10000
	MaxPayload int // larger payloads are not passed on; 64 KiB
	Heartbeat  time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// dedupWindow is how many event and alert msg_ids the hub remembers to drop repeats.
const dedupWindow = 1024

// Handler is what the MQTT subscriber hands messages to (fleet/ingest's Handler).
type Handler interface {
	// HandleMessage is called once per message, one call at a time; an error rejects it.
	HandleMessage(m *wire.Decoded) error
}

// Hub fans the subscriber's messages out to the dashboards' streams. Its methods may be
// called concurrently.
type Hub struct {
	opts HubOptions
	log  *slog.Logger

	mu        sync.Mutex
	clients   map[*client]struct{}
	recent    []Message // ring, oldest first once full
	next      int
	telemetry map[string]Message
	seen      map[string]struct{} // msg_ids of recent events and alerts, to drop repeats
	seenOrder []string
	closed    bool
	done      chan struct{}

	dropped atomic.Uint64
}

type client struct {
	ch      chan Message
	dropped atomic.Uint64
}

// NewHub returns an empty hub.
func NewHub(opts HubOptions) *Hub {
	if opts.Recent <= 0 {
		opts.Recent = 50
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 256
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = 32
	}
	if opts.MaxDevices <= 0 {
		opts.MaxDevices = 10000
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 64 << 10
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Hub{
		opts:      opts,
		log:       opts.Logger.With("component", "web"),
		clients:   map[*client]struct{}{},
		telemetry: map[string]Message{},
		seen:      map[string]struct{}{},
		done:      make(chan struct{}),
	}
}

// Wrap returns a Handler that hands each message to next and, when next accepts it, to the
// hub.
func (h *Hub) Wrap(next Handler) Handler { return tee{next, h} }

type tee struct {
	next Handler
	hub  *Hub
}

// HandleMessageAsync passes an AsyncHandler's deferred acknowledgement through; the stream
// sees the message as soon as it was accepted.
func (t tee) HandleMessageAsync(m *wire.Decoded, done func()) error {
	ah, ok := t.next.(interface {
		HandleMessageAsync(m *wire.Decoded, done func()) error
	})
	if !ok {
		err := t.HandleMessage(m)
		if err == nil {
			done()
		}
		return err
	}
	if err := ah.HandleMessageAsync(m, done); err != nil {
		return err
	}
	t.hub.Publish(m.Topic, m.Payload)
	return nil
}

func (t tee) HandleMessage(m *wire.Decoded) error {
	if err := t.next.HandleMessage(m); err != nil {
		return err
	}
	t.hub.Publish(m.Topic, m.Payload)
	return nil
}

// Publish passes one message on to every stream; it never blocks. Messages of other kinds,
// with a bad topic, too large or not JSON are ignored; a repeated event or alert (same
// msg_id) too. After Close it does nothing.
func (h *Hub) Publish(topic string, payload []byte) {
	if device, camera, id, err := wire.ParseSnapshotTopic(topic); err == nil {
		// A picture: the page is told which event has one (it fetches it from the API).
		note, _ := json.Marshal(map[string]string{"event_id": id})
		topic, payload = wire.Root+"/"+device+"/"+wire.KindSnapshots+"/"+camera, note
	}
	device, kind, camera, err := wire.ParseTopic(topic)
	if err != nil || !streamKinds[kind] || len(payload) > h.opts.MaxPayload || !json.Valid(payload) {
		return
	}
	m := Message{Kind: kind, Device: device, Camera: camera, Topic: topic, ReceivedAt: h.opts.Now().UTC(),
		Payload: json.RawMessage(append([]byte(nil), payload...))}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	switch kind {
	case wire.KindEvents, wire.KindAlerts:
		var hdr wire.Header
		if json.Unmarshal(payload, &hdr) == nil && hdr.MsgID != "" {
			if _, dup := h.seen[hdr.MsgID]; dup {
				return
			}
			h.seen[hdr.MsgID] = struct{}{}
			h.seenOrder = append(h.seenOrder, hdr.MsgID)
			if len(h.seenOrder) > dedupWindow {
				delete(h.seen, h.seenOrder[0])
				h.seenOrder = h.seenOrder[1:]
			}
		}
		if len(h.recent) < h.opts.Recent {
			h.recent = append(h.recent, m)
		} else {
			h.recent[h.next] = m
			h.next = (h.next + 1) % h.opts.Recent
		}
	case wire.KindTelemetry:
		if _, ok := h.telemetry[device]; ok || len(h.telemetry) < h.opts.MaxDevices {
			h.telemetry[device] = m
		}
	}
	for c := range h.clients {
		select {
		case c.ch <- m:
		default:
			c.dropped.Add(1)
			h.dropped.Add(1)
		}
	}
}

// subscribe adds a client and returns what it should see first: the last telemetry of each
// device, then the recent events and alerts, oldest first. ok is false when the hub is
// closed or full.
func (h *Hub) subscribe() (c *client, replay []Message, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.clients) >= h.opts.MaxClients {
		return nil, nil, false
	}
	for _, m := range h.telemetry {
		replay = append(replay, m)
	}
	replay = append(replay, h.recent[h.next:]...)
	replay = append(replay, h.recent[:h.next]...)
	c = &client{ch: make(chan Message, h.opts.QueueLen)}
	h.clients[c] = struct{}{}
	return c, replay, true
}

func (h *Hub) unsubscribe(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// Clients is the number of open streams.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Dropped is the number of messages dropped for slow clients, all clients together.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// Close ends every stream (their handlers return) and makes Publish a no-op. Call it before
// shutting the HTTP server down: a stream never becomes idle by itself. Safe to call more
// than once.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// ServeHTTP serves GET /api/v1/stream: server-sent events, one per message (event: <kind>,
// data: a Message), a "dropped" event ({"dropped": n}) when the client's queue overflowed,
// and a comment line as heartbeat. It returns when the client goes away or the hub closes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	c, replay, ok := h.subscribe()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, `{"error": "too many streams, or shutting down"}`)
		return
	}
	defer h.unsubscribe(c)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": vigil-fleet stream\n\n"); err != nil {
		return
	}
	for _, m := range replay {
		if err := writeEvent(w, m.Kind, m); err != nil {
			return
		}
	}
	if err := rc.Flush(); err != nil {
		return
	}
	beat := time.NewTicker(h.opts.Heartbeat)
	defer beat.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case <-beat.C:
			_, err = fmt.Fprint(w, ": heartbeat\n\n")
		case m := <-c.ch:
			err = writeEvent(w, m.Kind, m)
			for more := true; more && err == nil; { // write what is queued, then flush once
				select {
				case m := <-c.ch:
					err = writeEvent(w, m.Kind, m)
				default:
					more = false
				}
			}
		}
		if n := c.dropped.Swap(0); n > 0 && err == nil {
			err = writeEvent(w, "dropped", map[string]uint64{"dropped": n})
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			h.log.Debug("stream ended", "err", err)
			return
		}
	}
}

func writeEvent(w http.ResponseWriter, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("stream: encode: %w", err)
	}
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return fmt.Errorf("stream: write: %w", err)
	}
	return nil
}
