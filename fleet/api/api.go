// Package api is the fleet controller's HTTP API: its JSON types (snake_case, stable for
// clients such as `vigil-fleet watch`) and handlers.
//
//	GET /healthz              200 when the MQTT subscriber is connected, 503 otherwise
//	GET /api/v1/devices       every device, sorted by id
//	GET /api/v1/devices/{id}  one device; 404 when unknown
//	GET /metrics              Prometheus metrics (see fleet/metrics), when a handler is given
//	GET /api/v1/events        stored events, alerts and sampled detections (RegisterEvents)
//	GET /api/v1/events/export the same as NDJSON, streamed (RegisterEvents)
//	GET /api/v1/openapi.json  the OpenAPI 3 document of all of the fleet's endpoints
//
// Authentication (bearer tokens, see fleet/auth) wraps this handler from outside; /healthz
// stays open.
//
// Errors are JSON: {"error": "..."} (a method other than GET gets the mux's plain 405).
package api

import (
	"encoding/json"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"time"

	"github.com/vigil-edge/vigil/fleet/auth"
	"github.com/vigil-edge/vigil/fleet/broker"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/fleet/subscriber"
	"github.com/vigil-edge/vigil/internal/redact"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Device is one device as the API shows it.
type Device struct {
	ID        string            `json:"id"`
	Online    bool              `json:"online"`
	State     string            `json:"state"` // online, offline, or "" before any status
	Version   string            `json:"version,omitempty"`
	FirstSeen time.Time         `json:"first_seen"`
	LastSeen  time.Time         `json:"last_seen"`
	StatusAt  time.Time         `json:"status_at,omitzero"`
	Messages  map[string]uint64 `json:"messages"` // accepted messages by kind, duplicates not included
	Cameras   []Camera          `json:"cameras"`

	// The message stream's completeness; see fleet/registry.
	Duplicates   uint64 `json:"duplicates"`    // repeats received and dropped
	Replayed     uint64 `json:"replayed"`      // messages received from the agent's backlog (replayed: true)
	Epoch        string `json:"epoch"`         // the agent's outbox epoch, from msg_id
	EpochChanges uint64 `json:"epoch_changes"` // times the outbox was recreated (seq restarted)
	HighestSeq   uint64 `json:"highest_seq"`   // highest seq received in the epoch
	Watermark    uint64 `json:"watermark"`     // every seq at or below it arrived or was given up
	Missing      uint64 `json:"missing"`       // seqs below highest_seq not received yet; may still arrive
	Lost         uint64 `json:"lost"`          // seqs given up after the gap timeout, all epochs

	// ClockSkewSeconds is the device's clock minus the fleet's (positive: ahead), estimated
	// from the captured_at of its live messages; absent before any. ClockSkewed says it is
	// beyond the tolerance (30 s by default).
	ClockSkewSeconds *float64 `json:"clock_skew_seconds,omitempty"`
	ClockSkewed      bool     `json:"clock_skewed"`

	Telemetry *Telemetry `json:"telemetry,omitempty"` // the newest telemetry report; absent before any
}

// Telemetry is a device's newest telemetry report; absent sensors and parts are omitted.
type Telemetry struct {
	ReceivedAt        time.Time          `json:"received_at"`
	CapturedAt        time.Time          `json:"captured_at,omitzero"`
	UptimeS           float64            `json:"uptime_s"`
	CPUTempC          *float64           `json:"cpu_temp_c,omitempty"`
	Throttled         *bool              `json:"throttled,omitempty"`
	Load1             *float64           `json:"load1,omitempty"`
	CPUUsage          *float64           `json:"cpu_usage,omitempty"` // 0-1
	MemTotalBytes     *uint64            `json:"mem_total_bytes,omitempty"`
	MemAvailableBytes *uint64            `json:"mem_available_bytes,omitempty"`
	DiskFreeBytes     *uint64            `json:"disk_free_bytes,omitempty"`
	Outbox            *wire.OutboxHealth `json:"outbox,omitempty"` // messages, bytes, oldest_age_s
	Model             *wire.Model        `json:"model,omitempty"`  // name, version, sha256
	Cameras           []CameraTelemetry  `json:"cameras"`
	Position          *wire.GeoFix       `json:"position,omitempty"` // lat, lon, alt_m, source
}

// CameraTelemetry is one camera's rates in a telemetry report.
type CameraTelemetry = wire.CameraTelemetry

// Camera is one camera of a device.
type Camera struct {
	ID              string            `json:"id"`
	Detections      uint64            `json:"detections"` // detections messages received
	Objects         map[string]uint64 `json:"objects"`    // objects by label
	LastDetectionAt time.Time         `json:"last_detection_at,omitzero"`
	LastReceivedAt  time.Time         `json:"last_received_at,omitzero"`
	Rate            float64           `json:"rate"` // detections messages per second over the last seconds, 2 decimals
}

// Health is the body of /healthz.
type Health struct {
	Status   string            `json:"status"` // "ok" or "unavailable"
	MQTT     MQTT              `json:"mqtt"`
	Devices  int               `json:"devices"`
	Rejected map[string]uint64 `json:"rejected"` // rejected messages by reason
	// MQTTAuth counts the embedded broker's refused connects and ACL denials, when it
	// authenticates clients.
	MQTTAuth *auth.MQTTStats `json:"mqtt_auth,omitempty"`
	// Broker counts the embedded broker's open connections and those it refused before their
	// CONNECT (over the cap, the connect rate, the CONNECT size or deadline).
	Broker *broker.Stats `json:"broker,omitempty"`
	// Rollouts says where the rollouts are kept and whether this instance runs them, when OTA
	// is on.
	Rollouts *RolloutsHealth `json:"rollouts,omitempty"`
}

// RolloutsHealth is the rollout part of /healthz.
type RolloutsHealth struct {
	// Leader is true when this instance runs the rollout engine: always on its own, one
	// instance at a time when several share PostgreSQL.
	Leader bool   `json:"leader"`
	Store  string `json:"store"` // "bbolt" or "postgres"
}

// MQTT describes the subscriber's connection.
type MQTT struct {
	Broker     string    `json:"broker"`
	ClientID   string    `json:"client_id"`
	Connected  bool      `json:"connected"`
	Since      time.Time `json:"since,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Messages   uint64    `json:"messages"`
	Rejected   uint64    `json:"rejected"`
	Subscribes uint64    `json:"subscribes"`
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

// Devices is what the API reads devices from; its methods may be called concurrently.
type Devices interface {
	Devices() []registry.Device
	Device(id string) (registry.Device, bool)
	Rejected() map[string]uint64
}

// Conn reports the MQTT subscriber's state; it may be called concurrently.
type Conn interface {
	Status() subscriber.Status
	Refused() map[string]uint64 // messages wire.Decode refused, by reason
}

// Option adds an optional part to the API.
type Option func(*handlers)

// WithMQTTAuth shows the broker's access-control counters in /healthz.
func WithMQTTAuth(stats func() auth.MQTTStats) Option {
	return func(h *handlers) { h.mqttAuth = stats }
}

// Handler returns the API's handler. metrics serves GET /metrics; nil leaves it out.
func Handler(devices Devices, conn Conn, metrics http.Handler, log *slog.Logger, opts ...Option) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &handlers{devices: devices, conn: conn, log: log.With("component", "api")}
	for _, o := range opts {
		o(h)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.health)
	mux.HandleFunc("GET /api/v1/devices", h.list)
	mux.HandleFunc("GET /api/v1/devices/{id}", h.get)
	mux.HandleFunc("GET /api/v1/openapi.json", serveOpenAPI)
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		h.write(w, http.StatusNotFound, Error{Error: "no such endpoint: " + r.URL.Path})
	})
	return mux
}

type handlers struct {
	devices     Devices
	conn        Conn
	log         *slog.Logger
	mqttAuth    func() auth.MQTTStats // nil without broker auth
	brokerStats func() broker.Stats   // nil with an external broker
	rollouts    func() RolloutsHealth // nil without OTA
}

// WithRollouts shows the rollout engine's leadership in /healthz.
func WithRollouts(health func() RolloutsHealth) Option {
	return func(h *handlers) { h.rollouts = health }
}

// WithBrokerStats shows the embedded broker's connection counters in /healthz.
func WithBrokerStats(stats func() broker.Stats) Option {
	return func(h *handlers) { h.brokerStats = stats }
}

func (h *handlers) health(w http.ResponseWriter, _ *http.Request) {
	st := h.conn.Status()
	body := Health{
		Status:   "ok",
		MQTT:     MQTT(st),
		Devices:  len(h.devices.Devices()),
		Rejected: h.devices.Rejected(),
	}
	for reason, n := range h.conn.Refused() { // the subscriber refuses what does not decode, the registry the rest
		body.Rejected[reason] += n
	}
	body.MQTT.Broker = redact.URL(body.MQTT.Broker) // public, even with API tokens
	if h.mqttAuth != nil {
		st := h.mqttAuth()
		body.MQTTAuth = &st
	}
	if h.brokerStats != nil {
		st := h.brokerStats()
		body.Broker = &st
	}
	if h.rollouts != nil {
		ro := h.rollouts()
		body.Rollouts = &ro
	}
	code := http.StatusOK
	if !st.Connected {
		body.Status, code = "unavailable", http.StatusServiceUnavailable
	}
	h.write(w, code, body)
}

func (h *handlers) list(w http.ResponseWriter, _ *http.Request) {
	ds := h.devices.Devices()
	out := make([]Device, 0, len(ds))
	for _, d := range ds {
		out = append(out, FromRegistry(d))
	}
	h.write(w, http.StatusOK, out)
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, ok := h.devices.Device(id)
	if !ok {
		h.write(w, http.StatusNotFound, Error{Error: "unknown device " + id})
		return
	}
	h.write(w, http.StatusOK, FromRegistry(d))
}

func (h *handlers) write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		h.log.Debug("write response", "err", err)
	}
}

// FromRegistry converts a registry snapshot to its API form.
func FromRegistry(d registry.Device) Device {
	out := Device{
		ID:           d.ID,
		Online:       d.Online,
		State:        d.State,
		Version:      d.Version,
		FirstSeen:    d.FirstSeen,
		LastSeen:     d.LastSeen,
		StatusAt:     d.StatusAt,
		Messages:     maps.Clone(d.Messages),
		Cameras:      make([]Camera, 0, len(d.Cameras)),
		Duplicates:   d.Duplicates,
		Replayed:     d.Replayed,
		Epoch:        d.Epoch,
		EpochChanges: d.EpochChanges,
		HighestSeq:   d.HighestSeq,
		Watermark:    d.Watermark,
		Missing:      d.Missing,
		Lost:         d.Lost,
	}
	if out.Messages == nil {
		out.Messages = map[string]uint64{}
	}
	if d.SkewKnown {
		s := math.Round(d.Skew.Seconds()*1000) / 1000
		out.ClockSkewSeconds, out.ClockSkewed = &s, d.Skewed
	}
	if t := d.Telemetry; t != nil {
		out.Telemetry = &Telemetry{ReceivedAt: t.ReceivedAt, CapturedAt: t.CapturedAt, UptimeS: t.UptimeS,
			CPUTempC: t.Board.CPUTempC, Throttled: t.Board.Throttled, Load1: t.Board.Load1, CPUUsage: t.Board.CPUUsage,
			MemTotalBytes: t.Board.MemTotal, MemAvailableBytes: t.Board.MemAvailable, DiskFreeBytes: t.Board.DiskFree,
			Outbox: t.Outbox, Model: t.Model, Cameras: t.Cameras, Position: t.Position}
		if out.Telemetry.Cameras == nil {
			out.Telemetry.Cameras = []CameraTelemetry{}
		}
	}
	for _, c := range d.Cameras {
		objs := maps.Clone(c.Objects)
		if objs == nil {
			objs = map[string]uint64{}
		}
		out.Cameras = append(out.Cameras, Camera{
			ID:              c.ID,
			Detections:      c.Detections,
			Objects:         objs,
			LastDetectionAt: c.LastDetectionAt,
			LastReceivedAt:  c.LastReceivedAt,
			Rate:            math.Round(c.Rate*100) / 100,
		})
	}
	return out
}
