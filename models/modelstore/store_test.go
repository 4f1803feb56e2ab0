package modelstore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/modelstore"
	"github.com/vigil-edge/vigil/models/modelstore/modelstoretest"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

var (
	fleetKey = modelstoretest.Key(1)
	fleetPub = fleetKey.Public().(ed25519.PublicKey)
)

func open(t *testing.T, dir string) *modelstore.Store {
	t.Helper()
	s, err := modelstore.OpenWith(dir, modelstore.Options{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Attempts: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// progressLog records Install's progress calls.
type progressLog struct {
	mu     sync.Mutex
	states []string
	pcts   []float64
}

func (p *progressLog) add(state string, pct float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.states = append(p.states, state)
	p.pcts = append(p.pcts, pct)
}

func install(t *testing.T, s *modelstore.Store, ref wire.ModelRef) models.Manifest {
	t.Helper()
	m, err := s.Install(context.Background(), ref, fleetPub, nil)
	if err != nil {
		t.Fatalf("Install %s %s: %v", ref.Name, ref.Version, err)
	}
	return m
}

func TestInstallActivateRestart(t *testing.T) {
	srv := modelstoretest.NewServer(t, fleetKey)
	model := modelstoretest.YOLOX(t)
	dir := t.TempDir()
	s := open(t, dir)
	if _, ok := s.Active(); ok {
		t.Fatal("a new store has an active version")
	}
	ref := srv.Publish("yolox", "1.0.0", model, nil)
	var pl progressLog
	m, err := s.Install(context.Background(), ref, fleetPub, pl.add)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "yolox" || m.Version != "1.0.0" || m.ModelPath() != filepath.Join(dir, "yolox", "1.0.0", "model.onnx") {
		t.Fatalf("installed manifest %s %s at %s", m.Name, m.Version, m.ModelPath())
	}
	got, err := os.ReadFile(m.ModelPath())
	if err != nil || !bytes.Equal(got, model) {
		t.Fatalf("installed model differs from the served one (err %v)", err)
	}
	for _, f := range []string{"manifest.json", "manifest.sig"} {
		if _, err := os.Stat(filepath.Join(dir, "yolox", "1.0.0", f)); err != nil {
			t.Errorf("version folder lacks %s: %v", f, err)
		}
	}
	if pl.states[len(pl.states)-1] != modelstore.StateVerifying || !slices.Contains(pl.pcts, 100) {
		t.Errorf("progress %v %v: want downloading up to 100 then verifying", pl.states, pl.pcts)
	}
	if !slices.IsSorted(pl.pcts) {
		t.Errorf("progress went backwards: %v", pl.pcts)
	}
	if _, ok := s.Active(); ok {
		t.Fatal("Install activated the version")
	}
	if err := s.Activate("yolox", "1.0.0"); err != nil {
		t.Fatal(err)
	}

	// A restart comes back on the active version.
	s = open(t, dir)
	if a, ok := s.Active(); !ok || a.Version != "1.0.0" || a.ModelPath() != m.ModelPath() {
		t.Fatalf("after re-open: active %v %s %s", ok, a.Version, a.ModelPath())
	}
	if _, ok := s.Previous(); ok {
		t.Fatal("a previous version after one activation")
	}

	// Two more versions: the oldest goes, the store keeps active and previous.
	for _, v := range []string{"1.1.0", "1.2.0"} {
		install(t, s, srv.Publish("yolox", v, model, nil))
		if err := s.Activate("yolox", v); err != nil {
			t.Fatal(err)
		}
	}
	if a, _ := s.Active(); a.Version != "1.2.0" {
		t.Fatalf("active %s, want 1.2.0", a.Version)
	}
	if p, _ := s.Previous(); p.Version != "1.1.0" {
		t.Fatalf("previous %s, want 1.1.0", p.Version)
	}
	if vers := dirs(t, filepath.Join(dir, "yolox")); !slices.Equal(vers, []string{"1.1.0", "1.2.0"}) {
		t.Fatalf("versions on disk %v, want the active and the previous only", vers)
	}
	if _, err := s.Installed("yolox", "1.0.0"); !errors.Is(err, modelstore.ErrNotInstalled) {
		t.Fatalf("Installed(1.0.0) after pruning: %v", err)
	}

	// Rollback, and a restart keeps it.
	back, err := s.Rollback()
	if err != nil || back.Version != "1.1.0" {
		t.Fatalf("Rollback: %s %v", back.Version, err)
	}
	s = open(t, dir)
	if a, _ := s.Active(); a.Version != "1.1.0" {
		t.Fatalf("after rollback and re-open: active %s", a.Version)
	}
	if p, _ := s.Previous(); p.Version != "1.2.0" {
		t.Fatalf("after rollback: previous %s, want 1.2.0", p.Version)
	}
	if err := s.Remove("yolox", "1.1.0"); !errors.Is(err, modelstore.ErrInUse) {
		t.Fatalf("Remove(active): %v, want ErrInUse", err)
	}
}

func dirs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestInstallAgainDownloadsNothing(t *testing.T) {
	srv := modelstoretest.NewServer(t, fleetKey)
	s := open(t, t.TempDir())
	ref := srv.Publish("yolox", "1", modelstoretest.YOLOX(t), nil)
	install(t, s, ref)
	install(t, s, ref)
	if n := len(srv.Ranges()); n != 1 {
		t.Fatalf("%d model requests for two installs of one version, want 1", n)
	}
}

func TestResumeAfterDroppedConnection(t *testing.T) {
	srv := modelstoretest.NewServer(t, fleetKey)
	model := modelstoretest.YOLOX(t)
	s := open(t, t.TempDir())
	ref := srv.Publish("yolox", "1", model, nil)
	const cut = 1_000_000
	srv.DropNext(cut)
	m := install(t, s, ref)
	if r := srv.Ranges(); !slices.Equal(r, []string{"", "bytes=1000000-"}) {
		t.Fatalf("model requests' ranges %q, want a first full request and a resume from %d", r, cut)
	}
	got, _ := os.ReadFile(m.ModelPath())
	if !bytes.Equal(got, model) {
		t.Fatal("resumed model differs from the served one")
	}
}

func TestResumeAfterCancel(t *testing.T) {
	srv := modelstoretest.NewServer(t, fleetKey)
	model := modelstoretest.YOLOX(t)
	dir := t.TempDir()
	s := open(t, dir)
	ref := srv.Publish("yolox", "1", model, nil)
	const cut = 700_000
	release := srv.HoldNext(cut)
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Install(ctx, ref, fleetPub, nil)
		done <- err
	}()
	modelstoretest.WaitPartial(t, dir, cut)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Install: %v", err)
	}
	// As after a restart: a new store on the same folder resumes.
	s = open(t, dir)
	m := install(t, s, ref)
	if r := srv.Ranges(); len(r) != 2 || r[1] != "bytes=700000-" {
		t.Fatalf("ranges %q, want the second request from byte %d", r, cut)
	}
	if got, _ := os.ReadFile(m.ModelPath()); !bytes.Equal(got, model) {
		t.Fatal("resumed model differs from the served one")
	}
}

func TestRetryTemporaryHTTPErrors(t *testing.T) {
	srv := modelstoretest.NewServer(t, fleetKey)
	s := open(t, t.TempDir())
	ref := srv.Publish("yolox", "1", modelstoretest.YOLOX(t), nil)
	srv.FailNext(2, http.StatusServiceUnavailable)
	install(t, s, ref)
	if n := len(srv.Ranges()); n != 3 {
		t.Fatalf("%d model requests, want 2 refused and 1 served", n)
	}

	// More failures in a row than Attempts: Install gives up, naming the status.
	ref2 := srv.Publish("yolox", "2", modelstoretest.YOLOX(t), nil)
	srv.FailNext(10, http.StatusBadGateway)
	_, err := s.Install(context.Background(), ref2, fleetPub, nil)
	var he *modelstore.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusBadGateway || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("Install against a failing server: %v", err)
	}
}

func TestInstallErrors(t *testing.T) {
	srv := modelstoretest.NewServer(t, fleetKey)
	model := modelstoretest.YOLOX(t)
	other := modelstoretest.Key(2)
	cases := []struct {
		name string
		ref  func() wire.ModelRef
		is   error
		says []string
		// models says how many model requests the failure may take.
		models int
	}{
		{"wrong sha256 in the reference", func() wire.ModelRef {
			r := srv.Publish("m", "sha", model, nil)
			r.SHA256 = strings.Repeat("ab", 32)
			return r
		}, modelstore.ErrChecksum, []string{"sha256 mismatch", strings.Repeat("ab", 32), modelstoretest.SHA256(model)}, 0},
		{"served bytes differ from the signed sha256", func() wire.ModelRef {
			r := srv.Publish("m", "bytes", model, nil)
			bad := bytes.Clone(model)
			bad[len(bad)/2] ^= 0xff
			srv.PublishRaw("m", "bytes-bad", bad, nil, fleetKey) // serve the bad bytes...
			r.URL = strings.Replace(r.URL, "/bytes/", "/bytes-bad/", 1)
			return r
		}, modelstore.ErrChecksum, []string{"expected " + modelstoretest.SHA256(model), "got "}, 1},
		{"manifest signed by another key", func() wire.ModelRef {
			srv.Key = other
			defer func() { srv.Key = fleetKey }()
			return srv.Publish("m", "sig", model, nil)
		}, modelstore.ErrSignature, []string{"signature"}, 0},
		{"size", func() wire.ModelRef {
			r := srv.Publish("m", "size", model, nil)
			r.Size++
			return r
		}, modelstore.ErrSize, []string{"size mismatch", "bytes"}, 1},
		{"manifest names another version", func() wire.ModelRef {
			return srv.Publish("m", "ver", model, func(m *models.Manifest) { m.Version = "other" })
		}, modelstore.ErrBadRef, []string{"other"}, 0},
		{"manifest not found", func() wire.ModelRef {
			r := srv.Publish("m", "404", model, nil)
			r.ManifestURL += "x?token=SECRET"
			return r
		}, nil, []string{"404"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir)
			before := len(srv.Ranges())
			_, err := s.Install(context.Background(), c.ref(), fleetPub, nil)
			if err == nil {
				t.Fatal("Install succeeded")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v, want %v", err, c.is)
			}
			for _, w := range c.says {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q shows the URL's query", err)
			}
			if n := len(srv.Ranges()) - before; n > c.models {
				t.Errorf("%d model requests, want at most %d", n, c.models)
			}
			if d := dirs(t, dir); slices.ContainsFunc(d, func(n string) bool { return n == "m" }) {
				t.Errorf("a failed install left a version folder: %v", d)
			}
			if parts, _ := filepath.Glob(filepath.Join(dir, ".staging", "*", "*.partial")); len(parts) > 0 && c.is == modelstore.ErrChecksum {
				t.Errorf("a corrupt download stays: %v", parts)
			}
		})
	}
}

func TestHTTPErrorStatus(t *testing.T) {
	srv := modelstoretest.NewServer(t, fleetKey)
	s := open(t, t.TempDir())
	ref := srv.Publish("m", "1", modelstoretest.YOLOX(t), nil)
	srv.FailNext(1, http.StatusForbidden)
	_, err := s.Install(context.Background(), ref, fleetPub, nil)
	var he *modelstore.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusForbidden {
		t.Fatalf("Install: %v, want HTTP 403", err)
	}
	if n := len(srv.Ranges()); n != 1 {
		t.Fatalf("%d requests: a 403 is not retried", n)
	}
}

func TestRollbackWithoutPrevious(t *testing.T) {
	s := open(t, t.TempDir())
	if _, err := s.Rollback(); !errors.Is(err, modelstore.ErrNoPrevious) {
		t.Fatalf("Rollback on an empty store: %v", err)
	}
	if err := s.Activate("nothing", "1"); !errors.Is(err, modelstore.ErrNotInstalled) {
		t.Fatalf("Activate of a missing version: %v", err)
	}
	if err := s.Activate("../etc", "1"); !errors.Is(err, modelstore.ErrBadRef) {
		t.Fatalf("Activate of a path: %v", err)
	}
}

func TestOpenDropsVanishedVersion(t *testing.T) {
	srv := modelstoretest.NewServer(t, fleetKey)
	dir := t.TempDir()
	s := open(t, dir)
	install(t, s, srv.Publish("m", "1", modelstoretest.YOLOX(t), nil))
	if err := s.Activate("m", "1"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "m", "1")); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	if _, ok := s.Active(); ok {
		t.Fatal("a vanished version is still active")
	}
}

func TestMeta(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, ok, err := s.GetMeta("pending"); ok || err != nil {
		t.Fatalf("GetMeta on an empty store: %v %v", ok, err)
	}
	if err := s.PutMeta("pending", []byte("one")); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	if b, ok, err := s.GetMeta("pending"); !ok || err != nil || string(b) != "one" {
		t.Fatalf("GetMeta after re-open: %q %v %v", b, ok, err)
	}
	if err := s.DeleteMeta("pending"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GetMeta("pending"); ok {
		t.Fatal("deleted record still there")
	}
	if err := s.PutMeta("../x", nil); err == nil {
		t.Fatal("PutMeta accepted a path as key")
	}
}

// TestStalledDownloadRetries: a server that stops sending mid-body is given up on after
// Options.Stall and the download resumes from where it stopped.
func TestStalledDownloadRetries(t *testing.T) {
	srv := modelstoretest.NewServer(t, fleetKey)
	model := modelstoretest.YOLOX(t)
	s, err := modelstore.OpenWith(t.TempDir(), modelstore.Options{Backoff: time.Millisecond, Stall: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ref := srv.Publish("yolox", "1", model, nil)
	release := srv.HoldNext(500_000) // never released: only the client's stall timer ends it
	defer release()
	m := install(t, s, ref)
	// On a loaded machine a slow stretch may stall too: later resumes go further on.
	if r := srv.Ranges(); len(r) < 2 || r[0] != "" || r[1] != "bytes=500000-" {
		t.Fatalf("ranges %q, want a resume from the stalled byte", r)
	}
	if got, _ := os.ReadFile(m.ModelPath()); !bytes.Equal(got, model) {
		t.Fatal("model differs after a stalled download")
	}
}
