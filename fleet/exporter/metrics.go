// Package exporter exposes the fleet controller's view as Prometheus metrics under vigil_fleet_,
// on a private registry. Values are read from the device registry at scrape time, so they never
// drift from what the API shows.
//
// Fleet-wide series only by default: their number does not grow with the fleet. Per-device
// series (a device label) are optional, for fleets small enough to afford them.
package exporter

import (
	"log/slog"
	"maps"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/fleet/subscriber"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Source is what the metrics are read from (the registry); its methods may be called
// concurrently.
type Source interface {
	Totals() registry.Totals
	Devices() []registry.Device
}

// Conn reports the MQTT subscriber's state; it may be called concurrently.
type Conn interface {
	Status() subscriber.Status
	Refused() map[string]uint64 // messages wire.Decode refused, by reason
}

// Options tunes the metrics.
type Options struct {
	// PerDevice adds series labelled by device: missing, lost and duplicate seqs. Their count
	// grows with the fleet.
	PerDevice bool
}

// New returns a private registry holding the fleet's metrics and the Go and process
// collectors. conn may be nil.
func New(src Source, conn Conn, opts Options) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(src, conn, opts), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg's metrics in the Prometheus exposition format.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.With("component", "metrics").Handler(), slog.LevelWarn),
	})
}

const ns = "vigil_fleet_"

type collector struct {
	src  Source
	conn Conn
	opts Options

	received, duplicates, replayed, missing, lost, epochChanges, rejected *prometheus.Desc
	devices, gapDevices, connected, skewed                                *prometheus.Desc
	devMissing, devLost, devDuplicates, devSkew                           *prometheus.Desc
}

func newCollector(src Source, conn Conn, opts Options) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(ns+name, help, labels, nil)
	}
	return &collector{
		src: src, conn: conn, opts: opts,
		received:      d("messages_received_total", "Messages from agents that decoded and checked, by kind, duplicates included.", "kind"),
		duplicates:    d("duplicates_total", "Messages dropped as repeats of one already received (delivery is at least once)."),
		replayed:      d("replayed_total", "Messages received with replayed set: sent from an agent's backlog after a reconnect."),
		missing:       d("seq_missing", "Seqs below each device's highest received that have not arrived yet, summed over the fleet; they may still arrive as replays."),
		lost:          d("seq_lost_total", "Seqs given up as lost: missing for longer than the gap timeout, or past the per-device gap limit."),
		epochChanges:  d("epoch_changes_total", "Times a device's outbox epoch changed, restarting its seq from 1."),
		rejected:      d("rejected_total", "Messages rejected, by reason.", "reason"),
		devices:       d("devices", "Devices known, by state from their status message (unknown before any).", "state"),
		gapDevices:    d("devices_with_gaps", "Devices with at least one seq missing."),
		skewed:        d("devices_clock_skewed", "Devices whose clock, estimated from the captured_at of their live messages, is off the fleet's by more than the tolerance."),
		connected:     d("mqtt_connected", "Whether the fleet's MQTT subscriber is connected and subscribed (1) or not (0)."),
		devMissing:    d("device_seq_missing", "Seqs of the device missing below its highest received.", "device"),
		devLost:       d("device_seq_lost_total", "Seqs of the device given up as lost.", "device"),
		devDuplicates: d("device_duplicates_total", "Repeats of the device's messages dropped.", "device"),
		devSkew:       d("device_clock_skew_seconds", "The device's clock minus the fleet's (positive: ahead), estimated from its live messages; absent before any.", "device"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.duplicates, c.replayed, c.missing, c.lost, c.epochChanges,
		c.rejected, c.devices, c.gapDevices, c.skewed} {
		ch <- d
	}
	if c.conn != nil {
		ch <- c.connected
	}
	if c.opts.PerDevice {
		ch <- c.devMissing
		ch <- c.devLost
		ch <- c.devDuplicates
		ch <- c.devSkew
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	t := c.src.Totals()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, k := range registry.Kinds() {
		counter(c.received, t.Received[k], k)
	}
	counter(c.duplicates, t.Duplicates)
	counter(c.replayed, t.Replayed)
	gauge(c.missing, float64(t.Missing))
	counter(c.lost, t.Lost)
	counter(c.epochChanges, t.EpochChanges)
	rejected := maps.Clone(t.Rejected) // the registry's refusals, and the subscriber's (wire.Decode)
	if c.conn != nil {
		for r, n := range c.conn.Refused() {
			rejected[r] += n
		}
	}
	reasons := registry.Reasons()
	for _, r := range reasons {
		counter(c.rejected, rejected[r], r)
	}
	for r, n := range rejected {
		if !slices.Contains(reasons, r) {
			counter(c.rejected, n, r)
		}
	}
	for _, s := range []string{wire.StateOnline, wire.StateOffline, registry.StateUnknown} {
		gauge(c.devices, float64(t.Devices[s]), s)
	}
	gauge(c.gapDevices, float64(t.DevicesWithGaps))
	gauge(c.skewed, float64(t.ClockSkewed))
	if c.conn != nil {
		v := 0.0
		if c.conn.Status().Connected {
			v = 1
		}
		gauge(c.connected, v)
	}
	if c.opts.PerDevice {
		for _, d := range c.src.Devices() {
			gauge(c.devMissing, float64(d.Missing), d.ID)
			counter(c.devLost, d.Lost, d.ID)
			counter(c.devDuplicates, d.Duplicates, d.ID)
			if d.SkewKnown {
				gauge(c.devSkew, d.Skew.Seconds(), d.ID)
			}
		}
	}
}
