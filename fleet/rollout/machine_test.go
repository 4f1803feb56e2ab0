package rollout

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// The machine is tested alone: inputs in, commands out, no broker, no disk, no clock.

var (
	mt0      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	newModel = wire.ModelRef{Name: "m", Version: "2", SHA256: "bb"}
	oldM     = wire.Model{Name: "m", Version: "1", SHA256: "aa"}
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newSpec(t *testing.T, devices string, canary int, waves ...float64) Spec {
	t.Helper()
	s := Spec{Model: "m@2", Devices: devices, Canary: canary, Waves: waves,
		HealthWindow: Duration(time.Minute), ActiveTimeout: Duration(10 * time.Minute)}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	return s
}

func tele(model wire.Model, rate float64, at time.Time) wire.Telemetry {
	return wire.Telemetry{Header: wire.Header{CapturedAt: at.UnixMilli()}, Model: &model,
		Cameras: []wire.CameraTelemetry{{ID: "c", DetectionsPerS: rate}}}
}

func result(cmd wire.Command, state string, at time.Time) wire.CmdResult {
	return wire.CmdResult{Header: wire.Header{CapturedAt: at.UnixMilli()}, CmdID: cmd.ID, RolloutID: cmd.RolloutID,
		Name: cmd.Name, State: state}
}

// only checks that cmds are one command per device of names, of kind name.
func only(t *testing.T, cmds []wire.Command, name string, devices ...string) {
	t.Helper()
	var got []string
	for _, c := range cmds {
		if c.Name != name {
			t.Fatalf("command %s to %s, want only %s", c.Name, c.DeviceID, name)
		}
		got = append(got, c.DeviceID)
	}
	if !slices.Equal(got, devices) {
		t.Fatalf("%s sent to %v, want %v", name, got, devices)
	}
}

func TestMachineCanaryThenWaveThenComplete(t *testing.T) {
	m := NewMachine(nil, 0, quiet())
	for _, d := range []string{"a", "b", "c"} {
		m.Telemetry(d, tele(oldM, 10, mt0), mt0) // the baseline
	}
	r, err := m.Create("r1", newSpec(t, "a,b,c", 1, 100), newModel, []string{"a", "b", "c"}, mt0)
	if err != nil || r.State != StatePending || !slices.Equal(r.Bounds, []int{1, 3}) {
		t.Fatalf("create: %+v, %v", r, err)
	}
	if _, err := m.Create("r2", newSpec(t, "c", 1), newModel, []string{"c"}, mt0); !errors.Is(err, ErrState) {
		t.Fatalf("a device in two unfinished rollouts: %v", err)
	}
	cmds := m.Tick(mt0)
	only(t, cmds, wire.CmdModelUpdate, "a")
	if c := cmds[0]; c.RolloutID != "r1" || c.Model == nil || *c.Model != newModel || c.ExpiresAt != mt0.Add(10*time.Minute).UnixMilli() {
		t.Fatalf("update command %+v", c)
	}
	if len(m.Tick(mt0.Add(time.Second))) != 0 {
		t.Fatal("the update was sent twice")
	}
	now := mt0.Add(2 * time.Second)
	m.Result("a", result(cmds[0], wire.CmdDownloading, now), now)
	m.Result("a", result(cmds[0], wire.CmdActive, now), now)
	r, _ = m.Get("r1")
	if d := r.Devices[0]; d.State != DeviceActive || d.BaselineSamples != 1 || d.Baseline != 10 || d.PrevModel == nil || *d.PrevModel != oldM {
		t.Fatalf("canary device %+v", d)
	}
	m.Tick(now)
	if r, _ = m.Get("r1"); r.Phase != PhaseObserving {
		t.Fatalf("phase %s, want observing", r.Phase)
	}
	m.Telemetry("a", tele(wire.Model{Name: "m", Version: "2", SHA256: "bb"}, 9, now.Add(time.Second)), now.Add(time.Second))
	now = now.Add(time.Minute + 2*time.Second) // the health window is over
	cmds = m.Tick(now)
	only(t, cmds, wire.CmdModelUpdate, "b", "c")
	for _, c := range cmds {
		m.Result(c.DeviceID, result(c, wire.CmdActive, now), now)
		m.Telemetry(c.DeviceID, tele(wire.Model{Name: "m", Version: "2"}, 10, now.Add(time.Second)), now.Add(time.Second))
	}
	m.Tick(now)
	if len(m.Tick(now.Add(2*time.Minute))) != 0 {
		t.Fatal("commands after the last wave")
	}
	if r, _ = m.Get("r1"); r.State != StateComplete {
		t.Fatalf("state %s (%s), want complete", r.State, r.Reason)
	}
	// Changed hands every changed rollout once.
	if ch := m.Changed(); len(ch) != 1 || ch[0].ID != "r1" || len(m.Changed()) != 0 {
		t.Fatalf("changed %v", ch)
	}
}

func TestMachineFailureRollsBackTheUpdated(t *testing.T) {
	m := NewMachine(nil, time.Hour, quiet())
	if _, err := m.Create("r1", newSpec(t, "a,b", 1, 100), newModel, []string{"a", "b"}, mt0); err != nil {
		t.Fatal(err)
	}
	m.Telemetry("a", tele(oldM, 5, mt0), mt0)
	ca := m.Tick(mt0)[0]
	m.Result("a", result(ca, wire.CmdActive, mt0), mt0)
	m.Tick(mt0)
	m.Telemetry("a", tele(wire.Model{Name: "m", Version: "2"}, 5, mt0.Add(time.Second)), mt0.Add(time.Second))
	now := mt0.Add(2 * time.Minute)
	cb := m.Tick(now)
	only(t, cb, wire.CmdModelUpdate, "b")
	res := result(cb[0], wire.CmdFailed, now)
	res.Reason = "sha256 mismatch"
	cmds := m.Result("b", res, now)
	only(t, cmds, wire.CmdModelRollback, "a")
	if c := cmds[0]; c.Model == nil || c.Model.Version != "1" || c.ExpiresAt != now.Add(time.Hour).UnixMilli() {
		t.Fatalf("rollback %+v: want the previous model, valid for the rollback TTL", c)
	}
	r, _ := m.Get("r1")
	if r.State != StateRolledBack || !strings.Contains(r.Reason, "b failed to update: sha256 mismatch") ||
		r.Devices[0].State != DeviceRollbackSent || r.Devices[1].State != DeviceFailed {
		t.Fatalf("rollout %s %q devices %+v", r.State, r.Reason, r.Devices)
	}
	m.Result("a", result(cmds[0], wire.CmdRolledBack, now), now)
	if r, _ = m.Get("r1"); r.Devices[0].State != DeviceRolledBack {
		t.Fatalf("device a %s, want rolled_back", r.Devices[0].State)
	}
}

// TestMachineSendFailed: a command that could not be sent goes out again; an update at the
// next tick, a rollback at every tick, even after the rollout ended.
func TestMachineSendFailed(t *testing.T) {
	m := NewMachine(nil, 0, quiet())
	if _, err := m.Create("r1", newSpec(t, "a", 1), newModel, []string{"a"}, mt0); err != nil {
		t.Fatal(err)
	}
	up := m.Tick(mt0)[0]
	m.SendFailed(up, errors.New("mqtt: not connected"), mt0)
	r, _ := m.Get("r1")
	if d := r.Devices[0]; d.State != DeviceWaiting || d.Reason != "mqtt: not connected" {
		t.Fatalf("after a failed send: %+v", d)
	}
	only(t, m.Tick(mt0.Add(time.Second)), wire.CmdModelUpdate, "a")
	m.Result("a", result(up, wire.CmdActive, mt0), mt0.Add(2*time.Second))
	_, cmds, err := m.Abort("r1", mt0.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	only(t, cmds, wire.CmdModelRollback, "a")
	m.SendFailed(cmds[0], errors.New("no acknowledgement"), mt0.Add(3*time.Second))
	if r, _ = m.Get("r1"); r.State != StateAborted || r.Devices[0].State != DeviceRollbackPending {
		t.Fatalf("rollout %s device %s", r.State, r.Devices[0].State)
	}
	only(t, m.Tick(mt0.Add(4*time.Second)), wire.CmdModelRollback, "a")
	if len(m.Tick(mt0.Add(5*time.Second))) != 0 {
		t.Fatal("a rollback taken as sent went out again")
	}
	// A late failure report for a command the device has answered since changes nothing.
	m.Result("a", result(cmds[0], wire.CmdRolledBack, mt0), mt0.Add(6*time.Second))
	m.SendFailed(cmds[0], errors.New("late"), mt0.Add(6*time.Second))
	if r, _ = m.Get("r1"); r.Devices[0].State != DeviceRolledBack {
		t.Fatalf("device %s, want rolled_back", r.Devices[0].State)
	}
}

func TestMachineTimeoutAndPause(t *testing.T) {
	m := NewMachine(nil, 0, quiet())
	if _, err := m.Create("r1", newSpec(t, "a", 1), newModel, []string{"a"}, mt0); err != nil {
		t.Fatal(err)
	}
	m.Tick(mt0)
	// Paused, the deadline does not run out, and resuming extends it by the pause.
	if _, _, err := m.Pause("r1", mt0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Pause("r1", mt0.Add(time.Minute)); !errors.Is(err, ErrState) {
		t.Fatalf("pause twice: %v", err)
	}
	m.Tick(mt0.Add(30 * time.Minute))
	if r, _ := m.Get("r1"); r.State != StatePaused {
		t.Fatalf("state %s, want paused", r.State)
	}
	if _, _, err := m.Resume("r1", mt0.Add(31*time.Minute)); err != nil {
		t.Fatal(err)
	}
	m.Tick(mt0.Add(35 * time.Minute)) // 4 minutes of the 10 spent before and after the pause
	if r, _ := m.Get("r1"); r.State != StateCanary {
		t.Fatalf("state %s (%s), want canary", r.State, r.Reason)
	}
	m.Tick(mt0.Add(42 * time.Minute))
	if r, _ := m.Get("r1"); r.State != StateRolledBack || !strings.Contains(r.Reason, "did not report active") {
		t.Fatalf("state %s (%s), want rolled back for the timeout", r.State, r.Reason)
	}
	if _, _, err := m.Abort("nope", mt0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abort of an unknown rollout: %v", err)
	}
}

// A machine loaded from the stored state (a restart, a new leader) sends again, under the same
// ids, the commands its devices show sent and have not answered; nothing else.
func TestMachineResendsWhatShowsSent(t *testing.T) {
	m := NewMachine(nil, 0, quiet())
	if _, err := m.Create("ro-1", newSpec(t, "d1,d2,d3", 2), newModel, []string{"d1", "d2", "d3"}, mt0); err != nil {
		t.Fatal(err)
	}
	cmds := m.Tick(mt0)
	only(t, cmds, wire.CmdModelUpdate, "d1", "d2")
	m.Result("d2", result(cmds[1], wire.CmdDownloading, mt0), mt0) // d2 has its command

	later := mt0.Add(time.Minute)
	again := NewMachine(m.List(), 0, quiet()).Resend(later)
	only(t, again, wire.CmdModelUpdate, "d1")
	if again[0].ID != cmds[0].ID || again[0].ExpiresAt != cmds[0].ExpiresAt || again[0].IssuedAt != later.UnixMilli() {
		t.Fatalf("resent %+v, sent first %+v: want the same id and expiry", again[0], cmds[0])
	}

	// d1 active, then the rollout aborted: d1's rollback shows sent and is sent again.
	m.Result("d1", result(cmds[0], wire.CmdActive, mt0), mt0)
	_, rb, err := m.Abort("ro-1", mt0)
	if err != nil {
		t.Fatal(err)
	}
	only(t, rb, wire.CmdModelRollback, "d1")
	again = NewMachine(m.List(), 0, quiet()).Resend(later)
	only(t, again, wire.CmdModelRollback, "d1")
	if again[0].ID != rb[0].ID {
		t.Fatalf("rollback resent as %s, first sent as %s", again[0].ID, rb[0].ID)
	}
	m.Result("d1", result(rb[0], wire.CmdRolledBack, mt0), mt0)
	if again = NewMachine(m.List(), 0, quiet()).Resend(later); len(again) != 0 {
		t.Fatalf("resent %v after every device answered", again)
	}
}
