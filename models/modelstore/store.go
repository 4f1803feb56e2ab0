// Package modelstore keeps the models a device has installed over the air, in one folder:
//
//	<dir>/<name>/<version>/model.onnx      the model file (sha256 checked on install and at load)
//	<dir>/<name>/<version>/manifest.json   the manifest's bytes exactly as the fleet signed them
//	<dir>/<name>/<version>/manifest.sig    the fleet's ed25519 signature of manifest.json
//	<dir>/.state.json                      which version is active and which was before it
//	<dir>/.staging/<sha256>/               a download in progress (model.onnx.partial)
//	<dir>/.meta/<key>                      small records of the agent (e.g. a pending command)
//
// Install downloads and verifies a version beside the others and moves it into place with a
// rename; Activate and Rollback rewrite the state file atomically (temp file, fsync, rename),
// so a restart comes back on the active version. The store keeps the active and the previous
// version (and at most one more being installed); older ones are removed. Model names start
// with a letter or digit, so nothing of the store's own (a dot name) is taken for a model.
package modelstore

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/models"
)

// File and folder names inside the store.
const (
	stateFile    = ".state.json"
	stagingDir   = ".staging"
	metaDir      = ".meta"
	modelFile    = "model.onnx"
	manifestFile = "manifest.json"
	sigFile      = "manifest.sig"
	partialFile  = "model.onnx.partial"
)

// Errors. Install's errors wrap one of these (or an *HTTPError) and name what failed.
var (
	// ErrSignature: the manifest's signature does not verify with the pinned fleet key.
	ErrSignature = errors.New("manifest signature does not verify with the pinned fleet key")
	// ErrChecksum: a sha256 differs from the one the model reference names.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrSize: a size differs from the one the model reference names.
	ErrSize = errors.New("size mismatch")
	// ErrBadRef: the model reference or the manifest it points at is unusable.
	ErrBadRef = errors.New("bad model reference")
	// ErrNotInstalled: the named version is not in the store.
	ErrNotInstalled = errors.New("model version is not installed")
	// ErrNoPrevious: there is no previous version to roll back to.
	ErrNoPrevious = errors.New("no previous model version")
	// ErrInUse: the version is the active or the previous one and cannot be removed or replaced.
	ErrInUse = errors.New("model version is in use")
)

// Options tune a Store. The zero value is valid.
type Options struct {
	// Client fetches manifests and models; nil means a client with connect and response-header
	// time-outs and no overall time-out (a large model on a slow link takes its time).
	Client *http.Client
	// Attempts is how many download attempts in a row may fail without receiving a byte
	// before Install gives up; an attempt that made progress resets the count. 0 means 8.
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after each further one up
	// to MaxBackoff, each less up to 20 % at random (internal/backoff). 0 means 1 s and 1 min.
	Backoff, MaxBackoff time.Duration
	// Stall aborts (and retries) a download that receives nothing for this long. 0 means 1 min.
	Stall time.Duration
	// Logger receives retries and repairs at Warn; nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	if o.Attempts <= 0 {
		o.Attempts = 8
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.Stall <= 0 {
		o.Stall = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// version names one installed version.
type version struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (v *version) is(name, ver string) bool { return v != nil && v.Name == name && v.Version == ver }

// state is the state file's content.
type state struct {
	Active   *version `json:"active,omitempty"`
	Previous *version `json:"previous,omitempty"`
}

// Store is a versioned model store in one folder. Its methods are safe for concurrent use;
// Installs run one at a time. One process owns a folder at a time.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger

	installMu sync.Mutex // one Install at a time

	mu       sync.Mutex
	st       state
	active   models.Manifest // loaded from st.Active; Name "" when none
	previous models.Manifest
	// installing is the version an Install is putting in place ("name/version"), kept by
	// pruning until it is activated or removed.
	installing string
}

// Open opens (creating when needed) the store in dir with default options.
func Open(dir string) (*Store, error) { return OpenWith(dir, Options{}) }

// OpenWith opens (creating when needed) the store in dir. A version the state file names
// whose manifest no longer loads is dropped from the state (and logged): the store then
// reports no such version rather than failing the agent's start.
func OpenWith(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	s := &Store{dir: dir, opts: opts, log: opts.Logger.With("component", "model_store")}
	for _, d := range []string{dir, filepath.Join(dir, stagingDir), filepath.Join(dir, metaDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open model store: %w", err)
		}
	}
	removeTemps(dir)
	removeTemps(filepath.Join(dir, metaDir))
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("open model store: %w", err)
	default:
		if err := json.Unmarshal(b, &s.st); err != nil {
			return nil, fmt.Errorf("open model store: state file %s: %w", filepath.Join(dir, stateFile), err)
		}
	}
	changed := false
	load := func(v **version, into *models.Manifest, which string) {
		if *v == nil {
			return
		}
		m, err := s.load((*v).Name, (*v).Version)
		if err != nil {
			s.log.Warn("dropping the "+which+" model version: it no longer loads", "model", (*v).Name, "version", (*v).Version, "err", err)
			*v, changed = nil, true
			return
		}
		*into = m
	}
	load(&s.st.Active, &s.active, "active")
	load(&s.st.Previous, &s.previous, "previous")
	if changed {
		if err := s.writeState(s.st); err != nil {
			return nil, fmt.Errorf("open model store: %w", err)
		}
	}
	return s, nil
}

// Dir returns the store's folder.
func (s *Store) Dir() string { return s.dir }

// Active returns the manifest of the active version (its Dir is the version's folder), and
// false when none is active.
func (s *Store) Active() (models.Manifest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active, s.st.Active != nil
}

// Previous returns the manifest of the version active before the active one, and false when
// there is none.
func (s *Store) Previous() (models.Manifest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.previous, s.st.Previous != nil
}

// Installed returns the manifest of an installed version, or an error wrapping
// ErrNotInstalled.
func (s *Store) Installed(name, ver string) (models.Manifest, error) {
	if err := checkNames(name, ver); err != nil {
		return models.Manifest{}, err
	}
	return s.load(name, ver)
}

// Activate makes an installed version the active one; the one active until now becomes the
// previous one, and versions that are neither are removed. Activating the active version
// does nothing.
func (s *Store) Activate(name, ver string) error {
	if err := checkNames(name, ver); err != nil {
		return err
	}
	m, err := s.load(name, ver)
	if err != nil {
		return fmt.Errorf("activate %s %s: %w", name, ver, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Active.is(name, ver) {
		return nil
	}
	next := state{Active: &version{name, ver}, Previous: s.st.Active}
	if err := s.writeState(next); err != nil {
		return fmt.Errorf("activate %s %s: %w", name, ver, err)
	}
	s.st, s.previous, s.active = next, s.active, m
	if s.installing == name+"/"+ver {
		s.installing = ""
	}
	s.pruneLocked()
	return nil
}

// Rollback makes the previous version the active one (and the active one the previous, so
// a rollback can itself be undone) and returns its manifest. It fails with ErrNoPrevious
// when there is no previous version.
func (s *Store) Rollback() (models.Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Previous == nil {
		return models.Manifest{}, fmt.Errorf("rollback: %w", ErrNoPrevious)
	}
	m, err := s.load(s.st.Previous.Name, s.st.Previous.Version)
	if err != nil {
		return models.Manifest{}, fmt.Errorf("rollback: %w", err)
	}
	next := state{Active: s.st.Previous, Previous: s.st.Active}
	if err := s.writeState(next); err != nil {
		return models.Manifest{}, fmt.Errorf("rollback: %w", err)
	}
	s.st, s.previous, s.active = next, s.active, m
	return m, nil
}

// Remove deletes an installed version that is neither active nor previous (ErrInUse); a
// version that is not installed is not an error.
func (s *Store) Remove(name, ver string) error {
	if err := checkNames(name, ver); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Active.is(name, ver) || s.st.Previous.is(name, ver) {
		return fmt.Errorf("remove %s %s: %w", name, ver, ErrInUse)
	}
	if s.installing == name+"/"+ver {
		s.installing = ""
	}
	if err := os.RemoveAll(s.versionDir(name, ver)); err != nil {
		return fmt.Errorf("remove %s %s: %w", name, ver, err)
	}
	_ = os.Remove(filepath.Join(s.dir, name)) // only when empty
	return nil
}

// pruneLocked removes every version that is neither active, previous nor being installed,
// and empty model folders. s.mu is held.
func (s *Store) pruneLocked() {
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, n := range names {
		if !n.IsDir() || strings.HasPrefix(n.Name(), ".") {
			continue
		}
		vers, err := os.ReadDir(filepath.Join(s.dir, n.Name()))
		if err != nil {
			continue
		}
		for _, v := range vers {
			if s.st.Active.is(n.Name(), v.Name()) || s.st.Previous.is(n.Name(), v.Name()) || s.installing == n.Name()+"/"+v.Name() {
				continue
			}
			if err := os.RemoveAll(filepath.Join(s.dir, n.Name(), v.Name())); err != nil {
				s.log.Warn("remove old model version", "model", n.Name(), "version", v.Name(), "err", err)
			}
		}
		_ = os.Remove(filepath.Join(s.dir, n.Name())) // only when empty
	}
}

// versionDir is an installed version's folder.
func (s *Store) versionDir(name, ver string) string { return filepath.Join(s.dir, name, ver) }

// load reads an installed version's manifest; its File and Dir point at the stored model.
func (s *Store) load(name, ver string) (models.Manifest, error) {
	dir := s.versionDir(name, ver)
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return models.Manifest{}, fmt.Errorf("%s %s: %w", name, ver, ErrNotInstalled)
	}
	if err != nil {
		return models.Manifest{}, fmt.Errorf("read manifest of %s %s: %w", name, ver, err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return m, fmt.Errorf("manifest of %s %s: %w", name, ver, err)
	}
	if m.Name != name || m.Version != ver {
		return m, fmt.Errorf("%w: folder %s holds the manifest of %s %s", ErrBadRef, dir, m.Name, m.Version)
	}
	if st, err := os.Stat(filepath.Join(dir, modelFile)); err != nil || !st.Mode().IsRegular() {
		return m, fmt.Errorf("%s %s: model file missing: %w", name, ver, ErrNotInstalled)
	}
	m.File, m.Dir = modelFile, dir
	return m, nil
}

// parseManifest decodes and validates a manifest as models.LoadManifest does, and requires
// its sha256, which the store relies on to check the model file at every load.
func parseManifest(b []byte) (models.Manifest, error) {
	var m models.Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: manifest: %v", models.ErrBadModel, err)
	}
	if err := m.Validate(); err != nil {
		return m, err
	}
	if m.SHA256 == "" {
		return m, fmt.Errorf("%w: manifest %q has no sha256", models.ErrBadModel, m.Name)
	}
	if err := checkNames(m.Name, m.Version); err != nil {
		return m, err
	}
	return m, nil
}

// checkNames accepts model names and versions that are one safe path element: 1-64 of
// [A-Za-z0-9_.+-], starting with a letter or digit.
func checkNames(name, ver string) error {
	for _, p := range [][2]string{{"name", name}, {"version", ver}} {
		if !safeName(p[1]) {
			return fmt.Errorf("%w: model %s %q must be 1-64 of [A-Za-z0-9_.+-], starting with a letter or digit", ErrBadRef, p[0], p[1])
		}
	}
	return nil
}

func safeName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '_' && r != '.' && r != '+' && r != '-') {
			return false
		}
	}
	return true
}

// writeState writes the state file atomically.
func (s *Store) writeState(st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.dir, stateFile), b); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// PutMeta stores a small record of the agent's (a pending command, recent command ids)
// under key (a safe name), atomically: after a crash the old or the new bytes are there.
func (s *Store) PutMeta(key string, b []byte) error {
	if !safeName(key) {
		return fmt.Errorf("meta key %q is not a safe name", key)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, metaDir, key), b); err != nil {
		return fmt.Errorf("put meta %s: %w", key, err)
	}
	return nil
}

// GetMeta returns the record under key, and false when there is none.
func (s *Store) GetMeta(key string) ([]byte, bool, error) {
	if !safeName(key) {
		return nil, false, fmt.Errorf("meta key %q is not a safe name", key)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, metaDir, key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get meta %s: %w", key, err)
	}
	return b, true, nil
}

// DeleteMeta removes the record under key; a missing record is not an error.
func (s *Store) DeleteMeta(key string) error {
	if !safeName(key) {
		return fmt.Errorf("meta key %q is not a safe name", key)
	}
	err := os.Remove(filepath.Join(s.dir, metaDir, key))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete meta %s: %w", key, err)
	}
	return syncDir(filepath.Join(s.dir, metaDir))
}

// writeFileAtomic writes b to path through a temporary file in the same folder, synced and
// renamed over path, then syncs the folder.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir makes a folder's entries (a rename, a new file) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTemps removes temporary files a crash left in dir.
func removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !e.IsDir() && strings.Contains(e.Name(), ".tmp") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// verifyManifest checks the manifest bytes' signature (sig is base64) with pub.
func verifyManifest(pub ed25519.PublicKey, manifest []byte, sig string) error {
	raw, err := decodeSig(sig)
	if err != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, manifest, raw) {
		return ErrSignature
	}
	return nil
}
