// Package subscriber is the fleet controller's one MQTT connection: a paho client that connects
// to a broker (the embedded one or an external one), subscribes at QoS 1 to every kind a device
// sends (pipeline/wire's table: status, detections, events, alerts, telemetry, command
// results, pictures), checks each message once with wire.Decode (refusals are counted by
// reason, see Refused) and hands the decoded message to a Handler: the registry, then the event
// store, the dashboards and the rollout engine. The fleet's commands (rollouts, live views) go
// out on the same connection (Publish). It reconnects by itself and subscribes again after
// every reconnect.
//
//	broker ──MQTT QoS 1──▶ Subscriber ──wire.Decode──▶ HandleMessage(*wire.Decoded) ──▶ registry ─▶ …
//	       ◀──Publish (cmd, QoS 1)── rollout engine, live views
package subscriber

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/internal/redact"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Topics are the filters the subscriber subscribes to, at QoS 1: one per kind a device sends
// (wire.Kinds), in the shape of its topic.
var Topics = topics()

func topics() []string {
	var out []string
	for _, s := range wire.Kinds() {
		if s.From != wire.FromDevice {
			continue
		}
		t := wire.Root + "/+/" + s.Kind
		switch s.Level {
		case wire.CameraLevel, wire.NameLevel:
			t += "/+"
		case wire.CameraEventLevel:
			t += "/+/+"
		}
		out = append(out, t)
	}
	return out
}

// Handler receives the messages.
type Handler interface {
	// HandleMessage is called once per message that wire.Decode accepted, one call at a
	// time, from the subscriber's MQTT client; it must return quickly. An error means the
	// message was rejected: the subscriber counts it and moves on (the message is
	// acknowledged anyway, as a redelivery would be rejected again).
	HandleMessage(m *wire.Decoded) error
}

// HandlerFunc is a function as a Handler.
type HandlerFunc func(m *wire.Decoded) error

// HandleMessage calls f(m).
func (f HandlerFunc) HandleMessage(m *wire.Decoded) error { return f(m) }

// AsyncHandler is a Handler that may finish a message after it returns: the subscriber
// acknowledges the message to the broker (PUBACK) only when done is called, so a message is
// never acknowledged before the handler made it safe (stored). HandleMessageAsync is called
// one message at a time, in arrival order; done may be called from any goroutine, once. When
// it returns an error, done is not called and the message is acknowledged as rejected.
type AsyncHandler interface {
	HandleMessageAsync(m *wire.Decoded, done func()) error
}

// Config configures a Subscriber.
type Config struct {
	BrokerURL string       // e.g. tcp://127.0.0.1:1883 (several, comma-separated: nodes of one cluster); required
	ClientID  string       // $vigil-fleet/<hostname> when empty (wire.FleetClientPrefix)
	Logger    *slog.Logger // slog.Default() when nil
	// Username and Password authenticate the subscriber to the broker when Username is set
	// (see fleet/auth). The password is never logged.
	Username, Password string
	// CleanSession starts a fresh MQTT session on every connect. By default the session
	// persists, so that the broker queues QoS 1 messages while the subscriber reconnects.
	CleanSession bool
	// ShareGroup, when set, subscribes to every device topic but status through the MQTT
	// shared subscription $share/<ShareGroup>/…: the broker hands each message to one member
	// of the group, so several fleet instances split the traffic. Status (retained, and the
	// last wills) stays a plain subscription, so every instance knows every device's state.
	ShareGroup string
	// Unshared lists kinds subscribed to plainly even with ShareGroup, so that every message
	// of them reaches this instance (the rollout engine needs every command result and
	// telemetry report of the devices it updates).
	Unshared []string
	// Ingest, when set, takes the device traffic that ShareGroup would share from NATS
	// instead (see nats.go): a comma-separated list of nats://host:port URLs of the
	// nats-server cluster whose MQTT listener the devices and BrokerURL connect to. The
	// instances consume through shared durable JetStream consumers (IngestGroup), which split
	// the traffic between them like a queue group and hand out again what an instance did not
	// acknowledge. Status and the Unshared kinds stay plain MQTT subscriptions, and commands
	// go out over MQTT, as without it. Exclusive with ShareGroup.
	Ingest string
	// IngestGroup names the JetStream consumers the instances share (<group>_<kind>;
	// "vigil-fleet" when empty).
	IngestGroup string
	// OnFatal, when set, is called at most once, from the subscriber's goroutine, with an
	// error that retrying cannot cure (a broker without shared subscriptions for ShareGroup);
	// the subscriber stops subscribing. It must not block.
	OnFatal func(error)
	// RetryInterval is the pause between connect attempts and the upper bound of the
	// reconnect back-off; 2 s when zero. Close may wait about this long for paho to stop.
	RetryInterval time.Duration
}

// Status describes the subscriber's connection, for health checks.
type Status struct {
	Broker     string    // broker URL
	ClientID   string    // MQTT client id
	Connected  bool      // connected and subscribed
	Since      time.Time // when Connected last changed
	LastError  string    // why the connection was last lost or a subscribe failed
	Messages   uint64    // messages received
	Rejected   uint64    // messages refused: by wire.Decode (see Refused), or by the handler
	Subscribes uint64    // successful subscribes (1 + reconnects)
}

// SharedChecked reports whether, with a share group, the broker was seen to split a
// $share/… subscription (see probe.go).
func (s *Subscriber) SharedChecked() bool { return s.probe.passed() }

// Ingest reports the NATS ingest (Config.Ingest, without passwords) and whether its
// connection is up; "" and false without one.
func (s *Subscriber) Ingest() (servers string, connected bool) {
	return s.natsIngest.name(), s.natsIngest.connected()
}

// Subscriber is the MQTT subscriber. Start it once, Close it once.
type Subscriber struct {
	cfg     Config
	h       Handler
	log     *slog.Logger
	client  mqtt.Client
	connect mqtt.Token
	up      chan struct{} // a connection came up: subscribe (1-buffered)

	messages, rejected, subscribes atomic.Uint64

	mu        sync.Mutex
	connected bool
	since     time.Time
	lastErr   string
	refused   map[string]uint64 // by wire.Decode, by reason

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// Shared subscriptions (ShareGroup): the group's instances and adopted sessions.
	peers     peers
	adoptWG   sync.WaitGroup
	adoptions atomic.Uint64

	probe      probe       // the shared-subscription check (ShareGroup)
	natsIngest *natsSource // nil without Config.Ingest
}

// New validates cfg; it does no I/O.
func New(cfg Config, h Handler) (*Subscriber, error) {
	if h == nil {
		return nil, errors.New("ingest: nil handler")
	}
	// Several URLs, comma-separated, are nodes of one broker cluster: tried in order.
	for _, b := range strings.Split(cfg.BrokerURL, ",") {
		u, err := url.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("ingest: broker url %q: %w", redact.URL(b), errors.Unwrap(err))
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		default:
			return nil, fmt.Errorf("ingest: broker url %q: want tcp://host:port", redact.URL(b))
		}
		if u.Host == "" {
			return nil, fmt.Errorf("ingest: broker url %q has no host", redact.URL(b))
		}
	}
	if cfg.ShareGroup != "" {
		if err := ValidShareGroup(cfg.ShareGroup); err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
	}
	if cfg.Ingest != "" {
		if cfg.ShareGroup != "" {
			return nil, errors.New("ingest: a share group and a NATS ingest exclude each other: NATS has no MQTT shared subscriptions")
		}
		if _, err := NATSServers(cfg.Ingest); err != nil {
			return nil, err
		}
		cfg.IngestGroup = cmp.Or(cfg.IngestGroup, "vigil-fleet")
		if err := ValidShareGroup(cfg.IngestGroup); err != nil || strings.ContainsAny(cfg.IngestGroup, ".*> \t") {
			return nil, fmt.Errorf("ingest: NATS ingest group %q: want 1-64 of A-Z a-z 0-9 _ -", cfg.IngestGroup)
		}
	}
	if cfg.ClientID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "unknown"
		}
		cfg.ClientID = wire.FleetClientID(host)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 2 * time.Second
	}
	return &Subscriber{
		cfg: cfg,
		h:   h,
		log: cfg.Logger.With("component", "ingest"),
		up:  make(chan struct{}, 1),

		refused: map[string]uint64{},
	}, nil
}

// Start begins connecting in the background and returns at once: a broker that is not up yet
// is retried until Close. [Subscriber.Status] tells when messages flow.
func (s *Subscriber) Start() error {
	if s.client != nil {
		return errors.New("ingest: already started")
	}
	s.peers = peers{state: map[string]presence{}, adopted: map[string]*adoption{}}
	opts := mqtt.NewClientOptions().
		SetClientID(s.cfg.ClientID).
		SetCleanSession(s.cfg.CleanSession).
		SetOrderMatters(true).
		// Acknowledge only once the handler has made the message safe (see AsyncHandler).
		SetAutoAckDisabled(true).
		SetUsername(s.cfg.Username).
		SetPassword(s.cfg.Password).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(s.cfg.RetryInterval).
		SetMaxReconnectInterval(s.cfg.RetryInterval).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		// With a persistent session the broker may deliver before Subscribe returns: one
		// handler for everything.
		SetDefaultPublishHandler(s.onMessage).
		SetOnConnectHandler(func(mqtt.Client) {
			select {
			case s.up <- struct{}{}:
			default:
			}
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.setConnected(false, err)
			s.log.Warn("mqtt connection lost; reconnecting", "broker", redactList(s.cfg.BrokerURL), "err", err)
		})
	if s.cfg.ShareGroup != "" {
		opts.SetBinaryWill(s.presenceTopic(instanceName(s.cfg.ClientID)), presencePayload("down", s.cfg.ClientID), 1, true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if s.cfg.Ingest != "" {
		s.natsIngest = newNATSSource(s)
		s.wg.Go(func() { s.natsIngest.run(ctx) })
	}
	for _, b := range strings.Split(s.cfg.BrokerURL, ",") {
		opts.AddBroker(b)
	}
	s.client = mqtt.NewClient(opts)
	s.connect = s.client.Connect()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx)
	}()
	return nil
}

// run subscribes every time a connection comes up, until ctx ends.
func (s *Subscriber) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.up:
		}
		for !s.subscribe(ctx) {
			if !s.client.IsConnectionOpen() {
				break // the next connection signals up again
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.cfg.RetryInterval):
			}
		}
	}
}

// subscribe subscribes to Topics and reports whether it worked.
func (s *Subscriber) subscribe(ctx context.Context) bool {
	filters := make(map[string]byte, len(Topics))
	for _, t := range s.topics() {
		filters[t] = 1
	}
	if s.cfg.ShareGroup != "" {
		filters[s.presenceTopic("+")] = 1
		for t, q := range s.probeFilters() {
			filters[t] = q
		}
	}
	tok := s.client.SubscribeMultiple(filters, nil)
	select {
	case <-ctx.Done():
		return true
	case <-tok.Done():
	}
	err := tok.Error()
	if st, ok := tok.(*mqtt.SubscribeToken); ok && err == nil {
		for topic, code := range st.Result() {
			if code == 0x80 {
				err = fmt.Errorf("broker refused subscription to %s", topic)
			}
		}
	}
	if err != nil {
		s.setConnected(false, fmt.Errorf("subscribe: %w", err))
		s.log.Warn("mqtt subscribe failed", "broker", redactList(s.cfg.BrokerURL), "err", err)
		return false
	}
	if s.cfg.ShareGroup != "" && !s.probe.passed() {
		if err := s.checkShared(ctx); err != nil {
			s.setConnected(false, err)
			s.log.Error("broker without shared subscriptions", "broker", redactList(s.cfg.BrokerURL), "err", err)
			if s.cfg.OnFatal != nil {
				s.cfg.OnFatal(err)
			}
			<-ctx.Done() // subscribe no more: the broker would hand every message to every instance
			return true
		}
	}
	s.subscribes.Add(1)
	if s.cfg.ShareGroup != "" {
		s.client.Publish(s.presenceTopic(instanceName(s.cfg.ClientID)), 1, true, presencePayload("up", s.cfg.ClientID))
	}
	s.setConnected(s.client.IsConnectionOpen(), nil)
	s.log.Info("subscribed", "broker", redactList(s.cfg.BrokerURL), "client_id", s.cfg.ClientID, "topics", s.topics())
	return true
}

// topics are the filters to subscribe to: Topics, shared by ShareGroup when it is set.
// With a NATS ingest, only the kinds every instance needs (status, Unshared) are MQTT
// subscriptions: the rest comes from NATS (natsSubjects).
func (s *Subscriber) topics() []string {
	if s.cfg.ShareGroup == "" && s.cfg.Ingest == "" {
		return Topics
	}
	out := make([]string, 0, len(Topics))
	for _, t := range Topics {
		switch {
		case s.everyInstance(t):
			out = append(out, t)
		case s.cfg.ShareGroup != "":
			out = append(out, "$share/"+s.cfg.ShareGroup+"/"+t)
		}
	}
	return out
}

// everyInstance reports whether the filter t (one of Topics) is for a kind that every
// instance of a group receives: status and the Unshared kinds.
func (s *Subscriber) everyInstance(t string) bool {
	kind := strings.Split(t, "/")[3] // vigil/v1/+/<kind>…
	return kind == wire.KindStatus || slices.Contains(s.cfg.Unshared, kind)
}

// ValidShareGroup checks a shared-subscription group name: one topic level, no wildcard.
func ValidShareGroup(g string) error {
	if g == "" || strings.ContainsAny(g, "/+#") || len(g) > 64 {
		return fmt.Errorf("share group %q: want 1-64 characters without /, + or #", g)
	}
	return nil
}

// setLastError records why a source is not working (Status.LastError).
func (s *Subscriber) setLastError(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

func (s *Subscriber) setConnected(c bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c != s.connected {
		s.connected, s.since = c, time.Now()
	}
	if err != nil {
		s.lastErr = err.Error()
	}
}

func (s *Subscriber) onMessage(c mqtt.Client, m mqtt.Message) {
	if s.cfg.ShareGroup != "" && strings.HasPrefix(m.Topic(), PresenceRoot+"/") {
		s.onPresence(c, m)
		return
	}
	if strings.HasPrefix(m.Topic(), probeRoot+"/") {
		m.Ack()
		s.onProbe(m.Topic(), m.Payload())
		return
	}
	s.deliver(m.Topic(), m.Payload(), m.Ack)
}

// deliver is where every device message arrives, whatever the ingest source (MQTT, shared or
// not, adopted sessions, or NATS: see nats.go): it is checked with wire.Decode and handed to
// the Handler; ack acknowledges it to its source once the handler made it safe (or refused it
// for good). Each source calls it one message at a time, in its arrival order; sources do
// not wait for each other (a lock across them stalled paho: a paho message is acknowledged
// through its client's router goroutine, which would wait on the lock).
func (s *Subscriber) deliver(topic string, payload []byte, ack func()) {
	s.messages.Add(1)
	d, err := wire.Decode(topic, payload)
	if err != nil {
		reason := "other"
		var de *wire.DecodeError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		s.mu.Lock()
		s.refused[reason]++
		s.rejected.Add(1) // with the reason, so that a reader sees both or neither
		s.mu.Unlock()
		ack() // a redelivery would be refused again
		s.log.Debug("message refused", "topic", topic, "reason", reason, "err", err)
		return
	}
	if ah, ok := s.h.(AsyncHandler); ok {
		err = ah.HandleMessageAsync(d, ack)
	} else {
		err = s.h.HandleMessage(d)
		ack()
	}
	if err != nil {
		ack() // a redelivery would be rejected again
		s.rejected.Add(1)
		s.log.Debug("message rejected", "topic", topic, "err", err)
	}
}

// Publish sends payload to topic at QoS 1 (not retained) on the subscriber's connection and
// waits up to timeout for the broker's acknowledgement. It fails at once when not connected.
func (s *Subscriber) Publish(topic string, payload []byte, timeout time.Duration) error {
	if s.client == nil || !s.client.IsConnectionOpen() {
		return errors.New("mqtt: not connected")
	}
	tok := s.client.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(timeout) {
		return fmt.Errorf("mqtt: publish %s: no acknowledgement within %s", topic, timeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqtt: publish %s: %w", topic, err)
	}
	return nil
}

// Refused counts the messages wire.Decode refused, by reason (wire.DecodeReasons). The
// handler counts its own refusals (the registry's Rejected).
func (s *Subscriber) Refused() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.refused)
}

// Connected reports whether the subscriber is connected and subscribed.
func (s *Subscriber) Connected() bool {
	s.mu.Lock()
	c := s.connected
	s.mu.Unlock()
	return c && s.client != nil && s.client.IsConnectionOpen() && (s.natsIngest == nil || s.natsIngest.connected())
}

// Status reports the connection and message counts.
func (s *Subscriber) Status() Status {
	connected := s.Connected()
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{
		Broker:     redactList(s.cfg.BrokerURL),
		ClientID:   s.cfg.ClientID,
		Connected:  connected,
		Since:      s.since,
		LastError:  s.lastErr,
		Messages:   s.messages.Load(),
		Rejected:   s.rejected.Load(),
		Subscribes: s.subscribes.Load(),
	}
}

// Close disconnects and waits for the subscriber's goroutine and, within a bound of a few
// retry intervals, for paho's connect and reconnect loops to stop. Safe to call more than
// once and before Start. After Close returns the handler is not called again.
func (s *Subscriber) Close() error {
	s.once.Do(func() {
		if s.client == nil {
			return
		}
		s.cancel()
		s.wg.Wait() // the NATS ingest too: it acknowledges no more
		s.closeAdoptions()
		if s.cfg.ShareGroup != "" && s.client.IsConnectionOpen() {
			// Peers adopt our session (and the share of traffic it keeps receiving) until we
			// are back.
			s.client.Publish(s.presenceTopic(instanceName(s.cfg.ClientID)), 1, true,
				presencePayload("down", s.cfg.ClientID)).WaitTimeout(2 * time.Second)
		}
		s.client.Disconnect(250)
		// paho's Disconnect returns after the quiesce time even when a connect or reconnect
		// attempt is still sleeping; wait for it to notice.
		deadline := time.Now().Add(3*s.cfg.RetryInterval + 5*time.Second)
		for s.client.IsConnected() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case <-s.connect.Done():
		case <-time.After(time.Until(deadline)):
		}
		s.setConnected(false, nil)
	})
	return nil
}
