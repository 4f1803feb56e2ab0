package agent

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// healthState remembers the outbox's last append outcome, for Health.
type healthState struct {
	mu        sync.Mutex
	lastErr   error
	lastErrAt time.Time
	lastOKAt  time.Time
}

// appended records one append's outcome (a cancelled append is not recorded).
func (h *healthState) appended(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.lastErr, h.lastErrAt = err, time.Now()
	} else {
		h.lastOKAt = time.Now()
	}
}

// failing returns the last append error when no append has succeeded since.
func (h *healthState) failing() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr != nil && !h.lastOKAt.After(h.lastErrAt) {
		return h.lastErr
	}
	return nil
}

// Health returns what is wrong with the agent now, one line per problem; none means healthy:
//   - every enabled camera is streaming (a file source played to its end counts as done);
//   - the outbox is writable: the last append succeeded (or none failed);
//   - the broker is connected, or the backlog it left is within bounds: its oldest message is
//     younger than http.health_max_backlog and it is under outbox.max_bytes.
//
// It is what /healthz answers (503 with these lines) and is safe for concurrent use.
func (a *Agent) Health() []string {
	var probs []string
	a.mu.Lock()
	pub, ob := a.pub, a.ob
	a.mu.Unlock()
	cams := a.cameras()
	if ob == nil || pub == nil || cams == nil {
		return []string{"agent: starting"}
	}
	for _, c := range cams {
		st := c.Status()
		if st.State == StateStreaming || st.State == StateEnded {
			continue
		}
		p := fmt.Sprintf("camera %s: %s", st.ID, st.State)
		if st.LastError != "" {
			p += ": " + st.LastError
		}
		probs = append(probs, p)
	}
	if err := a.health.failing(); err != nil {
		probs = append(probs, "outbox: not writable: "+err.Error())
	}
	if !pub.Connected() {
		st := ob.Stats()
		age := time.Duration(0)
		if st.Messages > 0 && !st.OldestAt.IsZero() {
			age = time.Since(st.OldestAt)
		}
		if age > a.cfg.HTTP.HealthMaxBacklog || st.Bytes > a.cfg.Outbox.MaxBytes {
			p := fmt.Sprintf("broker: not connected and the backlog is beyond bounds (%d messages, %d bytes, oldest %s, bound %s)",
				st.Messages, st.Bytes, age.Round(time.Second), a.cfg.HTTP.HealthMaxBacklog)
			if e := pub.LastError(); e != "" {
				p += ": " + e
			}
			probs = append(probs, p)
		}
	}
	return probs
}

// serveHealth answers /healthz: 200 "ok", or 503 with one line per problem.
func (a *Agent) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	probs := a.Health()
	if len(probs) == 0 {
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(strings.Join(probs, "\n") + "\n"))
}

// outboxCorrupt counts and logs a stored record skipped because it failed its checksum.
func (a *Agent) outboxCorrupt(seq uint64, err error) {
	a.obc.corrupt.Inc()
	a.log.Error("outbox record is corrupt; skipped and deleted", "seq", seq, "err", err)
}

// outboxRecovered reports an outbox file found corrupt at start and replaced (nil: none): in
// the log, in vigil_outbox_recovered_total, in the status (Status.Outbox.Recovered) and, via
// the publisher, in every status message of this run (outbox_lost), so the fleet counts it.
func (a *Agent) outboxRecovered(r *outbox.Recovery) {
	if r == nil {
		return
	}
	a.obc.recovered.Inc()
	a.log.Error("outbox file was corrupt: moved aside and a new one started; what it held is lost",
		"moved_to", r.MovedTo, "reason", r.Reason)
}

// outboxCounters count the outbox's corruption (vigil_outbox_corrupt_records_total,
// vigil_outbox_recovered_total).
type outboxCounters struct{ corrupt, recovered prometheus.Counter }

func newOutboxCounters(reg prometheus.Registerer) *outboxCounters {
	c := &outboxCounters{
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "vigil", Name: "outbox_corrupt_records_total",
			Help: "Stored outbox records skipped and deleted because they failed their checksum."}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "vigil", Name: "outbox_recovered_total",
			Help: "Outbox files found corrupt at start, moved aside and replaced by a new one (their messages are lost)."}),
	}
	reg.MustRegister(c.corrupt, c.recovered)
	return c
}

// outboxLost is r for the status message.
func outboxLost(r *outbox.Recovery) *wire.OutboxLost {
	if r == nil {
		return nil
	}
	return &wire.OutboxLost{At: r.At.UnixMilli(), Reason: r.Reason, MovedTo: filepath.Base(r.MovedTo)}
}

// sourceProbe is the source's cheap reachability check (an RTSP camera's TCP connect), or nil.
func sourceProbe(src any) func(context.Context) error {
	if p, ok := src.(interface{ Probe(context.Context) error }); ok {
		return p.Probe
	}
	return nil
}
