// Package simulate runs simulated Vigil devices against an MQTT broker, for load tests and
// demos of the fleet. Each device is a real paho MQTT client that speaks the agent's wire
// protocol: a retained online status with an offline last will, one epoch per run and seq
// numbers from 1 in msg_id, detections, events (new, update, end), alerts and telemetry per
// camera, and a cmd_result answer to every command it receives (with Install, a model update
// is taken: the device reports it active and runs the new model in its telemetry).
//
//	Run ──▶ device 1 … N (one MQTT connection each)
//	          │ ticker at rate/N
//	          ▼
//	        next message (mix) ──QoS 1──▶ broker ──▶ vigil-fleet instances
//
// Messages are numbered per device exactly as the agent numbers them, so a consumer can check
// by (device, epoch, seq) that every message was stored exactly once: [Result] carries the
// epoch and the last seq of every device.
package simulate

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/internal/nostore"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Config sets a simulation. Zero fields take the defaults of [Config.withDefaults].
type Config struct {
	// Broker is tcp://host:port; several, comma-separated, are nodes of one cluster: device i
	// connects to the (i mod n)-th first and fails over to the others in turn.
	Broker   string
	Username string // optional, the same for every device
	Password string
	// Devices is the number of simulated devices; Cameras the number of cameras each has.
	Devices int
	Cameras int
	// Rate is the total number of sequenced messages per second over all devices.
	Rate float64
	// Duration is how long to publish; 0 runs until ctx is cancelled.
	Duration time.Duration
	// Prefix starts every device id: <prefix><n>, n from 1, zero-padded.
	Prefix string
	// Inflight bounds the unacknowledged messages of one device.
	Inflight int
	// ConnectRate bounds new connections per second, so a thousand devices do not SYN-flood
	// the broker at once.
	ConnectRate float64
	// Mix is the share of each message kind; detections take what the others leave.
	EventShare, AlertShare float64
	// TelemetryEvery is each device's telemetry period.
	TelemetryEvery time.Duration
	// Install makes the devices take model_update and model_rollback commands (unverified, and
	// nothing is loaded): they answer "active" / "rolled_back" and name the model in their
	// telemetry from then on, so a rollout can run to its end. Without it every command is
	// answered "failed".
	Install bool
	// Progress, when set, is called about once a second with the running totals.
	Progress func(Stats)
	Logger   *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Devices == 0 {
		c.Devices = 10
	}
	if c.Cameras == 0 {
		c.Cameras = 2
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	if c.Prefix == "" {
		c.Prefix = "sim-"
	}
	if c.Inflight == 0 {
		c.Inflight = 16
	}
	if c.ConnectRate == 0 {
		c.ConnectRate = 500
	}
	if c.EventShare == 0 {
		c.EventShare = 0.1
	}
	if c.AlertShare == 0 {
		c.AlertShare = 0.02
	}
	if c.TelemetryEvery == 0 {
		c.TelemetryEvery = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate names the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.Broker == "":
		return errors.New("simulate: --broker is required")
	case c.Devices < 1 || c.Devices > 100000:
		return fmt.Errorf("simulate: --devices %d: want 1-100000", c.Devices)
	case c.Cameras < 1 || c.Cameras > 64:
		return fmt.Errorf("simulate: --cameras %d: want 1-64", c.Cameras)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("simulate: --rate %v: want > 0 messages/s", c.Rate)
	case c.Duration < 0:
		return fmt.Errorf("simulate: --duration %v: want ≥ 0", c.Duration)
	case c.EventShare < 0 || c.AlertShare < 0 || c.EventShare+c.AlertShare > 1:
		return fmt.Errorf("simulate: event share %v + alert share %v: want each ≥ 0, together ≤ 1", c.EventShare, c.AlertShare)
	case !wire.ValidID(c.Prefix + "1"):
		return fmt.Errorf("simulate: --prefix %q does not make valid device ids", c.Prefix)
	}
	return nil
}

// Stats are running totals.
type Stats struct {
	Connected int    `json:"connected"`
	Sent      uint64 `json:"sent"`     // sequenced messages handed to the broker
	Acked     uint64 `json:"acked"`    // … and acknowledged (PUBACK)
	Failed    uint64 `json:"failed"`   // … never acknowledged, after re-sending for publishGiveUp
	Resent    uint64 `json:"resent"`   // re-sends of messages not acknowledged within publishWait
	Commands  uint64 `json:"commands"` // commands received (each answered)
	// AckedByKind splits Acked by message kind (detections, events, alerts, telemetry,
	// cmd_result).
	AckedByKind map[string]uint64 `json:"acked_by_kind"`
}

// Device is one simulated device's numbering after a run.
type Device struct {
	ID    string `json:"id"`
	Epoch string `json:"epoch"`
	// LastSeq is the last seq acknowledged by the broker; every seq 1..LastSeq was acknowledged.
	LastSeq uint64 `json:"last_seq"`
	// Commands are the ids of the commands the device received, in order (a repeat included).
	Commands []string `json:"commands,omitempty"`
	// Model is the model the device ran at the end.
	Model wire.Model `json:"model"`
}

// Result is what a run did.
type Result struct {
	Stats
	Elapsed time.Duration `json:"elapsed_ns"`
	Devices []Device      `json:"devices"`
}

// Run connects the devices, publishes until Duration has passed or ctx is done, waits for
// outstanding acknowledgements, publishes each device's offline status and disconnects. It
// returns an error when a device cannot connect; messages that fail later are counted.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	s := &sim{cfg: cfg, byKind: map[string]uint64{}}
	width := len(strconv.Itoa(cfg.Devices))
	devs := make([]*device, cfg.Devices)
	for i := range devs {
		devs[i] = newDevice(s, fmt.Sprintf("%s%0*d", cfg.Prefix, width, i+1), i)
	}
	// Connect at a bounded rate; stop everything if one cannot.
	connectEvery := time.Duration(float64(time.Second) / cfg.ConnectRate)
	for i, d := range devs {
		if err := ctx.Err(); err != nil {
			disconnectAll(devs[:i])
			return Result{}, err
		}
		if err := d.connect(); err != nil {
			disconnectAll(devs[:i])
			return Result{}, fmt.Errorf("simulate: device %s: %w", d.id, err)
		}
		s.connected.Add(1)
		time.Sleep(connectEvery)
	}
	runCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	var wg sync.WaitGroup
	perDevice := cfg.Rate / float64(cfg.Devices)
	interval := time.Duration(float64(time.Second) / perDevice)
	for i, d := range devs {
		// Spread the devices' first ticks over one interval so the load is even.
		offset := time.Duration(int64(interval) * int64(i) / int64(len(devs)))
		wg.Go(func() { d.run(runCtx, offset, interval) })
	}
	progressDone := make(chan struct{})
	var pwg sync.WaitGroup
	if cfg.Progress != nil {
		pwg.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					cfg.Progress(s.stats())
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(progressDone)
	pwg.Wait()
	res := Result{Elapsed: elapsed, Devices: make([]Device, len(devs))}
	for i, d := range devs {
		d.close()
		d.mu.Lock()
		cmds, model := slices.Clone(d.commands), d.model
		d.mu.Unlock()
		res.Devices[i] = Device{ID: d.id, Epoch: d.epoch, LastSeq: d.ackedThrough(), Commands: cmds, Model: model}
	}
	res.Stats = s.stats()
	return res, nil
}

func disconnectAll(devs []*device) {
	for _, d := range devs {
		d.client.Disconnect(250)
	}
}

type sim struct {
	cfg                                 Config
	connected                           atomic.Int64
	sent, acked, failed, cmdsIn, resent atomic.Uint64

	mu     sync.Mutex
	byKind map[string]uint64
}

func (s *sim) stats() Stats {
	s.mu.Lock()
	byKind := make(map[string]uint64, len(s.byKind))
	for k, n := range s.byKind {
		byKind[k] = n
	}
	s.mu.Unlock()
	return Stats{Connected: int(s.connected.Load()), Sent: s.sent.Load(), Acked: s.acked.Load(),
		Failed: s.failed.Load(), Resent: s.resent.Load(), Commands: s.cmdsIn.Load(), AckedByKind: byKind}
}

func (s *sim) ackedKind(kind string) {
	s.acked.Add(1)
	s.mu.Lock()
	s.byKind[kind]++
	s.mu.Unlock()
}

// device is one simulated agent.
type device struct {
	s      *sim
	id     string
	epoch  string
	client mqtt.Client
	start  time.Time
	slots  chan struct{} // in-flight bound
	// mixOffset shifts the device's place in the kind sequence.
	mixOffset int
	index     int // from 0

	mu       sync.Mutex
	seq      uint64          // last assigned
	acked    map[uint64]bool // acknowledged above ackedTo
	ackedTo  uint64          // every seq ≤ ackedTo acknowledged
	cams     []camState
	lastTel  time.Time
	pending  sync.WaitGroup
	eventSeq uint64 // for ids
	model    wire.Model
	commands []string // ids received
}

// simModel is what a simulated device runs until it installs another model.
var simModel = wire.Model{Name: "yolox_nano", Version: "1.0.0"}

type camState struct {
	id      string
	eventID string // the open event, "" when none
	track   uint64
	started int64
	updates int
}

func newDevice(s *sim, id string, index int) *device {
	var e [6]byte
	_, _ = rand.Read(e[:])
	d := &device{s: s, id: id, mixOffset: 7 * index, index: index, epoch: hex.EncodeToString(e[:]), start: time.Now(),
		slots: make(chan struct{}, s.cfg.Inflight), acked: map[uint64]bool{}, model: simModel}
	for c := range s.cfg.Cameras {
		d.cams = append(d.cams, camState{id: fmt.Sprintf("cam%d", c+1)})
	}
	return d
}

func (d *device) statusPayload(state string) []byte {
	d.mu.Lock()
	h := wire.Header{Schema: wire.SchemaStatus, DeviceID: d.id, Seq: d.seq,
		MsgID: wire.StatusMessageID(d.id, d.epoch, time.Now()), CapturedAt: time.Now().UnixMilli()}
	cams := make([]string, len(d.cams))
	for i := range d.cams { // under the lock: events update the cameras' state (a reconnect calls this)
		cams[i] = d.cams[i].id
	}
	d.mu.Unlock()
	b, _ := json.Marshal(wire.Status{Header: h, State: state, Version: "simulated", Cameras: cams})
	return b
}

func (d *device) connect() error {
	cfg := d.s.cfg
	opts := mqtt.NewClientOptions().
		SetClientID(d.id).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(true).
		SetStore(nostore.Store{}). // publishNext re-sends, not paho
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetKeepAlive(30*time.Second).
		SetConnectTimeout(10*time.Second).
		SetMaxResumePubInFlight(cfg.Inflight).
		SetBinaryWill(wire.Topic(d.id, wire.KindStatus, ""), d.statusPayload(wire.StateOffline), 1, true).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(wire.Topic(d.id, "cmd", "+"), 1, d.onCommand)
			c.Publish(wire.Topic(d.id, wire.KindStatus, ""), 1, true, d.statusPayload(wire.StateOnline))
		})
	brokers := strings.Split(cfg.Broker, ",")
	for i := range brokers {
		opts.AddBroker(strings.TrimSpace(brokers[(d.index+i)%len(brokers)]))
	}
	d.client = mqtt.NewClient(opts)
	tok := d.client.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return errors.New("connect: timed out")
	}
	return tok.Error()
}

// onCommand answers every command with a failed cmd_result (a simulated device installs
// nothing, but the fleet sees the command arrive and the answer come back), or with Install
// takes model updates and rollbacks.
func (d *device) onCommand(_ mqtt.Client, m mqtt.Message) {
	d.s.cmdsIn.Add(1)
	var sc wire.SignedCommand
	var cmd wire.Command
	if json.Unmarshal(m.Payload(), &sc) == nil {
		if raw, err := base64.StdEncoding.DecodeString(sc.Payload); err == nil {
			_ = json.Unmarshal(raw, &cmd) // unverified: a simulator installs nothing
		}
	}
	state, reason := wire.CmdFailed, "simulated device: nothing is installed"
	d.mu.Lock()
	d.commands = append(d.commands, cmd.ID)
	if d.s.cfg.Install {
		switch {
		case cmd.Name == wire.CmdModelUpdate && cmd.Model != nil:
			d.model = wire.Model{Name: cmd.Model.Name, Version: cmd.Model.Version, SHA256: cmd.Model.SHA256}
			state, reason = wire.CmdActive, ""
		case cmd.Name == wire.CmdModelRollback:
			d.model = simModel
			if cmd.Model != nil {
				d.model = wire.Model{Name: cmd.Model.Name, Version: cmd.Model.Version, SHA256: cmd.Model.SHA256}
			}
			state, reason = wire.CmdRolledBack, ""
		}
	}
	d.mu.Unlock()
	d.publishNext(func(h wire.Header) (string, any) {
		h.Schema = wire.SchemaCmdResult
		return wire.Topic(d.id, "cmd_result", cmd.Name), wire.CmdResult{Header: h, CmdID: cmd.ID, RolloutID: cmd.RolloutID,
			Name: cmd.Name, State: state, Reason: reason}
	})
}

func (d *device) run(ctx context.Context, offset, interval time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			d.pending.Wait()
			return
		case <-t.C:
		}
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			d.pending.Wait()
			return
		}
		n++
		d.publishNext(d.nextMessage(n))
	}
}

// nextMessage picks the n-th message of the device by the configured mix.
func (d *device) nextMessage(n int) func(wire.Header) (string, any) {
	cfg := d.s.cfg
	now := time.Now()
	d.mu.Lock()
	telemetryDue := now.Sub(d.lastTel) >= cfg.TelemetryEvery
	if telemetryDue {
		d.lastTel = now
	}
	ci := n % len(d.cams)
	d.mu.Unlock()
	if telemetryDue {
		return d.telemetry
	}
	// A deterministic spread of kinds: the fraction of n that falls in each share.
	// Each device starts at its own place in the sequence, so that even short runs of many
	// devices send every kind.
	x := math.Mod(float64(n+d.mixOffset)*0.6180339887, 1)
	switch {
	case x < cfg.AlertShare:
		return func(h wire.Header) (string, any) { return d.alert(h, ci) }
	case x < cfg.AlertShare+cfg.EventShare:
		return func(h wire.Header) (string, any) { return d.event(h, ci) }
	default:
		return func(h wire.Header) (string, any) { return d.detections(h, ci) }
	}
}

// publishNext assigns the next seq, builds the message and publishes it at QoS 1; the slot
// taken by the caller (if any) is freed when the broker acknowledges.
func (d *device) publishNext(build func(wire.Header) (string, any)) {
	d.mu.Lock()
	d.seq++
	seq := d.seq
	d.mu.Unlock()
	h := wire.Header{DeviceID: d.id, Seq: seq, MsgID: wire.MessageID(d.id, d.epoch, seq),
		CapturedAt: time.Now().UnixMilli()}
	topic, msg := build(h)
	payload, err := json.Marshal(msg)
	if err != nil {
		panic(err) // our own types always marshal
	}
	d.s.sent.Add(1)
	tok := d.client.Publish(topic, 1, false, payload)
	d.pending.Add(1)
	go func() {
		defer d.pending.Done()
		defer func() {
			select {
			case <-d.slots:
			default:
			}
		}()
		// As the agent's outbox does: a message not acknowledged is sent again, with the same
		// msg_id, until it is (the fleet drops the duplicates by msg_id).
		first := time.Now()
		for !tok.WaitTimeout(publishWait) || tok.Error() != nil {
			if time.Since(first) > publishGiveUp {
				d.s.failed.Add(1)
				return
			}
			if tok.Error() != nil {
				time.Sleep(publishWait / 10) // not connected: let it reconnect
			}
			d.s.resent.Add(1)
			tok = d.client.Publish(topic, 1, false, payload)
		}
		_, kind, _, _ := wire.ParseTopic(topic)
		d.s.ackedKind(kind)
		d.ack(seq)
	}()
}

// publishWait is how long a device waits for a PUBACK before it sends the message again;
// publishGiveUp when it counts the message failed.
const (
	publishWait   = 5 * time.Second
	publishGiveUp = 60 * time.Second
)

func (d *device) ack(seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acked[seq] = true
	for d.acked[d.ackedTo+1] {
		delete(d.acked, d.ackedTo+1)
		d.ackedTo++
	}
}

func (d *device) ackedThrough() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ackedTo
}

func (d *device) close() {
	d.pending.Wait()
	if d.client == nil || !d.client.IsConnected() {
		return
	}
	tok := d.client.Publish(wire.Topic(d.id, wire.KindStatus, ""), 1, true, d.statusPayload(wire.StateOffline))
	tok.WaitTimeout(5 * time.Second)
	d.client.Disconnect(250)
}

var labels = []string{"person", "car", "truck", "bicycle"}

func (d *device) detections(h wire.Header, ci int) (string, any) {
	h.Schema = wire.SchemaDetections
	cam := d.cams[ci].id
	l := labels[int(h.Seq)%len(labels)]
	x := int(h.Seq*37) % 1100
	return wire.Topic(d.id, wire.KindDetections, cam), wire.Detections{Header: h, Camera: cam, FrameSeq: h.Seq,
		FrameWidth: 1280, FrameHeight: 720, Model: wire.Model{Name: "yolox_nano", Version: "1.0.0"}, InferenceMS: 13.5,
		Objects: []wire.Object{{Label: l, Score: 0.8, BoxPx: [4]int{x, 300, x + 120, 520},
			BoxNorm: [4]float64{float64(x) / 1280, 300.0 / 720, float64(x+120) / 1280, 520.0 / 720}}}}
}

// ulid makes a ULID-shaped id (timestamp + counter), unique within the run.
func (d *device) ulid(at int64) string {
	const enc = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	d.mu.Lock()
	d.eventSeq++
	n := d.eventSeq
	d.mu.Unlock()
	var b [26]byte
	t := uint64(at)
	for i := 9; i >= 0; i-- {
		b[i] = enc[t&31]
		t >>= 5
	}
	// 80 random-looking bits: the device's epoch hash mixed with the counter.
	r := n*0x9E3779B97F4A7C15 ^ uint64(len(d.id))<<56
	for _, c := range d.epoch + d.id {
		r = r*31 + uint64(c)
	}
	for i := 25; i >= 10; i-- {
		b[i] = enc[r&31]
		r >>= 5
		if i == 18 {
			r = n*0xBF58476D1CE4E5B9 + uint64(at)
		}
	}
	return string(b[:])
}

func (d *device) event(h wire.Header, ci int) (string, any) {
	h.Schema = wire.SchemaEvent
	d.mu.Lock()
	c := &d.cams[ci]
	typ := wire.EventUpdate
	var before *wire.EventState
	state := wire.EventState{TrackID: c.track, Label: "person", TopScore: 0.9, Score: 0.8, StartTime: c.started,
		BoxPx: [4]int{100, 200, 180, 400}, BoxNorm: [4]float64{100.0 / 1280, 200.0 / 720, 180.0 / 1280, 400.0 / 720},
		SpeedUnit: wire.UnitPxPerS, Zones: []string{"entrance"}, EnteredZones: []string{"entrance"}}
	open := c.eventID != ""
	d.mu.Unlock()
	if !open {
		id := d.ulid(h.CapturedAt)
		d.mu.Lock()
		c.eventID, c.track, c.started, c.updates = id, c.track+1, h.CapturedAt, 0
		state.TrackID, state.StartTime = c.track, c.started
		d.mu.Unlock()
		typ = wire.EventNew
	}
	d.mu.Lock()
	state.ID = c.eventID
	if open {
		prev := state
		before = &prev
		c.updates++
		if c.updates >= 3 {
			typ = wire.EventEnd
			end := h.CapturedAt
			state.EndTime = &end
			c.eventID = ""
		}
	}
	d.mu.Unlock()
	return wire.Topic(d.id, wire.KindEvents, d.cams[ci].id), wire.Event{Header: h, Camera: d.cams[ci].id, Type: typ,
		Before: before, After: state}
}

func (d *device) alert(h wire.Header, ci int) (string, any) {
	h.Schema = wire.SchemaAlert
	cam := d.cams[ci].id
	return wire.Topic(d.id, wire.KindAlerts, cam), wire.Alert{Header: h, Camera: cam, AlertID: d.ulid(h.CapturedAt),
		RuleID: "door_line", RuleType: "line", Kind: "a_to_b", Label: "person", Time: h.CapturedAt, TrackIDs: []uint64{1}}
}

func (d *device) telemetry(h wire.Header) (string, any) {
	h.Schema = wire.SchemaTelemetry
	cams := make([]wire.CameraTelemetry, len(d.cams))
	for i, c := range d.cams {
		cams[i] = wire.CameraTelemetry{ID: c.id, State: "streaming", FPS: 30, DetectFPS: 5, DetectionsPerS: 3}
	}
	d.mu.Lock()
	model := d.model
	d.mu.Unlock()
	return wire.Topic(d.id, wire.KindTelemetry, ""), wire.Telemetry{Header: h, UptimeS: time.Since(d.start).Seconds(),
		Model: &model, Cameras: cams,
		Outbox: &wire.OutboxHealth{}}
}
