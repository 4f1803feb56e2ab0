package rollout

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Topics the engine's MQTT client subscribes to, at QoS 1.
var Topics = []string{
	wire.Root + "/+/" + wire.KindCmdResult + "/+",
	wire.Root + "/+/" + wire.KindTelemetry,
}

// maxQueued bounds the messages waiting for the engine; past it messages are dropped and
// counted (a dropped result makes its device time out, which rolls the rollout back).
const maxQueued = 100000

type inMsg struct {
	topic   string
	payload []byte
}

// client is the engine's MQTT connection: it publishes commands and queues the results and
// telemetry it receives for the engine's goroutine.
type client struct {
	log     *slog.Logger
	c       mqtt.Client
	connect mqtt.Token
	notify  chan struct{} // 1-buffered: messages were queued

	mu      sync.Mutex
	queue   []inMsg
	dropped atomic.Uint64
}

func newClient(brokerURL, clientID, user, password string, log *slog.Logger) *client {
	cl := &client{log: log, notify: make(chan struct{}, 1)}
	opts := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(password).
		SetCleanSession(false). // results sent while the fleet restarts wait in the broker
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(cl.onMessage).
		SetOnConnectHandler(func(c mqtt.Client) {
			filters := make(map[string]byte, len(Topics))
			for _, t := range Topics {
				filters[t] = 1
			}
			tok := c.SubscribeMultiple(filters, nil)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				cl.log.Warn("rollout: mqtt subscribe failed", "error", tok.Error())
			}
		})
	cl.c = mqtt.NewClient(opts)
	return cl
}

func (cl *client) start() { cl.connect = cl.c.Connect() }

func (cl *client) onMessage(_ mqtt.Client, m mqtt.Message) {
	cl.mu.Lock()
	if len(cl.queue) >= maxQueued {
		cl.mu.Unlock()
		cl.dropped.Add(1)
		return
	}
	cl.queue = append(cl.queue, inMsg{m.Topic(), m.Payload()})
	cl.mu.Unlock()
	select {
	case cl.notify <- struct{}{}:
	default:
	}
}

// take returns and clears the queued messages.
func (cl *client) take() []inMsg {
	cl.mu.Lock()
	q := cl.queue
	cl.queue = nil
	cl.mu.Unlock()
	return q
}

// publish sends one payload at QoS 1 and waits (bounded) for the broker's acknowledgement.
func (cl *client) publish(topic string, payload []byte) error {
	if !cl.c.IsConnectionOpen() {
		return errors.New("mqtt: not connected")
	}
	tok := cl.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("mqtt: publish %s: no acknowledgement within 5s", topic)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqtt: publish %s: %w", topic, err)
	}
	return nil
}

func (cl *client) connected() bool { return cl.c.IsConnectionOpen() }

// close disconnects and waits, bounded, for paho's connect loop to stop.
func (cl *client) close() {
	cl.c.Disconnect(250)
	if cl.connect != nil {
		cl.connect.WaitTimeout(6 * time.Second)
	}
}
