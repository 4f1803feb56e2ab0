// Package registry is the fleet controller's in-memory view of its devices, built from the
// MQTT messages the agents publish (see pipeline/wire): for each device whether it is online,
// its version and cameras, per camera how many detections messages and objects arrived and at
// what rate, and how complete the device's message stream is.
//
// Messages are fed in with [Registry.HandleMessage] as raw topic and payload; anything that does
// not decode and check is counted as rejected by reason, never trusted.
//
// Delivery is at least once, from the agent's durable outbox: every message but status carries
// a per-device seq (one more per message, all kinds sharing it) and a msg_id
// <device_id>-<epoch>-<seq>, where the epoch names the agent's outbox file. After a reconnect
// the agent replays its backlog (replayed: true) interleaved with live messages, so seqs arrive
// out of order for a while. Per device and epoch the registry keeps a watermark (every seq at
// or below it is accounted for) and the runs of seqs received above it:
//
//   - a seq already accounted for is a duplicate: counted, not applied;
//   - a seq below the highest received that has not arrived is missing; once it has stayed
//     missing for GapTimeout while the seqs around it arrived, it is lost and the watermark
//     moves past it;
//   - a new epoch (the outbox was recreated, seq starts again from 1) resets the tracking, and
//     is counted; what was still missing of the old epoch is lost, and messages of the old
//     epoch arriving later are rejected as stale.
//
// Status messages are outside the sequence: a repeat of the last one (same msg_id, as when the
// broker delivers the retained status again) is a duplicate. Seqs below the first one this
// registry saw of a device are history from before it was watching (e.g. before a restart of
// the controller): accepted once when they arrive, never reported missing nor lost.
//
// Of telemetry the registry keeps each device's newest report (by captured_at: a replayed older
// report does not replace it).
//
// The registry estimates each device's clock skew from its live messages (not replayed, not
// status, which is retained): captured_at minus the time of arrival, the largest of the last
// skewWindow, since delivery delay only lowers it. A device whose skew is beyond
// ClockSkewTolerance either way is counted as skewed. The device's clock is never trusted for
// anything else: the event store orders and ages records by arrival.
//
// Memory is bounded: devices, cameras per device, labels per camera, and open gaps per device
// (past MaxGaps the lowest gap is given up as lost) have limits.
//
// A registry made with [New] lives in memory; one made with [Open] is saved to a bbolt file
// (see persist.go) and survives a restart of the controller; one made with [OpenStore] is
// saved to any [Store], e.g. PostgreSQL (fleet/postgres), and with Options.Shared the fleet
// instances of a share group keep one view of the fleet in it (see shared.go).
package registry

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Defaults of [Options].
const (
	DefaultWindow     = 10 * time.Second
	DefaultGapTimeout = 2 * time.Minute
	DefaultMaxGaps    = 10000
	DefaultMaxDevices = 10000
	DefaultMaxCameras = 64
	DefaultMaxLabels  = 128
	// DefaultClockSkewTolerance is Options.ClockSkewTolerance by default.
	DefaultClockSkewTolerance = 30 * time.Second
)

// skewWindow is how long the clock skew estimate keeps its largest sample.
const skewWindow = time.Minute

// OtherLabel collects objects whose label is over the per-camera label limit or too long.
const OtherLabel = "_other"

// StateUnknown is the state of a device before any status message, in [Totals.Devices].
const StateUnknown = "unknown"

const maxLabelLen = 64

// Options tunes a Registry; zero fields take the defaults.
type Options struct {
	Window     time.Duration // span of the detections rate; whole seconds, at least 1 s
	GapTimeout time.Duration // how long a seq may stay missing before it is counted as lost
	// MaxGaps bounds the gaps (runs of missing seqs) tracked per device; past it the lowest gap
	// is given up as lost. Each costs 24 bytes.
	MaxGaps    int
	MaxDevices int              // devices kept; messages of further devices are rejected
	MaxCameras int              // cameras kept per device
	MaxLabels  int              // labels counted per camera; more go to OtherLabel
	Now        func() time.Time // clock; time.Now when nil
	// ClockSkewTolerance is how far a device's clock may be from the fleet's before the device
	// counts as clock-skewed; DefaultClockSkewTolerance when zero.
	ClockSkewTolerance time.Duration
	// Shared says this registry sees only a share of every device's messages (the fleet runs
	// several instances behind one shared subscription): seq gaps are then no losses, so none
	// is tracked, and a repeat is not recognised here — the event store's msg_id check
	// (fleet/postgres) stores each message once across instances. Status is seen whole.
	Shared bool

	// FlushInterval is how often a registry made with Open or OpenStore writes its changed
	// devices; DefaultFlushInterval when zero (DefaultSharedFlushInterval for a shared
	// registry made with OpenStore). A crash loses at most this much.
	FlushInterval time.Duration
	Logger        *slog.Logger // for background write errors; slog.Default() when nil
}

// Device is a snapshot of one device.
type Device struct {
	ID        string
	Online    bool              // from the last status message (retained; the will says offline)
	State     string            // "online", "offline", or "" before any status message
	Version   string            // agent version from the last status message
	FirstSeen time.Time         // first accepted message
	LastSeen  time.Time         // last accepted message
	StatusAt  time.Time         // when the last status message arrived
	Messages  map[string]uint64 // accepted messages by kind (duplicates not included)
	Cameras   []Camera          // sorted by ID: those the status names and those seen sending
	Telemetry *Telemetry        // the newest telemetry report; nil before any
	Clock
	Stream
}

// Clock is the estimate of a device's clock against the fleet's.
type Clock struct {
	SkewKnown bool          // a live message has given an estimate
	Skew      time.Duration // device clock minus fleet clock (positive: ahead), from captured_at
	Skewed    bool          // |Skew| is beyond Options.ClockSkewTolerance
}

// Telemetry is a device's newest telemetry report (wire.Telemetry), as received.
type Telemetry struct {
	ReceivedAt time.Time
	CapturedAt time.Time // the report's captured_at
	UptimeS    float64
	Board      wire.BoardHealth       // absent sensors are nil
	Outbox     *wire.OutboxHealth     // nil when not reported
	Model      *wire.Model            // the model the cameras run; nil when not reported
	Cameras    []wire.CameraTelemetry // at most MaxCameras, those with a valid id
	Position   *wire.GeoFix           // nil when not reported
}

// Stream describes how complete a device's message stream is.
type Stream struct {
	Duplicates   uint64 // repeats received and dropped
	Replayed     uint64 // messages received with replayed: true (duplicates included)
	Epoch        string // the outbox epoch being tracked, from msg_id
	EpochChanges uint64 // times the epoch changed (the agent's outbox was recreated)
	HighestSeq   uint64 // highest seq received in the epoch
	Watermark    uint64 // every seq of the epoch at or below it arrived or was given up
	Missing      uint64 // seqs below HighestSeq not received yet: they may still arrive
	Lost         uint64 // seqs given up (missing for GapTimeout, or past MaxGaps), all epochs
}

// Camera is a snapshot of one camera of a device.
type Camera struct {
	ID              string
	Detections      uint64            // detections messages received
	Objects         map[string]uint64 // objects by label
	LastDetectionAt time.Time         // captured_at of the newest detections message
	LastReceivedAt  time.Time         // arrival of the last detections message
	Rate            float64           // detections messages per second over the window
}

// Totals sums the registry over all devices, for metrics.
type Totals struct {
	Devices         map[string]int    // devices by state: online, offline, StateUnknown
	DevicesWithGaps int               // devices with at least one seq missing
	Received        map[string]uint64 // messages accepted or dropped as duplicates, by kind
	Duplicates      uint64
	Replayed        uint64
	Missing         uint64
	Lost            uint64
	EpochChanges    uint64
	Rejected        map[string]uint64 // rejected messages by reason
	ClockSkewed     int               // devices whose clock is beyond Options.ClockSkewTolerance
}

// Registry is the view of all devices. Its methods may be called from many goroutines at once.
type Registry struct {
	opts Options

	mu           sync.Mutex
	devices      map[string]*device
	rejected     map[string]uint64
	received     map[string]uint64
	duplicates   uint64
	replayed     uint64
	epochChanges uint64

	// dirty holds the ids of devices changed since the last flush; nil for a registry that
	// is not saved (New).
	dirty map[string]struct{}
	// pending holds each device's delta since the last flush, for a shared registry on a
	// store (see shared.go); nil otherwise.
	pending map[string]*delta
	store   *store // nil for New
}

type device struct {
	id           string
	state        string
	version      string
	listed       []string // cameras from the last status message
	firstSeen    time.Time
	lastSeen     time.Time
	statusAt     time.Time
	lastStatus   string // msg_id of the last status message
	messages     map[string]uint64
	duplicates   uint64
	replayed     uint64
	epochChanges uint64
	prevEpoch    string
	seq          seqTrack
	cameras      map[string]*camera
	telemetry    *Telemetry // never changed once stored: replaced whole
	skew         time.Duration
	skewKnown    bool
	skewSince    time.Time // start of the skew estimate's window
}

type camera struct {
	detections     uint64
	objects        map[string]uint64
	lastDetection  time.Time
	lastReceived   time.Time
	firstReceived  time.Time
	buckets        []bucket // one per second of the window, indexed by unix second mod len
	bucketSpanSecs int64
	samples        []rateSample // saved counts at reloads, oldest first (shared registries)
}

type bucket struct {
	sec int64
	n   uint64
}

// New returns an empty registry.
func New(opts Options) *Registry {
	if opts.Window < time.Second {
		opts.Window = DefaultWindow
	}
	opts.Window = opts.Window.Truncate(time.Second)
	if opts.GapTimeout <= 0 {
		opts.GapTimeout = DefaultGapTimeout
	}
	if opts.MaxGaps <= 0 {
		opts.MaxGaps = DefaultMaxGaps
	}
	if opts.MaxDevices <= 0 {
		opts.MaxDevices = DefaultMaxDevices
	}
	if opts.MaxCameras <= 0 {
		opts.MaxCameras = DefaultMaxCameras
	}
	if opts.MaxLabels <= 0 {
		opts.MaxLabels = DefaultMaxLabels
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClockSkewTolerance <= 0 {
		opts.ClockSkewTolerance = DefaultClockSkewTolerance
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Registry{opts: opts, devices: map[string]*device{}, rejected: map[string]uint64{}, received: map[string]uint64{}}
}

// HandleMessage decodes one MQTT message (wire.Decode) and applies it. A message that does not
// decode is counted under its reason and returned as a *wire.DecodeError; one the registry
// refuses as a *RejectError; a repeat is counted as a duplicate of its device and returns nil.
// The fleet's subscriber decodes once for all its handlers and calls Accept instead.
func (r *Registry) HandleMessage(topic string, payload []byte) error {
	m, err := wire.Decode(topic, payload)
	if err != nil {
		r.mu.Lock()
		r.countReject(err)
		r.mu.Unlock()
		return err
	}
	_, err = r.Accept(m)
	return err
}

// Accept applies one decoded message and tells whether it was new: a duplicate returns false
// and nil. Only a new message should be stored or acted on downstream (see fleet/eventstore,
// fleet/rollout). A refused message is counted under its reason and returned as a
// *RejectError.
func (r *Registry) Accept(d *wire.Decoded) (isNew bool, err error) {
	if !known(d.Kind()) {
		return false, fmt.Errorf("registry: kind %q is not a device kind", d.Kind())
	}
	m := fromDecoded(d)
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch err := r.apply(m, now); {
	case err == errDuplicate:
		return false, nil
	case err != nil:
		r.countReject(err)
		return false, err
	}
	return true, nil
}

// errDuplicate is apply's answer for a repeat, counted already; never returned outside.
var errDuplicate = errors.New("duplicate")

func (r *Registry) countReject(err error) {
	var re *RejectError
	var de *wire.DecodeError
	switch {
	case errors.As(err, &re):
		r.rejected[re.Reason]++
	case errors.As(err, &de):
		r.rejected[de.Reason]++
	default:
		r.rejected["other"]++
	}
}

// apply records a checked message; r.mu is held.
func (r *Registry) apply(m message, now time.Time) error {
	d, ok := r.devices[m.device]
	if !ok {
		if len(r.devices) >= r.opts.MaxDevices {
			return reject(ReasonTooManyDevices, "device %q: registry holds %d devices", m.device, len(r.devices))
		}
		d = &device{
			id:        m.device,
			firstSeen: now,
			messages:  map[string]uint64{},
			cameras:   map[string]*camera{},
			seq:       seqTrack{gapTimeout: r.opts.GapTimeout, maxGaps: r.opts.MaxGaps, partial: r.opts.Shared},
		}
		// Stored only once the message is accepted below, so a rejected first message leaves
		// nothing behind.
	}

	// Decide first, change nothing until the message is known to be accepted (but gaps that
	// timed out are lost whatever this message is).
	r.expire(d, now)
	dup, newEpoch := false, false
	switch {
	case m.status != nil:
		dup = m.header.MsgID == d.lastStatus
	case d.seq.epoch == "" || m.epoch != d.seq.epoch && m.epoch != d.prevEpoch:
		newEpoch = true
	case m.epoch == d.prevEpoch:
		return reject(ReasonStaleEpoch, "device %q: epoch %q was replaced by %q", m.device, m.epoch, d.seq.epoch)
	case r.opts.Shared:
		// A share of the stream: repeats are recognised by the store's msg_id (see Options).
	default:
		dup = d.seq.seen(m.header.Seq)
	}
	var cam *camera
	if m.detections != nil && !dup {
		cam = d.cameras[m.camera]
		if cam == nil && len(d.cameras) >= r.opts.MaxCameras {
			return reject(ReasonTooManyCameras, "device %q: %d cameras", m.device, len(d.cameras))
		}
	}

	r.devices[m.device] = d
	r.markDirty(d)
	r.received[m.kind]++
	if m.header.Replayed {
		d.replayed++
		r.replayed++
	}
	if dup {
		d.duplicates++
		r.duplicates++
		return errDuplicate
	}
	if m.status == nil && r.pending == nil { // shared on a store: the flush tracks the seqs
		if newEpoch {
			if d.seq.epoch != "" {
				d.epochChanges++
				r.epochChanges++
				d.prevEpoch = d.seq.epoch
			}
			d.seq.start(m.epoch, m.header.Seq, d.seq.epoch == "")
		}
		d.seq.add(m.header.Seq, now)
		d.seq.expire(now)
	}

	switch {
	case m.status != nil:
		d.lastStatus = m.header.MsgID
		d.state = m.status.State
		d.version = m.status.Version
		d.listed = nil
		for _, c := range m.status.Cameras {
			if wire.ValidID(c) && !slices.Contains(d.listed, c) && len(d.listed) < r.opts.MaxCameras {
				d.listed = append(d.listed, c)
			}
		}
		d.statusAt = now
	case m.detections != nil:
		if cam == nil {
			n := int64(r.opts.Window / time.Second)
			cam = &camera{objects: map[string]uint64{}, buckets: make([]bucket, n), bucketSpanSecs: n, firstReceived: now}
			d.cameras[m.camera] = cam
		}
		cam.record(m.detections, now, r.opts.MaxLabels)
	case m.telemetry != nil:
		at := time.UnixMilli(m.telemetry.CapturedAt).UTC()
		if d.telemetry == nil || !at.Before(d.telemetry.CapturedAt) {
			d.telemetry = newTelemetry(m.telemetry, at, now, r.opts.MaxCameras)
		}
	}
	if m.status == nil && !m.header.Replayed && m.header.CapturedAt > 0 {
		d.sampleSkew(time.UnixMilli(m.header.CapturedAt).Sub(now), now)
	}
	d.messages[m.kind]++
	d.lastSeen = now
	if r.pending != nil {
		r.note(d, m, now)
	}
	return nil
}

// sampleSkew adds one live message's captured_at minus its arrival to the skew estimate: the
// largest sample of the current window.
func (d *device) sampleSkew(s time.Duration, now time.Time) {
	if !d.skewKnown || now.Sub(d.skewSince) > skewWindow || now.Before(d.skewSince) {
		d.skew, d.skewKnown, d.skewSince = s, true, now
		return
	}
	d.skew = max(d.skew, s)
}

// clock is d's clock estimate; r.mu is held.
func (r *Registry) clock(d *device) Clock {
	if !d.skewKnown {
		return Clock{}
	}
	return Clock{SkewKnown: true, Skew: d.skew, Skewed: d.skew.Abs() > r.opts.ClockSkewTolerance}
}

// record counts one detections message.
func (c *camera) record(m *wire.Detections, now time.Time, maxLabels int) {
	c.detections++
	for _, o := range m.Objects {
		label := o.Label
		if _, known := c.objects[label]; !known && (len(c.objects) >= maxLabels || label == "" || len(label) > maxLabelLen) {
			label = OtherLabel
		}
		c.objects[label]++
	}
	if at := time.UnixMilli(m.CapturedAt).UTC(); m.CapturedAt > 0 && at.After(c.lastDetection) {
		c.lastDetection = at
	}
	c.lastReceived = now
	sec := now.Unix()
	b := &c.buckets[mod(sec, c.bucketSpanSecs)]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.n++
}

func mod(a, n int64) int64 {
	m := a % n
	if m < 0 {
		m += n
	}
	return m
}

// rate is the camera's detections messages per second over the window ending now.
func (c *camera) rate(now time.Time) float64 {
	sec := now.Unix()
	var n uint64
	for _, b := range c.buckets {
		if b.sec <= sec && b.sec > sec-c.bucketSpanSecs {
			n += b.n
		}
	}
	if n == 0 {
		return 0
	}
	// The buckets cover the current, partial second and the whole seconds before it.
	span := time.Duration(c.bucketSpanSecs-1)*time.Second + now.Sub(time.Unix(sec, 0))
	if age := now.Sub(c.firstReceived); age < span {
		span = age
	}
	if span < time.Second {
		span = time.Second
	}
	return float64(n) / span.Seconds()
}

// Devices returns a snapshot of every device, sorted by ID.
func (r *Registry) Devices() []Device {
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Device, 0, len(r.devices))
	for _, d := range r.devices {
		out = append(out, r.snapshot(d, now))
	}
	slices.SortFunc(out, func(a, b Device) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Device returns a snapshot of one device, and false when it is unknown.
func (r *Registry) Device(id string) (Device, bool) {
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.devices[id]
	if !ok {
		return Device{}, false
	}
	return r.snapshot(d, now), true
}

// Rejected returns the count of rejected messages by reason.
func (r *Registry) Rejected() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.rejected)
}

// Totals sums the registry over all devices. Gaps that have timed out are counted as lost first.
func (r *Registry) Totals() Totals {
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	t := Totals{
		Devices:      map[string]int{wire.StateOnline: 0, wire.StateOffline: 0, StateUnknown: 0},
		Received:     maps.Clone(r.received),
		Duplicates:   r.duplicates,
		Replayed:     r.replayed,
		EpochChanges: r.epochChanges,
		Rejected:     maps.Clone(r.rejected),
	}
	for _, d := range r.devices {
		r.expire(d, now)
		state := d.state
		if state == "" {
			state = StateUnknown
		}
		t.Devices[state]++
		if n := d.seq.missing(); n > 0 {
			t.Missing += n
			t.DevicesWithGaps++
		}
		t.Lost += d.seq.lost
		if r.clock(d).Skewed {
			t.ClockSkewed++
		}
	}
	return t
}

// snapshot copies d; r.mu is held. Gaps that have timed out are counted as lost first.
func (r *Registry) snapshot(d *device, now time.Time) Device {
	r.expire(d, now)
	out := Device{
		ID:        d.id,
		Online:    d.state == wire.StateOnline,
		State:     d.state,
		Version:   d.version,
		FirstSeen: d.firstSeen,
		LastSeen:  d.lastSeen,
		StatusAt:  d.statusAt,
		Messages:  maps.Clone(d.messages),
		Telemetry: d.telemetry.clone(),
		Clock:     r.clock(d),
		Stream: Stream{
			Duplicates:   d.duplicates,
			Replayed:     d.replayed,
			Epoch:        d.seq.epoch,
			EpochChanges: d.epochChanges,
			HighestSeq:   d.seq.highest,
			Watermark:    d.seq.watermark,
			Missing:      d.seq.missing(),
			Lost:         d.seq.lost,
		},
	}
	ids := slices.Collect(maps.Keys(d.cameras))
	for _, id := range d.listed {
		if _, ok := d.cameras[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out.Cameras = make([]Camera, 0, len(ids))
	for _, id := range ids {
		c, ok := d.cameras[id]
		if !ok {
			out.Cameras = append(out.Cameras, Camera{ID: id, Objects: map[string]uint64{}})
			continue
		}
		out.Cameras = append(out.Cameras, Camera{
			ID:              id,
			Detections:      c.detections,
			Objects:         maps.Clone(c.objects),
			LastDetectionAt: c.lastDetection,
			LastReceivedAt:  c.lastReceived,
			Rate:            r.rate(c, now),
		})
	}
	return out
}

// rate is c's detections rate: this registry's own, or shared, the fleet's from the saved counts.
func (r *Registry) rate(c *camera, now time.Time) float64 {
	if r.pending != nil {
		return c.sharedRate(now, r.opts.Window)
	}
	return c.rate(now)
}

// expire gives up d's gaps that timed out; r.mu is held.
func (r *Registry) expire(d *device, now time.Time) {
	if d.seq.expire(now) {
		r.markDirty(d)
	}
}

// markDirty notes that d changed and is to be saved; r.mu is held.
func (r *Registry) markDirty(d *device) {
	if r.pending != nil {
		r.deltaOf(d.id) // an empty delta: the flush still gives up the holes that timed out
		return
	}
	if r.dirty != nil {
		r.dirty[d.id] = struct{}{}
	}
}

// maxTelemetryString bounds the strings of a telemetry report the registry keeps.
const maxTelemetryString = 128

// newTelemetry keeps what the registry shows of report m, captured at and received now.
func newTelemetry(m *wire.Telemetry, at, now time.Time, maxCameras int) *Telemetry {
	t := &Telemetry{ReceivedAt: now, CapturedAt: at, UptimeS: m.UptimeS, Outbox: m.Outbox, Position: m.Geo}
	if m.Board != nil {
		t.Board = *m.Board
	}
	if m.Model != nil {
		t.Model = &wire.Model{Name: clip(m.Model.Name), Version: clip(m.Model.Version), SHA256: clip(m.Model.SHA256)}
	}
	if t.Position != nil {
		t.Position.Source = clip(t.Position.Source)
	}
	for _, c := range m.Cameras {
		if len(t.Cameras) >= maxCameras {
			break
		}
		if wire.ValidID(c.ID) {
			c.State = clip(c.State)
			t.Cameras = append(t.Cameras, c)
		}
	}
	return t
}

func clip(s string) string {
	if len(s) > maxTelemetryString {
		return s[:maxTelemetryString]
	}
	return s
}

// clone copies t deeply, so that a snapshot shares nothing with the registry.
func (t *Telemetry) clone() *Telemetry {
	if t == nil {
		return nil
	}
	c := *t
	c.Board = wire.BoardHealth{CPUTempC: ptr(t.Board.CPUTempC), Throttled: ptr(t.Board.Throttled), Load1: ptr(t.Board.Load1),
		CPUUsage: ptr(t.Board.CPUUsage), MemTotal: ptr(t.Board.MemTotal), MemAvailable: ptr(t.Board.MemAvailable),
		DiskFree: ptr(t.Board.DiskFree)}
	c.Outbox, c.Model, c.Position = ptr(t.Outbox), ptr(t.Model), ptr(t.Position)
	c.Cameras = slices.Clone(t.Cameras)
	return &c
}

// ptr returns a pointer to a copy of *p, or nil.
func ptr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
