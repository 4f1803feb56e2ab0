// Package publish is the last stage: it drains the outbox over MQTT (paho) with QoS 1 and
// deletes each message from the outbox only once the broker has acknowledged it (PUBACK). It
// also keeps the device's retained status topic true: "online" on every connect, "offline" on
// a clean stop and, through the MQTT last will, when the agent vanishes.
//
// Ordering. On every (re)connect the outbox is split at the next seq to be appended: messages
// before it are the backlog, replayed oldest first with "replayed": true and their original
// captured_at, at most ReplayRate per second; messages appended after it are live and go out
// as soon as they are stored. The two lanes interleave, so live alerts are never held behind
// an hour of backlog. Each lane is in seq order; across lanes a consumer orders by seq (the
// fleet does) and drops repeats by (device_id, seq) — delivery is at least once.
package publish

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/internal/backoff"
	"github.com/vigil-edge/vigil/internal/nostore"
	"github.com/vigil-edge/vigil/internal/redact"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Queue is the durable store the publisher drains: the outbox.
//
// Call contract: Read returns stored messages with after < seq < before (before 0: no bound)
// in seq order; Ack marks messages delivered (they may be deleted later); Notify receives a
// value after new messages are stored; NextSeq is the seq the next appended message will get.
// All are safe for concurrent use.
type Queue interface {
	Read(after, before uint64, max int) ([]frame.Stored, error)
	Ack(seqs ...uint64)
	Notify() <-chan struct{}
	NextSeq() uint64
}

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
	Epoch       string // the outbox's epoch, part of every message id
	URL         string // tcp://host:port, ssl://host:port (or tls://, mqtts://), ws://
	ClientID    string // default DeviceID
	Username    string
	Password    string
	TLS         TLS
	KeepAlive   time.Duration
	MaxInflight int     // messages awaiting PUBACK; default 64
	ReplayRate  float64 // backlog messages per second after a reconnect; 0 = no limit
	AckTimeout  time.Duration
	Version     string           // agent version, in the status message
	Cameras     []string         // in the status message
	OutboxLost  *wire.OutboxLost // in the status message: the outbox was found corrupt at start
	// OnCommand, if set, receives the messages on vigil/v1/<device>/cmd/+ (subscribed with
	// QoS 1 on every connect). It is called on paho's goroutine and must not block.
	OnCommand func(topic string, payload []byte)
}

// Publisher sends the outbox's messages to one broker.
type Publisher struct {
	cfg     Config
	broker  string   // cfg.URL for logs and errors, password redacted
	secrets []string // the password in its forms, scrubbed from error texts
	q       Queue
	client  mqtt.Client
	m       *metrics.Metrics
	log     *slog.Logger

	conn    chan session  // a new connection's session; buffered 1
	lost    chan struct{} // the connection was lost; buffered 1
	gen     atomic.Uint64
	rewind  atomic.Bool  // a message failed on a live connection: the lanes start again
	lastErr atomic.Value // string

	slots   chan struct{} // one per message in flight
	freed   chan struct{} // a slot was freed; buffered 1
	acks    chan inflight
	closing chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

type session struct {
	gen       uint64
	liveStart uint64 // first seq of the live lane
}

type inflight struct {
	gen      uint64 // the connection it was sent on
	seq      uint64
	class    frame.Class
	replayed bool
	tok      mqtt.Token
	sent     time.Time
	captured time.Time // when its data was captured, for the delivery latency
}

// New validates cfg and builds the client; nothing connects until Start.
func New(cfg Config, q Queue, m *metrics.Metrics, log *slog.Logger) (*Publisher, error) {
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
		cfg.MaxInflight = 64
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Publisher{cfg: cfg, broker: redact.URL(cfg.URL), secrets: append(redact.Secrets(cfg.URL), cfg.Password),
		q: q, m: m, log: log.With("component", "mqtt"),
		conn: make(chan session, 1), lost: make(chan struct{}, 1), freed: make(chan struct{}, 1), slots: make(chan struct{}, cfg.MaxInflight),
		acks: make(chan inflight, cfg.MaxInflight), closing: make(chan struct{})}

	will, _ := json.Marshal(p.status(wire.StateOffline))
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetKeepAlive(cfg.KeepAlive).
		SetCleanSession(false).
		SetAutoReconnect(false). // connectLoop reconnects, with back-off and jitter, and reports each failure
		SetConnectRetry(false).
		SetConnectTimeout(10*time.Second).
		// A packet that cannot be handed to the connection, or written to it, within
		// writeTimeout ends the wait (paho's default is 30 s for the first and none for the
		// second): a stop then never waits half a minute on a dead link, and a link that
		// takes longer than that for one packet is treated as gone.
		SetWriteTimeout(writeTimeout).
		SetOrderMatters(false).
		SetStore(nostore.Store{}). // the outbox re-sends, not paho
		SetMaxResumePubInFlight(cfg.MaxInflight).
		SetBinaryWill(wire.Topic(cfg.DeviceID, wire.KindStatus, ""), will, 1, true).
		SetOnConnectHandler(p.onConnect).
		SetConnectionAttemptHandler(func(_ *url.URL, tc *tls.Config) *tls.Config {
			m.MQTTAttempts.Inc()
			return tc
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			p.gen.Add(1) // ends the drain's session
			m.MQTTConnected.Set(0)
			p.setErr(err)
			p.log.Warn("connection to broker lost", "broker", p.broker, "err", p.scrub(err))
			select {
			case p.lost <- struct{}{}:
			default:
			}
		})
	if cfg.TLS.Enabled() {
		tc, err := TLSConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tc)
	}
	p.client = mqtt.NewClient(opts)
	return p, nil
}

// TLSConfig builds the crypto/tls configuration for t.
func TLSConfig(t TLS) (*tls.Config, error) {
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

func (p *Publisher) setErr(err error) {
	if err != nil {
		p.lastErr.Store(p.scrub(err))
	}
}

// scrub is err's text without the broker password.
func (p *Publisher) scrub(err error) string {
	if err == nil {
		return ""
	}
	return redact.Scrub(err.Error(), p.secrets...)
}

// LastError is the last connection or publish error, or "".
func (p *Publisher) LastError() string {
	s, _ := p.lastErr.Load().(string)
	return s
}

// Connected reports whether the client is connected now.
func (p *Publisher) Connected() bool { return p.client.IsConnectionOpen() }

// status builds a status message. Status is not part of the outbox's seq sequence: its seq is
// the last one the device had assigned (0 before any).
func (p *Publisher) status(state string) wire.Status {
	last := p.q.NextSeq() - 1
	now := time.Now().UTC()
	return wire.Status{Header: wire.Header{Schema: wire.SchemaStatus, DeviceID: p.cfg.DeviceID, Seq: last,
		MsgID:      wire.StatusMessageID(p.cfg.DeviceID, p.cfg.Epoch, now),
		CapturedAt: now.UnixMilli()}, State: state, Version: p.cfg.Version, Cameras: p.cfg.Cameras, OutboxLost: p.cfg.OutboxLost}
}

func (p *Publisher) onConnect(c mqtt.Client) {
	p.m.MQTTConnected.Set(1)
	p.log.Info("connected to broker", "broker", p.broker)
	b, _ := json.Marshal(p.status(wire.StateOnline))
	// Not waited for here: paho calls this on its own goroutine and the PUBACK needs it.
	c.Publish(wire.Topic(p.cfg.DeviceID, wire.KindStatus, ""), 1, true, b)
	if p.cfg.OnCommand != nil {
		c.Subscribe(wire.Topic(p.cfg.DeviceID, wire.KindCmd, "+"), 1, func(_ mqtt.Client, m mqtt.Message) {
			p.cfg.OnCommand(m.Topic(), m.Payload())
		})
	}
	s := session{gen: p.gen.Add(1), liveStart: p.q.NextSeq()}
	select { // replace a session the drain has not picked up yet
	case <-p.conn:
	default:
	}
	p.conn <- s
}

// Start connects in the background (retrying with back-off until Close) and starts draining
// the queue. It returns at once.
func (p *Publisher) Start() {
	p.wg.Add(3)
	go p.drain()
	go p.collect()
	go p.connectLoop()
}

// reconnect is the back-off between connection attempts: 1 s doubling to 30 s, less up to
// 20 % jitter (backoff's defaults).
var reconnect = backoff.Policy{}

// connectLoop connects, waits for the connection to be lost, and connects again, until Close.
// Every failed attempt is recorded in LastError with the broker's reason (bad credentials,
// certificate not trusted, unreachable).
func (p *Publisher) connectLoop() {
	defer p.wg.Done()
	failures := 0
	for {
		tok := p.client.Connect()
		select {
		case <-tok.Done():
		case <-p.closing:
			return
		}
		if err := tok.Error(); err != nil {
			p.setErr(err)
			wait := reconnect.Delay(failures)
			if failures == 0 || wait >= reconnect.Cap()*8/10 {
				p.log.Error("connect to broker failed; retrying", "broker", p.broker, "err", p.scrub(err), "retry_in", wait.Round(time.Millisecond))
			}
			failures++
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.closing:
				t.Stop()
				return
			}
			continue
		}
		failures = 0
		select {
		case <-p.lost:
		case <-p.closing:
			return
		}
	}
}

// drain publishes the queue, one session per connection.
func (p *Publisher) drain() {
	defer p.wg.Done()
	for {
		select {
		case <-p.closing:
			return
		case s := <-p.conn:
			p.session(s)
		}
	}
}

// session drains the two lanes while the connection of generation s.gen lasts.
func (p *Publisher) session(s session) {
	var live, back lane
	reset := func() {
		live = lane{cursor: s.liveStart - 1}
		back = lane{bound: s.liveStart, done: s.liveStart <= 1, replayed: true}
	}
	reset()
	tokens, last := 0.0, time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.gen.Load() != s.gen {
			return // the connection is gone; the next session starts the lanes again
		}
		if p.rewind.Swap(false) {
			// Something sent on this connection was refused or never acknowledged: it is
			// still stored. Read the lanes from their start again (repeats are dropped by
			// the consumer; what was acknowledged is gone from the outbox).
			reset()
		}
		// Live lane first, then the backlog within the replay rate.
		sent, ok := p.drainLane(&live, -1, s.gen)
		if !ok {
			return
		}
		if !back.done {
			now := time.Now()
			budget := -1 // no limit
			if p.cfg.ReplayRate > 0 {
				tokens = math.Min(tokens+now.Sub(last).Seconds()*p.cfg.ReplayRate, math.Max(p.cfg.ReplayRate/10, 1))
				budget = int(tokens)
			}
			last = now
			n, ok := p.drainLane(&back, budget, s.gen)
			if !ok {
				return
			}
			tokens -= float64(n)
			sent += n
			if back.done {
				p.log.Info("backlog replayed", "up_to_seq", s.liveStart-1)
			}
		}
		if sent > 0 {
			continue
		}
		select {
		case <-p.closing:
			return
		case <-p.q.Notify():
		case <-p.freed:
		case <-tick.C:
		case s2 := <-p.conn: // reconnected before this session noticed the loss
			s = s2
			reset()
		}
	}
}

// lane is one ordered stream of the outbox: live (no upper bound) or backlog (bound).
type lane struct {
	cursor   uint64         // last seq sent
	bound    uint64         // seqs < bound; 0 = no bound
	buf      []frame.Stored // read ahead, not yet sent
	done     bool           // backlog only: nothing left below bound
	replayed bool
}

// writeTimeout bounds the hand-over and the socket write of one outgoing packet (a 2 MiB
// picture at 1.1 Mbit/s still fits).
const writeTimeout = 15 * time.Second

// readAhead is how many messages a lane reads from the outbox at once.
const readAhead = 256

// drainLane sends from the lane while in-flight slots are free, up to budget messages (-1: no
// limit). It returns how many it sent, and false when the session must end.
func (p *Publisher) drainLane(l *lane, budget int, gen uint64) (int, bool) {
	sent := 0
	for budget < 0 || sent < budget {
		if len(l.buf) == 0 {
			if l.bound == 0 && p.q.NextSeq() <= l.cursor+1 {
				return sent, true // live lane: nothing appended since
			}
			es, err := p.q.Read(l.cursor, l.bound, readAhead)
			if err != nil {
				p.log.Error("read outbox", "err", err)
				return sent, true
			}
			if len(es) == 0 {
				l.done = l.bound != 0
				return sent, true
			}
			l.buf = es
		}
		select {
		case p.slots <- struct{}{}:
		default:
			return sent, true // the window is full: wait for a PUBACK
		}
		if p.gen.Load() != gen {
			<-p.slots
			return sent, false
		}
		e := l.buf[0]
		l.buf = l.buf[1:]
		payload := e.Payload
		if l.replayed {
			payload = markReplayed(payload)
		}
		tok := p.client.Publish(e.Topic, 1, false, payload)
		select {
		case p.acks <- inflight{gen: gen, seq: e.Seq, class: e.Class, replayed: l.replayed, tok: tok, sent: time.Now(), captured: e.CapturedAt}:
		case <-p.closing:
			return sent, false
		}
		l.cursor = e.Seq
		sent++
	}
	return sent, true
}

// markReplayed adds "replayed": true to a JSON object.
func markReplayed(b []byte) []byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return b
	}
	rest := bytes.TrimLeft(b[1:], " \t\r\n")
	out := make([]byte, 0, len(b)+18)
	out = append(out, `{"replayed":true`...)
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// collect waits for each message's PUBACK, in publish order, acknowledges it to the queue and
// frees its slot. A message not acknowledged within AckTimeout stays in the queue and is sent
// again by a later session.
func (p *Publisher) collect() {
	defer p.wg.Done()
	poll := time.NewTicker(50 * time.Millisecond) // one for the goroutine: no timer per message
	defer poll.Stop()
	for {
		var in inflight
		select {
		case in = <-p.acks:
		case <-p.closing:
			return
		}
		if !p.await(in, poll.C) {
			return
		}
		<-p.slots
		select {
		case p.freed <- struct{}{}:
		default:
		}
	}
}

// await waits for one message's PUBACK and records the outcome. A message whose connection
// is lost, or that is not acknowledged within AckTimeout, stays in the queue: the next session
// sends it again. It returns false when the publisher is closing.
// poll ticks to look at the connection and the deadline.
func (p *Publisher) await(in inflight, poll <-chan time.Time) bool {
	deadline := in.sent.Add(p.cfg.AckTimeout)
	for {
		select {
		case <-in.tok.Done():
			if err := in.tok.Error(); err != nil {
				p.m.PublishFailures.WithLabelValues(in.class.String()).Inc()
				p.setErr(err)
				if p.gen.Load() == in.gen {
					p.rewind.Store(true)
				}
				return true
			}
			p.q.Ack(in.seq)
			p.m.Publishes.WithLabelValues(in.class.String()).Inc()
			if !in.captured.IsZero() {
				p.m.DeliveryLatency.WithLabelValues(in.class.String()).Observe(time.Since(in.captured).Seconds())
			}
			if in.replayed {
				p.m.Replayed.WithLabelValues(in.class.String()).Inc()
			}
			return true
		case now := <-poll:
			if p.gen.Load() != in.gen {
				return true // its connection is gone: paho will not complete it (no store)
			}
			if now.After(deadline) {
				p.m.PublishFailures.WithLabelValues(in.class.String()).Inc()
				p.rewind.Store(true)
				return true
			}
		case <-p.closing:
			return false
		}
	}
}

// Close waits up to timeout for the messages in flight, publishes the retained "offline"
// status (when connected), disconnects and stops its goroutines. Messages not yet
// acknowledged stay in the queue for the next run.
func (p *Publisher) Close(timeout time.Duration) {
	p.once.Do(func() {
		deadline := time.Now().Add(timeout)
		for len(p.slots) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		close(p.closing)
		if p.client.IsConnectionOpen() {
			b, _ := json.Marshal(p.status(wire.StateOffline))
			p.client.Publish(wire.Topic(p.cfg.DeviceID, wire.KindStatus, ""), 1, true, b).WaitTimeout(time.Until(deadline) + time.Second)
		}
		p.client.Disconnect(250)
		p.m.MQTTConnected.Set(0)
		p.wg.Wait()
	})
}
