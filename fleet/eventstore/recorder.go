package eventstore

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Accepter decides whether a message is new; the registry is one.
type Accepter interface {
	// Accept applies one message and reports whether it was new: false and nil for a
	// duplicate, an error when it was rejected. Called one message at a time.
	Accept(m *wire.Decoded) (isNew bool, err error)
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
	snaps          snapshotCounts

	// Asynchronous stores (HandleMessageAsync): at most maxInFlight at once; Wait waits for
	// them.
	slots    chan struct{}
	inFlight sync.WaitGroup

	// Events being stored asynchronously, by event id: a snapshot of one of them waits for
	// its store (in its own goroutine, never on the subscriber's).
	evMu     sync.Mutex
	evStores map[string]chan struct{}
}

// maxInFlight bounds the stores one Recorder runs at once: enough for a store that gathers
// concurrent Puts into one transaction, few enough that a stalled store holds up ingest
// (and, through unacknowledged messages, the broker) rather than memory.
const maxInFlight = 256

// snapshotCounts counts the snapshots received, by what became of them.
type snapshotCounts struct {
	stored, unknownEvent, notJPEG, failed atomic.Uint64
}

// Snapshot results, the keys of [Recorder.SnapshotStats].
const (
	SnapshotStored       = "stored"
	SnapshotUnknownEvent = "unknown_event" // no record of the event is stored: refused
	SnapshotNotJPEG      = "not_jpeg"      // the picture does not parse as a JPEG: refused
	SnapshotFailed       = "failed"        // the store failed
)

// NewRecorder returns a Recorder that stores into s the messages next accepts as new, keeping
// 1 in detectionsEvery detections messages per camera (DefaultDetectionsEvery when < 1).
func NewRecorder(next Accepter, s Store, detectionsEvery int, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{next: next, store: s, sampler: NewSampler(detectionsEvery), now: time.Now,
		log: log.With("component", "store"), slots: make(chan struct{}, maxInFlight), evStores: map[string]chan struct{}{}}
}

// HandleMessage implements the subscriber's handler: it returns the Accepter's error.
func (r *Recorder) HandleMessage(m *wire.Decoded) error {
	rec, store, err := r.accept(m)
	if err != nil || !store {
		return err
	}
	r.put(m.Topic, rec)
	return nil
}

// HandleMessageAsync implements subscriber.AsyncHandler: the Accepter decides at once, in
// arrival order; the store runs in the background, up to maxInFlight at once, so a store that
// batches (fleet/postgres) commits many messages together. done is called after the Put
// returned (stored, or failed and counted), never before. Nothing here waits on the caller's
// goroutine (the subscriber's, which also carries the acknowledgements of the fleet's own
// publishes): a snapshot waits for its event's store, and a store for a free slot, in their
// own goroutines.
func (r *Recorder) HandleMessageAsync(m *wire.Decoded, done func()) error {
	if p, ok := m.Msg.(*wire.Picture); ok && m.Kind() == wire.KindSnapshots {
		isNew, err := r.next.Accept(m)
		if err != nil || !isNew {
			if err == nil {
				done()
			}
			return err
		}
		// Its event was handed in before it: wait for that event's store, if it is still
		// running, in the background.
		r.evMu.Lock()
		ev := r.evStores[p.EventID]
		r.evMu.Unlock()
		r.inFlight.Add(1)
		go func() {
			defer r.inFlight.Done()
			if ev != nil {
				<-ev
			}
			r.snapshot(p.EventID, m.Payload)
			done()
		}()
		return nil
	}
	rec, store, err := r.accept(m)
	if err != nil {
		return err
	}
	if !store {
		done()
		return nil
	}
	var ev chan struct{}
	if rec.Kind == KindEvent && rec.EventID != "" {
		ev = make(chan struct{})
		r.evMu.Lock()
		r.evStores[rec.EventID] = ev
		r.evMu.Unlock()
	}
	r.inFlight.Add(1)
	go func() {
		defer r.inFlight.Done()
		r.slots <- struct{}{} // waits here, not on the subscriber's goroutine
		r.put(m.Topic, rec)
		<-r.slots
		if ev != nil {
			r.evMu.Lock()
			if r.evStores[rec.EventID] == ev {
				delete(r.evStores, rec.EventID)
			}
			r.evMu.Unlock()
			close(ev)
		}
		done()
	}()
	return nil
}

// Wait waits for the stores HandleMessageAsync started; call it after the last message was
// handed in and before closing the store.
func (r *Recorder) Wait() { r.inFlight.Wait() }

// accept asks the Accepter and decides whether to store the message.
func (r *Recorder) accept(m *wire.Decoded) (Record, bool, error) {
	isNew, err := r.next.Accept(m)
	if err != nil || !isNew {
		return Record{}, false, err
	}
	if p, ok := m.Msg.(*wire.Picture); ok && m.Kind() == wire.KindSnapshots {
		// Its event was handed in before it: let the stores in flight finish first. Only
		// this goroutine starts stores, so none starts during the wait.
		r.inFlight.Wait()
		r.snapshot(p.EventID, m.Payload)
		return Record{}, false, nil
	}
	rec, ok, err := Decode(m, r.now())
	if err != nil {
		r.failed.Add(1)
		r.log.Warn("cannot store message", "topic", m.Topic, "err", err)
		return Record{}, false, nil
	}
	if !ok || rec.Kind == KindDetections && !r.sampler.Keep(rec.Device, rec.Camera) {
		return Record{}, false, nil
	}
	return rec, true, nil
}

func (r *Recorder) put(topic string, rec Record) {
	ctx, cancel := context.WithTimeout(context.Background(), putTimeout)
	defer cancel()
	if err := r.store.Put(ctx, rec); err != nil {
		r.failed.Add(1)
		r.log.Warn("cannot store message", "topic", topic, "err", err)
		return
	}
	r.stored.Add(1)
}

// Stats returns the records stored and the messages that could not be.
func (r *Recorder) Stats() (stored, failed uint64) { return r.stored.Load(), r.failed.Load() }

// snapshot stores an accepted snapshot beside its event. The registry has checked its header
// and size; the picture must also parse as a JPEG, and its event must be stored.
func (r *Recorder) snapshot(eventID string, payload []byte) {
	if _, err := jpeg.DecodeConfig(bytes.NewReader(payload)); err != nil {
		r.snaps.notJPEG.Add(1)
		r.log.Warn("snapshot refused: not a JPEG", "event", eventID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), putTimeout)
	defer cancel()
	s, ok := r.store.(Snapshots)
	if !ok {
		r.snaps.failed.Add(1)
		return
	}
	switch err := s.PutSnapshot(ctx, eventID, payload); {
	case errors.Is(err, ErrUnknownEvent):
		r.snaps.unknownEvent.Add(1)
		r.log.Warn("snapshot refused: unknown event", "event", eventID)
	case err != nil:
		r.snaps.failed.Add(1)
		r.log.Warn("cannot store snapshot", "event", eventID, "err", err)
	default:
		r.snaps.stored.Add(1)
	}
}

// SnapshotStats counts the snapshots received by result (the Snapshot constants).
func (r *Recorder) SnapshotStats() map[string]uint64 {
	return map[string]uint64{SnapshotStored: r.snaps.stored.Load(), SnapshotUnknownEvent: r.snaps.unknownEvent.Load(),
		SnapshotNotJPEG: r.snaps.notJPEG.Load(), SnapshotFailed: r.snaps.failed.Load()}
}
