// Package liveview is the fleet's "current view" of a camera: it asks a device for one
// camera's next frame with a signed live_view command, and keeps the newest frame each camera
// sent back, in memory, for the dashboard.
//
//	POST /api/v1/devices/{id}/cameras/{camera}/live ──▶ Request ──cmd/live_view (signed)──▶ agent
//	GET  /api/v1/devices/{id}/cameras/{camera}/live.jpg ◀── Frame ◀── Wrap ◀── vigil/v1/<id>/live/<camera>
//
// Requests are rate-limited per camera (the agent limits them too); the frames are JPEGs
// whose header (wire.Picture) names the command they answer.
package liveview

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Defaults of Config.
const (
	DefaultMinInterval = 2 * time.Second
	DefaultTTL         = 30 * time.Second
	DefaultMaxFrames   = 1000
)

// Errors of Request.
var (
	ErrNoKey       = errors.New("live view needs the fleet's signing key (vigil-fleet serve --key)")
	ErrRateLimited = errors.New("live view of this camera asked for too recently")
)

// Config configures Views.
type Config struct {
	Key ed25519.PrivateKey // signs the commands; nil: Request fails with ErrNoKey
	// Publish sends a command (QoS 1) and returns once the broker has it.
	Publish     func(topic string, payload []byte) error
	MinInterval time.Duration    // between two requests for one camera; DefaultMinInterval when zero
	TTL         time.Duration    // a command expires this long after it is issued; DefaultTTL when zero
	MaxFrames   int              // cameras whose newest frame is kept; DefaultMaxFrames when zero
	Now         func() time.Time // time.Now when nil
}

// Frame is a camera's newest live frame.
type Frame struct {
	CmdID      string
	CapturedAt time.Time
	ReceivedAt time.Time
	JPEG       []byte // the message as received: a JPEG with its header in a COM segment
}

// Views holds the live frames and sends the requests. Its methods may be called concurrently.
type Views struct {
	cfg Config

	mu     sync.Mutex
	frames map[string]Frame     // device/camera → newest frame
	asked  map[string]time.Time // device/camera → last request
}

// New returns Views for cfg.
func New(cfg Config) *Views {
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxFrames <= 0 {
		cfg.MaxFrames = DefaultMaxFrames
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Views{cfg: cfg, frames: map[string]Frame{}, asked: map[string]time.Time{}}
}

func key(device, camera string) string { return device + "/" + camera }

// Request sends a signed live_view command for device's camera and returns its id.
func (v *Views) Request(device, camera string) (string, error) {
	if !wire.ValidID(device) || !wire.ValidID(camera) {
		return "", fmt.Errorf("live view: invalid device or camera id")
	}
	if v.cfg.Key == nil || v.cfg.Publish == nil {
		return "", ErrNoKey
	}
	now := v.cfg.Now()
	k := key(device, camera)
	v.mu.Lock()
	if last, ok := v.asked[k]; ok && now.Sub(last) < v.cfg.MinInterval {
		v.mu.Unlock()
		return "", ErrRateLimited
	}
	if len(v.asked) >= 4*v.cfg.MaxFrames { // forget old requests; bounded memory
		for kk, t := range v.asked {
			if now.Sub(t) >= v.cfg.MinInterval {
				delete(v.asked, kk)
			}
		}
	}
	v.asked[k] = now
	v.mu.Unlock()

	var b [12]byte
	_, _ = rand.Read(b[:])
	id := "live-" + hex.EncodeToString(b[:])
	cmd := wire.Command{Schema: wire.SchemaCommand, ID: id, DeviceID: device, Name: wire.CmdLiveView, Camera: camera,
		IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(v.cfg.TTL).UnixMilli()}
	sc, err := wire.Sign(cmd, v.cfg.Key)
	if err != nil {
		return "", fmt.Errorf("live view: sign: %w", err)
	}
	payload, err := json.Marshal(sc)
	if err != nil {
		return "", err
	}
	if err := v.cfg.Publish(wire.Topic(device, wire.KindCmd, wire.CmdLiveView), payload); err != nil {
		return "", fmt.Errorf("live view: %w", err)
	}
	return id, nil
}

// Frame returns the newest frame of device's camera.
func (v *Views) Frame(device, camera string) (Frame, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f, ok := v.frames[key(device, camera)]
	return f, ok
}

// Handler is the MQTT ingest handler (fleet/subscriber's).
type Handler interface {
	HandleMessage(m *wire.Decoded) error
}

// asyncHandler is a Handler that finishes messages later (fleet/subscriber.AsyncHandler).
type asyncHandler interface {
	HandleMessageAsync(m *wire.Decoded, done func()) error
}

// Wrap returns a handler that passes every message to next and keeps the live frames next
// accepted. It keeps next's asynchronous handling when next has it.
func (v *Views) Wrap(next Handler) Handler {
	if _, ok := next.(asyncHandler); ok {
		return asyncTee{tee{next, v}}
	}
	return tee{next, v}
}

type tee struct {
	next Handler
	v    *Views
}

func (t tee) HandleMessage(m *wire.Decoded) error {
	if err := t.next.HandleMessage(m); err != nil {
		return err
	}
	t.v.keep(m.Topic, m.Payload)
	return nil
}

type asyncTee struct{ tee }

func (t asyncTee) HandleMessageAsync(m *wire.Decoded, done func()) error {
	if err := t.next.(asyncHandler).HandleMessageAsync(m, done); err != nil {
		return err
	}
	t.v.keep(m.Topic, m.Payload)
	return nil
}

// keep stores a live frame (the registry has checked it).
func (v *Views) keep(topic string, payload []byte) {
	device, kind, camera, err := wire.ParseTopic(topic)
	if err != nil || kind != wire.KindLive {
		return
	}
	p, err := wire.DecodePicture(payload, wire.MaxPictureBytes)
	if err != nil {
		return
	}
	k := key(device, camera)
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.frames[k]; !ok && len(v.frames) >= v.cfg.MaxFrames {
		var oldest string
		for kk, f := range v.frames {
			if oldest == "" || f.ReceivedAt.Before(v.frames[oldest].ReceivedAt) {
				oldest = kk
			}
		}
		delete(v.frames, oldest)
	}
	v.frames[k] = Frame{CmdID: p.CmdID, CapturedAt: time.UnixMilli(p.CapturedAt).UTC(), ReceivedAt: v.cfg.Now().UTC(),
		JPEG: append([]byte(nil), payload...)}
}
