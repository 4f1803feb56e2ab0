package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// FileName is the registry's file in the fleet's data folder.
const FileName = "registry.db"

// DefaultFlushInterval is how often a saved registry writes its changed devices.
const DefaultFlushInterval = time.Second

// DefaultSharedFlushInterval is how often a shared registry (Options.Shared, on a Store)
// merges what it saw into the store and reloads what the other instances saved. A flush
// costs per device changed, not per message, so a longer interval batches more messages into
// each: at 1,000 devices and 5,000 msg/s, 1 s made the flushes cost about a quarter of what
// decoding the messages costs (BenchmarkSharedRegistryFlush in fleet/postgres); 5 s a fifth
// of that. The other instances' messages show in the view this much later.
const DefaultSharedFlushInterval = 5 * time.Second

// fileFormat marks a registry file; a file without it is refused.
const fileFormat = "vigil.registry/1"

var (
	bucketMeta    = []byte("meta")
	bucketDevices = []byte("devices")
	keyFormat     = []byte("format")
)

// store is the Store behind a registry made with Open or OpenStore, and its flusher goroutine.
//
// Saving is write-behind: HandleMessage only marks the device dirty (or, shared, adds the
// message to the device's delta); every FlushInterval the flusher encodes the dirty devices
// under the registry's lock (memory only) and writes them in one Update outside it, so message
// handling never waits on the store.
type store struct {
	st     Store
	stop   chan struct{}
	done   chan struct{}
	flush  sync.Mutex // one write at a time: the flusher's, Flush's or Close's
	closed bool       // under flush
	cursor int64      // under flush: Load's cursor of the last refresh (shared)
}

// Open returns a registry saved to the bbolt file at path (created when missing), loaded with
// the devices it holds, and starts writing its changes in the background; Close it. It is
// OpenStore on OpenFile(path), except that the file is this instance's alone: with
// Options.Shared (a share group without a shared store) the registry tracks its share of the
// seqs as New does, with no gaps, and saves whole records.
func Open(path string, opts Options) (*Registry, error) {
	st, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	r, err := openStore(st, opts, false)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("registry: load %s: %w", path, err)
	}
	return r, nil
}

// OpenStore returns a registry saved to st, loaded with the devices it holds, and starts
// writing its changes in the background; Close it (which closes st). On an error st is left
// open.
//
// What is saved of each device: its state, version, first and last seen, status time,
// message counts, cameras with their counters, newest telemetry, clock skew, and its seq
// tracking (epoch, watermark, the runs received above it, lost), so a duplicate sent before
// the restart is still recognised after it. Not saved: the detections rates (they start again
// from zero) and the registry-wide counters of Totals (Received, Duplicates, Replayed,
// EpochChanges, Rejected), which restart from zero like any counter of a restarted process.
//
// A device that was offline stays offline. A device that was online is loaded with no state
// ("", counted as StateUnknown) until its next status message: the controller cannot know
// whether it went away while nobody watched; its retained status, delivered again when the
// subscriber subscribes, settles it (and is applied even though it is the same message as
// before). A gap's age starts again at the load: while the controller was down no traffic
// moved past it.
//
// With Options.Shared several registries (one per fleet instance, each seeing a share of every
// device's messages) share st: see shared.go. Each keeps the changes it saw since its last
// flush as a delta, merges it into the saved record under the store's lock (the seqs of all
// instances together, so gaps are found again), and then reloads the records any instance
// changed: every instance shows the same devices, at most about one FlushInterval old.
//
// At most MaxDevices devices are loaded (the first by id); cameras, labels and gaps over their
// limits are dropped. A record that does not decode is an error naming its device.
func OpenStore(st Store, opts Options) (*Registry, error) {
	return openStore(st, opts, opts.Shared)
}

// openStore is OpenStore; merge: st is shared by the instances (see shared.go).
func openStore(st Store, opts Options, merge bool) (*Registry, error) {
	if merge && opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultSharedFlushInterval
	}
	r := New(opts)
	if merge {
		r.pending = map[string]*delta{}
	} else {
		r.dirty = map[string]struct{}{}
	}
	recs, cursor, err := st.Load(context.Background(), 0)
	if err != nil {
		return nil, err
	}
	now := r.opts.Now()
	skipped := 0
	for _, rec := range recs {
		if len(r.devices) >= r.opts.MaxDevices {
			skipped++
			continue
		}
		d, err := r.decodeRecord(rec, now, !merge)
		if err != nil {
			return nil, err
		}
		r.devices[d.id] = d
	}
	if skipped > 0 {
		r.opts.Logger.Warn("registry: the store holds more devices than max_devices; the rest are not loaded",
			"component", "registry", "max_devices", r.opts.MaxDevices, "skipped", skipped)
	}
	r.store = &store{st: st, stop: make(chan struct{}), done: make(chan struct{}), cursor: cursor}
	go r.flusher()
	return r, nil
}

// decodeRecord rebuilds a device from its saved record; restart: see fromRecord.
func (r *Registry) decodeRecord(rec Record, now time.Time, restart bool) (*device, error) {
	var dr deviceRecord
	if err := json.Unmarshal(rec.Data, &dr); err != nil {
		return nil, fmt.Errorf("device %q: %w", rec.ID, err)
	}
	d, err := r.fromRecord(dr, now, restart)
	if err != nil {
		return nil, fmt.Errorf("device %q: %w", rec.ID, err)
	}
	if d.id != rec.ID {
		return nil, fmt.Errorf("device %q: record names %q", rec.ID, d.id)
	}
	return d, nil
}

// Close writes what changed since the last flush and closes the store; changes after it are
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
	if cerr := s.st.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Flush writes the devices changed since the last flush now; the registry also does it every
// FlushInterval and at Close. Shared, it then reloads the devices other instances changed. It
// does nothing for a registry made with New. Devices whose write failed stay to be written by
// the next flush.
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
	if r.pending != nil {
		return r.flushShared()
	}

	r.mu.Lock()
	if len(r.dirty) == 0 {
		r.mu.Unlock()
		return nil
	}
	ids := slices.Sorted(maps.Keys(r.dirty))
	vals := make(map[string][]byte, len(ids))
	var encErr error
	for _, id := range ids {
		if vals[id], encErr = json.Marshal(r.devices[id].record()); encErr != nil {
			break
		}
	}
	clear(r.dirty)
	r.mu.Unlock()
	if encErr != nil {
		r.redirty(ids)
		return fmt.Errorf("registry: encode device: %w", encErr)
	}
	if err := s.st.Update(context.Background(), ids, func(id string, _ []byte) ([]byte, error) { return vals[id], nil }); err != nil {
		r.redirty(ids)
		return err
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

// seqRecord is a saved seqTrack.
type seqRecord struct {
	Epoch     string      `json:"epoch,omitempty"`
	Base      uint64      `json:"base,omitempty"`
	Watermark uint64      `json:"watermark,omitempty"`
	Highest   uint64      `json:"highest,omitempty"`
	Spans     [][2]uint64 `json:"spans,omitempty"` // lo, hi
	// HoleAt is the age (unix ns) of the hole below each span, for the instances sharing a
	// store; a registry loading at its start ignores them (see OpenStore). Older records lack it.
	HoleAt []int64 `json:"hole_at,omitempty"`
	Lost   uint64  `json:"lost,omitempty"`
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
		PrevEpoch: d.prevEpoch, Telemetry: d.telemetry, Seq: d.seq.record(),
		Cameras: make(map[string]cameraRecord, len(d.cameras)),
	}
	if d.skewKnown {
		ms := d.skew.Milliseconds()
		rec.ClockSkewMs, rec.SkewSince = &ms, d.skewSince
	}
	for id, c := range d.cameras {
		rec.Cameras[id] = cameraRecord{Detections: c.detections, Objects: c.objects,
			LastDetection: c.lastDetection, LastReceived: c.lastReceived}
	}
	return rec
}

// record is what is saved of t.
func (t *seqTrack) record() seqRecord {
	s := seqRecord{Epoch: t.epoch, Base: t.base, Watermark: t.watermark, Highest: t.highest, Lost: t.lost}
	for _, sp := range t.spans {
		s.Spans = append(s.Spans, [2]uint64{sp.lo, sp.hi})
		s.HoleAt = append(s.HoleAt, sp.holeAt)
	}
	return s
}

// trackFromRecord rebuilds a seqTrack, checking what the tracking relies on. With restart
// (a registry loading at its start) every hole's age starts again at now; else the saved ages
// are kept where there are.
func (r *Registry) trackFromRecord(s seqRecord, now time.Time, restart bool) (seqTrack, error) {
	t := seqTrack{epoch: s.Epoch, gapTimeout: r.opts.GapTimeout, maxGaps: r.opts.MaxGaps, partial: r.opts.Shared && r.pending == nil,
		base: s.Base, watermark: s.Watermark, highest: s.Highest, lost: s.Lost}
	prev := s.Watermark + 1 // a span must start above the seq after the one below it
	for i, sp := range s.Spans {
		lo, hi := sp[0], sp[1]
		if lo <= prev || hi < lo || hi > s.Highest {
			return seqTrack{}, fmt.Errorf("seq: span %d-%d out of order (watermark %d, highest %d)", lo, hi, s.Watermark, s.Highest)
		}
		at := now.UnixNano()
		if !restart && len(s.HoleAt) == len(s.Spans) && s.HoleAt[i] <= at {
			at = s.HoleAt[i]
		}
		t.spans = append(t.spans, span{lo: lo, hi: hi, holeAt: at})
		t.held += hi - lo + 1
		if lo <= t.base {
			t.heldLow += min(hi, t.base) - lo + 1
		}
		prev = hi + 1
	}
	if len(t.spans) == 0 && s.Highest != s.Watermark || len(t.spans) > 0 && t.spans[len(t.spans)-1].hi != s.Highest {
		return seqTrack{}, fmt.Errorf("seq: highest %d does not match watermark %d and spans", s.Highest, s.Watermark)
	}
	if len(t.spans) > 0 {
		oldest := t.spans[0].holeAt
		for _, sp := range t.spans {
			oldest = min(oldest, sp.holeAt)
		}
		t.nextCheck = oldest + int64(t.gapTimeout)
	}
	for len(t.spans) > t.maxGaps {
		t.giveUp(0)
	}
	return t, nil
}

// fromRecord rebuilds a device from its record, within the registry's limits, checking what
// the seq tracking relies on; now is the load time. With restart (a registry loading at its
// start) a device that was online is unknown until its next status, and holes' ages start
// again; without (a shared registry reloading what the instances saved) the record is taken
// as it is.
func (r *Registry) fromRecord(rec deviceRecord, now time.Time, restart bool) (*device, error) {
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
	if restart && d.state == wire.StateOnline {
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

	t, err := r.trackFromRecord(rec.Seq, now, restart)
	if err != nil {
		return nil, err
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
