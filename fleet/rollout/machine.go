package rollout

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Machine is the rollouts' state machine, without I/O: each step takes one input (a tick, a
// device's command result or telemetry, an operator's call, a command that could not be sent)
// at a time now, changes the rollouts and returns the commands to send. It never publishes,
// never touches the disk and reads no clock: the Engine does those, outside its lock.
//
// A command is taken as sent when a step returns it (the device shows "sent", or
// "rollback_sent"); when sending fails, SendFailed puts the device back to be sent again.
//
// Call contract: a Machine is not safe for concurrent use; one goroutine steps it. The
// rollouts it returns are copies.
type Machine struct {
	rollbackTTL time.Duration
	log         *slog.Logger

	rollouts map[string]*Rollout
	order    []string // ids by creation
	hist     map[string]*devHist
	changed  map[string]bool // rollouts changed since the last Changed
	out      []wire.Command  // commands of the current step
}

// devHist is what the machine remembers of one device's recent telemetry.
type devHist struct {
	rates  []float64 // detections_per_s over all cameras, newest last, at most baselineSamples
	model  *wire.Model
	errors map[string]uint64 // each camera's inference_errors in the last report
}

// NewMachine returns a machine holding rollouts (as loaded from the store, in any order);
// rollbackTTL is how long a model_rollback command stays valid (DefaultRollbackTTL when zero).
func NewMachine(rollouts []Rollout, rollbackTTL time.Duration, log *slog.Logger) *Machine {
	if rollbackTTL <= 0 {
		rollbackTTL = DefaultRollbackTTL
	}
	if log == nil {
		log = slog.Default()
	}
	m := &Machine{rollbackTTL: rollbackTTL, log: log, rollouts: map[string]*Rollout{}, hist: map[string]*devHist{},
		changed: map[string]bool{}}
	all := slices.Clone(rollouts)
	slices.SortFunc(all, func(a, b Rollout) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for i := range all {
		r := all[i].clone()
		m.rollouts[r.ID] = &r
		m.order = append(m.order, r.ID)
	}
	return m
}

// take returns the step's commands and clears them.
func (m *Machine) take() []wire.Command {
	out := m.out
	m.out = nil
	return out
}

// List returns every rollout, oldest first.
func (m *Machine) List() []Rollout {
	out := make([]Rollout, 0, len(m.order))
	for _, id := range m.order {
		out = append(out, m.rollouts[id].clone())
	}
	return out
}

// Get returns one rollout.
func (m *Machine) Get(id string) (Rollout, bool) {
	r, ok := m.rollouts[id]
	if !ok {
		return Rollout{}, false
	}
	return r.clone(), true
}

// Changed returns the rollouts changed since the last call (to save and to show), oldest
// first, and forgets them.
func (m *Machine) Changed() []Rollout {
	var out []Rollout
	for _, id := range m.order {
		if m.changed[id] {
			out = append(out, m.rollouts[id].clone())
		}
	}
	clear(m.changed)
	return out
}

func (m *Machine) touch(r *Rollout, now time.Time) {
	r.UpdatedAt = now
	m.changed[r.ID] = true
}

// Create adds a pending rollout of spec (normalized) with the given id, model and devices at
// now; its canary starts at the next Tick. It refuses a device that is in a rollout that has
// not ended.
func (m *Machine) Create(id string, spec Spec, model wire.ModelRef, devices []string, now time.Time) (Rollout, error) {
	if _, ok := m.rollouts[id]; ok {
		return Rollout{}, fmt.Errorf("%w: rollout %s exists", ErrState, id)
	}
	busy := map[string]string{}
	for _, r := range m.rollouts {
		if !r.Done() {
			for _, d := range r.Devices {
				busy[d.ID] = r.ID
			}
		}
	}
	for _, d := range devices {
		if other, ok := busy[d]; ok {
			return Rollout{}, fmt.Errorf("%w: device %s is in unfinished rollout %s", ErrState, d, other)
		}
	}
	r := &Rollout{ID: id, Spec: spec, Model: model, State: StatePending, Step: -1,
		Bounds: bounds(len(devices), spec.Canary, spec.Waves), CreatedAt: now, UpdatedAt: now}
	for i, d := range devices {
		step := 0
		for i >= r.Bounds[step] {
			step++
		}
		r.Devices = append(r.Devices, DeviceProgress{ID: d, Step: step, State: DeviceWaiting})
	}
	m.rollouts[id] = r
	m.order = append(m.order, id)
	m.changed[id] = true
	m.log.Info("rollout created", "id", id, "model", spec.Model, "devices", len(devices), "bounds", r.Bounds)
	return r.clone(), nil
}

// Remove forgets a rollout (one whose creation could not be stored).
func (m *Machine) Remove(id string) {
	delete(m.rollouts, id)
	delete(m.changed, id)
	m.order = slices.DeleteFunc(m.order, func(s string) bool { return s == id })
}

// Pause stops a running rollout from advancing: no more commands are sent and no timeout or
// health window runs out, but a device reporting failure or breaking the health gate still
// rolls it back.
func (m *Machine) Pause(id string, now time.Time) (Rollout, []wire.Command, error) {
	return m.control(id, now, func(r *Rollout) error {
		if r.Done() || r.State == StatePaused {
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, r.State)
		}
		r.State, r.PausedAt = StatePaused, now
		return nil
	})
}

// Resume continues a paused rollout where it stopped. The timeouts of devices still updating
// are extended by the pause; a health window that was running starts again.
func (m *Machine) Resume(id string, now time.Time) (Rollout, []wire.Command, error) {
	return m.control(id, now, func(r *Rollout) error {
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
func (m *Machine) Abort(id string, now time.Time) (Rollout, []wire.Command, error) {
	return m.control(id, now, func(r *Rollout) error {
		if r.Done() {
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, r.State)
		}
		m.end(r, StateAborted, "aborted by the operator", now)
		return nil
	})
}

func (m *Machine) control(id string, now time.Time, fn func(*Rollout) error) (Rollout, []wire.Command, error) {
	r, ok := m.rollouts[id]
	if !ok {
		return Rollout{}, nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := fn(r); err != nil {
		return Rollout{}, m.take(), err
	}
	m.touch(r, now)
	m.log.Info("rollout changed", "id", id, "state", r.State)
	return r.clone(), m.take(), nil
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

// Tick advances every running rollout as far as it goes at now, and sends again the rollbacks
// that could not be sent.
func (m *Machine) Tick(now time.Time) []wire.Command {
	for _, id := range m.order {
		r := m.rollouts[id]
		switch {
		case r.Done():
			for i := range r.Devices {
				if r.Devices[i].State == DeviceRollbackPending {
					m.sendRollback(r, &r.Devices[i], now)
					m.touch(r, now)
				}
			}
		case r.State != StatePaused:
			m.advance(r, now)
		}
	}
	return m.take()
}

// advance moves r as far as it can go at now.
func (m *Machine) advance(r *Rollout, now time.Time) {
	for !r.Done() {
		switch {
		case r.State == StatePending:
			m.startStep(r, 0, now)
		case r.Phase == PhaseUpdating:
			if !m.updating(r, now) {
				return
			}
		case r.Phase == PhaseObserving:
			if now.Before(r.ObserveUntil) {
				return
			}
			if reason := gateEnd(r); reason != "" {
				m.end(r, StateRolledBack, reason, now)
				return
			}
			if r.Step+1 >= len(r.Bounds) {
				r.State, r.Phase, r.EndedAt = StateComplete, "", now
				m.touch(r, now)
				m.log.Info("rollout complete", "id", r.ID, "model", r.Spec.Model)
				return
			}
			m.startStep(r, r.Step+1, now)
		default:
			panic(fmt.Sprintf("rollout %s: state %q phase %q", r.ID, r.State, r.Phase))
		}
	}
}

func (m *Machine) startStep(r *Rollout, step int, now time.Time) {
	r.Step, r.State, r.Phase = step, stepState(step), PhaseUpdating
	r.StepStartedAt, r.ObserveUntil = now, time.Time{}
	m.touch(r, now)
	m.log.Info("rollout step", "id", r.ID, "state", r.State, "step", step, "devices", r.Bounds[step])
}

// updating sends the step's commands, checks the devices' deadlines and reports whether every
// device of the step is active (the phase then turns to observing).
func (m *Machine) updating(r *Rollout, now time.Time) bool {
	timeout := time.Duration(r.Spec.ActiveTimeout)
	all, n := true, 0
	for i := range r.Devices {
		d := &r.Devices[i]
		if d.Step != r.Step {
			continue
		}
		n++
		if d.State == DeviceWaiting && !now.Before(d.RetryAt) {
			m.sendUpdate(r, d, now)
			m.touch(r, now)
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
			m.end(r, StateRolledBack, why, now)
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
	m.touch(r, now)
	return true
}

// gateEnd checks the step's devices at the end of the health window and returns why the gate
// failed, or "".
func gateEnd(r *Rollout) string {
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
func (m *Machine) end(r *Rollout, state, reason string, now time.Time) {
	r.State, r.Reason, r.Phase, r.EndedAt, r.PausedAt = state, reason, "", now, time.Time{}
	for i := range r.Devices {
		if r.Devices[i].State == DeviceActive {
			m.sendRollback(r, &r.Devices[i], now)
		}
	}
	m.touch(r, now)
	m.log.Warn("rollout stopped; updated devices rolled back", "id", r.ID, "state", state, "reason", reason)
}

// sendUpdate takes the device's baseline from the telemetry seen so far and sends it the
// model_update command.
func (m *Machine) sendUpdate(r *Rollout, d *DeviceProgress, now time.Time) {
	if h := m.hist[d.ID]; h != nil {
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
	d.State = DeviceSent   // Reason keeps why a previous send failed, until the device answers
	if d.SentAt.IsZero() { // a resend keeps the first deadline
		d.SentAt = now
	}
	m.out = append(m.out, updateCmd(r, d, now))
}

// updateCmd is d's model_update command; it expires with d's active timeout.
func updateCmd(r *Rollout, d *DeviceProgress, now time.Time) wire.Command {
	ref := r.Model
	return wire.Command{Schema: wire.SchemaCommand, ID: d.CmdID, DeviceID: d.ID, Name: wire.CmdModelUpdate,
		IssuedAt: now.UnixMilli(), ExpiresAt: d.SentAt.Add(time.Duration(r.Spec.ActiveTimeout)).UnixMilli(),
		Model: &ref, RolloutID: r.ID}
}

func (m *Machine) sendRollback(r *Rollout, d *DeviceProgress, now time.Time) {
	d.RollbackCmdID = r.ID + "-rollback-" + d.ID
	m.out = append(m.out, m.rollbackCmd(r, d, now))
	d.State = DeviceRollbackSent
}

func (m *Machine) rollbackCmd(r *Rollout, d *DeviceProgress, now time.Time) wire.Command {
	cmd := wire.Command{Schema: wire.SchemaCommand, ID: d.RollbackCmdID, DeviceID: d.ID, Name: wire.CmdModelRollback,
		IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(m.rollbackTTL).UnixMilli(), RolloutID: r.ID}
	if d.PrevModel != nil {
		cmd.Model = &wire.ModelRef{Name: d.PrevModel.Name, Version: d.PrevModel.Version, SHA256: d.PrevModel.SHA256}
	}
	return cmd
}

// Resend returns again, with their ids unchanged, the commands of the devices that show one
// sent and have not answered it: the update of a device in the running step, the rollback of
// a device of an ended rollout. After a crash (or a leader's death) the stored state may say
// sent of a command that was never published; an agent ignores a command id it has seen, so
// one that got it loses nothing. The Engine calls it once, at its first step.
func (m *Machine) Resend(now time.Time) []wire.Command {
	for _, id := range m.order {
		r := m.rollouts[id]
		for i := range r.Devices {
			d := &r.Devices[i]
			switch {
			case d.State == DeviceSent && !r.Done() && r.State != StatePaused && d.Step == r.Step:
				m.out = append(m.out, updateCmd(r, d, now))
			case d.State == DeviceRollbackSent:
				m.out = append(m.out, m.rollbackCmd(r, d, now))
			}
		}
	}
	return m.take()
}

// SendFailed says a command the machine returned could not be sent (err): an update is sent
// again at the next tick (while its step runs and its deadline allows), a rollback at every
// tick until it goes out.
func (m *Machine) SendFailed(cmd wire.Command, err error, now time.Time) {
	r := m.rollouts[cmd.RolloutID]
	if r == nil {
		return
	}
	i := slices.IndexFunc(r.Devices, func(d DeviceProgress) bool { return d.ID == cmd.DeviceID })
	if i < 0 {
		return
	}
	d := &r.Devices[i]
	switch {
	case cmd.ID == d.CmdID && d.State == DeviceSent:
		d.State, d.Reason = DeviceWaiting, err.Error()
	case cmd.ID == d.RollbackCmdID && d.State == DeviceRollbackSent:
		d.State, d.Reason = DeviceRollbackPending, err.Error()
	default:
		return // the device has answered since, or the command is an old one
	}
	m.touch(r, now)
}

// progress ranks the states a device passes through while updating.
var progress = map[string]int{DeviceWaiting: 0, DeviceSent: 1, wire.CmdAccepted: 2, wire.CmdDownloading: 3,
	wire.CmdVerifying: 4, wire.CmdLoading: 5}

// Result applies a device's command result (decoded and checked, see wire.Decode).
func (m *Machine) Result(device string, res wire.CmdResult, now time.Time) []wire.Command {
	m.result(device, res, now)
	return m.take()
}

func (m *Machine) result(device string, res wire.CmdResult, now time.Time) {
	r := m.rollouts[res.RolloutID]
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
				d.State, d.Percent, d.Reason = res.State, res.Percent, ""
			}
		case wire.CmdActive:
			if !updating {
				return // a repeat, or after a failure
			}
			d.State, d.ActiveAt, d.ActiveCapturedAt, d.Percent, d.Reason = DeviceActive, now, res.CapturedAt, 0, ""
			if h := m.hist[device]; h != nil {
				d.ErrorsBase = maps.Clone(h.errors)
			}
			switch r.State {
			case StateRolledBack, StateAborted: // too late: take it back at once
				m.sendRollback(r, d, now)
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
				m.end(r, StateRolledBack, fmt.Sprintf("device %s failed to update: %s", device, res.Reason), now)
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
	m.touch(r, now)
}

// Telemetry applies a device's telemetry report (decoded and checked, see wire.Decode): it
// feeds the health gate of the rollouts that updated the device, and the baseline of its next
// update. A report replayed from the agent's backlog is ignored.
func (m *Machine) Telemetry(device string, t wire.Telemetry, now time.Time) []wire.Command {
	m.telemetry(device, t, now)
	return m.take()
}

func (m *Machine) telemetry(device string, t wire.Telemetry, now time.Time) {
	if t.Replayed {
		return // from the agent's backlog: not the device's state now
	}
	rate := 0.0
	for _, c := range t.Cameras {
		rate += c.DetectionsPerS
	}
	for _, id := range m.order {
		r := m.rollouts[id]
		if r.Done() || r.State == StatePending {
			continue
		}
		i := slices.IndexFunc(r.Devices, func(d DeviceProgress) bool { return d.ID == device })
		if i < 0 || r.Devices[i].State != DeviceActive || t.CapturedAt < r.Devices[i].ActiveCapturedAt {
			continue
		}
		if reason := gateSample(r, &r.Devices[i], t, rate); reason != "" {
			m.end(r, StateRolledBack, reason, now)
		}
		m.touch(r, now)
	}
	h := m.hist[device]
	if h == nil {
		if len(m.hist) >= maxTracked {
			return
		}
		h = &devHist{}
		m.hist[device] = h
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
func gateSample(r *Rollout, d *DeviceProgress, t wire.Telemetry, rate float64) string {
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
