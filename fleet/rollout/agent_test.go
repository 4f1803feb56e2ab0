package rollout_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// agent is a test double for a device that speaks the real protocol: it takes commands on
// vigil/v1/<id>/cmd/+, verifies them with the fleet's public key, answers on
// cmd_result/<name>, and publishes telemetry every 40 ms naming the model it runs.
type agent struct {
	t   *testing.T
	id  string
	pub ed25519.PublicKey
	c   mqtt.Client

	cmds chan mqtt.Message
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	seq      uint64
	model    wire.Model
	prev     []wire.Model
	received []wire.Command // verified commands, in order
	rejected int            // commands that did not verify

	// behaviour, set before start
	failUpdate bool    // answer model_update with failed
	busyOnce   bool    // answer the first model_update with failed "busy …"
	rateBefore float64 // detections_per_s on the first model
	rateAfter  float64 // detections_per_s on any other model
}

var oldModel = wire.Model{Name: "yolox_nano", Version: "0.9.0", SHA256: strings.Repeat("a", 64)}

func newAgent(t *testing.T, brokerURL, id string, pub ed25519.PublicKey, mod func(*agent)) *agent {
	t.Helper()
	a := &agent{t: t, id: id, pub: pub, cmds: make(chan mqtt.Message, 64), stop: make(chan struct{}), done: make(chan struct{}),
		model: oldModel, rateBefore: 10, rateAfter: 10}
	if mod != nil {
		mod(a)
	}
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID("agent-" + id).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(wire.Topic(id, wire.KindCmd, "+"), 1, func(_ mqtt.Client, m mqtt.Message) { a.cmds <- m })
		})
	a.c = mqtt.NewClient(opts)
	if tok := a.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("agent %s: connect: %v", id, tok.Error())
	}
	go a.run()
	t.Cleanup(func() {
		close(a.stop)
		<-a.done
		a.c.Disconnect(100)
	})
	return a
}

func (a *agent) run() {
	defer close(a.done)
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case m := <-a.cmds:
			a.command(m)
		case <-tick.C:
			a.telemetry()
		}
	}
}

func (a *agent) header(schema string) wire.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	return wire.Header{Schema: schema, DeviceID: a.id, Seq: a.seq, MsgID: fmt.Sprintf("%s-e1-%d", a.id, a.seq),
		CapturedAt: time.Now().UnixMilli()}
}

func (a *agent) publish(topic string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	tok := a.c.Publish(topic, 1, false, b)
	tok.WaitTimeout(5 * time.Second)
}

func (a *agent) telemetry() {
	a.mu.Lock()
	m := a.model
	rate := a.rateBefore
	if m != oldModel {
		rate = a.rateAfter
	}
	a.mu.Unlock()
	a.publish(wire.Topic(a.id, wire.KindTelemetry, ""), wire.Telemetry{Header: a.header(wire.SchemaTelemetry), UptimeS: 1,
		Model:   &m,
		Cameras: []wire.CameraTelemetry{{ID: "cam1", State: "streaming", FPS: 25, DetectFPS: 5, DetectionsPerS: rate}}})
}

func (a *agent) command(m mqtt.Message) {
	var sc wire.SignedCommand
	if err := json.Unmarshal(m.Payload(), &sc); err != nil {
		a.t.Errorf("agent %s: command payload: %v", a.id, err)
		return
	}
	cmd, err := sc.Verify(a.pub, a.id, time.Now())
	if err != nil {
		a.mu.Lock()
		a.rejected++
		a.mu.Unlock()
		return
	}
	a.mu.Lock()
	a.received = append(a.received, cmd)
	fail, busy := a.failUpdate, a.busyOnce && cmd.Name == wire.CmdModelUpdate
	if busy {
		a.busyOnce = false
	}
	a.mu.Unlock()
	res := func(state, reason string, model *wire.ModelRef) {
		a.publish(wire.Topic(a.id, wire.KindCmdResult, cmd.Name), wire.CmdResult{Header: a.header(wire.SchemaCmdResult),
			CmdID: cmd.ID, RolloutID: cmd.RolloutID, Name: cmd.Name, State: state, Reason: reason, Model: model})
	}
	switch cmd.Name {
	case wire.CmdModelUpdate:
		if busy {
			res(wire.CmdFailed, "busy: another command is running", nil)
			return
		}
		res(wire.CmdAccepted, "", nil)
		res(wire.CmdDownloading, "", nil)
		if fail {
			res(wire.CmdFailed, "sha256 mismatch", nil)
			return
		}
		a.mu.Lock()
		a.prev = append(a.prev, a.model)
		a.model = wire.Model{Name: cmd.Model.Name, Version: cmd.Model.Version, SHA256: cmd.Model.SHA256}
		a.mu.Unlock()
		res(wire.CmdActive, "", cmd.Model)
	case wire.CmdModelRollback:
		a.mu.Lock()
		if n := len(a.prev); n > 0 {
			a.model, a.prev = a.prev[n-1], a.prev[:n-1]
		}
		a.mu.Unlock()
		res(wire.CmdRolledBack, "", nil)
	}
}

// commands returns the verified commands of one name received so far.
func (a *agent) commands(name string) []wire.Command {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []wire.Command
	for _, c := range a.received {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

func (a *agent) running() wire.Model {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.model
}
