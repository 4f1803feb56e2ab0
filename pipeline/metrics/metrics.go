// Package metrics defines Vigil's agent metrics, all under the vigil_ namespace, on a registry
// the caller owns (never the global one). Stages receive a *Metrics and only increment.
// Labels stay low-cardinality: camera, stage, label, kind, reason — never a track or event id.
package metrics

import (
	"errors"
	"github.com/vigil-edge/vigil/internal/version"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every agent metric.
type Metrics struct {
	PacketsReceived  *prometheus.CounterVec   // camera
	FramesDecoded    *prometheus.CounterVec   // camera
	FramesDropped    *prometheus.CounterVec   // camera, stage
	FramesDetected   *prometheus.CounterVec   // camera
	FramesSkipped    *prometheus.CounterVec   // camera
	FramesUndecoded  *prometheus.CounterVec   // camera
	DecodeErrors     *prometheus.CounterVec   // camera
	SourceErrors     *prometheus.CounterVec   // camera, reason
	Reconnects       *prometheus.CounterVec   // camera
	SourceUp         *prometheus.GaugeVec     // camera
	Inference        *prometheus.HistogramVec // camera
	DetectErrors     *prometheus.CounterVec   // camera
	Detections       *prometheus.CounterVec   // camera, label
	Publishes        *prometheus.CounterVec   // kind
	PublishFailures  *prometheus.CounterVec   // kind
	Replayed         *prometheus.CounterVec   // kind
	OutboxDropped    *prometheus.CounterVec   // class, reason
	OutboxErrors     prometheus.Counter
	LineCrossings    *prometheus.CounterVec // camera, rule, direction, label
	Alerts           *prometheus.CounterVec // camera, rule_type
	TracksActive     *prometheus.GaugeVec   // camera
	CommandsRejected *prometheus.CounterVec // reason
	PicturesSent     *prometheus.CounterVec // camera, kind (snapshot, live)
	PicturesSkipped  *prometheus.CounterVec // camera, kind, reason
	MQTTConnected    prometheus.Gauge
	MQTTAttempts     prometheus.Counter
	BuildInfo        *prometheus.GaugeVec // version, goversion

	// Cost and latency of the camera path.
	DeliveryLatency *prometheus.HistogramVec // kind: capture → the broker's PUBACK
	Stage           *prometheus.HistogramVec // camera, stage: decode, queue_wait, inference, analysis
	PoolWait        *prometheus.HistogramVec // pool: a frame's wait for a detector
	PoolDetected    *prometheus.CounterVec   // pool
	HWFallbacks     *prometheus.CounterVec   // camera, hwaccel: hardware decoding asked for, software used
	MotionPlans     *prometheus.CounterVec   // camera, plan, reason: motion-driven detection's decision per frame
	Inferences      *prometheus.CounterVec   // camera: model runs (one per crop, tile or full frame)
}

// Stages of vigil_stage_duration_seconds.
const (
	StageDecode    = "decode"     // one packet through the decoder
	StageQueueWait = "queue_wait" // a frame waiting in its camera's slot for a detector
	StageInference = "inference"  // the camera's detection on a pool detector (letterbox, run, NMS)
	StageAnalysis  = "analysis"   // tracking, rules, events and storing the results
)

// New creates the metrics and registers them, with Go and process collectors, on reg.
func New(reg prometheus.Registerer) *Metrics {
	const ns = "vigil"
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		PacketsReceived: cv("packets_received_total", "Compressed video packets (access units) received from sources.", "camera"),
		FramesDecoded:   cv("frames_decoded_total", "Frames decoded.", "camera"),
		FramesDropped:   cv("frames_dropped_total", "Frames dropped before detection, by the stage that dropped them.", "camera", "stage"),
		FramesDetected:  cv("frames_detected_total", "Frames run through the detector.", "camera"),
		FramesSkipped:   cv("frames_skipped_total", "Frames not offered to the detector because of the camera's detect_fps.", "camera"),
		FramesUndecoded: cv("frames_undecoded_total", "Disposable pictures (no other picture refers to them) not due at the camera's detect_fps, dropped before decoding.", "camera"),
		DecodeErrors:    cv("decode_errors_total", "Packets the decoder rejected.", "camera"),
		SourceErrors:    cv("source_errors_total", "Source sessions that ended in an error, by reason.", "camera", "reason"),
		Reconnects:      cv("source_reconnects_total", "Times a source was reconnected after its session ended.", "camera"),
		SourceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "source_up",
			Help: "Whether the camera's source session is delivering packets (1) or not (0)."}, []string{"camera"}),
		Inference: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "inference_duration_seconds",
			Help:    "Time to run the detector on one frame: preprocessing, inference and decoding.",
			Buckets: []float64{.002, .005, .01, .015, .02, .03, .05, .075, .1, .2, .5, 1}}, []string{"camera"}),
		DetectErrors:    cv("detect_errors_total", "Frames the detector failed on.", "camera"),
		Detections:      cv("detections_total", "Objects detected, by label.", "camera", "label"),
		Publishes:       cv("mqtt_publishes_total", "MQTT messages acknowledged by the broker, by message kind.", "kind"),
		PublishFailures: cv("mqtt_publish_failures_total", "MQTT publishes that failed, by message kind.", "kind"),
		Replayed:        cv("mqtt_replayed_total", "Messages sent from the outbox backlog after a reconnect and acknowledged, by message kind.", "kind"),
		OutboxDropped:   cv("outbox_dropped_total", "Messages dropped from the outbox, by class and reason (full, hard_cap, expired).", "class", "reason"),
		OutboxErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "outbox_append_errors_total",
			Help: "Messages that could not be stored in the outbox (disk errors)."}),
		LineCrossings: cv("line_crossings_total", "Objects that crossed a line rule, by rule, direction and label.", "camera", "rule", "direction", "label"),
		Alerts:        cv("alerts_total", "Alerts raised by behaviour rules, by rule type.", "camera", "rule_type"),
		TracksActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "tracks_active",
			Help: "Confirmed tracks on the camera's last detected frame."}, []string{"camera"}),
		CommandsRejected: cv("commands_rejected_total", "Fleet commands ignored: unsigned or wrongly signed, expired, not for this device, or updates turned off.", "reason"),
		PicturesSent:     cv("pictures_stored_total", "Pictures stored in the outbox for the fleet: event snapshots and live views.", "camera", "kind"),
		PicturesSkipped: cv("pictures_skipped_total", "Pictures not sent to the fleet, by reason (too_large: over snapshots.max_send_bytes; error: encoding or storing failed; rate_limited: a live view asked for too soon).",
			"camera", "kind", "reason"),
		MQTTAttempts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "mqtt_connect_attempts_total",
			Help: "Attempts to connect to the MQTT broker, first connection and reconnections."}),
		MQTTConnected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "mqtt_connected",
			Help: "Whether the agent is connected to its MQTT broker (1) or not (0)."}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
			Help: "Always 1; labels give the agent's version and Go version."}, []string{"version", "goversion"}),
	}
	m.DeliveryLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "delivery_latency_seconds",
		Help:    "Time from a message's capture (its frame) to the broker's acknowledgement (PUBACK), by message kind.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600}}, []string{"kind"})
	m.Stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "stage_duration_seconds",
		Help:    "Time a camera's frames spend in each stage: decode (per packet), queue_wait (for a pooled detector), inference, analysis.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .015, .02, .03, .05, .1, .2, .5, 1}}, []string{"camera", "stage"})
	m.PoolWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "detector_pool_wait_seconds",
		Help:    "Time a frame waits in the detector pool for a free detector, by pool (model).",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1}}, []string{"pool"})
	m.PoolDetected = cv("detector_pool_frames_total", "Frames the detector pool ran, by pool (model).", "pool")
	m.HWFallbacks = cv("hwaccel_fallbacks_total", "Decoder openings that asked for hardware decoding and fell back to software, by the hwaccel asked for.", "camera", "hwaccel")
	m.MotionPlans = cv("motion_plans_total", "Frames due at detect_fps on cameras with motion-driven detection, by what the detector did (none, regions, full_frame) and why.", "camera", "plan", "reason")
	m.Inferences = cv("inferences_total", "Model runs for the camera's frames: one per crop, tile or full frame.", "camera")
	reg.MustRegister(m.DeliveryLatency, m.Stage, m.PoolWait, m.PoolDetected, m.HWFallbacks, m.MotionPlans, m.Inferences)
	reg.MustRegister(m.PacketsReceived, m.FramesDecoded, m.FramesDropped, m.FramesDetected, m.FramesSkipped, m.FramesUndecoded, m.DecodeErrors,
		m.SourceErrors, m.Reconnects, m.SourceUp, m.Inference, m.DetectErrors, m.Detections, m.Publishes,
		m.PublishFailures, m.Replayed, m.OutboxDropped, m.OutboxErrors, m.LineCrossings, m.Alerts, m.TracksActive, m.CommandsRejected, m.PicturesSent, m.PicturesSkipped, m.MQTTConnected, m.MQTTAttempts, m.BuildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.BuildInfo.WithLabelValues(version.Get(), runtime.Version()).Set(1)
	return m
}

// OutboxStats is what WatchOutbox reads at each scrape.
type OutboxStats struct {
	Messages int64
	Bytes    int64
	Oldest   time.Time // zero when empty
}

// WatchOutbox registers gauges that read the outbox's state at scrape time:
// vigil_outbox_pending_messages, vigil_outbox_bytes, vigil_outbox_oldest_age_seconds.
func WatchOutbox(reg prometheus.Registerer, stats func() OutboxStats) {
	gf := func(name, help string, f func(OutboxStats) float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "vigil", Name: name, Help: help},
			func() float64 { return f(stats()) })
	}
	reg.MustRegister(
		gf("outbox_pending_messages", "Messages stored in the outbox and not yet acknowledged by the broker.",
			func(s OutboxStats) float64 { return float64(s.Messages) }),
		gf("outbox_bytes", "Bytes of messages stored in the outbox.", func(s OutboxStats) float64 { return float64(s.Bytes) }),
		gf("outbox_oldest_age_seconds", "Age of the oldest message in the outbox; 0 when it is empty.", func(s OutboxStats) float64 {
			if s.Oldest.IsZero() {
				return 0
			}
			return time.Since(s.Oldest).Seconds()
		}),
	)
}

// WatchPool registers gauges that read a detector pool's state at scrape time:
// vigil_detector_pool_queue_depth (frames waiting for a detector) and
// vigil_detector_pool_detectors (its size), labelled pool.
func WatchPool(reg prometheus.Registerer, pool string, depth func() int, size int) error {
	lbl := prometheus.Labels{"pool": pool}
	return errors.Join(
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "vigil", Name: "detector_pool_queue_depth",
			Help: "Frames waiting in the detector pool for a free detector.", ConstLabels: lbl},
			func() float64 { return float64(depth()) })),
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "vigil", Name: "detector_pool_detectors",
			Help: "Detectors (model sessions) in the pool, shared by its cameras.", ConstLabels: lbl},
			func() float64 { return float64(size) })),
	)
}

// NewUnregistered returns metrics on a throwaway registry, for tests and one-shot commands.
func NewUnregistered() *Metrics { return New(prometheus.NewRegistry()) }
