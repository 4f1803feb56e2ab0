// Package publish is the last stage: it turns detections into the wire messages of
// pipeline/wire and publishes them over MQTT (paho) with QoS 1, and keeps the device's
// retained status topic true: "online" on every connect, "offline" through the last will.
//
// Back-pressure, not loss: at most MaxInflight messages wait for their PUBACK; past that,
// Publish blocks, the detector waits, and frames drop before detection instead.
package publish

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// TLS configures MQTT over TLS. Files are PEM.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Enabled reports whether any TLS setting is given.
func (t TLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.InsecureSkipVerify }

// Config configures the publisher.
type Config struct {
	DeviceID    string
	URL         string // tcp://host:port, ssl://host:port (or tls://, mqtts://), ws://
	ClientID    string // default DeviceID
	Username    string
	Password    string
	TLS         TLS
	KeepAlive   time.Duration
	MaxInflight int      // messages awaiting PUBACK before Publish blocks; default 256
	Version     string   // agent version, in the status message
	Cameras     []string // in the status message
}

// Publisher publishes Vigil messages to one broker.
type Publisher struct {
	cfg    Config
	client mqtt.Client
	m      *metrics.Metrics
	log    *slog.Logger

	seq    atomic.Uint64
	bootID string

	inflight chan pending
	sendMu   sync.RWMutex // held (read) while sending on inflight; (write) to close it
	wg       sync.WaitGroup
	closing  chan struct{} // closed when Close starts: no new messages
	stopped  chan struct{} // closed after disconnecting: unacknowledged tokens will not complete
	once     sync.Once

	lastErr atomic.Value // string
}

type pending struct {
	tok  mqtt.Token
	kind string
}

// New validates cfg and builds the client; nothing connects until Start.
func New(cfg Config, m *metrics.Metrics, log *slog.Logger) (*Publisher, error) {
	if !wire.ValidID(cfg.DeviceID) {
		return nil, fmt.Errorf("publish: device id %q is not valid", cfg.DeviceID)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = cfg.DeviceID
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 256
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Publisher{cfg: cfg, m: m, log: log.With("component", "mqtt"), bootID: randomID(),
		inflight: make(chan pending, cfg.MaxInflight), closing: make(chan struct{}), stopped: make(chan struct{})}

	will, _ := json.Marshal(wire.Status{Header: p.header(wire.SchemaStatus, time.Now()), State: wire.StateOffline, Version: cfg.Version})
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetKeepAlive(cfg.KeepAlive).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2*time.Second).
		SetMaxReconnectInterval(30*time.Second).
		SetConnectTimeout(10*time.Second).
		SetOrderMatters(false).
		SetBinaryWill(wire.Topic(cfg.DeviceID, wire.KindStatus, ""), will, 1, true).
		SetOnConnectHandler(p.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			m.MQTTConnected.Set(0)
			p.setErr(err)
			p.log.Warn("connection to broker lost", "broker", cfg.URL, "err", err)
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			p.log.Debug("reconnecting to broker", "broker", cfg.URL)
		})
	if cfg.TLS.Enabled() {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tc)
	}
	p.client = mqtt.NewClient(opts)
	return p, nil
}

func tlsConfig(t TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // operator's explicit choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt tls: ca_file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (p *Publisher) setErr(err error) {
	if err != nil {
		p.lastErr.Store(err.Error())
	}
}

// LastError is the last connection error, or "".
func (p *Publisher) LastError() string {
	s, _ := p.lastErr.Load().(string)
	return s
}

// Connected reports whether the client is connected now.
func (p *Publisher) Connected() bool { return p.client.IsConnectionOpen() }

func (p *Publisher) header(schema string, at time.Time) wire.Header {
	seq := p.seq.Add(1)
	return wire.Header{Schema: schema, DeviceID: p.cfg.DeviceID, Seq: seq,
		MsgID: fmt.Sprintf("%s-%s-%d", p.cfg.DeviceID, p.bootID, seq), CapturedAt: at.UTC().UnixMilli()}
}

func (p *Publisher) onConnect(c mqtt.Client) {
	p.m.MQTTConnected.Set(1)
	p.log.Info("connected to broker", "broker", p.cfg.URL)
	st := wire.Status{Header: p.header(wire.SchemaStatus, time.Now()), State: wire.StateOnline, Version: p.cfg.Version, Cameras: p.cfg.Cameras}
	b, _ := json.Marshal(st)
	// Not waited for here: paho calls this on its own goroutine and the PUBACK needs it.
	c.Publish(wire.Topic(p.cfg.DeviceID, wire.KindStatus, ""), 1, true, b)
}

// Start connects in the background (retrying with back-off until Close) and starts the
// goroutine that collects acknowledgements. It returns at once.
func (p *Publisher) Start() {
	p.wg.Add(1)
	go p.collect()
	tok := p.client.Connect()
	p.wg.Add(1)
	go func() { // reports the first failure to connect; paho goes on retrying
		defer p.wg.Done()
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				p.setErr(err)
				p.log.Error("connect to broker", "broker", p.cfg.URL, "err", err)
			}
		case <-p.closing:
		}
	}()
}

// collect waits for each message's PUBACK, in publish order, and counts the outcome.
func (p *Publisher) collect() {
	defer p.wg.Done()
	for pd := range p.inflight {
		select {
		case <-pd.tok.Done():
		case <-p.stopped:
			p.m.PublishFailures.WithLabelValues(pd.kind).Inc()
			continue
		}
		if err := pd.tok.Error(); err != nil {
			p.m.PublishFailures.WithLabelValues(pd.kind).Inc()
			p.setErr(err)
			p.log.Warn("publish failed", "kind", pd.kind, "err", err)
			continue
		}
		p.m.Publishes.WithLabelValues(pd.kind).Inc()
	}
}

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("publisher closed")

// Publish sends payload on topic with QoS 1. It blocks while MaxInflight messages await
// their PUBACK, until ctx is done.
func (p *Publisher) Publish(ctx context.Context, kind, topic string, payload []byte) error {
	p.sendMu.RLock()
	defer p.sendMu.RUnlock()
	select {
	case <-p.closing:
		return ErrClosed
	default:
	}
	tok := p.client.Publish(topic, 1, false, payload)
	select {
	case p.inflight <- pending{tok: tok, kind: kind}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return ErrClosed
	}
}

// PublishDetections encodes d and publishes it on the camera's detections topic. A frame
// without objects sends nothing.
func (p *Publisher) PublishDetections(ctx context.Context, d frame.Detections) error {
	if len(d.Objects) == 0 {
		return nil
	}
	msg := Encode(p.header(wire.SchemaDetections, d.CapturedAt), d)
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode detections: %w", err)
	}
	return p.Publish(ctx, wire.KindDetections, wire.Topic(p.cfg.DeviceID, wire.KindDetections, d.Camera), b)
}

// Encode builds the wire message for d under header h.
func Encode(h wire.Header, d frame.Detections) wire.Detections {
	msg := wire.Detections{
		Header: h, Camera: d.Camera, FrameSeq: d.FrameSeq, FrameWidth: d.Width, FrameHeight: d.Height,
		Model:       wire.Model{Name: d.Model.Name, Version: d.Model.Version, SHA256: d.Model.SHA256},
		InferenceMS: round(float64(d.Inference)/float64(time.Millisecond), 2),
		Objects:     make([]wire.Object, 0, len(d.Objects)),
	}
	w, hgt := float64(max(d.Width, 1)), float64(max(d.Height, 1))
	for _, o := range d.Objects {
		b := o.Box
		msg.Objects = append(msg.Objects, wire.Object{
			Label: o.Label, ClassID: o.ClassID, Score: round(float64(o.Score), 3),
			BoxPx: [4]int{int(math.Round(float64(b.X1))), int(math.Round(float64(b.Y1))), int(math.Round(float64(b.X2))), int(math.Round(float64(b.Y2)))},
			BoxNorm: [4]float64{clamp01(round(float64(b.X1)/w, 4)), clamp01(round(float64(b.Y1)/hgt, 4)),
				clamp01(round(float64(b.X2)/w, 4)), clamp01(round(float64(b.Y2)/hgt, 4))},
		})
	}
	return msg
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func clamp01(v float64) float64 { return min(max(v, 0), 1) }

// Close publishes the retained "offline" status (when connected), waits up to timeout for
// messages in flight, disconnects and stops its goroutines.
func (p *Publisher) Close(timeout time.Duration) {
	p.once.Do(func() {
		close(p.closing)
		if p.client.IsConnectionOpen() {
			st := wire.Status{Header: p.header(wire.SchemaStatus, time.Now()), State: wire.StateOffline, Version: p.cfg.Version}
			b, _ := json.Marshal(st)
			p.client.Publish(wire.Topic(p.cfg.DeviceID, wire.KindStatus, ""), 1, true, b).WaitTimeout(timeout)
		}
		p.sendMu.Lock() // waits out a Publish in progress; none starts after closing
		close(p.inflight)
		p.sendMu.Unlock()
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(timeout):
		}
		p.client.Disconnect(250)
		close(p.stopped)
		p.m.MQTTConnected.Set(0)
		<-done
	})
}
