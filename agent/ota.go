package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/modelstore"
	"github.com/vigil-edge/vigil/models/onnx"
	"github.com/vigil-edge/vigil/models/ota"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// swappable is a camera's detector whose model can be replaced between two frames: Swap waits
// for the frame being detected, if any, then the next frame runs the new model.
type swappable struct {
	mu  sync.Mutex
	det models.Detector
}

func (s *swappable) Detect(ctx context.Context, img models.Image) ([]models.Detection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.det.Detect(ctx, img)
}

func (s *swappable) Manifest() models.Manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.det.Manifest()
}

func (s *swappable) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.det.Close()
}

// swap puts d in and closes the detector it replaces.
func (s *swappable) swap(d models.Detector) {
	s.mu.Lock()
	old := s.det
	s.det = d
	s.mu.Unlock()
	old.Close()
}

// openManifest opens a detector for a loaded manifest with a camera's settings.
func openManifest(man models.Manifest, threads int, cam config.Camera) (models.Detector, error) {
	det, err := onnx.Open(man, onnx.Options{Threads: threads, Score: cam.Score, NMS: cam.NMS, Labels: cam.Labels})
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", man.ModelPath(), err)
	}
	return det, nil
}

// startOTA opens the on-device model store and the command handler when a fleet key is
// pinned. It returns the model the cameras should start on (the store's active one, if any)
// and a stop function.
func (a *Agent) startOTA(ctx context.Context) (active *models.Manifest, stop func(), err error) {
	oc := a.cfg.OTA
	if oc.FleetKey == "" {
		return nil, func() {}, nil
	}
	key, err := oc.PublicKey()
	if err != nil {
		return nil, nil, fmt.Errorf("'ota.fleet_key' %w", err)
	}
	st, err := modelstore.Open(oc.StoreDir)
	if err != nil {
		return nil, nil, fmt.Errorf("model store (ota.store_dir): %w", err)
	}
	h := ota.New(ota.Config{DeviceID: a.cfg.DeviceID, FleetKey: key, Store: st,
		Swap: a.swapModel, Report: a.reportCommand, SelfTestImage: oc.SelfTestImage, Threads: a.cfg.Model.Threads,
		Logger: a.log.With("component", "ota")})
	a.mu.Lock()
	a.ota = h
	a.mu.Unlock()
	if m, ok := st.Active(); ok {
		active = &m
		a.log.Info("starting on the model from the fleet", "model", m.Name, "version", m.Version)
	}
	return active, func() { h.Close() }, nil
}

// handleCommand is the MQTT handler of vigil/v1/<device>/cmd/+; it must not block.
func (a *Agent) handleCommand(topic string, payload []byte) {
	if isLiveView(topic) {
		if reason, err := a.handleLiveView(payload); err != nil {
			a.m.CommandsRejected.WithLabelValues(reason).Inc()
			a.log.Warn("live view ignored", "err", err)
		}
		return
	}
	a.mu.Lock()
	h := a.ota
	a.mu.Unlock()
	if h == nil {
		a.m.CommandsRejected.WithLabelValues("ota_disabled").Inc()
		return
	}
	if err := h.Handle(context.Background(), topic, payload); err != nil {
		a.m.CommandsRejected.WithLabelValues("rejected").Inc()
		a.log.Warn("command ignored", "topic", topic, "err", err)
	}
}

// swapModel runs m on every camera that uses the agent's model. Every new detector is opened
// first; only when all opened are they swapped in, each between two of its camera's frames.
func (a *Agent) swapModel(ctx context.Context, m models.Manifest) error {
	type pending struct {
		cam *camera
		det models.Detector
	}
	var ps []pending
	for _, c := range a.cams {
		if c.cfg.Model != nil || c.det == nil {
			continue // the camera runs its own model, or is not running
		}
		det, err := a.cameraDetector(c.cfg, &m)
		if err != nil {
			for _, p := range ps {
				p.det.Close()
			}
			return err
		}
		ps = append(ps, pending{c, det})
	}
	for _, p := range ps {
		p.cam.det.swap(p.det)
	}
	if len(ps) > 0 {
		a.tele.setModel(m) // telemetry names the model only once the cameras run it
	}
	a.log.Info("model swapped in", "model", m.Name, "version", m.Version, "cameras", len(ps))
	return nil
}

// reportCommand stores a command's progress report for the fleet.
func (a *Agent) reportCommand(r wire.CmdResult) {
	a.mu.Lock()
	ob := a.ob
	a.mu.Unlock()
	if ob == nil {
		return
	}
	if err := a.append(context.Background(), ob, wire.NewCmdResult(time.Now(), r)); err != nil {
		a.log.Error("store command result", "err", err)
	}
}
