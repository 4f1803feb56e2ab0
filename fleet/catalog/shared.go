package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-edge/vigil/models"
)

// Shared keeps a catalogue for several fleet instances (fleet/postgres.Catalog): the records,
// the manifests as signed and the artifacts' bytes. A registry opened with [OpenShared] reads
// and writes its records there, and keeps the files in its data folder only as a cache, filled
// from the store on the first download and checked against the record's sha256 and size: a
// model added through one instance is served, and rolled out, by every other.
//
// Its methods may be called concurrently, from several processes.
type Shared interface {
	// Insert adds a version: its record, its manifest bytes and its artifact, read from
	// artifact to the end. A name@version already there is an error wrapping ErrExists.
	Insert(ctx context.Context, m Model, manifest []byte, artifact io.Reader) error
	// List returns every record, sorted by name then version.
	List(ctx context.Context) ([]Model, error)
	// Get returns one record; an unknown one is an error wrapping ErrNotFound.
	Get(ctx context.Context, name, version string) (Model, error)
	// SetBad marks a version bad for good, with the reason.
	SetBad(ctx context.Context, name, version, reason string) error
	// Fetch writes the version's artifact to w and returns its manifest bytes.
	Fetch(ctx context.Context, name, version string, w io.Writer) (manifest []byte, err error)
}

// OpenShared opens the registry kept in sh, caching its files in dir (created when missing).
// The signing key is not in sh: every instance that adds models or starts rollouts needs the
// same key file (see vigil-fleet serve --key).
func OpenShared(dir string, sh Shared) (*Registry, error) {
	if err := os.MkdirAll(filepath.Join(dir, "models"), 0o755); err != nil {
		return nil, fmt.Errorf("model registry: %w", err)
	}
	return &Registry{dir: dir, now: time.Now, cache: map[string]Model{}, shared: sh, verified: map[string]bool{}}, nil
}

// insertShared stores a version added here in the shared store.
func (r *Registry) insertShared(m Model, manifest []byte, artifact string) error {
	f, err := os.Open(artifact)
	if err != nil {
		return fmt.Errorf("model registry: %w", err)
	}
	defer f.Close()
	if err := r.shared.Insert(context.Background(), m, manifest, f); err != nil {
		r.dropCache(m) // not this version's files if another instance added it meanwhile
		return err
	}
	r.fetch.Lock()
	r.verified[recKey(m.Name, m.Version)] = true
	r.fetch.Unlock()
	return nil
}

func (r *Registry) forget(name, version string) {
	r.mu.Lock()
	delete(r.cache, recKey(name, version))
	r.mu.Unlock()
}

// cached makes sure m's artifact and manifest are in the data folder: with a shared store,
// fetched from it when missing (or of the wrong size) and checked against m's sha256 and size
// before they are put in place. Without one the folder is the registry and nothing is done.
func (r *Registry) cached(m Model) error {
	if r.shared == nil {
		return nil
	}
	dir := r.versionDir(m.Name, m.Version)
	art := filepath.Join(dir, m.File)
	key := recKey(m.Name, m.Version)
	r.fetch.Lock()
	defer r.fetch.Unlock()
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil && r.verified[key] {
		if st, err := os.Stat(art); err == nil && st.Size() == m.Size {
			return nil
		}
	}
	// Files found in the folder but not checked by this process yet (left by an earlier run,
	// or by a data folder used without the shared store) are checked once.
	if sum, n, err := models.HashFile(art); err == nil && sum == m.SHA256 && n == m.Size {
		if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
			r.verified[key] = true
			return nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model registry: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+m.File+".tmp-*")
	if err != nil {
		return fmt.Errorf("model registry: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	manifest, err := r.shared.Fetch(context.Background(), m.Name, m.Version, cw)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("model registry: fetch %s@%s: %w", m.Name, m.Version, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 || cw.n != m.Size {
		return fmt.Errorf("model registry: %s@%s in the shared store: sha256 %s (%d bytes), want %s (%d bytes)",
			m.Name, m.Version, got, cw.n, m.SHA256, m.Size)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("model registry: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, ManifestFile), manifest, 0o644); err != nil {
		return fmt.Errorf("model registry: %w", err)
	}
	if err := os.Rename(tmp.Name(), art); err != nil {
		return fmt.Errorf("model registry: %w", err)
	}
	r.verified[key] = true
	return nil
}

// dropCache removes m's cached files, so the next use fetches them again.
func (r *Registry) dropCache(m Model) {
	r.fetch.Lock()
	defer r.fetch.Unlock()
	delete(r.verified, recKey(m.Name, m.Version))
	dir := r.versionDir(m.Name, m.Version)
	_ = os.Remove(filepath.Join(dir, m.File))
	_ = os.Remove(filepath.Join(dir, ManifestFile))
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
