// Package testpub is a stand-in agent for the fleet's tests: a real paho MQTT client that
// publishes pipeline/wire messages at QoS 1, sets the offline status as its last will, and can
// drop its TCP connection without a DISCONNECT so that the broker sends the will.
//
// Like the agent's outbox, each Publisher has an epoch (a random hex id) and numbers its
// messages with seq from 1; msg_id is <device>-<epoch>-<seq>. Status messages are outside the
// sequence and carry the last seq assigned.
package testpub

import (
	"crypto/rand"
	"encoding/hex"
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
	Epoch  string
	client mqtt.Client

	mu   sync.Mutex
	conn net.Conn
	seq  uint64 // last assigned
}

// Connect connects a publisher for device to brokerURL, with an offline Status (retained,
// QoS 1) as its will. It disconnects when the test ends.
func Connect(t testing.TB, brokerURL, device string) *Publisher {
	t.Helper()
	var e [6]byte
	_, _ = rand.Read(e[:])
	p := &Publisher{t: t, Device: device, Epoch: hex.EncodeToString(e[:])}
	will := p.status(wire.StateOffline)
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

// MsgID is the msg_id of the publisher's message seq.
func (p *Publisher) MsgID(seq uint64) string { return fmt.Sprintf("%s-%s-%d", p.Device, p.Epoch, seq) }

// Seq is the last seq assigned.
func (p *Publisher) Seq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

func (p *Publisher) status(state string) []byte {
	p.mu.Lock()
	h := wire.Header{Schema: wire.SchemaStatus, DeviceID: p.Device, Seq: p.seq,
		MsgID: fmt.Sprintf("%s-%s-status-%d", p.Device, p.Epoch, time.Now().UnixNano()), CapturedAt: time.Now().UnixMilli()}
	p.mu.Unlock()
	b, err := json.Marshal(wire.Status{Header: h, State: state, Version: "0.0.1-test", Cameras: []string{"cam1"}})
	if err != nil {
		panic(err)
	}
	return b
}

// Online publishes a retained online Status and waits for the broker's acknowledgement.
func (p *Publisher) Online() {
	p.t.Helper()
	p.Publish(wire.Topic(p.Device, wire.KindStatus, ""), p.status(wire.StateOnline), true)
}

// Detections publishes one live Detections message for camera with the given labels under the
// next seq, waits for the broker's acknowledgement and returns the seq.
func (p *Publisher) Detections(camera string, labels ...string) uint64 {
	p.t.Helper()
	p.mu.Lock()
	seq := p.seq + 1
	p.mu.Unlock()
	p.DetectionsSeq(camera, seq, false, labels...)
	return seq
}

// DetectionsSeq publishes one Detections message under seq: a repeat of one sent before, a
// replay of one held back (with replayed set), or one after a gap. It waits for the broker's
// acknowledgement.
func (p *Publisher) DetectionsSeq(camera string, seq uint64, replayed bool, labels ...string) {
	p.t.Helper()
	p.mu.Lock()
	p.seq = max(p.seq, seq)
	p.mu.Unlock()
	d := wire.Detections{
		Header: wire.Header{Schema: wire.SchemaDetections, DeviceID: p.Device, Seq: seq, MsgID: p.MsgID(seq),
			CapturedAt: time.Now().UnixMilli(), Replayed: replayed},
		Camera:      camera,
		FrameSeq:    seq,
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
