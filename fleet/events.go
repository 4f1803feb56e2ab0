package fleet

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/fleet/web"
)

// EventsConfig configures the event store of a Core (see fleet/store).
//
//	ingest ──▶ eventstore.Recorder ──Accept──▶ registry
//	                 │ new events, alerts, 1 in N detections
//	                 ▼
//	          DATA/events.db ◀── GET /api/v1/events[/export]
type EventsConfig struct {
	// DataDir holds events.db. When empty the store lives in a temporary folder that Close
	// removes: the API answers, but nothing survives a restart.
	DataDir string
	// DetectionsEvery keeps 1 in N detections messages per camera
	// (eventstore.DefaultDetectionsEvery when zero).
	DetectionsEvery int
	// Retention bounds the store (max age 7 days and 1 GiB by default; see eventstore.Options).
	Retention eventstore.Options
	// Postgres, when set, keeps the events in this PostgreSQL database instead of DATA/events.db
	// (see fleet/postgres): several fleet instances can share it. Retention's MaxAge and
	// MaxBytes apply by whole days.
	Postgres string
}

// startEvents opens the event store and returns the ingest handler that feeds it: the
// registry decides what is new, the recorder stores it.
func (c *Core) startEvents(cfg Config) (web.Handler, error) {
	if dsn := cfg.Events.Postgres; dsn != "" {
		ret := cfg.Events.Retention
		s, err := postgres.OpenEvents(context.Background(), dsn, postgres.EventsOptions{MaxAge: ret.MaxAge,
			MaxBytes: ret.MaxBytes, Now: ret.Now, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		c.events = s
		c.recorder = eventstore.NewRecorder(ingestFeed{c}, s, cfg.Events.DetectionsEvery, cfg.Logger)
		return c.recorder, nil
	}
	dir := cfg.Events.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "vigil-fleet-events-")
		if err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		c.eventsTmp, dir = tmp, tmp
	}
	opts := cfg.Events.Retention
	if opts.Logger == nil {
		opts.Logger = cfg.Logger
	}
	s, err := eventstore.Open(filepath.Join(dir, eventstore.FileName), opts)
	if err != nil {
		return nil, err
	}
	c.events = s
	c.recorder = eventstore.NewRecorder(ingestFeed{c}, s, cfg.Events.DetectionsEvery, cfg.Logger)
	return c.recorder, nil
}

// snapshotCollector exports the recorder's snapshot counts.
type snapshotCollector struct {
	r    *eventstore.Recorder
	desc *prometheus.Desc
}

func newSnapshotCollector(r *eventstore.Recorder) prometheus.Collector {
	return snapshotCollector{r: r, desc: prometheus.NewDesc("vigil_fleet_snapshots_total",
		"Event snapshots received, by result: stored, or refused (unknown_event, not_jpeg) or failed.", []string{"result"}, nil)}
}

func (s snapshotCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	for k, v := range s.r.SnapshotStats() {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, float64(v), k)
	}
}

// eventRoutes adds the event store's endpoints to mux.
func (c *Core) eventRoutes(mux *http.ServeMux, cfg Config) {
	api.RegisterEvents(mux, c.events, cfg.Logger)
}

// closeEvents closes the event store, after the subscriber has stopped feeding it, and
// removes its temporary folder.
func (c *Core) closeEvents() error {
	var err error
	if c.recorder != nil {
		c.recorder.Wait() // stores still running for messages received before the subscriber stopped
	}
	if c.events != nil {
		err = c.events.Close()
	}
	if c.eventsTmp != "" {
		_ = os.RemoveAll(c.eventsTmp)
	}
	return err
}

// SnapshotStats counts the event snapshots received, by result (see eventstore.Recorder).
func (c *Core) SnapshotStats() map[string]uint64 { return c.recorder.SnapshotStats() }

// Events is the core's event eventstore.
func (c *Core) Events() eventstore.Store { return c.events }
