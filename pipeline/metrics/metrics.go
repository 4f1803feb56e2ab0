// Package metrics defines Vigil's agent metrics, all under the vigil_ namespace, on a registry
// the caller owns (never the global one). Stages receive a *Metrics and only increment.
// Labels stay low-cardinality: camera, stage, label, kind, reason — never a track or event id.
package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every agent metric.
type Metrics struct {
	PacketsReceived *prometheus.CounterVec   // camera
	FramesDecoded   *prometheus.CounterVec   // camera
	FramesDropped   *prometheus.CounterVec   // camera, stage
	FramesDetected  *prometheus.CounterVec   // camera
	FramesSkipped   *prometheus.CounterVec   // camera
	DecodeErrors    *prometheus.CounterVec   // camera
	SourceErrors    *prometheus.CounterVec   // camera, reason
	Reconnects      *prometheus.CounterVec   // camera
	SourceUp        *prometheus.GaugeVec     // camera
	Inference       *prometheus.HistogramVec // camera
	DetectErrors    *prometheus.CounterVec   // camera
	Detections      *prometheus.CounterVec   // camera, label
	Publishes       *prometheus.CounterVec   // kind
	PublishFailures *prometheus.CounterVec   // kind
	MQTTConnected   prometheus.Gauge
	BuildInfo       *prometheus.GaugeVec // version, goversion
}

// Version is the agent's version, set at build time with -ldflags.
var Version = "dev"

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
		MQTTConnected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "mqtt_connected",
			Help: "Whether the agent is connected to its MQTT broker (1) or not (0)."}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
			Help: "Always 1; labels give the agent's version and Go version."}, []string{"version", "goversion"}),
	}
	reg.MustRegister(m.PacketsReceived, m.FramesDecoded, m.FramesDropped, m.FramesDetected, m.FramesSkipped, m.DecodeErrors,
		m.SourceErrors, m.Reconnects, m.SourceUp, m.Inference, m.DetectErrors, m.Detections, m.Publishes,
		m.PublishFailures, m.MQTTConnected, m.BuildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.BuildInfo.WithLabelValues(Version, runtime.Version()).Set(1)
	return m
}

// NewUnregistered returns metrics on a throwaway registry, for tests and one-shot commands.
func NewUnregistered() *Metrics { return New(prometheus.NewRegistry()) }
