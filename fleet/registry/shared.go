package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// A registry opened on a Store with Options.Shared is one of several fleet instances that each
// receive a share of every device's messages (a shared subscription) and keep one fleet view
// in the store:
//
//	message ──▶ view (memory: counters, status, telemetry; answers the API at once)
//	        └─▶ delta (what this instance saw since its last flush, seqs included)
//	every FlushInterval:  Update(devices with a delta): saved record ⊕ delta, under the store's lock
//	                      Load(changed since the last flush): view = saved record ⊕ the newer delta
//
// Merging a delta into the saved record adds the counters, keeps the newest status (by
// arrival), telemetry (by captured_at) and clock estimate, and adds the instance's seqs to
// the record's seq tracking: the tracking sees the seqs of all instances together, so a seq no
// instance received is missing, and lost after GapTimeout, as with one instance. A seq that
// two instances received (a redelivery) is counted as a duplicate when the second delta is
// merged; its message was counted by both (counters are not corrected).
//
// The view's seq tracking is the saved one: a seq received since the last flush shows in it
// after the next. Detections rates are computed from the saved detections counts as they
// change from one reload to the next, so every instance shows the fleet's rate.

// delta is what one instance saw of one device since its last flush.
type delta struct {
	firstSeen, lastSeen time.Time
	status              *statusNote
	messages            map[string]uint64
	replayed            uint64
	epochs              []epochSeqs // in the order first seen
	seqs, seqsDropped   int         // seqs in epochs; seqs not kept past maxDeltaSeqs
	cameras             map[string]*cameraDelta
	telemetry           *Telemetry
	skewKnown           bool
	skew                time.Duration
	skewSince           time.Time
}

type statusNote struct {
	at                    time.Time
	msgID, state, version string
	listed                []string
}

type epochSeqs struct {
	epoch string
	seqs  []uint64
}

type cameraDelta struct {
	detections                  uint64
	objects                     map[string]uint64
	lastDetection, lastReceived time.Time
}

// rateSample is a camera's saved detections count at a reload (shared registries).
type rateSample struct {
	at time.Time
	n  uint64
}

// maxDeltaSeqs bounds the seqs one device's delta holds (8 bytes each): while the store is
// unreachable the deltas keep growing until a flush succeeds; past this the seqs are not kept
// (they will count as missing, then lost) but the counters still are.
const maxDeltaSeqs = 1 << 16

// deltaOf returns id's delta, making it; r.mu is held and r.pending is not nil.
func (r *Registry) deltaOf(id string) *delta {
	dl := r.pending[id]
	if dl == nil {
		dl = &delta{messages: map[string]uint64{}, cameras: map[string]*cameraDelta{}}
		r.pending[id] = dl
	}
	return dl
}

// note adds accepted message m, just applied to the view d, to d's delta; r.mu is held.
func (r *Registry) note(d *device, m message, now time.Time) {
	dl := r.deltaOf(d.id)
	if dl.firstSeen.IsZero() || d.firstSeen.Before(dl.firstSeen) {
		dl.firstSeen = d.firstSeen
	}
	dl.lastSeen = now
	dl.messages[m.kind]++
	if m.header.Replayed {
		dl.replayed++
	}
	switch {
	case m.status != nil:
		dl.status = &statusNote{at: now, msgID: m.header.MsgID, state: d.state, version: d.version, listed: slices.Clone(d.listed)}
	case dl.seqs >= maxDeltaSeqs:
		dl.seqsDropped++
	default:
		dl.seqs++
		if n := len(dl.epochs); n > 0 && dl.epochs[n-1].epoch == m.epoch {
			dl.epochs[n-1].seqs = append(dl.epochs[n-1].seqs, m.header.Seq)
		} else if i := slices.IndexFunc(dl.epochs, func(e epochSeqs) bool { return e.epoch == m.epoch }); i >= 0 {
			dl.epochs[i].seqs = append(dl.epochs[i].seqs, m.header.Seq)
		} else {
			dl.epochs = append(dl.epochs, epochSeqs{epoch: m.epoch, seqs: []uint64{m.header.Seq}})
		}
	}
	if m.detections != nil {
		cd := dl.cameras[m.camera]
		if cd == nil {
			cd = &cameraDelta{objects: map[string]uint64{}}
			dl.cameras[m.camera] = cd
		}
		cd.detections++
		for _, o := range m.detections.Objects {
			label := o.Label
			if label == "" || len(label) > maxLabelLen {
				label = OtherLabel
			}
			cd.objects[label]++
		}
		if at := time.UnixMilli(m.detections.CapturedAt).UTC(); m.detections.CapturedAt > 0 && at.After(cd.lastDetection) {
			cd.lastDetection = at
		}
		cd.lastReceived = now
	}
	if m.telemetry != nil && d.telemetry != nil && d.telemetry.ReceivedAt.Equal(now) {
		dl.telemetry = d.telemetry // replaced whole by this message, never changed after
	}
	if d.skewKnown {
		dl.skewKnown, dl.skew, dl.skewSince = true, d.skew, d.skewSince
	}
}

// absorb adds later, a delta made after dl, to dl (a failed flush puts its deltas back).
func (dl *delta) absorb(later *delta) {
	if dl.firstSeen.IsZero() || !later.firstSeen.IsZero() && later.firstSeen.Before(dl.firstSeen) {
		dl.firstSeen = later.firstSeen
	}
	dl.lastSeen = later.lastSeen
	if later.status != nil {
		dl.status = later.status
	}
	for k, n := range later.messages {
		dl.messages[k] += n
	}
	dl.replayed += later.replayed
	dl.seqsDropped += later.seqsDropped
	for _, e := range later.epochs {
		if dl.seqs+len(e.seqs) > maxDeltaSeqs {
			dl.seqsDropped += len(e.seqs)
			continue
		}
		dl.seqs += len(e.seqs)
		if i := slices.IndexFunc(dl.epochs, func(x epochSeqs) bool { return x.epoch == e.epoch }); i >= 0 {
			dl.epochs[i].seqs = append(dl.epochs[i].seqs, e.seqs...)
		} else {
			dl.epochs = append(dl.epochs, e)
		}
	}
	for id, c := range later.cameras {
		o := dl.cameras[id]
		if o == nil {
			dl.cameras[id] = c
			continue
		}
		o.detections += c.detections
		for l, n := range c.objects {
			o.objects[l] += n
		}
		o.lastDetection = latest(o.lastDetection, c.lastDetection)
		o.lastReceived = latest(o.lastReceived, c.lastReceived)
	}
	if later.telemetry != nil {
		dl.telemetry = later.telemetry
	}
	if later.skewKnown {
		dl.skewKnown, dl.skew, dl.skewSince = true, later.skew, later.skewSince
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// merge adds dl to rec, the saved record of device id (zero when none), within the
// registry's limits. With seqs the delta's seqs go into the record's seq tracking, and holes
// that timed out by now are given up; without (a view rebuilt on a reload) the seqs wait for
// the flush.
func (r *Registry) merge(rec *deviceRecord, id string, dl *delta, now time.Time, seqs bool) error {
	if rec.ID == "" {
		rec.ID = id
	}
	if rec.FirstSeen.IsZero() || !dl.firstSeen.IsZero() && dl.firstSeen.Before(rec.FirstSeen) {
		rec.FirstSeen = dl.firstSeen
	}
	rec.LastSeen = latest(rec.LastSeen, dl.lastSeen)
	if s := dl.status; s != nil && !s.at.Before(rec.StatusAt) {
		rec.StatusAt, rec.LastStatus, rec.State, rec.Version, rec.Listed = s.at, s.msgID, s.state, s.version, s.listed
	}
	if rec.Messages == nil {
		rec.Messages = map[string]uint64{}
	}
	for k, n := range dl.messages {
		rec.Messages[k] += n
	}
	rec.Replayed += dl.replayed
	if rec.Cameras == nil {
		rec.Cameras = map[string]cameraRecord{}
	}
	for _, cid := range slices.Sorted(maps.Keys(dl.cameras)) {
		cd := dl.cameras[cid]
		c, ok := rec.Cameras[cid]
		if !ok && len(rec.Cameras) >= r.opts.MaxCameras {
			continue
		}
		if c.Objects == nil {
			c.Objects = map[string]uint64{}
		}
		c.Detections += cd.detections
		for _, label := range slices.Sorted(maps.Keys(cd.objects)) {
			to := label
			if _, known := c.Objects[label]; !known && len(c.Objects) >= r.opts.MaxLabels {
				to = OtherLabel
			}
			c.Objects[to] += cd.objects[label]
		}
		c.LastDetection = latest(c.LastDetection, cd.lastDetection)
		c.LastReceived = latest(c.LastReceived, cd.lastReceived)
		rec.Cameras[cid] = c
	}
	if t := dl.telemetry; t != nil && (rec.Telemetry == nil || !t.CapturedAt.Before(rec.Telemetry.CapturedAt)) {
		rec.Telemetry = t
	}
	if dl.skewKnown {
		ms := dl.skew.Milliseconds()
		switch {
		case rec.ClockSkewMs == nil || dl.skewSince.After(rec.SkewSince):
			rec.ClockSkewMs, rec.SkewSince = &ms, dl.skewSince
		case dl.skewSince.Equal(rec.SkewSince):
			ms = max(ms, *rec.ClockSkewMs)
			rec.ClockSkewMs = &ms
		}
	}
	if !seqs {
		return nil
	}

	t, err := r.trackFromRecord(rec.Seq, now, false)
	if err != nil {
		return err
	}
	t.partial = false // the saved tracking sees every instance's seqs
	for _, e := range dl.epochs {
		switch {
		case e.epoch == t.epoch:
		case t.epoch != "" && e.epoch == rec.PrevEpoch:
			continue // stale: the device moved on to a newer epoch
		default:
			if t.epoch != "" {
				rec.EpochChanges++
				rec.PrevEpoch = t.epoch
			}
			t.start(e.epoch, slices.Min(e.seqs), t.epoch == "")
		}
		for _, s := range slices.Sorted(slices.Values(e.seqs)) {
			if t.seen(s) {
				rec.Duplicates++
				continue
			}
			t.add(s, now)
		}
	}
	t.expire(now)
	rec.Seq = t.record()
	return nil
}

// flushShared merges the deltas into the store, then reloads what changed; s.flush is held.
func (r *Registry) flushShared() error {
	s := r.store
	r.mu.Lock()
	pend := r.pending
	r.pending = map[string]*delta{}
	r.mu.Unlock()

	now := r.opts.Now()
	if len(pend) > 0 {
		ids := slices.Sorted(maps.Keys(pend))
		err := s.st.Update(context.Background(), ids, func(id string, old []byte) ([]byte, error) {
			var rec deviceRecord
			if old != nil {
				if err := json.Unmarshal(old, &rec); err != nil {
					return nil, err
				}
			}
			if err := r.merge(&rec, id, pend[id], now, true); err != nil {
				return nil, err
			}
			return json.Marshal(rec)
		})
		if err != nil {
			dropped := 0
			r.mu.Lock()
			for id, dl := range pend {
				dropped += dl.seqsDropped
				if later := r.pending[id]; later != nil {
					dl.absorb(later)
				}
				r.pending[id] = dl
			}
			r.mu.Unlock()
			if dropped > 0 {
				err = fmt.Errorf("%w (%d seqs received meanwhile are no longer kept: they will count as lost)", err, dropped)
			}
			return err
		}
	}
	return r.reload(now)
}

// reload rebuilds the view of every device changed in the store since the last reload;
// s.flush is held.
func (r *Registry) reload(now time.Time) error {
	s := r.store
	recs, next, err := s.st.Load(context.Background(), s.cursor)
	if err != nil {
		return err
	}
	decoded := make([]deviceRecord, len(recs))
	for i, rec := range recs {
		if err := json.Unmarshal(rec.Data, &decoded[i]); err != nil {
			r.opts.Logger.Warn("registry: a saved device does not decode; kept as it was", "component", "registry",
				"device", rec.ID, "err", err)
			decoded[i].ID = ""
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, dr := range decoded {
		id := recs[i].ID
		old := r.devices[id]
		if dr.ID != id || old == nil && len(r.devices) >= r.opts.MaxDevices {
			continue
		}
		if dl := r.pending[id]; dl != nil {
			_ = r.merge(&dr, id, dl, now, false) // no seqs: cannot fail
		}
		d, err := r.fromRecord(dr, now, false)
		if err != nil {
			r.opts.Logger.Warn("registry: a saved device does not check; kept as it was", "component", "registry",
				"device", id, "err", err)
			continue
		}
		for cid, c := range d.cameras {
			if old != nil && old.cameras[cid] != nil {
				oc := old.cameras[cid]
				c.buckets, c.firstReceived, c.samples = oc.buckets, oc.firstReceived, oc.samples
			}
			c.sample(now, c.detections, r.opts.Window)
		}
		r.devices[id] = d
	}
	s.cursor = next
	return nil
}

// sample keeps the camera's saved detections count at a reload, for sharedRate.
func (c *camera) sample(now time.Time, n uint64, window time.Duration) {
	c.samples = append(c.samples, rateSample{at: now, n: n})
	for len(c.samples) > 2 && now.Sub(c.samples[1].at) >= window {
		c.samples = c.samples[1:]
	}
}

// sharedRate is the camera's detections messages per second from the saved counts of the
// reloads over the last window; 0 before two reloads a second apart.
func (c *camera) sharedRate(now time.Time, window time.Duration) float64 {
	if len(c.samples) < 2 {
		return 0
	}
	first, last := c.samples[0], c.samples[len(c.samples)-1]
	span := last.at.Sub(first.at)
	if span < time.Second || now.Sub(last.at) > window || last.n < first.n {
		return 0
	}
	return float64(last.n-first.n) / span.Seconds()
}
