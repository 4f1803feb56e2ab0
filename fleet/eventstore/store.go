// Package eventstore is the fleet controller's event store: it keeps the events, alerts and a sample
// of the detections messages that the registry accepted as new, and answers time-range queries
// over them.
//
//	ingest ──HandleMessage──▶ Recorder ──Accept──▶ registry (new or duplicate?)
//	                             │ new events, alerts, 1 in N detections per camera
//	                             ▼
//	                           Store (bbolt: DATA/events.db) ◀── GET /api/v1/events[/export]
//	                             ▲
//	                             └── sweeper: max age, max bytes, max records
//
// [Store] is the interface a backend implements; [Bolt] is the default, embedded one. Records
// are ordered, filtered by time and aged by the time the fleet received them, never by the
// captured_at a device sends (which is kept as data): a device whose clock is wrong, by a
// fault or on purpose, can neither keep its records forever nor get others' evicted first. A
// time range is one cursor seek; the other filters (device, camera, label, rule, kind) are
// applied while scanning that range: a query over a wide range for a rare device reads every
// record in the range (see [Filter]).
package eventstore

import (
	"context"
	"errors"
	"time"
)

// Kinds of records, as the API names them.
const (
	KindEvent      = "event"      // vigil.event/1 on vigil/v1/<device>/events/<camera>
	KindAlert      = "alert"      // vigil.alert/1 on vigil/v1/<device>/alerts/<camera>
	KindDetections = "detections" // vigil.detections/1, sampled (see Sampler)
)

// ErrClosed is returned by a store's methods after Close.
var ErrClosed = errors.New("store: closed")

// Store keeps records. Its methods may be called from many goroutines at once.
type Store interface {
	// Put stores one record; on return it is durable. The store assigns r.ID.
	Put(ctx context.Context, r Record) error
	// Query returns the records that match f, in f's order, at most f.Limit of them. A caller
	// pages through a large result by passing the last record's Position as f.After.
	Query(ctx context.Context, f Filter) ([]Record, error)
	// Close stops the store's goroutines, waits for them and releases its files. Call it once;
	// afterwards the other methods return ErrClosed.
	Close() error
}

// Record is one stored message.
type Record struct {
	ID         uint64    `json:"id"`   // assigned by the store; increases with every Put
	Kind       string    `json:"kind"` // KindEvent, KindAlert or KindDetections
	Device     string    `json:"device"`
	Camera     string    `json:"camera"`
	Labels     []string  `json:"labels"`             // event or alert label; distinct labels of detections
	RuleID     string    `json:"rule_id,omitempty"`  // alerts
	EventID    string    `json:"event_id,omitempty"` // events: after.id; alerts: the first of event_ids
	AlertID    string    `json:"alert_id,omitempty"` // alerts
	MsgID      string    `json:"msg_id"`
	Seq        uint64    `json:"seq"`
	CapturedAt int64     `json:"captured_at"` // UTC ms, from the message: the device's clock, data only
	ReceivedAt time.Time `json:"received_at"` // when the controller received it: the store's order and age
	// Payload is the message as received, compacted to one line.
	Payload []byte `json:"payload"`
}

// Position is where a record sits in the store's order: by received_at, then by ID.
type Position struct {
	At int64 // received_at, UTC ms
	ID uint64
}

// Position returns the record's position.
func (r Record) Position() Position { return Position{At: r.ReceivedAt.UnixMilli(), ID: r.ID} }

// Filter selects records. Zero fields select everything.
type Filter struct {
	Kind   string // one of the Kind constants
	Device string
	Camera string
	Label  string // any of the record's labels
	RuleID string
	// Since (inclusive) and Until (exclusive) bound received_at (the fleet's clock, not the
	// device's). Only these narrow the scan; the fields above are checked record by record.
	Since, Until time.Time
	Limit        int       // at most this many records; 0 means no limit
	Oldest       bool      // oldest first; newest first by default
	After        *Position // continue after this position, in the filter's order
}

// Match reports whether r passes f's field filters (not the time range).
func (f Filter) Match(r Record) bool {
	if f.Kind != "" && r.Kind != f.Kind || f.Device != "" && r.Device != f.Device ||
		f.Camera != "" && r.Camera != f.Camera || f.RuleID != "" && r.RuleID != f.RuleID {
		return false
	}
	if f.Label == "" {
		return true
	}
	for _, l := range r.Labels {
		if l == f.Label {
			return true
		}
	}
	return false
}
