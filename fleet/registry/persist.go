package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// FileName is the registry's file in the fleet's data folder.
const FileName = "registry.db"

// DefaultFlushInterval is how often a saved registry writes its changed devices.
const DefaultFlushInterval = time.Second

// fileFormat marks a registry file; a file without it is refused.
const fileFormat = "vigil.registry/1"

var (
	bucketMeta    = []byte("meta")
	bucketDevices = []byte("devices")
	keyFormat     = []byte("format")
)

// store is the bbolt file behind a registry made with Open, and its flusher goroutine.
//
// Saving is write-behind: HandleMessage only marks the device dirty; every FlushInterval the
// flusher encodes the dirty devices under the registry's lock (memory only) and writes them in
// one transaction outside it, so message handling never waits on the disk.
type store struct {
	path   string
	db     *bolt.DB
	stop   chan struct{}
	done   chan struct{}
	flush  sync.Mutex // one write at a time: the flusher's, Flush's or Close's
	closed bool       // under flush
}

// Open returns a registry saved to the bbolt file at path (created when missing), loaded with
// the devices it holds, and starts writing its changes in the background; Close it.
//
// What is saved of each device: its state, version, first and last seen, status time,
// message counts, cameras with their counters, newest telemetry, and its seq tracking (epoch,
// watermark, the runs received above it, lost), so a duplicate sent before the restart is
// still recognised after it. Not saved: the detections rates (they start again from zero) and
// the registry-wide counters of Totals (Received, Duplicates, Replayed, EpochChanges,
// Rejected), which restart from zero like any counter of a restarted process.
//
// A device that was offline stays offline. A device that was online is loaded with no state
// ("", counted as StateUnknown) until its next status message: the controller cannot know
// whether it went away while nobody watched; its retained status, delivered again when the
// subscriber subscribes, settles it (and is applied even though it is the same message as
// before). A gap's age starts again at the load: while the controller was down no traffic
// moved past it.
//
// At most MaxDevices devices are loaded (the first by id); cameras, labels and gaps over their
// limits are dropped. A file that is not a registry file, or that does not decode, is an error
// naming it.
func Open(path string, opts Options) (*Registry, error) {
	r := New(opts)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", path, err)
	}
	if err := r.load(db, path); err != nil {
		_ = db.Close()
		return nil, err
	}
	r.dirty = map[string]struct{}{}
	r.store = &store{path: path, db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go r.flusher()
	return r, nil
}

// Close writes what changed since the last flush and closes the file; changes after it are
// not saved. It does nothing for a registry made with New. Call it once, after the last
// HandleMessage.
func (r *Registry) Close() error {
	s := r.store
	if s == nil {
		return nil
	}
	close(s.stop)
	<-s.done
	err := r.Flush()
	s.flush.Lock()
	defer s.flush.Unlock()
	s.closed = true
	if cerr := s.db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("registry: close %s: %w", s.path, cerr)
	}
	return err
}

// Flush writes the devices changed since the last flush now; the registry also does it every
// FlushInterval and at Close. It does nothing for a registry made with New. Devices whose
// write failed stay to be written by the next flush.
func (r *Registry) Flush() error {
	s := r.store
	if s == nil {
		return nil
	}
	s.flush.Lock()
	defer s.flush.Unlock()
	if s.closed {
		return nil
	}

	r.mu.Lock()
	if len(r.dirty) == 0 {
		r.mu.Unlock()
		return nil
	}
	ids := slices.Collect(maps.Keys(r.dirty))
	vals := make([][]byte, len(ids))
	var encErr error
	for i, id := range ids {
		if vals[i], encErr = json.Marshal(r.devices[id].record()); encErr != nil {
			break
		}
	}
	clear(r.dirty)
	r.mu.Unlock()
	if encErr != nil {
		r.redirty(ids)
		return fmt.Errorf("registry: encode device: %w", encErr)
	}

	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		for i, id := range ids {
			if err := b.Put([]byte(id), vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.redirty(ids)
		return fmt.Errorf("registry: write %s: %w", s.path, err)
	}
	return nil
}

// redirty marks ids to be written again after a failed flush.
func (r *Registry) redirty(ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.dirty[id] = struct{}{}
	}
}

// flusher writes the changed devices every FlushInterval until Close.
func (r *Registry) flusher() {
	defer close(r.store.done)
	t := time.NewTicker(r.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-r.store.stop:
			return
		case <-t.C:
			if err := r.Flush(); err != nil {
				r.opts.Logger.Warn("registry: save devices", "component", "registry", "err", err)
			}
		}
	}
}

// load checks that db is a registry file (making an empty file one) and loads its devices.
func (r *Registry) load(db *bolt.DB, path string) error {
	fresh := false
	if err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return errors.New("not a registry file")
			}
			fresh = true
			return nil
		}
		if f := meta.Get(keyFormat); string(f) != fileFormat {
			return fmt.Errorf("format %q, want %q", f, fileFormat)
		}
		b := tx.Bucket(bucketDevices)
		if b == nil {
			return errors.New("no devices bucket")
		}
		now := r.opts.Now()
		skipped := 0
		err := b.ForEach(func(k, v []byte) error {
			if len(r.devices) >= r.opts.MaxDevices {
				skipped++
				return nil
			}
			var rec deviceRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("device %q: %w", k, err)
			}
			d, err := r.fromRecord(rec, now)
			if err != nil {
				return fmt.Errorf("device %q: %w", k, err)
			}
			if d.id != string(k) {
				return fmt.Errorf("device %q: record names %q", k, d.id)
			}
			r.devices[d.id] = d
			return nil
		})
		if skipped > 0 {
			r.opts.Logger.Warn("registry: file holds more devices than max_devices; the rest are not loaded",
				"component", "registry", "file", path, "max_devices", r.opts.MaxDevices, "skipped", skipped)
		}
		return err
	}); err != nil {
		return fmt.Errorf("registry: load %s: %w", path, err)
	}
	if !fresh {
		return nil
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketDevices); err != nil {
			return err
		}
		return meta.Put(keyFormat, []byte(fileFormat))
	}); err != nil {
		return fmt.Errorf("registry: create %s: %w", path, err)
	}
	return nil
}

// deviceRecord is how a device is saved, as JSON.
type deviceRecord struct {
	ID           string                  `json:"id"`
	State        string                  `json:"state,omitempty"`
	Version      string                  `json:"version,omitempty"`
	Listed       []string                `json:"listed,omitempty"`
	FirstSeen    time.Time               `json:"first_seen"`
	LastSeen     time.Time               `json:"last_seen"`
	StatusAt     time.Time               `json:"status_at,omitzero"`
	LastStatus   string                  `json:"last_status,omitempty"`
	Messages     map[string]uint64       `json:"messages,omitempty"`
	Duplicates   uint64                  `json:"duplicates,omitempty"`
	Replayed     uint64                  `json:"replayed,omitempty"`
	EpochChanges uint64                  `json:"epoch_changes,omitempty"`
	PrevEpoch    string                  `json:"prev_epoch,omitempty"`
	Seq          seqRecord               `json:"seq"`
	Cameras      map[string]cameraRecord `json:"cameras,omitempty"`
	Telemetry    *Telemetry              `json:"telemetry,omitempty"`
	// ClockSkewMs is the clock skew estimate in ms; absent before any (older files too).
	ClockSkewMs *int64    `json:"clock_skew_ms,omitempty"`
	SkewSince   time.Time `json:"skew_since,omitzero"`
}

// seqRecord is a saved seqTrack; the hole ages are not saved.
type seqRecord struct {
	Epoch     string      `json:"epoch,omitempty"`
	Base      uint64      `json:"base,omitempty"`
	Watermark uint64      `json:"watermark,omitempty"`
	Highest   uint64      `json:"highest,omitempty"`
	Spans     [][2]uint64 `json:"spans,omitempty"` // lo, hi
	Lost      uint64      `json:"lost,omitempty"`
}

type cameraRecord struct {
	Detections    uint64            `json:"detections"`
	Objects       map[string]uint64 `json:"objects,omitempty"`
	LastDetection time.Time         `json:"last_detection,omitzero"`
	LastReceived  time.Time         `json:"last_received,omitzero"`
}

// record is what is saved of d; r.mu is held.
func (d *device) record() deviceRecord {
	rec := deviceRecord{
		ID: d.id, State: d.state, Version: d.version, Listed: d.listed,
		FirstSeen: d.firstSeen, LastSeen: d.lastSeen, StatusAt: d.statusAt, LastStatus: d.lastStatus,
		Messages: d.messages, Duplicates: d.duplicates, Replayed: d.replayed, EpochChanges: d.epochChanges,
		PrevEpoch: d.prevEpoch, Telemetry: d.telemetry,
		Seq: seqRecord{Epoch: d.seq.epoch, Base: d.seq.base, Watermark: d.seq.watermark, Highest: d.seq.highest,
			Lost: d.seq.lost},
		Cameras: make(map[string]cameraRecord, len(d.cameras)),
	}
	if d.skewKnown {
		ms := d.skew.Milliseconds()
		rec.ClockSkewMs, rec.SkewSince = &ms, d.skewSince
	}
	for _, s := range d.seq.spans {
		rec.Seq.Spans = append(rec.Seq.Spans, [2]uint64{s.lo, s.hi})
	}
	for id, c := range d.cameras {
		rec.Cameras[id] = cameraRecord{Detections: c.detections, Objects: c.objects,
			LastDetection: c.lastDetection, LastReceived: c.lastReceived}
	}
	return rec
}

// fromRecord rebuilds a device from its record, within the registry's limits, checking what
// the seq tracking relies on; now is the load time.
func (r *Registry) fromRecord(rec deviceRecord, now time.Time) (*device, error) {
	if !wire.ValidID(rec.ID) {
		return nil, fmt.Errorf("invalid id %q", rec.ID)
	}
	d := &device{
		id: rec.ID, state: rec.State, version: rec.Version, firstSeen: rec.FirstSeen, lastSeen: rec.LastSeen,
		statusAt: rec.StatusAt, lastStatus: rec.LastStatus, messages: rec.Messages, duplicates: rec.Duplicates,
		replayed: rec.Replayed, epochChanges: rec.EpochChanges, prevEpoch: rec.PrevEpoch, telemetry: rec.Telemetry,
		cameras: map[string]*camera{},
	}
	if rec.ClockSkewMs != nil {
		d.skew, d.skewKnown, d.skewSince = time.Duration(*rec.ClockSkewMs)*time.Millisecond, true, rec.SkewSince
	}
	if d.state == wire.StateOnline {
		d.state, d.lastStatus = "", "" // unknown until the next status, which is applied
	}
	if d.messages == nil {
		d.messages = map[string]uint64{}
	}
	for _, c := range rec.Listed {
		if len(d.listed) < r.opts.MaxCameras && wire.ValidID(c) {
			d.listed = append(d.listed, c)
		}
	}
	if t := d.telemetry; t != nil && len(t.Cameras) > r.opts.MaxCameras {
		t.Cameras = t.Cameras[:r.opts.MaxCameras]
	}

	s := rec.Seq
	t := seqTrack{epoch: s.Epoch, gapTimeout: r.opts.GapTimeout, maxGaps: r.opts.MaxGaps, partial: r.opts.Shared,
		base: s.Base, watermark: s.Watermark, highest: s.Highest, lost: s.Lost}
	prev := s.Watermark + 1 // a span must start above the seq after the one below it
	for _, sp := range s.Spans {
		lo, hi := sp[0], sp[1]
		if lo <= prev || hi < lo || hi > s.Highest {
			return nil, fmt.Errorf("seq: span %d-%d out of order (watermark %d, highest %d)", lo, hi, s.Watermark, s.Highest)
		}
		t.spans = append(t.spans, span{lo: lo, hi: hi, holeAt: now.UnixNano()})
		t.held += hi - lo + 1
		if lo <= t.base {
			t.heldLow += min(hi, t.base) - lo + 1
		}
		prev = hi + 1
	}
	if len(t.spans) == 0 && s.Highest != s.Watermark || len(t.spans) > 0 && t.spans[len(t.spans)-1].hi != s.Highest {
		return nil, fmt.Errorf("seq: highest %d does not match watermark %d and spans", s.Highest, s.Watermark)
	}
	if len(t.spans) > 0 {
		t.nextCheck = now.UnixNano() + int64(t.gapTimeout)
	}
	for len(t.spans) > t.maxGaps {
		t.giveUp(0)
	}
	d.seq = t

	n := int64(r.opts.Window / time.Second)
	for _, id := range slices.Sorted(maps.Keys(rec.Cameras)) {
		if len(d.cameras) >= r.opts.MaxCameras || !wire.ValidID(id) {
			continue
		}
		c := rec.Cameras[id]
		cam := &camera{detections: c.Detections, objects: map[string]uint64{}, lastDetection: c.LastDetection,
			lastReceived: c.LastReceived, firstReceived: now, buckets: make([]bucket, n), bucketSpanSecs: n}
		for label, k := range c.Objects {
			if _, known := cam.objects[label]; !known && len(cam.objects) >= r.opts.MaxLabels {
				label = OtherLabel
			}
			cam.objects[label] += k
		}
		d.cameras[id] = cam
	}
	return d, nil
}
