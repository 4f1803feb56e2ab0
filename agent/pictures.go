package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"strings"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/events"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/mask"
	"github.com/vigil-edge/vigil/pipeline/snapshot"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Pictures for the fleet: each event's snapshot, and a camera's current frame on a signed
// live_view command. Both go through the outbox in frame.ClassSnapshot, the class dropped
// first when it is full, as JPEGs carrying their header (wire.EncodePicture).
//
// An event's snapshot is sent when it is first saved (right after the event's "new" message,
// so the fleet knows the event) and once more when the event ends, if a better frame replaced
// it in between: at most two pictures per event.

// pictureFunc stores one picture message in the outbox; it returns once it is durable.
type pictureFunc func(ctx context.Context, topic string, p wire.Picture, at time.Time, jpeg []byte) error

// liveMinInterval is the least time between two live views of one camera.
const liveMinInterval = time.Second

// Picture kinds, the kind label of vigil_pictures_*_total.
const (
	pictureSnapshot = "snapshot"
	pictureLive     = "live"
)

// errRateLimited: a live view asked for sooner than liveMinInterval after the last one.
var errRateLimited = errors.New("live view rate-limited")

// pictures is a camera's picture state. Everything but the live request runs on the camera's
// detect goroutine.
type pictures struct {
	send      pictureFunc
	snapshots bool              // send event snapshots (snapshots.send, with a snapshot store)
	maxBytes  int               // snapshots.max_send_bytes
	enc       snapshot.Encoding // of live views
	fresh     map[string][]byte // event id → snapshot saved on this frame
	sent      map[string]bool   // event id → a snapshot was sent
	better    map[string][]byte // event id → a snapshot saved after the one sent

	mu       sync.Mutex // the live request, set from the MQTT goroutine
	liveID   string     // the command waiting for a frame
	liveLast time.Time  // when the last live view was asked for
	liveSeen string     // the last command id accepted
}

func newPictures(send pictureFunc, snapshots bool, maxBytes int, enc snapshot.Encoding) *pictures {
	return &pictures{send: send, snapshots: snapshots, maxBytes: maxBytes, enc: enc,
		fresh: map[string][]byte{}, sent: map[string]bool{}, better: map[string][]byte{}}
}

// savedSnapshot notes a snapshot just saved for an event.
func (c *camera) savedSnapshot(eventID string, b []byte) {
	if c.pics != nil && c.pics.snapshots {
		c.pics.fresh[eventID] = b
	}
}

// sendSnapshots sends, after the frame's event messages are stored, the snapshots due: the
// first of each event, and at its end the better one saved since.
func (c *camera) sendSnapshots(ctx context.Context, changes []events.Change) {
	p := c.pics
	if p == nil || !p.snapshots {
		return
	}
	for id, b := range p.fresh {
		if p.sent[id] {
			p.better[id] = b
			continue
		}
		p.sent[id] = true
		c.sendPicture(ctx, pictureSnapshot, wire.SnapshotTopic(c.device, c.cfg.ID, id), wire.Picture{EventID: id}, time.Now(), b)
	}
	clear(p.fresh)
	for _, ch := range changes {
		if ch.Type != wire.EventEnd {
			continue
		}
		id := ch.After.ID
		if b, ok := p.better[id]; ok {
			c.sendPicture(ctx, pictureSnapshot, wire.SnapshotTopic(c.device, c.cfg.ID, id), wire.Picture{EventID: id}, ch.At, b)
		}
		delete(p.sent, id)
		delete(p.better, id)
	}
}

// sendPicture checks the size and stores the picture.
func (c *camera) sendPicture(ctx context.Context, kind, topic string, pic wire.Picture, at time.Time, b []byte) {
	if len(b)+wire.MaxPictureHeader > c.pics.maxBytes {
		c.m.PicturesSkipped.WithLabelValues(c.cfg.ID, kind, "too_large").Inc()
		c.log.Warn("picture not sent: larger than snapshots.max_send_bytes", "kind", kind, "bytes", len(b), "max", c.pics.maxBytes)
		return
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(b)); err == nil {
		pic.Width, pic.Height = cfg.Width, cfg.Height
	}
	pic.Camera = c.cfg.ID
	if err := c.pics.send(ctx, topic, pic, at, b); err != nil {
		c.m.PicturesSkipped.WithLabelValues(c.cfg.ID, kind, "error").Inc()
		c.log.Error("store picture", "kind", kind, "err", err)
		return
	}
	c.m.PicturesSent.WithLabelValues(c.cfg.ID, kind).Inc()
}

// requestLive asks for the camera's next frame, for command id. It fails when a live view
// was asked for less than liveMinInterval ago.
func (c *camera) requestLive(id string, now time.Time) error {
	p := c.pics
	if p == nil {
		return errors.New("live view: pictures are off")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if id == p.liveSeen {
		return fmt.Errorf("live view: command %s seen already", id)
	}
	if now.Sub(p.liveLast) < liveMinInterval {
		c.m.PicturesSkipped.WithLabelValues(c.cfg.ID, pictureLive, "rate_limited").Inc()
		return errRateLimited
	}
	p.liveID, p.liveLast, p.liveSeen = id, now, id
	return nil
}

// wantsImage reports whether a live view waits for the camera's next frame (which then
// needs its pixels).
func (c *camera) wantsImage() bool {
	if c.pics == nil {
		return false
	}
	c.pics.mu.Lock()
	defer c.pics.mu.Unlock()
	return c.pics.liveID != ""
}

// answerLive sends the frame d, with the confirmed tracks' boxes and ids drawn and the
// privacy masks applied, when a live view waits for it.
func (c *camera) answerLive(ctx context.Context, d frame.Detections, tracks []frame.Track) {
	p := c.pics
	if p == nil || !d.Image.Valid() {
		return
	}
	p.mu.Lock()
	id := p.liveID
	p.liveID = ""
	p.mu.Unlock()
	if id == "" {
		return
	}
	var boxes []snapshot.Box
	for _, t := range tracks {
		if t.State != frame.Confirmed || inMask(c.cfg.PrivacyMasks, t, d.Width, d.Height) {
			continue // an object behind a privacy mask stays hidden: no box, no id
		}
		boxes = append(boxes, snapshot.Box{Box: t.Box, Text: fmt.Sprintf("#%d %s", t.ID, t.Label)})
	}
	redact := func(img models.Image) error { return mask.Apply(img, c.cfg.PrivacyMasks) }
	img, err := c.frameBGR(d)
	if err != nil {
		c.m.PicturesSkipped.WithLabelValues(c.cfg.ID, pictureLive, "error").Inc()
		c.log.Warn("live view", "err", err)
		return
	}
	b, err := snapshot.Encode(img, boxes, redact, p.enc)
	if err != nil {
		c.m.PicturesSkipped.WithLabelValues(c.cfg.ID, pictureLive, "error").Inc()
		c.log.Warn("live view", "err", err)
		return
	}
	c.sendPicture(ctx, pictureLive, wire.Topic(c.device, wire.KindLive, c.cfg.ID), wire.Picture{CmdID: id}, d.CapturedAt, b)
}

// pictureSender stores pictures in the outbox ob (the topic is the picture's: see wire.NewPicture).
func (a *Agent) pictureSender() pictureFunc {
	return func(ctx context.Context, _ string, p wire.Picture, at time.Time, b []byte) error {
		a.mu.Lock()
		ob := a.ob
		a.mu.Unlock()
		return a.append(ctx, ob, wire.NewPicture(at, p, b))
	}
}

// isLiveView reports whether a command topic is vigil/v1/<device>/cmd/live_view.
func isLiveView(topic string) bool {
	return strings.HasSuffix(topic, "/"+wire.KindCmd+"/"+wire.CmdLiveView)
}

// handleLiveView checks a live_view command (signed with the pinned fleet key, for this
// device, not expired, naming one of its cameras) and asks that camera for its next frame.
func (a *Agent) handleLiveView(payload []byte) (reason string, err error) {
	if a.cfg.OTA.FleetKey == "" {
		return "live_view_disabled", errors.New("live view needs ota.fleet_key to check the command's signature")
	}
	key, err := a.cfg.OTA.PublicKey()
	if err != nil {
		return "live_view_disabled", fmt.Errorf("ota.fleet_key: %w", err)
	}
	var sc wire.SignedCommand
	if err := json.Unmarshal(payload, &sc); err != nil {
		return "rejected", fmt.Errorf("%w: %v", wire.ErrMalformed, err)
	}
	cmd, err := sc.Verify(key, a.cfg.DeviceID, time.Now())
	if err != nil {
		return "rejected", err
	}
	if cmd.Name != wire.CmdLiveView {
		return "rejected", fmt.Errorf("%w: name %q on the live_view topic", wire.ErrMalformed, cmd.Name)
	}
	for _, c := range a.cameras() {
		if c.cfg.ID == cmd.Camera {
			if err := c.requestLive(cmd.ID, time.Now()); err != nil {
				if errors.Is(err, errRateLimited) {
					return "rate_limited", err
				}
				return "rejected", err
			}
			return "", nil
		}
	}
	return "rejected", fmt.Errorf("live view: no camera %q", cmd.Camera)
}

// inMask reports whether the centre of t's box lies in one of the masks (normalised points).
func inMask(masks []mask.Mask, t frame.Track, w, h int) bool {
	if w <= 0 || h <= 0 {
		return false
	}
	x, y := float64(t.Box.X1+t.Box.X2)/2/float64(w), float64(t.Box.Y1+t.Box.Y2)/2/float64(h)
	for _, m := range masks {
		if m.Points.Contains(x, y) {
			return true
		}
	}
	return false
}
