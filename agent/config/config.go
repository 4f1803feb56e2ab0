// Package config is the agent's typed configuration. Loading goes defaults → YAML file →
// environment (VIGIL_ prefix) → Validate. Unknown keys, in the file or the environment, are
// errors; every error names its key, e.g. 'cameras[2].detect_fps' must be >= 0.
package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-edge/vigil/internal/redact"
	"github.com/vigil-edge/vigil/pipeline/mask"
	"github.com/vigil-edge/vigil/pipeline/publish"
	"github.com/vigil-edge/vigil/pipeline/rules"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Config is the whole agent configuration.
type Config struct {
	DeviceID  string    `yaml:"device_id"`
	LogLevel  string    `yaml:"log_level"` // debug, info, warn, error
	HTTP      HTTP      `yaml:"http"`
	MQTT      MQTT      `yaml:"mqtt"`
	Outbox    Outbox    `yaml:"outbox"`
	Snapshots Snapshots `yaml:"snapshots"`
	OTA       OTA       `yaml:"ota"`
	Model     Model     `yaml:"model"`
	Cameras   []Camera  `yaml:"cameras"`
	// Drone, GNSS and Telemetry are the sensors and the health report (see hal.go).
	Drone     Drone     `yaml:"drone"`
	GNSS      GNSS      `yaml:"gnss"`
	Telemetry Telemetry `yaml:"telemetry"`
}

// HTTP is the agent's own HTTP server: /metrics, /healthz, /api/v1/status.
type HTTP struct {
	Listen string `yaml:"listen"` // empty disables it
	// HealthMaxBacklog is how old the outbox's oldest message may grow while the broker is
	// away before /healthz says the agent is unhealthy.
	HealthMaxBacklog time.Duration `yaml:"health_max_backlog"`
	// Pprof serves Go's profiler under /debug/pprof/ on the same listener (off by default:
	// profiles show the process's internals; keep the listener on loopback when it is on).
	Pprof bool `yaml:"pprof"`
}

// MQTT is the broker the agent publishes to.
type MQTT struct {
	URL         string        `yaml:"url"`
	ClientID    string        `yaml:"client_id"` // default: device_id
	Username    string        `yaml:"username"`
	Password    string        `yaml:"password"`
	TLS         publish.TLS   `yaml:"tls"`
	KeepAlive   time.Duration `yaml:"keepalive"`
	MaxInflight int           `yaml:"max_inflight"`
}

// Outbox is the store-and-forward queue every outbound message passes through.
type Outbox struct {
	Path         string        `yaml:"path"`           // bbolt file
	MaxBytes     int64         `yaml:"max_bytes"`      // past it, detections, telemetry and event updates are dropped, oldest first
	HardMaxBytes int64         `yaml:"hard_max_bytes"` // past it, events and then alerts are dropped too
	MaxAge       time.Duration `yaml:"max_age"`        // older messages are dropped
	ReplayRate   float64       `yaml:"replay_rate"`    // backlog messages per second after a reconnect; 0 = no limit
}

// Model is the detection model every camera uses unless it names its own.
type Model struct {
	Manifest string `yaml:"manifest"` // path of the model's manifest (JSON)
	Dir      string `yaml:"dir"`      // folder of the model file; default: the manifest's folder
	Threads  int    `yaml:"threads"`  // ONNX Runtime intra-op threads per session
	// PoolSize is how many sessions of the model the detector pool runs, shared by every
	// camera using the model; unset: one per CPU core, but no more than the cameras using it
	// (a camera has one frame in the detector at a time, so more would sit idle).
	PoolSize *int `yaml:"pool_size"`
	// BatchSize is frames per inference run; above 1 only for a model whose manifest declares
	// a dynamic batch dimension (input.max_batch). 0 means 1.
	BatchSize int `yaml:"batch_size"`
	// PairFrames lets two wide frames (16:9; at most onnx.PairMaxLoss of scale lost) of
	// different cameras that wait for the detector at the same moment share one run of a
	// one-frame model, stacked in its square input: under load, about half the inferences for
	// 16:9 cameras, at 89 % of the scale; a frame that finds the detector free runs alone.
	// Unset: on (off with batch_size > 1).
	PairFrames *bool `yaml:"pair_frames"`
}

// Pairs reports whether pair_frames is on: as set, else on unless batch_size > 1.
func (m Model) Pairs() bool {
	if m.PairFrames != nil {
		return *m.PairFrames
	}
	return m.BatchSize <= 1
}

// WorkersPerSession is how many pool workers share one session: batch_size with batches,
// 4 with pair_frames (two pairs: one running, one gathering), else 1.
func (m Model) WorkersPerSession() int {
	switch {
	case m.BatchSize > 1:
		return m.BatchSize
	case m.Pairs():
		return 4
	}
	return 1
}

// Sessions is the size of the detector pool that cameras cameras share: PoolSize, or one per
// CPU core and at most one per camera. Each session costs its memory (~35 MiB for YOLOX-nano).
func (m Model) Sessions(cameras int) int {
	if m.PoolSize != nil {
		return *m.PoolSize
	}
	return max(min(runtime.NumCPU(), cameras), 1)
}

// Camera is one video source and what to detect on it.
type Camera struct {
	ID        string `yaml:"id"`
	URL       string `yaml:"url"`       // rtsp://[user:pass@]host[:port]/path, rtsps://, file path or file://
	Transport string `yaml:"transport"` // RTSP: auto (UDP, then TCP), udp, tcp
	Enabled   *bool  `yaml:"enabled"`   // default true
	// DetectFPS is how many frames per second (of stream time) go to the detector; 0 = all.
	DetectFPS float64  `yaml:"detect_fps"`
	Labels    []string `yaml:"labels"`          // default: person, bicycle, car, motorcycle, bus, truck
	Score     float32  `yaml:"score_threshold"` // 0 = the model's default
	NMS       float32  `yaml:"nms_threshold"`   // 0 = the model's default
	// Watchdog reconnects a source that delivered no decoded frame for this long.
	Watchdog time.Duration `yaml:"watchdog"`
	// QueueSize is the camera's drop-oldest queue in the detector pool, in frames: with 1, the
	// latest frame wins.
	QueueSize int `yaml:"queue_size"`
	// DecoderThreads is libavcodec's thread count for the camera (1: decode on the camera's
	// own goroutine, no added delay; 0: FFmpeg picks from the CPU count).
	DecoderThreads *int `yaml:"decoder_threads"`
	// HWAccel is hardware decoding: none (default), auto, vaapi or v4l2m2m; unavailable
	// hardware falls back to software with a warning (vigil_hwaccel_fallbacks_total).
	HWAccel string `yaml:"hwaccel"`
	// Realtime paces a file source at its frame rate; Loop replays it forever (files only).
	Realtime *bool `yaml:"realtime"`
	Loop     bool  `yaml:"loop"`
	// Model overrides the agent's model for this camera (optional).
	Model *Model `yaml:"model"`
	// Rules are the camera's behaviour rules (zones, lines, loitering, …); see pipeline/rules.
	Rules []rules.Rule `yaml:"rules"`
	// Optics enable geo-referencing of the camera's detections in drone mode; Tiling runs
	// its detector over tiles of each frame (see hal.go). Both optional.
	Optics *Optics `yaml:"optics"`
	Tiling *Tiling `yaml:"tiling"`
	// Motion runs the detector only where and when something moves (see motion.go).
	Motion *Motion `yaml:"motion"`
	// PrivacyMasks are redacted (blurred or blacked out) in every snapshot; Exclude areas are
	// where detections are ignored. Points are normalised (0-1).
	PrivacyMasks []mask.Mask    `yaml:"privacy_masks"`
	Exclude      []mask.Exclude `yaml:"exclude"`
}

// OTA is over-the-air model updates from the fleet. With no fleet key, commands are ignored.
type OTA struct {
	FleetKey      string `yaml:"fleet_key"`       // the fleet's ed25519 public key, base64 (vigil-fleet keygen prints it)
	StoreDir      string `yaml:"store_dir"`       // installed model versions
	SelfTestImage string `yaml:"self_test_image"` // a JPEG/PNG a new model must run on; empty: a synthetic image
}

// PublicKey decodes FleetKey: the fleet's ed25519 public key in standard base64.
func (o OTA) PublicKey() (ed25519.PublicKey, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(o.FleetKey))
	if err != nil {
		return nil, errors.New("must be the fleet's ed25519 public key in base64, as vigil-fleet keygen prints it (it is not base64)")
	}
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("must be the fleet's ed25519 public key in base64, as vigil-fleet keygen prints it (it decodes to %d bytes, want %d)", len(key), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(key), nil
}

// Snapshots is the local store of event snapshots served at /api/v1/snapshots/<event>.jpg.
type Snapshots struct {
	Dir      string `yaml:"dir"`       // empty disables snapshots
	MaxBytes int64  `yaml:"max_bytes"` // the oldest are removed past it
	Quality  int    `yaml:"quality"`   // JPEG quality, 1-100
	MaxWidth int    `yaml:"max_width"` // wider frames are downscaled, 160-7680 pixels
	// Send sends each event's snapshot to the fleet (through the outbox, the class dropped
	// first), on vigil/v1/<device>/snapshots/<camera>/<event id>.
	Send bool `yaml:"send"`
	// MaxSendBytes bounds a snapshot sent to the fleet; a larger one is not sent (counted).
	MaxSendBytes int `yaml:"max_send_bytes"`
}

// DefaultLabels are the labels kept when a camera names none.
var DefaultLabels = []string{"person", "bicycle", "car", "motorcycle", "bus", "truck"}

// Default returns the defaults that a file and the environment override. The HTTP port, 7090,
// is outside Prometheus's own ports (9090-9094) and the 9100-9999 range that its wiki's
// "default port allocations" hands to exporters: the agent shares a box with Prometheus or a
// node_exporter without a clash.
func Default() Config {
	return Config{
		DeviceID: hostnameID(),
		LogLevel: "info",
		HTTP:     HTTP{Listen: "127.0.0.1:7090", HealthMaxBacklog: 5 * time.Minute},
		MQTT:     MQTT{URL: "tcp://127.0.0.1:1883", KeepAlive: 30 * time.Second, MaxInflight: 64},
		Outbox: Outbox{Path: "/var/lib/vigil/outbox.db", MaxBytes: 256 << 20, HardMaxBytes: 320 << 20,
			MaxAge: 7 * 24 * time.Hour, ReplayRate: 500},
		Snapshots: Snapshots{Dir: "/var/lib/vigil/snapshots", MaxBytes: 256 << 20, Quality: 85, MaxWidth: 1280,
			Send: true, MaxSendBytes: 512 << 10},
		OTA:       OTA{StoreDir: "/var/lib/vigil/models"},
		Model:     Model{Manifest: "models/yolox_nano_coco_416.json", Threads: 1},
		Drone:     DefaultDrone(),
		Telemetry: DefaultTelemetry(),
	}
}

func hostnameID() string {
	h, err := os.Hostname()
	if err != nil || !wire.ValidID(h) {
		return "vigil-agent"
	}
	return h
}

// ApplyDefaults fills a camera's unset fields.
func (c *Camera) ApplyDefaults() {
	if c.Transport == "" {
		c.Transport = "auto"
	}
	if c.Enabled == nil {
		t := true
		c.Enabled = &t
	}
	if len(c.Labels) == 0 {
		c.Labels = append([]string(nil), DefaultLabels...)
	}
	if c.Watchdog == 0 {
		c.Watchdog = 10 * time.Second
	}
	if c.QueueSize == 0 {
		c.QueueSize = 1
	}
	if c.DecoderThreads == nil {
		one := 1
		c.DecoderThreads = &one
	}
	if c.HWAccel == "" {
		c.HWAccel = "none"
	}
	if c.Realtime == nil {
		t := true
		c.Realtime = &t
	}
}

// IsEnabled reports whether the camera runs.
func (c Camera) IsEnabled() bool { return c.Enabled == nil || *c.Enabled }

// IsRealtime reports whether a file source is paced at its frame rate.
func (c Camera) IsRealtime() bool { return c.Realtime == nil || *c.Realtime }

// Load reads path (empty: defaults only), applies VIGIL_ environment variables from environ
// (os.Environ() form) and validates. The error lists every problem, one per line.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		if err := Parse(b, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := ApplyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	for i := range cfg.Cameras {
		cfg.Cameras[i].ApplyDefaults()
	}
	return cfg, cfg.Validate()
}

// Parse decodes YAML into cfg over its current values. Unknown keys are errors.
func Parse(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: defaults
		}
		return fmt.Errorf("parse yaml: %w", err)
	}
	return nil
}

// Validate checks the whole configuration without I/O and returns every problem found,
// joined, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("'%s' %s", key, fmt.Sprintf(format, args...)))
	}
	if !wire.ValidID(c.DeviceID) {
		bad("device_id", "must be 1-64 characters of A-Z a-z 0-9 _ . - (got %q)", c.DeviceID)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error (got %q)", c.LogLevel)
	}
	if c.HTTP.HealthMaxBacklog < time.Second {
		bad("http.health_max_backlog", "must be >= 1s")
	}
	if c.MQTT.URL == "" {
		bad("mqtt.url", "is required")
	} else if u, err := url.Parse(c.MQTT.URL); err != nil || u.Host == "" {
		bad("mqtt.url", "must be a URL like tcp://host:1883 or ssl://host:8883 (got %q)", RedactURL(c.MQTT.URL))
	} else {
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		default:
			bad("mqtt.url", "scheme must be tcp, mqtt, ssl, tls, mqtts, ws or wss (got %q)", u.Scheme)
		}
	}
	if c.MQTT.ClientID != "" && len(c.MQTT.ClientID) > 128 {
		bad("mqtt.client_id", "is longer than 128 characters")
	}
	if c.MQTT.KeepAlive < time.Second {
		bad("mqtt.keepalive", "must be >= 1s")
	}
	if c.MQTT.MaxInflight < 1 {
		bad("mqtt.max_inflight", "must be >= 1")
	}
	if (c.MQTT.TLS.CertFile == "") != (c.MQTT.TLS.KeyFile == "") {
		bad("mqtt.tls", "cert_file and key_file must be given together")
	}
	if c.Snapshots.Quality < 1 || c.Snapshots.Quality > 100 {
		bad("snapshots.quality", "must be 1-100 (got %d)", c.Snapshots.Quality)
	}
	if c.Snapshots.MaxWidth < 160 || c.Snapshots.MaxWidth > 7680 {
		bad("snapshots.max_width", "must be 160-7680 pixels (got %d)", c.Snapshots.MaxWidth)
	}
	if c.Snapshots.MaxSendBytes < 16<<10 || c.Snapshots.MaxSendBytes > wire.MaxPictureBytes {
		bad("snapshots.max_send_bytes", "must be 16384-%d: the fleet refuses larger pictures (got %d)", wire.MaxPictureBytes, c.Snapshots.MaxSendBytes)
	}
	if c.Snapshots.Dir != "" && c.Snapshots.MaxBytes < 1<<20 {
		bad("snapshots.max_bytes", "must be >= 1048576 (1 MiB)")
	}
	if c.OTA.FleetKey != "" {
		if _, err := c.OTA.PublicKey(); err != nil {
			bad("ota.fleet_key", "%v", err)
		}
		if c.OTA.StoreDir == "" {
			bad("ota.store_dir", "is required when ota.fleet_key is set")
		}
	}
	if c.Outbox.Path == "" {
		bad("outbox.path", "is required")
	}
	if c.Outbox.MaxBytes < 1<<20 {
		bad("outbox.max_bytes", "must be >= 1048576 (1 MiB)")
	}
	if c.Outbox.HardMaxBytes < c.Outbox.MaxBytes {
		bad("outbox.hard_max_bytes", "must be >= outbox.max_bytes")
	}
	if c.Outbox.MaxAge < time.Minute {
		bad("outbox.max_age", "must be >= 1m")
	}
	if c.Outbox.ReplayRate < 0 {
		bad("outbox.replay_rate", "must be >= 0 (0 = no limit)")
	}
	validModel := func(key string, m Model) {
		if m.Manifest == "" {
			bad(key+".manifest", "is required")
		}
		if m.Threads < 1 || m.Threads > 64 {
			bad(key+".threads", "must be between 1 and 64")
		}
		if m.PoolSize != nil && (*m.PoolSize < 1 || *m.PoolSize > 64) {
			bad(key+".pool_size", "must be between 1 and 64 (leave it out for one session per CPU core), got %d", *m.PoolSize)
		}
		if m.BatchSize < 0 || m.BatchSize > 64 {
			bad(key+".batch_size", "must be between 1 and 64, got %d", m.BatchSize)
		}
		if m.PairFrames != nil && *m.PairFrames && m.BatchSize > 1 {
			bad(key+".pair_frames", "cannot be used with batch_size %d (pairs are for one-frame models)", m.BatchSize)
		}
	}
	validModel("model", c.Model)
	if len(c.Cameras) == 0 {
		bad("cameras", "must list at least one camera")
	}
	seen := map[string]int{}
	for i, cam := range c.Cameras {
		k := fmt.Sprintf("cameras[%d]", i)
		if !wire.ValidID(cam.ID) {
			bad(k+".id", "must be 1-64 characters of A-Z a-z 0-9 _ . - (got %q)", cam.ID)
		} else if j, dup := seen[cam.ID]; dup {
			bad(k+".id", "%q is already used by cameras[%d]", cam.ID, j)
		} else {
			seen[cam.ID] = i
		}
		if err := validSourceURL(cam.URL); err != nil {
			bad(k+".url", "%v", err)
		}
		switch cam.Transport {
		case "auto", "udp", "tcp":
		default:
			bad(k+".transport", "must be auto, udp or tcp (got %q)", cam.Transport)
		}
		if cam.DetectFPS < 0 || cam.DetectFPS > 240 {
			bad(k+".detect_fps", "must be between 0 (every frame) and 240")
		}
		if cam.Score < 0 || cam.Score >= 1 {
			bad(k+".score_threshold", "must be in [0,1) (0 = the model's default)")
		}
		if cam.NMS < 0 || cam.NMS > 1 {
			bad(k+".nms_threshold", "must be in [0,1] (0 = the model's default)")
		}
		if cam.Watchdog < time.Second {
			bad(k+".watchdog", "must be >= 1s")
		}
		if cam.QueueSize < 1 || cam.QueueSize > 100 {
			bad(k+".queue_size", "must be between 1 and 100")
		}
		if cam.DecoderThreads != nil && (*cam.DecoderThreads < 0 || *cam.DecoderThreads > 16) {
			bad(k+".decoder_threads", "must be between 0 (FFmpeg picks) and 16, got %d", *cam.DecoderThreads)
		}
		switch cam.HWAccel {
		case "", "none", "auto", "vaapi", "v4l2m2m":
		default:
			bad(k+".hwaccel", "must be none, auto, vaapi or v4l2m2m (got %q)", cam.HWAccel)
		}
		for j, l := range cam.Labels {
			if strings.TrimSpace(l) == "" {
				bad(fmt.Sprintf("%s.labels[%d]", k, j), "is empty")
			}
		}
		if cam.Model != nil {
			validModel(k+".model", *cam.Model)
		}
		if err := mask.Validate(cam.PrivacyMasks, cam.Exclude); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
		if err := rules.Validate(cam.Rules, cam.Labels); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("%s.%w", k, e))
			}
		}
	}
	errs = append(errs, c.validateHAL()...)
	return errors.Join(errs...)
}

// unjoin splits an errors.Join result into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func validSourceURL(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") {
		return nil // a file path
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("is not a URL: %v", redactErr(err))
	}
	switch u.Scheme {
	case "rtsp", "rtsps":
		if u.Host == "" {
			return errors.New("must name a host: rtsp://host[:port]/path")
		}
	case "file":
		if u.Path == "" {
			return errors.New("must name a file: file:///path/to/video.mp4")
		}
	default:
		return fmt.Errorf("scheme must be rtsp, rtsps or file, or a file path (got %q)", u.Scheme)
	}
	return nil
}

// redactErr drops a URL (which may hold a password) from url.Parse's error.
func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// Redacted returns a copy of the configuration with secrets replaced, for logs and dumps.
func (c Config) Redacted() Config {
	r := c
	if r.MQTT.Password != "" {
		r.MQTT.Password = "REDACTED"
	}
	r.Cameras = append([]Camera(nil), c.Cameras...)
	for i := range r.Cameras {
		r.Cameras[i].URL = RedactURL(r.Cameras[i].URL)
	}
	return r
}

// RedactURL hides the password in a URL (internal/redact: the one helper of agent and fleet).
func RedactURL(s string) string { return redact.URL(s) }

// EnvPrefix prefixes every environment setting.
const EnvPrefix = "VIGIL_"

// ApplyEnv sets fields from VIGIL_ variables: the key path in upper case joined by '_', list
// items by index — VIGIL_DEVICE_ID, VIGIL_MQTT_PASSWORD, VIGIL_CAMERAS_0_URL. Lists of
// strings take comma-separated values (VIGIL_CAMERAS_0_LABELS=person,car). An unknown
// variable is an error naming it.
func ApplyEnv(cfg *Config, environ []string) error {
	var errs []error
	keys := make([]string, 0)
	vals := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		keys = append(keys, k)
		vals[k] = v
	}
	sort.Strings(keys) // camera 0 before camera 1 ...
	for _, k := range keys {
		if err := setPath(reflect.ValueOf(cfg).Elem(), strings.TrimPrefix(k, EnvPrefix), vals[k]); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

var durationType = reflect.TypeOf(time.Duration(0))

// setPath walks v by an upper-case, '_'-joined yaml key path and sets the value.
func setPath(v reflect.Value, path, val string) error {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if path == "" {
		return setScalar(v, val)
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		// Longest matching field name first: MQTT_MAX_INFLIGHT must not stop at MQTT_MAX.
		best, bestLen := -1, 0
		for i := 0; i < t.NumField(); i++ {
			name := strings.ToUpper(strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0])
			if name == "" || name == "-" {
				continue
			}
			if (path == name || strings.HasPrefix(path, name+"_")) && len(name) > bestLen {
				best, bestLen = i, len(name)
			}
		}
		if best < 0 {
			return errors.New("unknown setting")
		}
		return setPath(v.Field(best), strings.TrimPrefix(strings.TrimPrefix(path, strings.ToUpper(strings.Split(t.Field(best).Tag.Get("yaml"), ",")[0])), "_"), val)
	case reflect.Slice:
		idxS, rest, _ := strings.Cut(path, "_")
		idx, err := strconv.Atoi(idxS)
		if err != nil || idx < 0 || idx > 1000 {
			return fmt.Errorf("want a list index, got %q", idxS)
		}
		for v.Len() <= idx {
			v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
		}
		return setPath(v.Index(idx), rest, val)
	default:
		return errors.New("unknown setting")
	}
}

func setScalar(v reflect.Value, val string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("want a duration like 10s: %q", val)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(val)
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("want true or false: %q", val)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer: %q", val)
		}
		v.SetInt(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("want a number: %q", val)
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return errors.New("unknown setting")
		}
		parts := strings.Split(val, ",")
		out := reflect.MakeSlice(v.Type(), 0, len(parts))
		for _, p := range parts {
			out = reflect.Append(out, reflect.ValueOf(strings.TrimSpace(p)))
		}
		v.Set(out)
	case reflect.Struct:
		return errors.New("names a section, not a setting")
	default:
		return errors.New("unknown setting")
	}
	return nil
}
