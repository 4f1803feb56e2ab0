package subscriber

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-edge/vigil/internal/redact"
)

// The NATS ingest (Config.Ingest): a broker that is itself a cluster, without MQTT shared
// subscriptions.
//
//	device ─MQTT QoS 1─▶ any nats-server node ══ cluster routes ══ other nodes
//	                         │ topic vigil/v1/d1/events/cam1 = subject vigil.v1.d1.events.cam1
//	                         ▼ stored before the PUBACK
//	          nats-server's own MQTT QoS 1 stream $MQTT_msgs (interest retention, replicated)
//	                         │ one durable pull consumer per kind (<group>_<kind>), shared by every instance
//	                         ▼
//	   instance A ◀─┴─▶ instance B  (each message to one of them; deliver → wire.Decode → handler)
//
// Why not a plain NATS queue group, or a stream of our own: nats-server's MQTT turns a
// device's QoS 1 PUBLISH into a core NATS message on the subject, and core delivery is at most
// once. A queue-group subscriber whose node dies loses what was in flight to it, PUBACKed to the
// device and never sent again; and a stream of our own that captures the subjects loses what
// is published while its leader moves after a node died (the capture is fire-and-forget: no
// one waits for its acknowledgement). The cluster test lost up to half of the messages that way
// after a node kill. nats-server 2.9 also stores every QoS 1 message in its own stream
// $MQTT_msgs (subject $MQTT.msgs.<subject>, kept while a consumer is interested) and answers the
// PUBLISH only once that store acknowledged it: a device's message is either PUBACKed and in
// the replicated stream, or not PUBACKed and sent again by the device. So the instances read
// $MQTT_msgs through durable consumers that they share (each message to one of them, as a
// queue group would), acknowledge each message only when the handler made it safe
// (AsyncHandler), and get again what an instance took and did not acknowledge within
// natsAckWait; storage is idempotent by msg_id, so a message delivered twice is stored once.
// This leans on how nats-server 2.9 (Debian 12's) implements MQTT, tested in
// TestNATSClusterIngestSurvivesNodeKill; the cluster needs mqtt { stream_replicas: 3 } so that
// the stream keeps a quorum when a node dies (docs/SCALING.md).
//
// The kinds every instance needs stay plain MQTT subscriptions on the same cluster's MQTT
// listener (BrokerURL): status, retained, with the devices' last wills, and Config.Unshared;
// commands go out there too.
//
// Topic and subject: nats-server turns each '/' of a topic into '.', an empty level into the
// token "/", and refuses a topic with '.' or ' ' (closing the device's connection): a device
// id with a '.' cannot publish through nats-server. NATSSubject and MQTTTopic convert.

const (
	// natsAckWait is how long a message handed to an instance may stay unacknowledged
	// before it is handed to an instance again (an instance that died holding it).
	natsAckWait = 10 * time.Second
	// natsMaxAckPending bounds the messages of one kind handed out and not yet
	// acknowledged, over all instances.
	natsMaxAckPending = 8192
	// mqttMsgsStream and mqttMsgsPrefix are nats-server's MQTT QoS 1 store.
	mqttMsgsStream = "$MQTT_msgs"
	mqttMsgsPrefix = "$MQTT.msgs."
)

// NATSServers splits and checks an ingest list: nats://host:port[,nats://host:port…]
// (tls:// for TLS).
func NATSServers(list string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(list, ",") {
		u = strings.TrimSpace(u)
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "nats" && p.Scheme != "tls") || p.Host == "" || p.Path != "" && p.Path != "/" {
			return nil, fmt.Errorf("ingest: --ingest %q: want nats://host:port[,nats://host:port…]", redactList(list))
		}
		out = append(out, u)
	}
	return out, nil
}

func redactList(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = redact.URL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// NATSSubject converts an MQTT topic or filter to the NATS subject nats-server uses for it:
// '/' → '.', an empty level → "/", '+' → '*', '#' → '>'. It refuses what nats-server refuses
// ('.' and ' ' in a topic) and levels that NATS would read as wildcards ('*', '>').
func NATSSubject(topic string) (string, error) {
	if topic == "" {
		return "", errors.New("empty topic")
	}
	levels := strings.Split(topic, "/")
	for i, l := range levels {
		switch {
		case l == "":
			levels[i] = "/"
		case l == "+":
			levels[i] = "*"
		case l == "#" && i == len(levels)-1:
			levels[i] = ">"
		case strings.ContainsAny(l, ". \t\r\n*>+#"):
			return "", fmt.Errorf("topic %q: level %q cannot be a NATS subject token (nats-server refuses '.' and ' ' in MQTT topics)", topic, l)
		}
	}
	return strings.Join(levels, "."), nil
}

// MQTTTopic converts a NATS subject that nats-server made from an MQTT topic back to the
// topic (the inverse of NATSSubject for topics without wildcards).
func MQTTTopic(subject string) (string, error) {
	if subject == "" {
		return "", errors.New("empty subject")
	}
	tokens := strings.Split(subject, ".")
	for i, t := range tokens {
		switch {
		case t == "/":
			tokens[i] = ""
		case t == "" || strings.ContainsAny(t, "/ \t\r\n*>+#"):
			return "", fmt.Errorf("subject %q: token %q is not one an MQTT topic level makes", subject, t)
		}
	}
	topic := strings.Join(tokens, "/")
	if topic == "" {
		return "", fmt.Errorf("subject %q: an empty topic", subject)
	}
	return topic, nil
}

// natsSubjects are the subjects of the kinds the instances split, by kind: Topics but those
// every instance receives over MQTT.
func (s *Subscriber) natsSubjects() map[string]string {
	out := map[string]string{}
	for _, t := range Topics {
		if s.everyInstance(t) {
			continue
		}
		subj, err := NATSSubject(t)
		if err != nil {
			panic(err) // Topics are ours: always convertible
		}
		out[strings.Split(t, "/")[3]] = subj
	}
	return out
}

// natsSource consumes the device traffic from NATS JetStream and hands it to deliver.
type natsSource struct {
	s       *Subscriber
	servers []string

	mu        sync.Mutex
	nc        *nats.Conn
	consuming bool // the consumers run

	deliverMu sync.Mutex // the consumers (one per kind) deliver one message at a time
}

func newNATSSource(s *Subscriber) *natsSource {
	servers, _ := NATSServers(s.cfg.Ingest) // checked by New
	return &natsSource{s: s, servers: servers}
}

// name is the ingest list without passwords; "" for a nil source.
func (n *natsSource) name() string {
	if n == nil {
		return ""
	}
	return redactList(n.s.cfg.Ingest)
}

// connected reports whether the NATS connection is up and the consumer runs; false for a nil
// source.
func (n *natsSource) connected() bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.consuming && n.nc != nil && n.nc.IsConnected()
}

func (n *natsSource) setConsuming(c bool) {
	n.mu.Lock()
	n.consuming = c
	n.mu.Unlock()
}

// run connects, makes sure the consumers exist, and consumes until ctx ends; it sets up again
// when consuming stops by itself (a consumer was deleted).
func (n *natsSource) run(ctx context.Context) {
	s := n.s
	log := s.log.With("ingest", n.name())
	nc, err := nats.Connect(strings.Join(n.servers, ","),
		nats.Name(s.cfg.ClientID),
		nats.DontRandomize(), // the order given: an operator can point instances at different nodes
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(s.cfg.RetryInterval),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.setLastError(fmt.Errorf("nats: %w", err))
				log.Warn("nats connection lost; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "server", redact.URL(c.ConnectedUrl()))
		}),
	)
	if err != nil { // only for bad options: RetryOnFailedConnect keeps trying
		s.setLastError(fmt.Errorf("nats: %w", err))
		log.Error("nats ingest cannot start", "err", err)
		return
	}
	n.mu.Lock()
	n.nc = nc
	n.mu.Unlock()
	defer nc.Close()
	for ctx.Err() == nil {
		ccs, err := n.consume(ctx, nc)
		if err != nil {
			s.setLastError(fmt.Errorf("nats ingest: %w", err))
			log.Warn("nats ingest: cannot consume yet; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			// Jittered: instances started together must not create consumers in step.
			case <-time.After(s.cfg.RetryInterval/2 + rand.N(s.cfg.RetryInterval)):
			}
			continue
		}
		n.setConsuming(true)
		log.Info("consuming device traffic from NATS JetStream", "stream", mqttMsgsStream,
			"consumers", len(ccs), "group", s.cfg.IngestGroup, "server", redact.URL(nc.ConnectedUrl()))
		stopped := make(chan struct{}, len(ccs))
		var wg sync.WaitGroup
		for _, cc := range ccs {
			wg.Go(func() {
				select {
				case <-cc.Closed():
					stopped <- struct{}{}
				case <-ctx.Done():
				}
			})
		}
		select {
		case <-ctx.Done():
		case <-stopped:
			n.setConsuming(false)
			log.Warn("nats ingest: consuming stopped; setting up again")
		}
		stop(ccs)
		wg.Wait()
	}
}

// stop stops consuming and waits (a bounded time) until no handler runs.
func stop(ccs []jetstream.ConsumeContext) {
	for _, cc := range ccs {
		cc.Stop()
	}
	deadline := time.After(5 * time.Second)
	for _, cc := range ccs {
		select {
		case <-cc.Closed():
		case <-deadline:
			return
		}
	}
}

// consume makes sure there is one durable consumer per kind on $MQTT_msgs and starts
// consuming from each.
func (n *natsSource) consume(ctx context.Context, nc *nats.Conn) ([]jetstream.ConsumeContext, error) {
	s := n.s
	if !nc.IsConnected() {
		return nil, errors.New("not connected to any server of --ingest")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.Stream(cctx, mqttMsgsStream); err != nil {
		return nil, fmt.Errorf("nats-server's MQTT stream %s (made when the first MQTT client connects; is --broker this cluster's MQTT listener?): %w", mqttMsgsStream, err)
	}
	var ccs []jetstream.ConsumeContext
	subjects := s.natsSubjects()
	for _, kind := range slices.Sorted(maps.Keys(subjects)) {
		cfg := jetstream.ConsumerConfig{
			Durable:       s.cfg.IngestGroup + "_" + kind,
			Description:   "Vigil fleet instances: " + kind,
			FilterSubject: mqttMsgsPrefix + subjects[kind],
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       natsAckWait,
			MaxAckPending: natsMaxAckPending,
			MaxDeliver:    -1,
		}
		// Short attempts: nats-server 2.9 answers neither of two concurrent creations of one
		// consumer in a cluster (two instances starting together); a later attempt finds it.
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		cons, err := js.Consumer(actx, mqttMsgsStream, cfg.Durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = js.CreateConsumer(actx, mqttMsgsStream, cfg)
		}
		cancel()
		if err == nil {
			var cc jetstream.ConsumeContext
			cc, err = cons.Consume(n.onMessage,
				jetstream.PullMaxMessages(512),
				// Pull requests expire (and heartbeats come) often, so that requests left
				// at a consumer leader that died are noticed and made again within seconds.
				jetstream.PullExpiry(5*time.Second),
				jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
					s.log.Debug("nats ingest: consume", "kind", kind, "err", err)
				}))
			if err == nil {
				ccs = append(ccs, cc)
				continue
			}
		}
		stop(ccs)
		return nil, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, mqttMsgsStream, err)
	}
	return ccs, nil
}

// onMessage is called by each consumer one message at a time.
func (n *natsSource) onMessage(m jetstream.Msg) {
	var once sync.Once
	ack := func() { once.Do(func() { _ = m.Ack() }) }
	topic, err := MQTTTopic(strings.TrimPrefix(m.Subject(), mqttMsgsPrefix))
	if err != nil {
		topic = m.Subject() // wire.Decode refuses it, counted by reason
	}
	n.deliverMu.Lock()
	defer n.deliverMu.Unlock()
	n.s.deliver(topic, m.Data(), ack)
}
