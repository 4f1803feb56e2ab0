package ota_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/modelstore"
	"github.com/vigil-edge/vigil/models/modelstore/modelstoretest"
	"github.com/vigil-edge/vigil/models/onnx"
	"github.com/vigil-edge/vigil/models/ota"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
)

const device = "edge-1"

var (
	fleetKey = modelstoretest.Key(1)
	fleetPub = fleetKey.Public().(ed25519.PublicKey)
	otherKey = modelstoretest.Key(2)
)

// cameras stands in for the agent's cameras: Swap opens a real detector for the manifest
// and puts it in place of the one it had, as the agent does between two frames.
type cameras struct {
	mu    sync.Mutex
	det   *onnx.Detector
	swaps []models.Manifest
	fail  error // when set, Swap fails with it
}

func (c *cameras) Swap(ctx context.Context, m models.Manifest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	d, err := onnx.Open(m, onnx.Options{})
	if err != nil {
		return err
	}
	if c.det != nil {
		c.det.Close()
	}
	c.det = d
	c.swaps = append(c.swaps, m)
	return nil
}

func (c *cameras) swapped() []models.Manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]models.Manifest(nil), c.swaps...)
}

func (c *cameras) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.det != nil {
		c.det.Close()
	}
}

// rig is a device: a store in a temp folder, its OTA handler and cameras, and a fleet HTTP
// server with the models.
type rig struct {
	t       *testing.T
	srv     *modelstoretest.Server
	dir     string
	st      *modelstore.Store
	h       *ota.Handler
	cams    *cameras
	reports chan wire.CmdResult
	cfg     ota.Config
	model   []byte
}

func newRig(t *testing.T, edit func(*ota.Config)) *rig {
	r := &rig{t: t, srv: modelstoretest.NewServer(t, fleetKey), dir: t.TempDir(), cams: &cameras{},
		reports: make(chan wire.CmdResult, 1000), model: modelstoretest.YOLOX(t)}
	t.Cleanup(r.cams.close)
	r.cfg = ota.Config{DeviceID: device, FleetKey: fleetPub, Swap: r.cams.Swap,
		Report: func(res wire.CmdResult) { r.reports <- res },
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if edit != nil {
		edit(&r.cfg)
	}
	r.restart()
	return r
}

// restart closes the handler and opens the store and a new handler, as an agent restart does.
func (r *rig) restart() {
	r.t.Helper()
	if r.h != nil {
		r.h.Close()
	}
	st, err := modelstore.OpenWith(r.dir, modelstore.Options{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Attempts: 3})
	if err != nil {
		r.t.Fatal(err)
	}
	r.st = st
	cfg := r.cfg
	cfg.Store = st
	r.h = ota.New(cfg)
	r.t.Cleanup(func() { r.h.Close() })
}

// installActive puts version v of the YOLOX model in the store and makes it active, as an
// earlier update would have.
func (r *rig) installActive(v string) models.Manifest {
	r.t.Helper()
	m, err := r.st.Install(context.Background(), r.srv.Publish("yolox", v, r.model, nil), fleetPub, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.st.Activate(m.Name, m.Version); err != nil {
		r.t.Fatal(err)
	}
	return m
}

func command(id, name string, ref *wire.ModelRef) wire.Command {
	return wire.Command{Schema: wire.SchemaCommand, ID: id, DeviceID: device, Name: name,
		IssuedAt: time.Now().UnixMilli(), ExpiresAt: time.Now().Add(time.Hour).UnixMilli(), Model: ref, RolloutID: "r1"}
}

func signed(t *testing.T, cmd wire.Command, key ed25519.PrivateKey) []byte {
	t.Helper()
	sc, err := wire.Sign(cmd, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *rig) send(cmd wire.Command) error {
	return r.h.Handle(context.Background(), wire.Topic(device, wire.KindCmd, cmd.Name), signed(r.t, cmd, fleetKey))
}

// results collects the reports about id until one ends the command.
func (r *rig) results(id string) []wire.CmdResult {
	r.t.Helper()
	var got []wire.CmdResult
	timeout := time.After(50 * time.Second)
	for {
		select {
		case res := <-r.reports:
			if res.CmdID != id {
				continue
			}
			got = append(got, res)
			switch res.State {
			case wire.CmdActive, wire.CmdFailed, wire.CmdRolledBack:
				return got
			}
		case <-timeout:
			r.t.Fatalf("command %s did not end; reports so far: %+v", id, got)
		}
	}
}

func states(rs []wire.CmdResult) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.State)
	}
	return s
}

func last(rs []wire.CmdResult) wire.CmdResult { return rs[len(rs)-1] }

func (r *rig) activeVersion() string {
	m, ok := r.st.Active()
	if !ok {
		return ""
	}
	return m.Version
}

func TestUpdateRollbackRestart(t *testing.T) {
	r := newRig(t, func(c *ota.Config) {
		c.SelfTestImage = data.MustPath(t, "images/darknet_dog.jpg")
		c.SelfTestLabels = []string{"dog"}
	})
	ref1 := r.srv.Publish("yolox", "1.0.0", r.model, nil)
	cmd1 := command("c1", wire.CmdModelUpdate, &ref1)
	if err := r.send(cmd1); err != nil {
		t.Fatal(err)
	}
	rs := r.results("c1")
	st := states(rs)
	if st[0] != wire.CmdAccepted || last(rs).State != wire.CmdActive {
		t.Fatalf("states %v, want accepted … active (last reason %q)", st, last(rs).Reason)
	}
	for _, want := range []string{wire.CmdDownloading, wire.CmdVerifying, wire.CmdLoading} {
		if !strings.Contains(strings.Join(st, " "), want) {
			t.Errorf("states %v lack %s", st, want)
		}
	}
	prev := -1.0
	for _, res := range rs {
		if res.State != wire.CmdDownloading {
			continue
		}
		if int(res.Percent/10) <= int(prev/10) && prev >= 0 {
			t.Errorf("downloading %v%% after %v%%: want at most one report per 10 %%", res.Percent, prev)
		}
		prev = res.Percent
		if res.Header.Schema != wire.SchemaCmdResult || res.DeviceID != device || res.RolloutID != "r1" || res.MsgID == "" {
			t.Errorf("report header %+v", res.Header)
		}
	}
	if prev != 100 {
		t.Errorf("last download report %v%%, want 100", prev)
	}
	if m := last(rs).Model; m == nil || m.Version != "1.0.0" {
		t.Fatalf("active report names model %+v", m)
	}
	if sw := r.cams.swapped(); len(sw) != 1 || sw[0].Version != "1.0.0" || sw[0].Dir != filepath.Join(r.dir, "yolox", "1.0.0") {
		t.Fatalf("swaps %+v", sw)
	}
	if v := r.activeVersion(); v != "1.0.0" {
		t.Fatalf("store active %q", v)
	}
	if s := r.h.Stats(); s.Accepted != 1 || s.Succeeded != 1 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}

	// A restart comes back on the active version and remembers the command id.
	r.restart()
	if v := r.activeVersion(); v != "1.0.0" {
		t.Fatalf("after restart: store active %q", v)
	}
	if err := r.send(cmd1); !errors.Is(err, ota.ErrDuplicate) {
		t.Fatalf("repeated command after restart: %v, want ErrDuplicate", err)
	}
	if n := r.h.Stats().Rejected[ota.ReasonDuplicate]; n != 1 {
		t.Fatalf("duplicates counted %d", n)
	}

	// Version 2, then roll back to 1.
	ref2 := r.srv.Publish("yolox", "2.0.0", r.model, nil)
	if err := r.send(command("c2", wire.CmdModelUpdate, &ref2)); err != nil {
		t.Fatal(err)
	}
	if res := last(r.results("c2")); res.State != wire.CmdActive {
		t.Fatalf("update to 2: %s %s", res.State, res.Reason)
	}
	if err := r.send(command("c3", wire.CmdModelRollback, nil)); err != nil {
		t.Fatal(err)
	}
	res := last(r.results("c3"))
	if res.State != wire.CmdRolledBack || res.Model == nil || res.Model.Version != "1.0.0" {
		t.Fatalf("rollback: %s %q %+v", res.State, res.Reason, res.Model)
	}
	if v := r.activeVersion(); v != "1.0.0" {
		t.Fatalf("after rollback: store active %q", v)
	}
	if p, _ := r.st.Previous(); p.Version != "2.0.0" {
		t.Fatalf("after rollback: previous %q", p.Version)
	}
	if sw := r.cams.swapped(); len(sw) != 3 || sw[2].Version != "1.0.0" {
		t.Fatalf("swaps after rollback: %d, last %+v", len(sw), sw[len(sw)-1])
	}
	// A rollback to a named version that is already active does nothing more.
	if err := r.send(command("c4", wire.CmdModelRollback, &wire.ModelRef{Version: "1.0.0"})); err != nil {
		t.Fatal(err)
	}
	if res := last(r.results("c4")); res.State != wire.CmdRolledBack {
		t.Fatalf("repeat rollback: %s %s", res.State, res.Reason)
	}
	if n := len(r.cams.swapped()); n != 3 {
		t.Fatalf("%d swaps after a rollback to the active version, want 3", n)
	}
}

// TestUpdateFailures: every failure leaves the device on version 1, Swap uncalled.
func TestUpdateFailures(t *testing.T) {
	garbage := make([]byte, 4096)
	rand.Read(garbage)
	cases := []struct {
		name   string
		ref    func(r *rig) wire.ModelRef
		reason []string
	}{
		{"wrong sha256 in the command", func(r *rig) wire.ModelRef {
			ref := r.srv.Publish("yolox", "2", r.model, nil)
			ref.SHA256 = strings.Repeat("0", 64)
			return ref
		}, []string{"sha256 mismatch"}},
		{"manifest signed by another key", func(r *rig) wire.ModelRef {
			r.srv.Key = otherKey
			defer func() { r.srv.Key = fleetKey }()
			return r.srv.Publish("yolox", "2", r.model, nil)
		}, []string{"signature"}},
		{"manifest input size does not match the model", func(r *rig) wire.ModelRef {
			return r.srv.Publish("yolox", "2", r.model, func(m *models.Manifest) { m.Input.Width, m.Input.Height = 320, 320 })
		}, []string{"self-test", "input shape"}},
		{"random bytes with their own sha256", func(r *rig) wire.ModelRef {
			return r.srv.Publish("yolox", "2", garbage, nil)
		}, []string{"self-test", "not a loadable ONNX model"}},
		{"server keeps failing", func(r *rig) wire.ModelRef {
			ref := r.srv.Publish("yolox", "2", r.model, nil)
			r.srv.FailNext(5, 503)
			return ref
		}, []string{"503", "gave up"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.installActive("1")
			ref := c.ref(r)
			if err := r.send(command("u", wire.CmdModelUpdate, &ref)); err != nil {
				t.Fatal(err)
			}
			res := last(r.results("u"))
			if res.State != wire.CmdFailed {
				t.Fatalf("state %s, want failed", res.State)
			}
			for _, w := range c.reason {
				if !strings.Contains(res.Reason, w) {
					t.Errorf("reason %q does not say %q", res.Reason, w)
				}
			}
			if sw := r.cams.swapped(); len(sw) != 0 {
				t.Errorf("Swap called with %+v", sw)
			}
			if v := r.activeVersion(); v != "1" {
				t.Errorf("store active %q, want 1", v)
			}
			if _, err := r.st.Installed("yolox", "2"); !errors.Is(err, modelstore.ErrNotInstalled) {
				t.Errorf("the failed version stays installed: %v", err)
			}
			if m, _ := r.st.Active(); !fileExists(m.ModelPath()) {
				t.Errorf("the active model file %s is gone", m.ModelPath())
			}
			if s := r.h.Stats(); s.Failed != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestSwapFailureKeepsOldModel(t *testing.T) {
	r := newRig(t, nil)
	r.installActive("1")
	r.cams.fail = errors.New("camera 2 cannot open the detector")
	ref := r.srv.Publish("yolox", "2", r.model, nil)
	if err := r.send(command("u", wire.CmdModelUpdate, &ref)); err != nil {
		t.Fatal(err)
	}
	res := last(r.results("u"))
	if res.State != wire.CmdFailed || !strings.Contains(res.Reason, "camera 2 cannot open") {
		t.Fatalf("%s %q", res.State, res.Reason)
	}
	if v := r.activeVersion(); v != "1" {
		t.Fatalf("store active %q", v)
	}
}

func TestRejected(t *testing.T) {
	r := newRig(t, nil)
	ref := r.srv.Publish("yolox", "1", r.model, nil)
	good := command("x", wire.CmdModelUpdate, &ref)
	raw, _ := json.Marshal(good)
	sc, _ := wire.Sign(good, fleetKey)
	unsigned, _ := json.Marshal(wire.SignedCommand{Payload: sc.Payload})
	forged := sc
	forged.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(otherKey, raw))
	forgedB, _ := json.Marshal(forged)
	other := good
	other.DeviceID = "edge-2"
	expired := good
	expired.ExpiresAt = time.Now().Add(-time.Minute).UnixMilli()
	cases := []struct {
		name    string
		topic   string
		payload []byte
		reason  string
		is      error
	}{
		{"plain command, not wrapped", "", raw, ota.ReasonSignature, wire.ErrBadSignature},
		{"no signature", "", unsigned, ota.ReasonSignature, wire.ErrBadSignature},
		{"signed by another key", "", signed(t, good, otherKey), ota.ReasonSignature, wire.ErrBadSignature},
		{"signature of other bytes", "", forgedB, ota.ReasonSignature, wire.ErrBadSignature},
		{"not JSON", "", []byte("{"), ota.ReasonMalformed, wire.ErrMalformed},
		{"for another device", "", signed(t, other, fleetKey), ota.ReasonNotForMe, wire.ErrNotForMe},
		{"expired", "", signed(t, expired, fleetKey), ota.ReasonExpired, wire.ErrExpired},
		{"topic names another command", wire.Topic(device, wire.KindCmd, wire.CmdModelRollback), signed(t, good, fleetKey), ota.ReasonTopic, ota.ErrTopic},
		{"topic of another device", wire.Topic("edge-2", wire.KindCmd, wire.CmdModelUpdate), signed(t, good, fleetKey), ota.ReasonTopic, ota.ErrTopic},
	}
	for i, c := range cases {
		err := r.h.Handle(context.Background(), c.topic, c.payload)
		if !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want %v", c.name, err, c.is)
		}
		if n := r.h.Stats().Rejected[c.reason]; n == 0 {
			t.Errorf("%s: not counted as %s (%v)", c.name, c.reason, r.h.Stats().Rejected)
		}
		_ = i
	}
	s := r.h.Stats()
	if s.Rejected[ota.ReasonSignature] != 4 || s.Accepted != 0 {
		t.Fatalf("stats %+v", s)
	}
	select {
	case res := <-r.reports:
		t.Fatalf("a rejected command was reported: %+v", res)
	default:
	}
	if len(r.srv.Ranges()) != 0 || r.activeVersion() != "" {
		t.Fatal("a rejected command downloaded or activated a model")
	}
}

func TestBusyRejectsSecondCommand(t *testing.T) {
	r := newRig(t, nil)
	ref1 := r.srv.Publish("yolox", "1", r.model, nil)
	release := r.srv.HoldNext(300_000)
	defer release()
	if err := r.send(command("a", wire.CmdModelUpdate, &ref1)); err != nil {
		t.Fatal(err)
	}
	modelstoretest.WaitPartial(t, r.dir, 300_000)
	ref2 := r.srv.Publish("yolox", "2", r.model, nil)
	b := command("b", wire.CmdModelUpdate, &ref2)
	if err := r.send(b); !errors.Is(err, ota.ErrBusy) {
		t.Fatalf("second command while one runs: %v, want ErrBusy", err)
	}
	if res := last(r.results("b")); res.State != wire.CmdFailed || !strings.Contains(res.Reason, "busy") {
		t.Fatalf("busy report %s %q", res.State, res.Reason)
	}
	release()
	if res := last(r.results("a")); res.State != wire.CmdActive {
		t.Fatalf("first command: %s %s", res.State, res.Reason)
	}
	// The refused id is not remembered: the fleet sends it again and it runs.
	if err := r.send(b); err != nil {
		t.Fatalf("resent command: %v", err)
	}
	if res := last(r.results("b")); res.State != wire.CmdActive {
		t.Fatalf("resent command: %s %s", res.State, res.Reason)
	}
	if r.h.Stats().Rejected[ota.ReasonBusy] != 1 {
		t.Fatalf("stats %+v", r.h.Stats())
	}
}

func TestResumePendingAfterCrash(t *testing.T) {
	r := newRig(t, nil)
	r.installActive("1")
	ref := r.srv.Publish("yolox", "2", r.model, nil)
	const cut = 1_200_000
	release := r.srv.HoldNext(cut)
	defer release()
	if err := r.send(command("u", wire.CmdModelUpdate, &ref)); err != nil {
		t.Fatal(err)
	}
	modelstoretest.WaitPartial(t, r.dir, cut)
	// The agent stops mid-download: no final report, version 1 stays active.
	r.restart()
	release()
	for len(r.reports) > 0 {
		if res := <-r.reports; res.State == wire.CmdFailed || res.State == wire.CmdActive {
			t.Fatalf("an interrupted update was reported %s", res.State)
		}
	}
	if v := r.activeVersion(); v != "1" {
		t.Fatalf("after the crash: active %q", v)
	}
	if err := r.h.ResumePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs := r.results("u")
	if res := last(rs); res.State != wire.CmdActive {
		t.Fatalf("resumed update: %v %q", states(rs), res.Reason)
	}
	ranges := r.srv.Ranges()
	if ranges[len(ranges)-1] != "bytes=1200000-" {
		t.Fatalf("model requests %q: the resumed download should ask from byte %d", ranges, cut)
	}
	if v := r.activeVersion(); v != "2" {
		t.Fatalf("active %q, want 2", v)
	}
	// Nothing is pending any more.
	r.restart()
	if err := r.h.ResumePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.h.Running() != "" || r.h.Stats().Accepted != 0 {
		t.Fatal("a finished update was resumed again")
	}
}

// TestSelfTestMissesLabel: a model that loads but does not find what the self-test needs
// (here: a dog in a gray image) is not swapped in.
func TestSelfTestMissesLabel(t *testing.T) {
	r := newRig(t, func(c *ota.Config) { c.SelfTestLabels = []string{"dog"} })
	r.installActive("1")
	ref := r.srv.Publish("yolox", "2", r.model, nil)
	if err := r.send(command("u", wire.CmdModelUpdate, &ref)); err != nil {
		t.Fatal(err)
	}
	res := last(r.results("u"))
	if res.State != wire.CmdFailed || !strings.Contains(res.Reason, `found no "dog"`) {
		t.Fatalf("%s %q", res.State, res.Reason)
	}
	if len(r.cams.swapped()) != 0 || r.activeVersion() != "1" {
		t.Fatal("a model that failed its self-test went live")
	}
}

func TestRollbackWithoutPrevious(t *testing.T) {
	r := newRig(t, nil)
	r.installActive("1")
	if err := r.send(command("rb", wire.CmdModelRollback, nil)); err != nil {
		t.Fatal(err)
	}
	if res := last(r.results("rb")); res.State != wire.CmdFailed || !strings.Contains(res.Reason, "no previous") {
		t.Fatalf("%s %q", res.State, res.Reason)
	}
	if v := r.activeVersion(); v != "1" {
		t.Fatalf("active %q", v)
	}
}

// FuzzHandle: no payload panics the handler, and nothing that does not verify with the
// pinned key is accepted.
func FuzzHandle(f *testing.F) {
	dir := f.TempDir()
	st, err := modelstore.Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	var reported sync.Map
	h := ota.New(ota.Config{DeviceID: device, FleetKey: fleetPub, Store: st,
		Swap:   func(context.Context, models.Manifest) error { return errors.New("fuzz: no swaps") },
		Report: func(r wire.CmdResult) { reported.Store(r.CmdID, r.State) },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f.Cleanup(func() { h.Close() })

	ref := wire.ModelRef{Name: "m", Version: "1", SHA256: strings.Repeat("a", 64), Size: 10,
		URL: "http://127.0.0.1:1/m", ManifestURL: "http://127.0.0.1:1/j", ManifestSig: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	cmd := command("f", wire.CmdModelUpdate, &ref)
	sc, _ := wire.Sign(cmd, otherKey)
	b, _ := json.Marshal(sc)
	f.Add(b)
	other := cmd
	other.DeviceID = "edge-2"
	sc, _ = wire.Sign(other, fleetKey)
	b, _ = json.Marshal(sc)
	f.Add(b)
	raw, _ := json.Marshal(cmd)
	f.Add(raw)
	f.Add([]byte(`{"payload":"","sig":"","key_id":""}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := h.Handle(context.Background(), "", payload)
		if err == nil && !verifies(payload) {
			t.Fatalf("accepted a payload that does not verify with the fleet key: %q", payload)
		}
	})
}

// verifies reports whether payload is a SignedCommand whose signature verifies with the
// fleet key.
func verifies(payload []byte) bool {
	var sc wire.SignedCommand
	if json.Unmarshal(payload, &sc) != nil {
		return false
	}
	p, err1 := base64.StdEncoding.DecodeString(sc.Payload)
	s, err2 := base64.StdEncoding.DecodeString(sc.Sig)
	return err1 == nil && err2 == nil && ed25519.Verify(fleetPub, p, s)
}
