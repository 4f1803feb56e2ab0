// Package testpub is a stand-in agent for the fleet's tests: a real paho MQTT client that
// publishes pipeline/wire messages at QoS 1, sets the offline status as its last will, and can
// drop its TCP connection without a DISCONNECT so that the broker sends the will.
package testpub

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Publisher is one simulated agent connected to a broker.
type Publisher struct {
	t      testing.TB
	Device string
	client mqtt.Client

	mu   sync.Mutex
	conn net.Conn
	seq  uint64
}

// Connect connects a publisher for device to brokerURL, with an offline Status (retained,
// QoS 1) as its will. It disconnects when the test ends.
func Connect(t testing.TB, brokerURL, device string) *Publisher {
	t.Helper()
	p := &Publisher{t: t, Device: device}
	will := p.status(wire.StateOffline, "will-"+fmt.Sprint(time.Now().UnixNano()))
	opts := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID("agent-"+device).
		SetAutoReconnect(false).
		SetConnectTimeout(5*time.Second).
		SetBinaryWill(wire.Topic(device, wire.KindStatus, ""), will, 1, true).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				return nil, err
			}
			p.mu.Lock()
			p.conn = c
			p.mu.Unlock()
			return c, nil
		})
	p.client = mqtt.NewClient(opts)
	tok := p.client.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher %s: connect to %s: %v", device, brokerURL, tok.Error())
	}
	t.Cleanup(func() { p.client.Disconnect(100) })
	return p
}

func (p *Publisher) header(schema, msgID string) wire.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	return wire.Header{Schema: schema, DeviceID: p.Device, Seq: p.seq, MsgID: msgID, CapturedAt: time.Now().UnixMilli()}
}

func (p *Publisher) status(state, msgID string) []byte {
	b, err := json.Marshal(wire.Status{Header: p.header(wire.SchemaStatus, msgID), State: state, Version: "0.0.1-test", Cameras: []string{"cam1"}})
	if err != nil {
		panic(err)
	}
	return b
}

// Online publishes a retained online Status and waits for the broker's acknowledgement.
func (p *Publisher) Online() {
	p.t.Helper()
	p.Publish(wire.Topic(p.Device, wire.KindStatus, ""), p.status(wire.StateOnline, fmt.Sprint("online-", time.Now().UnixNano())), true)
}

// Detections publishes one Detections message for camera with the given labels and msgID
// and waits for the broker's acknowledgement.
func (p *Publisher) Detections(camera, msgID string, labels ...string) {
	p.t.Helper()
	d := wire.Detections{
		Header:      p.header(wire.SchemaDetections, msgID),
		Camera:      camera,
		FrameWidth:  1280,
		FrameHeight: 720,
		Model:       wire.Model{Name: "yolox-nano", Version: "1"},
		InferenceMS: 13.5,
	}
	for _, l := range labels {
		d.Objects = append(d.Objects, wire.Object{Label: l, Score: 0.9, BoxPx: [4]int{1, 2, 3, 4}})
	}
	b, err := json.Marshal(d)
	if err != nil {
		panic(err)
	}
	p.Publish(wire.Topic(p.Device, wire.KindDetections, camera), b, false)
}

// Publish publishes a raw payload at QoS 1 and waits for the acknowledgement.
func (p *Publisher) Publish(topic string, payload []byte, retained bool) {
	p.t.Helper()
	tok := p.client.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		p.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// Kill closes the TCP connection without an MQTT DISCONNECT: the broker sends the will.
func (p *Publisher) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		_ = p.conn.Close()
	}
}

// Disconnect disconnects cleanly (DISCONNECT sent: no will) and waits for the client to stop.
func (p *Publisher) Disconnect() { p.client.Disconnect(250) }
