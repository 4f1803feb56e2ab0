package eventstore

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Accepter decides whether a message is new; the registry is one.
type Accepter interface {
	// Accept applies one message and reports whether it was new: false and nil for a
	// duplicate, an error when it was rejected. Called one message at a time.
	Accept(topic string, payload []byte) (isNew bool, err error)
}

// putTimeout bounds one Put on the ingest path.
const putTimeout = 5 * time.Second

// Recorder is the ingest handler that stores what its Accepter accepts as new: every event
// and alert, and the detections a Sampler keeps. A failed Put is logged and counted, never
// returned: the message was accepted, and a redelivery would be a duplicate.
type Recorder struct {
	next    Accepter
	store   Store
	sampler *Sampler
	now     func() time.Time
	log     *slog.Logger

	stored, failed atomic.Uint64
}

// NewRecorder returns a Recorder that stores into s the messages next accepts as new, keeping
// 1 in detectionsEvery detections messages per camera (DefaultDetectionsEvery when < 1).
func NewRecorder(next Accepter, s Store, detectionsEvery int, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{next: next, store: s, sampler: NewSampler(detectionsEvery), now: time.Now,
		log: log.With("component", "store")}
}

// HandleMessage implements the ingest handler: it returns the Accepter's error.
func (r *Recorder) HandleMessage(topic string, payload []byte) error {
	isNew, err := r.next.Accept(topic, payload)
	if err != nil || !isNew {
		return err
	}
	rec, ok, err := Decode(topic, payload, r.now())
	if err != nil {
		r.failed.Add(1)
		r.log.Warn("cannot store message", "topic", topic, "error", err)
		return nil
	}
	if !ok || rec.Kind == KindDetections && !r.sampler.Keep(rec.Device, rec.Camera) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), putTimeout)
	defer cancel()
	if err := r.store.Put(ctx, rec); err != nil {
		r.failed.Add(1)
		r.log.Warn("cannot store message", "topic", topic, "error", err)
		return nil
	}
	r.stored.Add(1)
	return nil
}

// Stats returns the records stored and the messages that could not be.
func (r *Recorder) Stats() (stored, failed uint64) { return r.stored.Load(), r.failed.Load() }
