package agent

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-edge/vigil/hal/board"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// telemetry makes the periodic health report on vigil/v1/<device>/telemetry: board health,
// the outbox, per-camera rates since the previous report, the model and the position.
type telemetry struct {
	mon *board.Monitor

	mu    sync.Mutex
	model *wire.Model // the model the cameras run (the last one opened)

	// owned by run's goroutine
	started time.Time
	prevAt  time.Time
	prev    map[string]camCounts
}

// camCounts are a camera's counters at one report.
type camCounts struct {
	decoded, detected, objects uint64
}

func newTelemetry(diskPath string) *telemetry {
	return &telemetry{mon: board.NewMonitor("/", diskPath), prev: map[string]camCounts{}}
}

// setModel records the model a camera runs; safe for concurrent use.
func (t *telemetry) setModel(m models.Manifest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.model = &wire.Model{Name: m.Name, Version: m.Version, SHA256: m.SHA256}
}

// runTelemetry appends a telemetry message to the outbox every telemetry.interval until ctx
// is done.
func (a *Agent) runTelemetry(ctx context.Context, ob *outbox.Outbox) {
	t := a.tele
	t.started = time.Now()
	t.prevAt = t.started
	t.mon.Read() // the CPU usage of the first report is over the first interval
	tick := time.NewTicker(a.cfg.Telemetry.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			msg := a.telemetryReport(now, ob.Stats())
			if err := a.append(ctx, ob, wire.NewTelemetry(time.Now(), msg)); err != nil {
				if errors.Is(err, context.Canceled) {
					return
				}
				a.log.Error("store telemetry", "err", err)
			}
		}
	}
}

// telemetryReport builds the report at now; the header is filled in when it is stored.
func (a *Agent) telemetryReport(now time.Time, st outbox.Stats) wire.Telemetry {
	t := a.tele
	msg := wire.Telemetry{UptimeS: round(now.Sub(t.started).Seconds(), 1), Board: boardHealth(t.mon.Read())}
	msg.Outbox = &wire.OutboxHealth{Messages: st.Messages, Bytes: st.Bytes}
	if !st.OldestAt.IsZero() {
		msg.Outbox.OldestAgeS = round(math.Max(now.Sub(st.OldestAt).Seconds(), 0), 1)
	}
	t.mu.Lock()
	msg.Model = t.model
	t.mu.Unlock()
	dt := now.Sub(t.prevAt).Seconds()
	for _, c := range a.cameras() {
		s := c.Status()
		cur := camCounts{decoded: s.FramesDecoded, detected: s.Detected}
		for _, l := range c.cfg.Labels {
			cur.objects += counterValue(a.m.Detections.WithLabelValues(s.ID, l))
		}
		p := t.prev[s.ID]
		ct := wire.CameraTelemetry{ID: s.ID, State: s.State, Dropped: s.FramesDropped,
			InferenceErrors: counterValue(a.m.DetectErrors.WithLabelValues(s.ID))}
		if dt > 0 {
			ct.FPS = round(float64(cur.decoded-p.decoded)/dt, 2)
			ct.DetectFPS = round(float64(cur.detected-p.detected)/dt, 2)
			ct.DetectionsPerS = round(float64(cur.objects-p.objects)/dt, 2)
		}
		t.prev[s.ID] = cur
		msg.Cameras = append(msg.Cameras, ct)
	}
	t.prevAt = now
	msg.Geo = a.sensors.position()
	return msg
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) uint64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return uint64(m.Counter.GetValue())
}

// boardHealth keeps the readings the telemetry message carries.
func boardHealth(h board.Health) *wire.BoardHealth {
	b := &wire.BoardHealth{CPUTempC: h.CPUTempC, Load1: h.Load1, CPUUsage: h.CPUUsage,
		MemTotal: h.MemTotalBytes, MemAvailable: h.MemAvailableBytes, DiskFree: h.DiskFreeBytes}
	if now, ok := h.ThrottledNow(); ok {
		b.Throttled = &now
	}
	if b.CPUUsage != nil {
		u := round(*b.CPUUsage, 3)
		b.CPUUsage = &u
	}
	return b
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
