// Package registry is the fleet controller's in-memory view of its devices, built from the
// MQTT messages the agents publish (see pipeline/wire): for each device whether it is online,
// its version and cameras, and per camera how many detections messages and objects arrived and
// at what rate.
//
// Messages are fed in with [Registry.HandleMessage] as raw topic and payload; anything that does
// not decode and check is counted as rejected by reason, never trusted. A repeat of a message
// (same device and msg_id, seen among the device's last DedupeSize messages) counts once.
// Memory is bounded: devices, cameras per device and labels per camera have limits.
package registry

import (
	"cmp"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Defaults of [Options].
const (
	DefaultWindow     = 10 * time.Second
	DefaultDedupeSize = 256
	DefaultMaxDevices = 10000
	DefaultMaxCameras = 64
	DefaultMaxLabels  = 128
)

// OtherLabel collects objects whose label is over the per-camera label limit or too long.
const OtherLabel = "_other"

const maxLabelLen = 64

// Options tunes a Registry; zero fields take the defaults.
type Options struct {
	Window     time.Duration    // span of the detections rate; whole seconds, at least 1 s
	DedupeSize int              // msg_ids remembered per device
	MaxDevices int              // devices kept; messages of further devices are rejected
	MaxCameras int              // cameras kept per device
	MaxLabels  int              // labels counted per camera; more go to OtherLabel
	Now        func() time.Time // clock; time.Now when nil
}

// Device is a snapshot of one device.
type Device struct {
	ID         string
	Online     bool              // from the last status message (retained; the will says offline)
	State      string            // "online", "offline", or "" before any status message
	Version    string            // agent version from the last status message
	FirstSeen  time.Time         // first accepted message
	LastSeen   time.Time         // last accepted message
	StatusAt   time.Time         // when the last status message arrived
	Messages   map[string]uint64 // accepted messages by kind (status, detections)
	Duplicates uint64            // repeats dropped
	Cameras    []Camera          // sorted by ID: those the status names and those seen sending
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

// Registry is the view of all devices. Its methods may be called from many goroutines at once.
type Registry struct {
	opts Options

	mu       sync.Mutex
	devices  map[string]*device
	rejected map[string]uint64
}

type device struct {
	id         string
	state      string
	version    string
	listed     []string // cameras from the last status message
	firstSeen  time.Time
	lastSeen   time.Time
	statusAt   time.Time
	messages   map[string]uint64
	duplicates uint64
	cameras    map[string]*camera
	recent     ring
}

type camera struct {
	detections     uint64
	objects        map[string]uint64
	lastDetection  time.Time
	lastReceived   time.Time
	firstReceived  time.Time
	buckets        []bucket // one per second of the window, indexed by unix second mod len
	bucketSpanSecs int64
}

type bucket struct {
	sec int64
	n   uint64
}

// ring remembers the last msg_ids of a device.
type ring struct {
	ids  []string
	next int
	set  map[string]struct{}
}

func (r *ring) seen(id string) bool {
	_, ok := r.set[id]
	return ok
}

func (r *ring) add(id string) {
	if old := r.ids[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ids[r.next] = id
	r.set[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ids)
}

// New returns an empty registry.
func New(opts Options) *Registry {
	if opts.Window < time.Second {
		opts.Window = DefaultWindow
	}
	opts.Window = opts.Window.Truncate(time.Second)
	if opts.DedupeSize <= 0 {
		opts.DedupeSize = DefaultDedupeSize
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
	return &Registry{opts: opts, devices: map[string]*device{}, rejected: map[string]uint64{}}
}

// HandleMessage decodes one MQTT message and applies it. A message that does not decode or
// check is counted under its reason and returned as a *RejectError; a repeat is counted as a
// duplicate of its device and returns nil.
func (r *Registry) HandleMessage(topic string, payload []byte) error {
	m, err := decode(topic, payload)
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.countReject(err)
		return err
	}
	if err := r.apply(m, now); err != nil {
		r.countReject(err)
		return err
	}
	return nil
}

func (r *Registry) countReject(err error) {
	var re *RejectError
	if errors.As(err, &re) {
		r.rejected[re.Reason]++
	} else {
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
			recent:    ring{ids: make([]string, r.opts.DedupeSize), set: map[string]struct{}{}},
		}
		// Created only once the message is accepted below, so a rejected first message leaves
		// nothing behind.
	}
	if d.recent.seen(m.header.MsgID) {
		d.duplicates++
		return nil
	}
	switch {
	case m.status != nil:
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
		c, ok := d.cameras[m.camera]
		if !ok {
			if len(d.cameras) >= r.opts.MaxCameras {
				return reject(ReasonTooManyCameras, "device %q: %d cameras", m.device, len(d.cameras))
			}
			n := int64(r.opts.Window / time.Second)
			c = &camera{objects: map[string]uint64{}, buckets: make([]bucket, n), bucketSpanSecs: n, firstReceived: now}
			d.cameras[m.camera] = c
		}
		c.detections++
		for _, o := range m.detections.Objects {
			label := o.Label
			if _, known := c.objects[label]; !known && (len(c.objects) >= r.opts.MaxLabels || label == "" || len(label) > maxLabelLen) {
				label = OtherLabel
			}
			c.objects[label]++
		}
		if at := time.UnixMilli(m.header.CapturedAt).UTC(); m.header.CapturedAt > 0 && at.After(c.lastDetection) {
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
	d.recent.add(m.header.MsgID)
	d.messages[m.kind]++
	d.lastSeen = now
	r.devices[m.device] = d
	return nil
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

// snapshot copies d; r.mu is held.
func (r *Registry) snapshot(d *device, now time.Time) Device {
	out := Device{
		ID:         d.id,
		Online:     d.state == wire.StateOnline,
		State:      d.state,
		Version:    d.version,
		FirstSeen:  d.firstSeen,
		LastSeen:   d.lastSeen,
		StatusAt:   d.statusAt,
		Messages:   maps.Clone(d.messages),
		Duplicates: d.duplicates,
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
			Rate:            c.rate(now),
		})
	}
	return out
}
