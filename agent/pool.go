package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/onnx"
	"github.com/vigil-edge/vigil/pipeline/detect"
	"github.com/vigil-edge/vigil/pipeline/metrics"
)

// pools are the agent's detector pools: one per model its cameras run, each of the model's
// pool_size sessions (default one per CPU core), shared by every camera of that model.
type pools struct {
	byKey map[string]*detect.Pool
	errs  map[string]error // models that could not be opened, for their cameras
	main  *detect.Pool     // the agent's own model (model:), which fleet updates replace; may be nil
}

// poolKey identifies a model configuration: cameras with the same one share a pool.
func poolKey(mc config.Model) string {
	return strings.Join([]string{mc.Manifest, mc.Dir, strconv.Itoa(mc.Threads), poolSize(mc), strconv.Itoa(mc.BatchSize), strconv.FormatBool(mc.Pairs())}, "\x00")
}

// poolLabel names a pool in metrics: "default" for the agent's model, else the manifest's
// file name.
func poolLabel(mc config.Model, main bool) string {
	if main {
		return "default"
	}
	return strings.TrimSuffix(filepath.Base(mc.Manifest), filepath.Ext(mc.Manifest))
}

// openPools opens a pool for each model the enabled cameras use. fleetModel, when not nil, is
// the model the fleet installed: the agent's model pool runs it. A model that cannot be opened
// is remembered, and its cameras fail with the reason; the others go on.
func (a *Agent) openPools(fleetModel *models.Manifest) *pools {
	ps := &pools{byKey: map[string]*detect.Pool{}, errs: map[string]error{}}
	users := map[string]int{} // cameras per pool
	for _, cam := range a.cfg.Cameras {
		if cam.IsEnabled() {
			mc := a.cfg.Model
			if cam.Model != nil {
				mc = *cam.Model
			}
			users[poolKey(mc)]++
		}
	}
	for i, cam := range a.cfg.Cameras {
		if !cam.IsEnabled() {
			continue
		}
		mc, key, man, main := a.cfg.Model, "model", fleetModel, true
		if cam.Model != nil {
			mc, key, man, main = *cam.Model, fmt.Sprintf("cameras[%d].model", i), nil, false
		}
		k := poolKey(mc)
		if _, ok := ps.byKey[k]; ok {
			continue
		}
		if _, ok := ps.errs[k]; ok {
			continue
		}
		p, err := a.openPool(mc, key, man, poolLabel(mc, main), users[k])
		if err != nil {
			ps.errs[k] = err
			continue
		}
		ps.byKey[k] = p
		if main {
			ps.main = p
		}
	}
	return ps
}

// forCamera returns the pool a camera runs on, or why it has none.
func (ps *pools) forCamera(def config.Model, cam config.Camera) (*detect.Pool, error) {
	mc := def
	if cam.Model != nil {
		mc = *cam.Model
	}
	k := poolKey(mc)
	if p, ok := ps.byKey[k]; ok {
		return p, nil
	}
	return nil, ps.errs[k]
}

// close closes every pool, once its cameras have left it.
func (ps *pools) close() {
	for _, p := range ps.byKey {
		_ = p.Close()
	}
}

// openPool opens mc.Sessions(cameras) sessions of a model (man when given, else mc's
// manifest) and starts a pool on them; key names mc in errors ("model", "cameras[2].model").
// With batch_size b > 1 each session serves b pool workers through a batcher, so that up to b
// cameras' frames share a run.
func (a *Agent) openPool(mc config.Model, key string, man *models.Manifest, label string, cameras int) (*detect.Pool, error) {
	n := mc.Sessions(cameras)
	if n < 1 {
		return nil, fmt.Errorf("'%s.pool_size' must be at least 1, got %d", key, n)
	}
	if man == nil {
		m, err := modelManifest(mc)
		if err != nil {
			return nil, err
		}
		man = &m
	}
	if err := checkBatch(key, mc, *man); err != nil {
		return nil, err
	}
	dets, err := openSessions(mc, man, n)
	if err != nil {
		return nil, err
	}
	wait, frames := a.m.PoolWait.WithLabelValues(label), a.m.PoolDetected.WithLabelValues(label)
	p, err := detect.NewPool(detect.PoolConfig{Taken: func(w time.Duration) {
		wait.Observe(w.Seconds())
		frames.Inc()
	}}, dets)
	if err != nil {
		closeAll(dets)
		return nil, fmt.Errorf("'%s.pool_size': %w", key, err)
	}
	if err := metrics.WatchPool(a.reg, label, p.Depth, len(dets)); err != nil && !isAlreadyRegistered(err) {
		a.log.Warn("detector pool metrics", "pool", label, "err", err)
	}
	a.log.Info("detector pool ready", "pool", label, "model", dets[0].Manifest().Name, "sessions", n,
		"threads_per_session", mc.Threads, "batch_size", max(mc.BatchSize, 1), "pair_frames", mc.Pairs())
	return p, nil
}

// openSessions opens n sessions of a model (man, or mc's manifest when nil) at the tracker's score threshold, with no
// labels or NMS threshold of their own: each camera's apply per frame (pooledDetector). With
// batch_size b > 1 it returns b handles per session (onnx.Batcher), with pair_frames 4
// (onnx.NewPairBatcher): mc.WorkersPerSession, one per pool worker.
func openSessions(mc config.Model, man *models.Manifest, n int) ([]models.Detector, error) {
	session := config.Camera{Score: TrackerScore()}
	b := max(mc.BatchSize, 1)
	per := mc.WorkersPerSession()
	if man == nil {
		m, err := modelManifest(mc)
		if err != nil {
			return nil, err
		}
		man = &m
	}
	var dets []models.Detector
	for range n {
		det, err := openManifest(*man, mc.Threads, b, session)
		if err != nil {
			closeAll(dets)
			return nil, err
		}
		var hs []*onnx.BatchHandle
		switch {
		case b > 1:
			_, hs = onnx.NewBatcher(det.(*onnx.Detector), b)
		case per > 1:
			_, hs = onnx.NewPairBatcher(det.(*onnx.Detector), per)
		default:
			dets = append(dets, det)
			continue
		}
		for _, h := range hs {
			dets = append(dets, h)
		}
	}
	return dets, nil
}

// checkBatch refuses a batch size the model cannot take (its manifest must declare
// input.max_batch at least that large; Open checks that the model's batch dimension is
// dynamic).
func checkBatch(key string, mc config.Model, m models.Manifest) error {
	if b := max(mc.BatchSize, 1); b > 1 && m.Input.MaxBatch < b {
		return fmt.Errorf("'%s.batch_size' is %d but model %s takes at most %d frame(s) per run (its manifest declares input.max_batch %d; a fixed batch dimension is 1)",
			key, b, m.Name, max(m.Input.MaxBatch, 1), m.Input.MaxBatch)
	}
	return nil
}

func closeAll(dets []models.Detector) {
	for _, d := range dets {
		_ = d.Close()
	}
}

func isAlreadyRegistered(err error) bool {
	var are prometheus.AlreadyRegisteredError
	return errors.As(err, &are)
}

// poolSize is the pool_size setting as it is written, for poolKey ("" when unset).
func poolSize(mc config.Model) string {
	if mc.PoolSize == nil {
		return ""
	}
	return strconv.Itoa(*mc.PoolSize)
}
