package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/modelstore"
	"github.com/vigil-edge/vigil/models/onnx"
	"github.com/vigil-edge/vigil/models/ota"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// openManifest opens a detector for a loaded manifest with a camera's settings, for runs of
// up to batch frames.
func openManifest(man models.Manifest, threads, batch int, cam config.Camera) (models.Detector, error) {
	det, err := onnx.Open(man, onnx.Options{Threads: threads, Score: cam.Score, NMS: cam.NMS, Labels: cam.Labels, Batch: batch})
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
		Logger: a.log})
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

// swapModel runs m on every camera that uses the agent's model: as many sessions as the
// model's detector pool has are opened first, then swapped in at once, between frames. A
// model that lacks a label one of those cameras asks for is refused before anything changes.
func (a *Agent) swapModel(ctx context.Context, m models.Manifest) error {
	a.mu.Lock()
	ps, cams := a.pools, a.cams
	a.mu.Unlock()
	if ps == nil || ps.main == nil {
		a.log.Info("model installed; no running camera uses the agent's model", "model", m.Name, "version", m.Version)
		return nil
	}
	n := 0
	for _, c := range cams {
		if c.cfg.Model != nil || c.pool == nil {
			continue // the camera runs its own model, or is not running
		}
		if err := a.checkCameraModel(c.cfg, m); err != nil {
			return err
		}
		n++
	}
	if err := checkBatch("model", a.cfg.Model, m); err != nil {
		return err
	}
	dets, err := openSessions(a.cfg.Model, &m, ps.main.Size()/a.cfg.Model.WorkersPerSession())
	if err != nil {
		return err
	}
	if err := ps.main.Swap(dets); err != nil {
		a.log.Warn("close the replaced model", "err", err)
	}
	a.tele.setModel(m) // telemetry names the model only once the cameras run it
	a.log.Info("model swapped in", "model", m.Name, "version", m.Version, "cameras", n, "sessions", ps.main.Size())
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
