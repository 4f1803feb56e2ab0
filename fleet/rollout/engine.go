package rollout

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Defaults of [Config].
const (
	DefaultTick        = time.Second
	DefaultRollbackTTL = 24 * time.Hour
	// maxTracked bounds the devices whose telemetry the engine remembers.
	maxTracked = 100000
	// baselineSamples is how many telemetry reports before an update make its baseline.
	baselineSamples = 10
	// busyRetry is how long to wait before sending an update again to a device that answered
	// it was busy with another command.
	busyRetry = 5 * time.Second
	// maxQueued bounds the messages waiting for the engine; past it messages are dropped and
	// counted (a dropped result makes its device time out, which rolls the rollout back).
	maxQueued = 100000
	// publishTimeout bounds the wait for the broker's acknowledgement of one command.
	publishTimeout = 5 * time.Second
	// storeTimeout bounds one Load or Save of the store.
	storeTimeout = 10 * time.Second
)

// Models is where the engine finds a model to roll out.
type Models interface {
	// Load returns name@version after checking its artifact and signed manifest; the error
	// wraps catalog.ErrNotFound or catalog.ErrBadModel when it cannot be rolled out. It may be
	// called concurrently.
	Load(name, version string) (catalog.Model, error)
}

// Devices lists the known devices, for the "all" selector; it may be called concurrently.
type Devices interface {
	Devices() []registry.Device
}

// Publisher sends the engine's commands: the fleet's one MQTT connection (fleet/subscriber).
type Publisher interface {
	// Publish sends payload on topic at QoS 1 and returns once the broker acknowledged it,
	// or with why not (no acknowledgement within timeout, not connected). It is safe for
	// concurrent use.
	Publish(topic string, payload []byte, timeout time.Duration) error
	// Connected reports whether the connection is up.
	Connected() bool
}

// Config configures an Engine.
type Config struct {
	DataDir string // rollouts.db lives here; required without Store
	// Store keeps the rollouts; DataDir/rollouts.db (OpenBolt) when nil. The Engine closes it.
	Store     Store
	Publisher Publisher          // sends the commands; required
	Key       ed25519.PrivateKey // signs commands; without it Create fails
	PublicURL string             // base of the model URLs sent to devices, e.g. http://fleet:8080
	Models    Models             // required
	Devices   Devices            // required
	Tick      time.Duration      // how often timeouts and windows are checked; DefaultTick when zero
	// RollbackTTL is how long a model_rollback command stays valid; DefaultRollbackTTL when zero.
	RollbackTTL time.Duration
	Now         func() time.Time // the clock; time.Now when nil
	Logger      *slog.Logger     // slog.Default() when nil
}

// Engine runs the rollouts. It is the Machine (the state, stepped by one goroutine), its
// store (rollouts.db) and its transport (the commands go out through the Publisher, the
// devices' results and telemetry come in through Feed, from the subscriber's handler chain).
//
//	Feed(cmd_result, telemetry) ─┐
//	API calls (Create, Pause, …) ─┼─▶ run goroutine: Machine step ─▶ save ─▶ view (List, Get)
//	tick ────────────────────────┘                      │ commands
//	                                                    ▼
//	                     sender goroutine ─▶ Publisher (QoS 1); a failure goes back to the Machine
//
// The view is what List and Get read, under a lock that is held only to copy: no read ever
// waits for the disk, the broker or the machine. Writes (Create, Pause, Resume, Abort) wait
// for their step and its save, never for a publish. A command goes to the sender only once
// the state that records it as sent is saved: a store that refuses writes (a leader that lost
// its lock, see Store) sends nothing. Start it once, Close it once; its methods may be called
// concurrently.
type Engine struct {
	cfg Config
	log *slog.Logger
	st  Store
	m   *Machine // stepped only by the run goroutine (by New before Start)

	mu    sync.Mutex // guards view and order; never held during I/O
	view  map[string]Rollout
	order []string

	inMu    sync.Mutex
	inbox   []input
	notify  chan struct{} // 1-buffered: inputs were queued
	dropped atomic.Uint64

	outMu   sync.Mutex
	outbox  []wire.Command // commands for the sender, in order
	outWake chan struct{}  // 1-buffered

	reqs    chan request
	unsaved map[string]bool // run goroutine: rollouts whose last save failed
	held    []wire.Command  // run goroutine: commands waiting for their state to be saved
	resent  bool            // run goroutine: the commands shown sent were sent again (Machine.Resend)

	stop       chan struct{}
	done       chan struct{}
	sendCancel context.CancelFunc
	sendDone   chan struct{}
	started    bool
	once       sync.Once
}

// input is a message from a device or a command that could not be sent.
type input struct {
	msg    *wire.Decoded
	cmd    wire.Command // with err: not sent
	sendEr error
}

// request is an operator's call, run on the engine's goroutine.
type request struct {
	fn    func(now time.Time) (Rollout, error)
	reply chan reply
}

type reply struct {
	r   Rollout
	err error
}

// New opens the store (DataDir/rollouts.db without Config.Store) and loads the rollouts in
// it; it does no network I/O but the store's.
func New(cfg Config) (*Engine, error) {
	switch {
	case cfg.DataDir == "" && cfg.Store == nil:
		return nil, errors.New("rollout: no data dir")
	case cfg.Publisher == nil:
		return nil, errors.New("rollout: a publisher is required")
	case cfg.Models == nil || cfg.Devices == nil:
		return nil, errors.New("rollout: models and devices are required")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	st := cfg.Store
	if st == nil {
		var err error
		if st, err = OpenBolt(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	all, err := st.Load(ctx)
	cancel()
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	log := cfg.Logger.With("component", "rollout")
	e := &Engine{
		cfg: cfg, log: log, st: st, m: NewMachine(all, cfg.RollbackTTL, log),
		view: map[string]Rollout{}, notify: make(chan struct{}, 1), outWake: make(chan struct{}, 1),
		reqs: make(chan request), unsaved: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{}), sendDone: make(chan struct{}),
	}
	for _, r := range e.m.List() {
		e.view[r.ID] = r
		e.order = append(e.order, r.ID)
	}
	return e, nil
}

// Start starts the engine's goroutines. Call it once.
func (e *Engine) Start() error {
	if e.started {
		return errors.New("rollout: already started")
	}
	e.started = true
	ctx, cancel := context.WithCancel(context.Background())
	e.sendCancel = cancel
	go e.send(ctx)
	go e.run()
	return nil
}

// Connected reports whether the engine's publisher is connected.
func (e *Engine) Connected() bool { return e.cfg.Publisher.Connected() }

// Dropped counts the device messages dropped because the engine's queue was full.
func (e *Engine) Dropped() uint64 { return e.dropped.Load() }

// Feed hands the engine a device message the registry accepted as new: command results and
// telemetry are queued for the engine's goroutine, other kinds ignored. It never blocks. It
// may be called before Start: the first step applies those messages before it sends again
// the commands the stored state shows sent (Machine.Resend).
func (e *Engine) Feed(m *wire.Decoded) {
	switch m.Msg.(type) {
	case *wire.CmdResult, *wire.Telemetry:
	default:
		return
	}
	e.queue(input{msg: m})
}

func (e *Engine) queue(in input) {
	e.inMu.Lock()
	if len(e.inbox) >= maxQueued {
		e.inMu.Unlock()
		e.dropped.Add(1)
		return
	}
	e.inbox = append(e.inbox, in)
	e.inMu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func (e *Engine) takeInbox() []input {
	e.inMu.Lock()
	defer e.inMu.Unlock()
	q := e.inbox
	e.inbox = nil
	return q
}

// Close stops the goroutines, saves the rollouts and closes the database. Commands not sent
// by then are marked to be sent again at the next start. Safe to call more than once.
func (e *Engine) Close() error {
	var err error
	e.once.Do(func() {
		if e.started {
			e.sendCancel() // the sender stops after the publish in flight (at most publishTimeout)
			<-e.sendDone
			close(e.stop)
			<-e.done
		}
		err = e.st.Close()
	})
	return err
}

// run steps the machine: on every tick, device message, failed command and operator call.
func (e *Engine) run() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			e.drainAtStop()
			return
		case <-t.C:
		case <-e.notify:
		case req := <-e.reqs:
			r, err := req.fn(e.cfg.Now())
			req.reply <- reply{r, err}
		}
		e.step(e.cfg.Now())
	}
}

// step applies the queued inputs, then a tick, and commits the result.
func (e *Engine) step(now time.Time) {
	var cmds []wire.Command
	for _, in := range e.takeInbox() {
		if in.sendEr != nil {
			e.m.SendFailed(in.cmd, in.sendEr, now)
			continue
		}
		switch v := in.msg.Msg.(type) {
		case *wire.CmdResult:
			cmds = append(cmds, e.m.Result(in.msg.Device, *v, now)...)
		case *wire.Telemetry:
			cmds = append(cmds, e.m.Telemetry(in.msg.Device, *v, now)...)
		}
	}
	if !e.resent { // after the inputs queued before Start (results replayed by a new leader)
		e.resent = true
		cmds = append(cmds, e.m.Resend(now)...)
	}
	cmds = append(cmds, e.m.Tick(now)...)
	_ = e.commit(cmds)
}

// drainAtStop gives the machine the commands the sender did not send (to be sent again
// after a restart) and the failures it reported, then saves.
func (e *Engine) drainAtStop() {
	now := e.cfg.Now()
	e.outMu.Lock()
	left := append(e.outbox, e.held...)
	e.outbox, e.held = nil, nil
	e.outMu.Unlock()
	for _, in := range e.takeInbox() {
		if in.sendEr != nil {
			e.m.SendFailed(in.cmd, in.sendEr, now)
		}
	}
	for _, c := range left {
		e.m.SendFailed(c, errors.New("not sent before the fleet stopped"), now)
	}
	_ = e.commit(nil)
}

// commit shows the machine's changed rollouts to readers, saves them (and those whose last
// save failed) and, once the save succeeded, hands cmds (and those held by a failed save) to
// the sender. Run goroutine only; no lock is held during the save.
func (e *Engine) commit(cmds []wire.Command) error {
	changed := e.m.Changed()
	if len(changed) > 0 {
		e.mu.Lock()
		for _, r := range changed {
			if _, ok := e.view[r.ID]; !ok {
				e.order = append(e.order, r.ID)
			}
			e.view[r.ID] = r
			e.unsaved[r.ID] = true
		}
		e.mu.Unlock()
	}
	var err error
	if len(e.unsaved) > 0 {
		rs := make([]Rollout, 0, len(e.unsaved))
		for id := range e.unsaved { // the view is written only by this goroutine
			rs = append(rs, e.view[id])
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err = e.st.Save(ctx, rs)
		cancel()
		if err != nil {
			e.log.Error("save rollouts", "err", err) // kept unsaved: tried again at the next step
		} else {
			clear(e.unsaved)
		}
	}
	e.held = append(e.held, cmds...)
	if err == nil && len(e.held) > 0 {
		e.outMu.Lock()
		e.outbox = append(e.outbox, e.held...)
		e.outMu.Unlock()
		e.held = nil
		select {
		case e.outWake <- struct{}{}:
		default:
		}
	}
	return err
}

// forget removes a rollout whose creation could not be saved. Run goroutine only.
func (e *Engine) forget(id string) {
	e.m.Remove(id)
	delete(e.unsaved, id)
	e.mu.Lock()
	delete(e.view, id)
	for i, o := range e.order {
		if o == id {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
	e.mu.Unlock()
}

// send publishes the commands in order, one at a time (a device gets its update before its
// rollback), until ctx ends. A failure goes back to the machine.
func (e *Engine) send(ctx context.Context) {
	defer close(e.sendDone)
	for {
		e.outMu.Lock()
		var c wire.Command
		ok := len(e.outbox) > 0
		if ok {
			c = e.outbox[0]
			e.outbox = e.outbox[1:]
		}
		e.outMu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-e.outWake:
				continue
			}
		}
		if err := e.publish(c); err != nil {
			e.log.Warn("command not sent", "device", c.DeviceID, "cmd_id", c.ID, "err", err)
			e.queue(input{cmd: c, sendEr: err})
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (e *Engine) publish(cmd wire.Command) error {
	sc, err := wire.Sign(cmd, e.cfg.Key)
	if err != nil {
		return fmt.Errorf("sign %s: %w", cmd.Name, err)
	}
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	return e.cfg.Publisher.Publish(wire.Topic(cmd.DeviceID, wire.KindCmd, cmd.Name), b, publishTimeout)
}

// do runs fn on the engine's goroutine and returns its answer.
func (e *Engine) do(fn func(now time.Time) (Rollout, error)) (Rollout, error) {
	if !e.started {
		return Rollout{}, fmt.Errorf("%w: the rollout engine is not running", ErrUnavailable)
	}
	req := request{fn: fn, reply: make(chan reply, 1)}
	select {
	case e.reqs <- req:
	case <-e.done:
		return Rollout{}, fmt.Errorf("%w: the rollout engine has stopped", ErrUnavailable)
	}
	rep := <-req.reply
	return rep.r, rep.err
}

// Operations of a Request.
const (
	OpCreate = "create"
	OpPause  = "pause"
	OpResume = "resume"
	OpAbort  = "abort"
)

// Request is an operator's call: made where it was asked (Prepare checks a create there),
// applied by the engine that runs the rollouts (Apply), maybe on another fleet instance.
type Request struct {
	Op string `json:"op"` // OpCreate, OpPause, OpResume or OpAbort
	ID string `json:"id"` // the rollout
	// For OpCreate: the normalized spec, the model as the devices are sent it, the devices
	// and when it was asked.
	Spec    Spec          `json:"spec,omitzero"`
	Model   wire.ModelRef `json:"model,omitzero"`
	Devices []string      `json:"devices,omitempty"`
	At      time.Time     `json:"at,omitzero"`
}

// Prepare checks a create call as Create does, without an engine: it validates spec, checks
// the signing key and the model (its artifact and signature) in cfg.Models, resolves the
// devices in cfg.Devices and names the new rollout. The error wraps ErrInvalid or ErrState
// when the call cannot succeed.
func Prepare(cfg Config, spec Spec) (Request, error) {
	if err := spec.Normalize(); err != nil {
		return Request{}, err
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return Request{}, fmt.Errorf("%w: the fleet has no signing key (vigil-fleet serve --key)", ErrState)
	}
	name, version, err := catalog.ParseRef(spec.Model)
	if err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if cfg.Models == nil || cfg.Devices == nil {
		return Request{}, errors.New("rollout: models and devices are required")
	}
	m, err := cfg.Models.Load(name, version)
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) || errors.Is(err, catalog.ErrBadModel) {
			return Request{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return Request{}, fmt.Errorf("rollout: %w", err)
	}
	ids, _ := ParseSelector(spec.Devices) // checked by Normalize
	if ids == nil {
		for _, d := range cfg.Devices.Devices() {
			ids = append(ids, d.ID)
		}
		if len(ids) == 0 {
			return Request{}, fmt.Errorf("%w: 'devices' all: the registry knows no device", ErrInvalid)
		}
	}
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	at := now().UTC()
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	id := "ro-" + at.Format("20060102-150405") + "-" + hex.EncodeToString(rnd[:])
	return Request{Op: OpCreate, ID: id, Spec: spec, Model: m.Ref(cfg.PublicURL), Devices: ids, At: at}, nil
}

// Create validates spec, checks the model (its artifact and signature), resolves the devices
// and stores a pending rollout; the engine starts its canary at once.
func (e *Engine) Create(spec Spec) (Rollout, error) {
	req, err := Prepare(e.cfg, spec)
	if err != nil {
		return Rollout{}, err
	}
	return e.Apply(req)
}

// Apply runs an operator's call (see Request) on the engine and returns the rollout after
// it; a create returns once the new rollout is stored.
func (e *Engine) Apply(req Request) (Rollout, error) {
	switch req.Op {
	case OpCreate:
		if req.Spec.Canary < 1 || len(req.Devices) == 0 {
			return Rollout{}, fmt.Errorf("%w: create %s: no spec or no devices", ErrInvalid, req.ID)
		}
		return e.do(func(time.Time) (Rollout, error) {
			r, err := e.m.Create(req.ID, req.Spec, req.Model, req.Devices, req.At)
			if err != nil {
				return Rollout{}, err
			}
			if err := e.commit(nil); err != nil {
				e.forget(req.ID)
				return Rollout{}, fmt.Errorf("rollout: could not store the rollout: %w", err)
			}
			return r, nil
		})
	case OpPause:
		return e.control(req.ID, e.m.Pause)
	case OpResume:
		return e.control(req.ID, e.m.Resume)
	case OpAbort:
		return e.control(req.ID, e.m.Abort)
	}
	return Rollout{}, fmt.Errorf("%w: unknown operation %q", ErrInvalid, req.Op)
}

// List returns every rollout, oldest first. The rollouts share memory with the engine's
// view: the caller must not modify them.
func (e *Engine) List() []Rollout {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Rollout, 0, len(e.order))
	for _, id := range e.order {
		out = append(out, e.view[id])
	}
	return out
}

// Get returns one rollout (which the caller must not modify, see List).
func (e *Engine) Get(id string) (Rollout, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.view[id]
	return r, ok
}

// Pause stops a running rollout from advancing (see Machine.Pause).
func (e *Engine) Pause(id string) (Rollout, error) { return e.Apply(Request{Op: OpPause, ID: id}) }

// Resume continues a paused rollout where it stopped (see Machine.Resume).
func (e *Engine) Resume(id string) (Rollout, error) { return e.Apply(Request{Op: OpResume, ID: id}) }

// Abort ends a rollout that has not ended, and rolls back the devices it updated.
func (e *Engine) Abort(id string) (Rollout, error) { return e.Apply(Request{Op: OpAbort, ID: id}) }

func (e *Engine) control(id string, fn func(string, time.Time) (Rollout, []wire.Command, error)) (Rollout, error) {
	return e.do(func(now time.Time) (Rollout, error) {
		r, cmds, err := fn(id, now)
		if err != nil {
			return Rollout{}, err
		}
		_ = e.commit(cmds) // a failed save is retried at the next step
		return r, nil
	})
}
