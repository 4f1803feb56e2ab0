package rollout

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

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

// Config configures an Engine.
type Config struct {
	DataDir   string // rollouts.db lives here; required
	BrokerURL string // MQTT broker; required
	ClientID  string // MQTT client id; required (unique on the broker)
	// Username and Password authenticate to the broker when Username is set; the password is
	// never logged.
	Username, Password string
	Key                ed25519.PrivateKey // signs commands; without it Create fails
	PublicURL          string             // base of the model URLs sent to devices, e.g. http://fleet:8080
	Models             Models             // required
	Devices            Devices            // required
	Tick               time.Duration      // how often timeouts and windows are checked; DefaultTick when zero
	// RollbackTTL is how long a model_rollback command stays valid; DefaultRollbackTTL when zero.
	RollbackTTL time.Duration
	Now         func() time.Time // the clock; time.Now when nil
	Logger      *slog.Logger     // slog.Default() when nil
}

// Engine runs the rollouts: one goroutine, started once with Start and stopped with Close.
// Its methods may be called concurrently.
type Engine struct {
	cfg Config
	log *slog.Logger
	db  *bolt.DB
	cl  *client

	mu       sync.Mutex
	rollouts map[string]*Rollout
	order    []string // ids by creation
	hist     map[string]*devHist
	dirty    map[string]bool
	rejected uint64 // messages that did not decode

	poke    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool
	once    sync.Once
}

// devHist is what the engine remembers of one device's recent telemetry.
type devHist struct {
	rates  []float64 // detections_per_s over all cameras, newest last, at most baselineSamples
	model  *wire.Model
	errors map[string]uint64 // each camera's inference_errors in the last report
}

var bucketRollouts = []byte("rollouts")

// New opens DataDir/rollouts.db and loads the rollouts in it; it does no network I/O.
func New(cfg Config) (*Engine, error) {
	switch {
	case cfg.DataDir == "":
		return nil, errors.New("rollout: no data dir")
	case cfg.BrokerURL == "" || cfg.ClientID == "":
		return nil, errors.New("rollout: broker url and client id are required")
	case cfg.Models == nil || cfg.Devices == nil:
		return nil, errors.New("rollout: models and devices are required")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.RollbackTTL <= 0 {
		cfg.RollbackTTL = DefaultRollbackTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	db, err := bolt.Open(filepath.Join(cfg.DataDir, "rollouts.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("rollout: open database: %w", err)
	}
	e := &Engine{
		cfg: cfg, log: cfg.Logger.With("component", "rollout"), db: db,
		rollouts: map[string]*Rollout{}, hist: map[string]*devHist{}, dirty: map[string]bool{},
		poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	var all []*Rollout
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRollouts)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var r Rollout
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			all = append(all, &r)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("rollout: load: %w", err)
	}
	slices.SortFunc(all, func(a, b *Rollout) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for _, r := range all {
		e.rollouts[r.ID] = r
		e.order = append(e.order, r.ID)
	}
	e.cl = newClient(cfg.BrokerURL, cfg.ClientID, cfg.Username, cfg.Password, e.log)
	return e, nil
}

// Start connects to the broker (in the background, retrying) and starts the engine's
// goroutine. Call it once.
func (e *Engine) Start() error {
	if e.started {
		return errors.New("rollout: already started")
	}
	e.started = true
	e.cl.start()
	go e.run()
	return nil
}

// Connected reports whether the engine's MQTT client is connected.
func (e *Engine) Connected() bool { return e.cl.connected() }

// Close stops the goroutine, disconnects and closes the database. Safe to call more than once.
func (e *Engine) Close() error {
	var err error
	e.once.Do(func() {
		if e.started {
			close(e.stop)
			<-e.done
			e.cl.close()
		}
		e.mu.Lock()
		e.saveDirty()
		e.mu.Unlock()
		if cerr := e.db.Close(); cerr != nil {
			err = fmt.Errorf("rollout: close database: %w", cerr)
		}
	})
	return err
}

func (e *Engine) run() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		case <-e.poke:
		case <-e.cl.notify:
		}
		e.mu.Lock()
		now := e.cfg.Now()
		for _, m := range e.cl.take() {
			if err := e.handle(m.topic, m.payload, now); err != nil {
				e.rejected++
				e.log.Debug("message rejected", "topic", m.topic, "error", err)
			}
		}
		e.tick(now)
		e.saveDirty()
		e.mu.Unlock()
	}
}

func (e *Engine) wake() {
	select {
	case e.poke <- struct{}{}:
	default:
	}
}

// saveDirty writes the changed rollouts in one transaction. Called with mu held.
func (e *Engine) saveDirty() {
	if len(e.dirty) == 0 {
		return
	}
	err := e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		for id := range e.dirty {
			v, err := json.Marshal(e.rollouts[id])
			if err != nil {
				return err
			}
			if err := b.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.log.Error("save rollouts", "error", err)
		return // kept dirty: tried again on the next tick
	}
	clear(e.dirty)
}

func (e *Engine) changed(r *Rollout, now time.Time) {
	r.UpdatedAt = now
	e.dirty[r.ID] = true
}

// Create validates spec, checks the model (its artifact and signature), resolves the devices
// and stores a pending rollout; the engine starts its canary at the next tick.
func (e *Engine) Create(spec Spec) (Rollout, error) {
	if err := spec.Normalize(); err != nil {
		return Rollout{}, err
	}
	if len(e.cfg.Key) != ed25519.PrivateKeySize {
		return Rollout{}, fmt.Errorf("%w: the fleet has no signing key (vigil-fleet serve --key)", ErrState)
	}
	name, version, err := catalog.ParseRef(spec.Model)
	if err != nil {
		return Rollout{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	m, err := e.cfg.Models.Load(name, version)
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) || errors.Is(err, catalog.ErrBadModel) {
			return Rollout{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return Rollout{}, fmt.Errorf("rollout: %w", err)
	}
	ids, _ := ParseSelector(spec.Devices) // checked by Normalize
	if ids == nil {
		for _, d := range e.cfg.Devices.Devices() {
			ids = append(ids, d.ID)
		}
		if len(ids) == 0 {
			return Rollout{}, fmt.Errorf("%w: 'devices' all: the registry knows no device", ErrInvalid)
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	busy := map[string]string{}
	for _, r := range e.rollouts {
		if !r.Done() {
			for _, d := range r.Devices {
				busy[d.ID] = r.ID
			}
		}
	}
	for _, id := range ids {
		if other, ok := busy[id]; ok {
			return Rollout{}, fmt.Errorf("%w: device %s is in unfinished rollout %s", ErrState, id, other)
		}
	}
	now := e.cfg.Now().UTC()
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	r := &Rollout{
		ID:    "ro-" + now.Format("20060102-150405") + "-" + hex.EncodeToString(rnd[:]),
		Spec:  spec,
		Model: m.Ref(e.cfg.PublicURL),
		State: StatePending, Step: -1,
		Bounds:    bounds(len(ids), spec.Canary, spec.Waves),
		CreatedAt: now, UpdatedAt: now,
	}
	for i, id := range ids {
		step := 0
		for i >= r.Bounds[step] {
			step++
		}
		r.Devices = append(r.Devices, DeviceProgress{ID: id, Step: step, State: DeviceWaiting})
	}
	e.rollouts[r.ID] = r
	e.order = append(e.order, r.ID)
	e.dirty[r.ID] = true
	e.saveDirty()
	if e.dirty[r.ID] {
		delete(e.rollouts, r.ID)
		e.order = e.order[:len(e.order)-1]
		delete(e.dirty, r.ID)
		return Rollout{}, errors.New("rollout: could not store the rollout")
	}
	e.log.Info("rollout created", "id", r.ID, "model", spec.Model, "devices", len(ids), "bounds", r.Bounds)
	e.wake()
	return r.clone(), nil
}

// List returns every rollout, oldest first.
func (e *Engine) List() []Rollout {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Rollout, 0, len(e.order))
	for _, id := range e.order {
		out = append(out, e.rollouts[id].clone())
	}
	return out
}

// Get returns one rollout.
func (e *Engine) Get(id string) (Rollout, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.rollouts[id]
	if !ok {
		return Rollout{}, false
	}
	return r.clone(), true
}

// Pause stops a running rollout from advancing: no more commands are sent and no timeout or
// health window runs out, but a device reporting failure or breaking the health gate still
// rolls it back.
func (e *Engine) Pause(id string) (Rollout, error) {
	return e.control(id, func(r *Rollout, now time.Time) error {
		if r.Done() || r.State == StatePaused {
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, r.State)
		}
		r.State, r.PausedAt = StatePaused, now
		return nil
	})
}

// Resume continues a paused rollout where it stopped. The timeouts of devices still updating
// are extended by the pause; a health window that was running starts again.
func (e *Engine) Resume(id string) (Rollout, error) {
	return e.control(id, func(r *Rollout, now time.Time) error {
		if r.State != StatePaused {
			return fmt.Errorf("%w: rollout %s is %s, not paused", ErrState, id, r.State)
		}
		paused := now.Sub(r.PausedAt)
		r.State, r.PausedAt = stepState(r.Step), time.Time{}
		switch r.Phase {
		case PhaseObserving:
			r.ObserveUntil = now.Add(time.Duration(r.Spec.HealthWindow))
		case PhaseUpdating:
			r.StepStartedAt = r.StepStartedAt.Add(paused)
			for i := range r.Devices {
				if d := &r.Devices[i]; d.Step == r.Step && !d.SentAt.IsZero() && d.State != DeviceActive {
					d.SentAt = d.SentAt.Add(paused)
				}
			}
		}
		return nil
	})
}

// Abort ends a rollout that has not ended, and rolls back the devices it updated.
func (e *Engine) Abort(id string) (Rollout, error) {
	return e.control(id, func(r *Rollout, now time.Time) error {
		if r.Done() {
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, r.State)
		}
		e.end(r, StateAborted, "aborted by the operator", now)
		return nil
	})
}

func (e *Engine) control(id string, fn func(*Rollout, time.Time) error) (Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.rollouts[id]
	if !ok {
		return Rollout{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	now := e.cfg.Now()
	if err := fn(r, now); err != nil {
		return Rollout{}, err
	}
	e.changed(r, now)
	e.saveDirty()
	e.log.Info("rollout changed", "id", id, "state", r.State)
	e.wake()
	return r.clone(), nil
}

func stepState(step int) string {
	switch {
	case step < 0:
		return StatePending
	case step == 0:
		return StateCanary
	default:
		return StateWave
	}
}

// tick advances every running rollout and retries rollbacks that could not be sent. Called
// with mu held.
func (e *Engine) tick(now time.Time) {
	for _, id := range e.order {
		r := e.rollouts[id]
		switch {
		case r.Done():
			for i := range r.Devices {
				if r.Devices[i].State == DeviceRollbackPending {
					e.sendRollback(r, &r.Devices[i], now)
					e.changed(r, now)
				}
			}
		case r.State != StatePaused:
			e.advance(r, now)
		}
	}
}

// advance moves r as far as it can go at now.
func (e *Engine) advance(r *Rollout, now time.Time) {
	for !r.Done() {
		switch {
		case r.State == StatePending:
			e.startStep(r, 0, now)
		case r.Phase == PhaseUpdating:
			if !e.updating(r, now) {
				return
			}
		case r.Phase == PhaseObserving:
			if now.Before(r.ObserveUntil) {
				return
			}
			if reason := e.gateEnd(r); reason != "" {
				e.end(r, StateRolledBack, reason, now)
				return
			}
			if r.Step+1 >= len(r.Bounds) {
				r.State, r.Phase, r.EndedAt = StateComplete, "", now
				e.changed(r, now)
				e.log.Info("rollout complete", "id", r.ID, "model", r.Spec.Model)
				return
			}
			e.startStep(r, r.Step+1, now)
		default:
			panic(fmt.Sprintf("rollout %s: state %q phase %q", r.ID, r.State, r.Phase))
		}
	}
}

func (e *Engine) startStep(r *Rollout, step int, now time.Time) {
	r.Step, r.State, r.Phase = step, stepState(step), PhaseUpdating
	r.StepStartedAt, r.ObserveUntil = now, time.Time{}
	e.changed(r, now)
	e.log.Info("rollout step", "id", r.ID, "state", r.State, "step", step, "devices", r.Bounds[step])
}

// updating sends the step's commands, checks the devices' deadlines and reports whether every
// device of the step is active (the phase then turns to observing).
func (e *Engine) updating(r *Rollout, now time.Time) bool {
	timeout := time.Duration(r.Spec.ActiveTimeout)
	all, n := true, 0
	for i := range r.Devices {
		d := &r.Devices[i]
		if d.Step != r.Step {
			continue
		}
		n++
		if d.State == DeviceWaiting && !now.Before(d.RetryAt) {
			e.sendUpdate(r, d, now)
			e.changed(r, now)
		}
		if d.State == DeviceActive {
			continue
		}
		all = false
		since := d.SentAt
		if since.IsZero() {
			since = r.StepStartedAt
		}
		if now.Sub(since) > timeout {
			why := fmt.Sprintf("device %s did not report active within %v (last state %s)", d.ID, timeout, d.State)
			if d.Reason != "" {
				why += ": " + d.Reason
			}
			e.end(r, StateRolledBack, why, now)
			return false
		}
	}
	if !all {
		return false
	}
	if n == 0 { // an empty wave: nothing to watch
		r.Phase, r.ObserveUntil = PhaseObserving, now
	} else {
		r.Phase, r.ObserveUntil = PhaseObserving, now.Add(time.Duration(r.Spec.HealthWindow))
	}
	e.changed(r, now)
	return true
}

// gateEnd checks the step's devices at the end of the health window and returns why the gate
// failed, or "".
func (e *Engine) gateEnd(r *Rollout) string {
	for i := range r.Devices {
		d := &r.Devices[i]
		if d.Step != r.Step {
			continue
		}
		if d.PostSamples == 0 {
			return fmt.Sprintf("device %s sent no telemetry with %s during the health window", d.ID, r.Spec.Model)
		}
		if d.BaselineSamples > 0 && d.PostRate() < r.Spec.MinDetectionRatio*d.Baseline {
			return fmt.Sprintf("device %s: detections_per_s fell to %.3g from %.3g before the update (below %.2g×)",
				d.ID, d.PostRate(), d.Baseline, r.Spec.MinDetectionRatio)
		}
	}
	return ""
}

// end stops r in state (rolled_back or aborted) and rolls back its updated devices.
func (e *Engine) end(r *Rollout, state, reason string, now time.Time) {
	r.State, r.Reason, r.Phase, r.EndedAt, r.PausedAt = state, reason, "", now, time.Time{}
	for i := range r.Devices {
		if r.Devices[i].State == DeviceActive {
			e.sendRollback(r, &r.Devices[i], now)
		}
	}
	e.changed(r, now)
	e.log.Warn("rollout stopped; updated devices rolled back", "id", r.ID, "state", state, "reason", reason)
}

func (e *Engine) sendUpdate(r *Rollout, d *DeviceProgress, now time.Time) {
	if h := e.hist[d.ID]; h != nil {
		d.BaselineSamples = len(h.rates)
		d.Baseline = 0
		for _, v := range h.rates {
			d.Baseline += v
		}
		if len(h.rates) > 0 {
			d.Baseline /= float64(len(h.rates))
		}
		if h.model != nil {
			pm := *h.model
			d.PrevModel = &pm
		}
	}
	d.CmdID = r.ID + "-update-" + d.ID
	ref := r.Model
	cmd := wire.Command{Schema: wire.SchemaCommand, ID: d.CmdID, DeviceID: d.ID, Name: wire.CmdModelUpdate,
		IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(time.Duration(r.Spec.ActiveTimeout)).UnixMilli(),
		Model: &ref, RolloutID: r.ID}
	if err := e.publish(cmd); err != nil {
		d.Reason = err.Error()
		return
	}
	d.State, d.Reason = DeviceSent, ""
	if d.SentAt.IsZero() { // a resend keeps the first deadline
		d.SentAt = now
	}
}

func (e *Engine) sendRollback(r *Rollout, d *DeviceProgress, now time.Time) {
	d.RollbackCmdID = r.ID + "-rollback-" + d.ID
	cmd := wire.Command{Schema: wire.SchemaCommand, ID: d.RollbackCmdID, DeviceID: d.ID, Name: wire.CmdModelRollback,
		IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(e.cfg.RollbackTTL).UnixMilli(), RolloutID: r.ID}
	if d.PrevModel != nil {
		cmd.Model = &wire.ModelRef{Name: d.PrevModel.Name, Version: d.PrevModel.Version, SHA256: d.PrevModel.SHA256}
	}
	if err := e.publish(cmd); err != nil {
		d.State, d.Reason = DeviceRollbackPending, err.Error()
		return
	}
	d.State = DeviceRollbackSent
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
	return e.cl.publish(wire.Topic(cmd.DeviceID, wire.KindCmd, cmd.Name), b)
}

// progress ranks the states a device passes through while updating.
var progress = map[string]int{DeviceWaiting: 0, DeviceSent: 1, wire.CmdAccepted: 2, wire.CmdDownloading: 3,
	wire.CmdVerifying: 4, wire.CmdLoading: 5}

// handle applies one received message. Called with mu held.
func (e *Engine) handle(topic string, payload []byte, now time.Time) error {
	device, kind, name, err := wire.ParseTopic(topic)
	if err != nil {
		return err
	}
	switch kind {
	case wire.KindCmdResult:
		res, err := DecodeResult(device, name, payload)
		if err != nil {
			return err
		}
		e.result(device, res, now)
	case wire.KindTelemetry:
		t, err := DecodeTelemetry(device, name, payload)
		if err != nil {
			return err
		}
		e.telemetry(device, t, now)
	default:
		return fmt.Errorf("kind %q", kind)
	}
	return nil
}

// DecodeResult decodes and checks a cmd_result payload from topic device and command name.
func DecodeResult(device, name string, payload []byte) (wire.CmdResult, error) {
	var res wire.CmdResult
	if !wire.ValidID(device) || name == "" {
		return res, fmt.Errorf("cmd_result: bad topic device %q or name %q", device, name)
	}
	if err := json.Unmarshal(payload, &res); err != nil {
		return res, fmt.Errorf("cmd_result: %w", err)
	}
	switch {
	case res.Schema != wire.SchemaCmdResult:
		return res, fmt.Errorf("cmd_result: schema %q", res.Schema)
	case res.DeviceID != device:
		return res, fmt.Errorf("cmd_result: device_id %q on topic device %q", res.DeviceID, device)
	case res.Name != "" && res.Name != name:
		return res, fmt.Errorf("cmd_result: name %q on topic name %q", res.Name, name)
	case res.CmdID == "":
		return res, errors.New("cmd_result: no cmd_id")
	}
	return res, nil
}

// DecodeTelemetry decodes and checks a telemetry payload from topic device (camera level
// must be empty).
func DecodeTelemetry(device, camera string, payload []byte) (wire.Telemetry, error) {
	var t wire.Telemetry
	if !wire.ValidID(device) || camera != "" {
		return t, fmt.Errorf("telemetry: bad topic device %q", device)
	}
	if err := json.Unmarshal(payload, &t); err != nil {
		return t, fmt.Errorf("telemetry: %w", err)
	}
	if t.Schema != wire.SchemaTelemetry {
		return t, fmt.Errorf("telemetry: schema %q", t.Schema)
	}
	if t.DeviceID != device {
		return t, fmt.Errorf("telemetry: device_id %q on topic device %q", t.DeviceID, device)
	}
	return t, nil
}

func (e *Engine) result(device string, res wire.CmdResult, now time.Time) {
	r := e.rollouts[res.RolloutID]
	if r == nil {
		return // not one of ours
	}
	i := slices.IndexFunc(r.Devices, func(d DeviceProgress) bool { return d.ID == device })
	if i < 0 {
		return
	}
	d := &r.Devices[i]
	switch res.CmdID {
	case d.CmdID:
		rank, updating := progress[d.State]
		switch res.State {
		case wire.CmdAccepted, wire.CmdDownloading, wire.CmdVerifying, wire.CmdLoading:
			if updating && progress[res.State] >= rank {
				d.State, d.Percent = res.State, res.Percent
			}
		case wire.CmdActive:
			if !updating {
				return // a repeat, or after a failure
			}
			d.State, d.ActiveAt, d.ActiveCapturedAt, d.Percent = DeviceActive, now, res.CapturedAt, 0
			if h := e.hist[device]; h != nil {
				d.ErrorsBase = maps.Clone(h.errors)
			}
			switch r.State {
			case StateRolledBack, StateAborted: // too late: take it back at once
				e.sendRollback(r, d, now)
			}
		case wire.CmdFailed, wire.CmdRolledBack:
			if d.State == DeviceFailed || d.State == DeviceRollbackSent || d.State == DeviceRolledBack {
				return
			}
			if res.State == wire.CmdFailed && strings.HasPrefix(res.Reason, "busy") && updating && !r.Done() {
				// the agent ran another command and did not keep this one: send it again
				d.State, d.Reason, d.RetryAt = DeviceWaiting, res.Reason, now.Add(busyRetry)
				break
			}
			d.State, d.Reason = DeviceFailed, res.Reason
			if !r.Done() {
				e.end(r, StateRolledBack, fmt.Sprintf("device %s failed to update: %s", device, res.Reason), now)
			}
		default:
			return
		}
	case d.RollbackCmdID:
		switch res.State {
		case wire.CmdRolledBack, wire.CmdActive:
			d.State = DeviceRolledBack
		case wire.CmdFailed:
			d.State, d.Reason = DeviceRollbackFailed, res.Reason
		default:
			return
		}
	default:
		return
	}
	e.changed(r, now)
}

func (e *Engine) telemetry(device string, t wire.Telemetry, now time.Time) {
	if t.Replayed {
		return // from the agent's backlog: not the device's state now
	}
	rate := 0.0
	for _, c := range t.Cameras {
		rate += c.DetectionsPerS
	}
	for _, id := range e.order {
		r := e.rollouts[id]
		if r.Done() || r.State == StatePending {
			continue
		}
		i := slices.IndexFunc(r.Devices, func(d DeviceProgress) bool { return d.ID == device })
		if i < 0 || r.Devices[i].State != DeviceActive || t.CapturedAt < r.Devices[i].ActiveCapturedAt {
			continue
		}
		if reason := e.gateSample(r, &r.Devices[i], t, rate); reason != "" {
			e.end(r, StateRolledBack, reason, now)
		}
		e.changed(r, now)
	}
	h := e.hist[device]
	if h == nil {
		if len(e.hist) >= maxTracked {
			return
		}
		h = &devHist{}
		e.hist[device] = h
	}
	h.rates = append(h.rates, rate)
	if len(h.rates) > baselineSamples {
		h.rates = slices.Delete(h.rates, 0, len(h.rates)-baselineSamples)
	}
	h.model = t.Model
	h.errors = make(map[string]uint64, len(t.Cameras))
	for _, c := range t.Cameras {
		h.errors[c.ID] = c.InferenceErrors
	}
}

// gateSample checks one telemetry report of an updated device and returns the violation, or "".
func (e *Engine) gateSample(r *Rollout, d *DeviceProgress, t wire.Telemetry, rate float64) string {
	want := r.Model
	if t.Model == nil || t.Model.Name != want.Name || t.Model.Version != want.Version ||
		t.Model.SHA256 != "" && t.Model.SHA256 != want.SHA256 {
		got := "no model"
		if t.Model != nil {
			got = t.Model.Name + "@" + t.Model.Version
		}
		return fmt.Sprintf("device %s runs %s after the update, want %s", d.ID, got, r.Spec.Model)
	}
	if d.ErrorsBase == nil {
		d.ErrorsBase = map[string]uint64{}
	}
	for _, c := range t.Cameras {
		base, ok := d.ErrorsBase[c.ID]
		switch {
		case !ok || c.InferenceErrors < base: // a camera first seen, or a restarted agent
			d.ErrorsBase[c.ID] = c.InferenceErrors
		case c.InferenceErrors > base:
			return fmt.Sprintf("device %s camera %s: inference_errors grew from %d to %d after the update",
				d.ID, c.ID, base, c.InferenceErrors)
		}
	}
	d.PostSum += rate
	d.PostSamples++
	return ""
}
