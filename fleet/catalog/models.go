// Package catalog is the fleet controller's model registry: the model artifacts it offers to
// agents for over-the-air updates, each with a signed manifest.
//
// A registry lives in a data folder:
//
//	DATA/models.db                          bbolt: one record per name@version (Model)
//	DATA/models/<name>/<version>/<file>     the artifact, copied in atomically
//	DATA/models/<name>/<version>/manifest.json  the models.Manifest JSON, exactly as served
//
// Versions are immutable: adding a name@version twice is an error. The manifest names the
// artifact's file and its sha256, and the fleet key signs the manifest's bytes (ed25519); an
// agent checks that signature with the key pinned in its configuration, then the artifact
// against the manifest's sha256. [Registry.Load] checks both again on the fleet's side before a
// rollout: an artifact that changed on disk marks the version bad, and a bad version is never
// rolled out.
//
// The database is opened for each operation and closed after it, so that `vigil-fleet models
// add` can run beside a serving vigil-fleet on the same data folder. Records are cached in
// memory; they only change by being marked bad.
package catalog

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	vmodels "github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Errors of the registry.
var (
	ErrNotFound   = errors.New("model not found")                       // no such name@version
	ErrExists     = errors.New("model version already exists")          // versions are immutable
	ErrBadModel   = errors.New("model is marked bad")                   // its artifact or manifest failed a check
	ErrBadRequest = errors.New("invalid model name, version or family") // see ValidName
)

// Families the registry accepts.
var Families = []string{"yolox", "yolov8", "yolov5"}

// ManifestFile is the manifest's file name in a version's folder.
const ManifestFile = "manifest.json"

var bucket = []byte("models")

// Model is one registered model version.
type Model struct {
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	Family    string    `json:"family"`
	File      string    `json:"file"`      // the artifact's file name (the manifest's file)
	SHA256    string    `json:"sha256"`    // hex digest of the artifact
	Size      int64     `json:"size"`      // bytes of the artifact
	Signature string    `json:"signature"` // base64 ed25519 signature of the manifest's bytes
	KeyID     string    `json:"key_id"`    // wire.KeyID of the signing key
	PublicKey string    `json:"public_key"`
	AddedAt   time.Time `json:"added_at"`
	Bad       bool      `json:"bad,omitempty"`
	BadReason string    `json:"bad_reason,omitempty"`
}

// Ref is the model's reference in a model_update command; base is the fleet's public HTTP
// URL (e.g. http://fleet.example:8080).
func (m Model) Ref(base string) wire.ModelRef {
	base = strings.TrimRight(base, "/")
	p := "/models/" + url.PathEscape(m.Name) + "/" + url.PathEscape(m.Version) + "/"
	return wire.ModelRef{
		Name:        m.Name,
		Version:     m.Version,
		SHA256:      m.SHA256,
		Size:        m.Size,
		URL:         base + p + "model.onnx",
		ManifestURL: base + p + ManifestFile,
		ManifestSig: m.Signature,
	}
}

// ValidName reports whether s may be a model name or version: 1-64 of [A-Za-z0-9_.-], not
// "." or "..", so that it is one safe path segment.
func ValidName(s string) bool { return wire.ValidID(s) }

// ParseRef splits "name@version".
func ParseRef(s string) (name, version string, err error) {
	name, version, ok := strings.Cut(s, "@")
	if !ok || !ValidName(name) || !ValidName(version) {
		return "", "", fmt.Errorf("%w: %q: want NAME@VERSION", ErrBadRequest, s)
	}
	return name, version, nil
}

// AddSpec describes a model to add.
type AddSpec struct {
	Name    string
	Version string
	Family  string // one of Families
	// Base gives the input, output, labels and thresholds; nil takes the family's defaults with
	// Labels and InputSize.
	Base      *vmodels.Manifest
	Labels    []string // used when Base is nil; required then
	InputSize int      // square input in pixels when Base is nil; 640 when zero
}

// Registry is a model registry in a data folder. Its methods may be called concurrently, and
// other processes may use the same folder at the same time.
type Registry struct {
	dir string
	now func() time.Time
	// shared, when set, holds the records, manifests and artifacts (PostgreSQL, shared by the
	// fleet's instances); dir's models folder then caches the files (see shared.go).
	shared   Shared
	fetch    sync.Mutex      // one cache fill at a time
	verified map[string]bool // under fetch: name@version whose cached files this process checked

	mu    sync.Mutex
	cache map[string]Model // by name@version
}

// Open opens (creating it when missing) the registry in dir.
func Open(dir string) (*Registry, error) {
	if err := os.MkdirAll(filepath.Join(dir, "models"), 0o755); err != nil {
		return nil, fmt.Errorf("model registry: %w", err)
	}
	r := &Registry{dir: dir, now: time.Now, cache: map[string]Model{}}
	err := r.update(func(b *bolt.Bucket) error { return nil })
	if err != nil {
		return nil, err
	}
	return r, nil
}

func recKey(name, version string) string { return name + "@" + version }

// db opens the database for one operation.
func (r *Registry) db(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(filepath.Join(r.dir, "models.db"), 0o644, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("model registry: open database: %w", err)
	}
	return db, nil
}

func (r *Registry) update(fn func(*bolt.Bucket) error) error {
	db, err := r.db(false)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return fn(b)
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("model registry: close database: %w", cerr)
	}
	return err
}

func (r *Registry) view(fn func(*bolt.Bucket) error) error {
	db, err := r.db(true)
	if err != nil {
		return err
	}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return errors.New("model registry: database has no models bucket")
		}
		return fn(b)
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("model registry: close database: %w", cerr)
	}
	return err
}

// versionDir is the folder of name@version; both must be ValidName.
func (r *Registry) versionDir(name, version string) string {
	return filepath.Join(r.dir, "models", name, version)
}

// Add copies the artifact at src into the registry, writes its manifest and signs it with
// key. The artifact is copied to a temporary file and renamed into place, so a crash leaves
// either no version or a complete one.
func (r *Registry) Add(src string, spec AddSpec, key ed25519.PrivateKey) (Model, error) {
	if !ValidName(spec.Name) || !ValidName(spec.Version) {
		return Model{}, fmt.Errorf("%w: name %q, version %q", ErrBadRequest, spec.Name, spec.Version)
	}
	if !slices.Contains(Families, spec.Family) {
		return Model{}, fmt.Errorf("%w: family %q, want one of %s", ErrBadRequest, spec.Family, strings.Join(Families, ", "))
	}
	if len(key) != ed25519.PrivateKeySize {
		return Model{}, errors.New("model registry: no signing key")
	}
	file := filepath.Base(src)
	if !ValidName(file) || file == ManifestFile {
		return Model{}, fmt.Errorf("%w: artifact file name %q", ErrBadRequest, file)
	}
	if _, err := r.Get(spec.Name, spec.Version); err == nil {
		return Model{}, fmt.Errorf("%w: %s", ErrExists, recKey(spec.Name, spec.Version))
	} else if !errors.Is(err, ErrNotFound) {
		return Model{}, err
	}

	dir := r.versionDir(spec.Name, spec.Version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Model{}, fmt.Errorf("model registry: %w", err)
	}
	sum, size, err := copyAtomic(src, filepath.Join(dir, file))
	if err != nil {
		return Model{}, fmt.Errorf("model registry: copy artifact: %w", err)
	}
	man := manifestFor(spec, file, sum)
	if err := man.Validate(); err != nil {
		return Model{}, fmt.Errorf("model registry: manifest: %w", err)
	}
	mb, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return Model{}, fmt.Errorf("model registry: manifest: %w", err)
	}
	mb = append(mb, '\n')
	if err := writeFileAtomic(filepath.Join(dir, ManifestFile), mb, 0o644); err != nil {
		return Model{}, fmt.Errorf("model registry: write manifest: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	m := Model{
		Name: spec.Name, Version: spec.Version, Family: spec.Family, File: file,
		SHA256: sum, Size: size,
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, mb)),
		KeyID:     wire.KeyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub),
		AddedAt: r.now().UTC(),
	}
	if r.shared != nil {
		if err := r.insertShared(m, mb, filepath.Join(dir, file)); err != nil {
			return Model{}, err
		}
		r.remember(m)
		return m, nil
	}
	rec, err := json.Marshal(m)
	if err != nil {
		return Model{}, err
	}
	err = r.update(func(b *bolt.Bucket) error {
		k := []byte(recKey(m.Name, m.Version))
		if b.Get(k) != nil {
			return fmt.Errorf("%w: %s", ErrExists, recKey(m.Name, m.Version))
		}
		return b.Put(k, rec)
	})
	if err != nil {
		return Model{}, err
	}
	r.remember(m)
	return m, nil
}

// manifestFor builds the manifest of a new version.
func manifestFor(spec AddSpec, file, sum string) vmodels.Manifest {
	var m vmodels.Manifest
	if spec.Base != nil {
		m = *spec.Base
	} else {
		size := spec.InputSize
		if size <= 0 {
			size = 640
		}
		m.Input = vmodels.Input{Name: "images", Width: size, Height: size, ColorOrder: "rgb",
			Scale: 1.0 / 255, Std: [3]float32{1, 1, 1}, Letterbox: "center", PadValue: 114}
		m.Output = vmodels.Output{Name: "output0"}
		if spec.Family == "yolox" {
			m.Input.ColorOrder, m.Input.Scale, m.Input.Letterbox = "bgr", 1, "top-left"
			m.Output.Name = "output"
		}
		m.Labels = slices.Clone(spec.Labels)
		m.Defaults = vmodels.Thresholds{Score: 0.35, NMS: 0.45}
	}
	m.Name, m.Version, m.Family, m.File, m.SHA256, m.Dir = spec.Name, spec.Version, spec.Family, file, sum, ""
	return m
}

// copyAtomic copies src to dst through a synced temporary file renamed into place, and
// returns the hex sha256 and size of what it copied.
func copyAtomic(src, dst string) (string, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), in)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, syncDir(filepath.Dir(dst))
}

func (r *Registry) remember(m Model) {
	r.mu.Lock()
	r.cache[recKey(m.Name, m.Version)] = m
	r.mu.Unlock()
}

// List returns every version, sorted by name then version.
func (r *Registry) List() ([]Model, error) {
	var out []Model
	var err error
	if r.shared != nil {
		out, err = r.shared.List(context.Background())
	} else {
		err = r.view(r.listInto(&out))
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	for _, m := range out {
		r.cache[recKey(m.Name, m.Version)] = m
	}
	r.mu.Unlock()
	return out, nil // sorted by name@version (bbolt's key order; the shared store sorts)
}

// listInto reads every record of the bbolt bucket into out.
func (r *Registry) listInto(out *[]Model) func(b *bolt.Bucket) error {
	return func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			var m Model
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("model registry: record %s: %w", k, err)
			}
			*out = append(*out, m)
			return nil
		})
	}
}

// Get returns name@version's record (from the cache, or the database on a miss).
func (r *Registry) Get(name, version string) (Model, error) {
	if !ValidName(name) || !ValidName(version) {
		return Model{}, fmt.Errorf("%w: %s@%s", ErrNotFound, name, version)
	}
	r.mu.Lock()
	m, ok := r.cache[recKey(name, version)]
	r.mu.Unlock()
	if ok {
		return m, nil
	}
	if r.shared != nil {
		m, err := r.shared.Get(context.Background(), name, version)
		if err != nil {
			return Model{}, err
		}
		r.remember(m)
		return m, nil
	}
	err := r.view(func(b *bolt.Bucket) error {
		v := b.Get([]byte(recKey(name, version)))
		if v == nil {
			return fmt.Errorf("%w: %s@%s", ErrNotFound, name, version)
		}
		return json.Unmarshal(v, &m)
	})
	if err != nil {
		return Model{}, err
	}
	r.remember(m)
	return m, nil
}

// OpenArtifact opens name@version's artifact for serving. The caller closes the file.
func (r *Registry) OpenArtifact(name, version string) (*os.File, Model, error) {
	m, err := r.Get(name, version)
	if err != nil {
		return nil, Model{}, err
	}
	if err := r.cached(m); err != nil {
		return nil, Model{}, err
	}
	f, err := os.Open(filepath.Join(r.versionDir(name, version), m.File))
	if err != nil {
		return nil, Model{}, fmt.Errorf("model registry: %w", err)
	}
	return f, m, nil
}

// Manifest returns name@version's manifest bytes, exactly as signed.
func (r *Registry) Manifest(name, version string) ([]byte, Model, error) {
	m, err := r.Get(name, version)
	if err != nil {
		return nil, Model{}, err
	}
	if err := r.cached(m); err != nil {
		return nil, Model{}, err
	}
	b, err := os.ReadFile(filepath.Join(r.versionDir(name, version), ManifestFile))
	if err != nil {
		return nil, Model{}, fmt.Errorf("model registry: %w", err)
	}
	return b, m, nil
}

// Load checks name@version before it is rolled out: the manifest's signature with the key
// that signed it, the manifest's file and digest, and the artifact's size and sha256 on
// disk. A version that fails is marked bad (for good) and Load returns an error wrapping
// ErrBadModel; one already bad fails at once.
func (r *Registry) Load(name, version string) (Model, error) {
	if r.shared != nil {
		r.forget(name, version) // another instance may have marked it bad
	}
	m, err := r.Get(name, version)
	if err != nil {
		return Model{}, err
	}
	if m.Bad {
		return m, fmt.Errorf("%w: %s@%s: %s", ErrBadModel, name, version, m.BadReason)
	}
	reason := r.check(m)
	if reason != "" && r.shared != nil {
		// The files here are a cache: fetch them again before blaming the version.
		r.dropCache(m)
		reason = r.check(m)
	}
	if reason != "" && r.shared != nil {
		m.Bad, m.BadReason = true, reason
		if err := r.shared.SetBad(context.Background(), name, version, reason); err != nil {
			return Model{}, err
		}
		r.remember(m)
		return m, fmt.Errorf("%w: %s@%s: %s", ErrBadModel, name, version, reason)
	}
	if reason != "" {
		m.Bad, m.BadReason = true, reason
		rec, err := json.Marshal(m)
		if err != nil {
			return Model{}, err
		}
		if err := r.update(func(b *bolt.Bucket) error { return b.Put([]byte(recKey(name, version)), rec) }); err != nil {
			return Model{}, err
		}
		r.remember(m)
		return m, fmt.Errorf("%w: %s@%s: %s", ErrBadModel, name, version, reason)
	}
	return m, nil
}

// check returns why m's files do not match its record, or "".
func (r *Registry) check(m Model) string {
	mb, _, err := r.Manifest(m.Name, m.Version)
	if err != nil {
		return "manifest: " + err.Error()
	}
	pub, err1 := base64.StdEncoding.DecodeString(m.PublicKey)
	sig, err2 := base64.StdEncoding.DecodeString(m.Signature)
	if err1 != nil || err2 != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, mb, sig) {
		return "manifest signature does not verify"
	}
	var man vmodels.Manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		return "manifest: " + err.Error()
	}
	if man.File != m.File || man.SHA256 != m.SHA256 || man.Name != m.Name || man.Version != m.Version {
		return "manifest does not match the registry record"
	}
	f, err := os.Open(filepath.Join(r.versionDir(m.Name, m.Version), m.File))
	if err != nil {
		return "artifact: " + err.Error()
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "artifact: " + err.Error()
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 || n != m.Size {
		return fmt.Sprintf("artifact changed on disk: sha256 %s (%d bytes), want %s (%d bytes)", got, n, m.SHA256, m.Size)
	}
	return ""
}
