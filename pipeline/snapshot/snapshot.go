// Package snapshot keeps one JPEG per event, of the event's best frame, in a folder of bounded
// size, and serves them over HTTP at /api/v1/snapshots/<event id>.jpg (wire.SnapshotPath).
//
// A snapshot is the whole frame, downscaled to at most MaxWidth pixels wide (aspect kept),
// with the caller's privacy redaction applied to the store's own copy before anything is
// encoded, and the object's box drawn on it: the whole frame shows where in the scene the
// object was, which a crop would not. A better frame of the same event replaces its snapshot.
//
// Files are written atomically (a temporary file in the same folder, synced, then renamed),
// so a reader or a power cut never sees half a JPEG. When the folder's snapshots exceed the
// store's byte budget, the least recently written are deleted. Event ids must be ULIDs
// (wire.ValidULID), which keeps every path inside the folder.
package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// MaxWidth is the widest snapshot kept by default; wider frames are downscaled.
const MaxWidth = 1280

// Quality is the default JPEG quality of snapshots (1-100).
const Quality = 85

// Encoding is how pictures are encoded; zero fields take MaxWidth and Quality.
type Encoding struct {
	MaxWidth int // wider frames are downscaled (aspect kept)
	Quality  int // JPEG quality, 1-100
}

func (e Encoding) orDefaults() Encoding {
	return Encoding{MaxWidth: cmp.Or(e.MaxWidth, MaxWidth), Quality: min(max(cmp.Or(e.Quality, Quality), 1), 100)}
}

// Box is a box to draw, in the source image's pixels, with an optional caption above it.
type Box struct {
	models.Box
	Text string
}

const (
	ext        = ".jpg"
	tempPrefix = ".snap-"
)

// Sentinel errors.
var (
	// ErrBadID: the event id is not a ULID.
	ErrBadID = errors.New("snapshot: event id is not a ULID")
)

// Redact blanks out private parts of img in place (e.g. mask.Apply with a camera's masks). It
// is called with the store's own copy of the frame, already downscaled, before encoding.
type Redact func(img models.Image) error

// Store is a folder of event snapshots.
//
// Call contract: every method is safe for concurrent use (one Store may serve several
// cameras and the HTTP server at once). A Store holds no open files or goroutines between
// calls; it needs no closing.
type Store struct {
	dir      string
	maxBytes int64
	enc      Encoding // set before use (SetEncoding), read-only afterwards

	mu    sync.Mutex
	files map[string]entry // by event id
	total int64
	clock uint64 // orders writes
}

type entry struct {
	size    int64
	written uint64
}

// Open opens (creating it if needed) the snapshot folder dir, keeping at most maxBytes of
// snapshots in it. Snapshots already there are kept, oldest written first to go; leftover
// temporary files of an interrupted Save are removed.
func Open(dir string, maxBytes int64) (*Store, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("open snapshot store %s: byte budget must be > 0, got %d", dir, maxBytes)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	type found struct {
		id   string
		size int64
		mod  int64
	}
	var have []found
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() {
			continue
		}
		if strings.HasPrefix(name, tempPrefix) {
			_ = os.Remove(filepath.Join(dir, name)) // an interrupted Save
			continue
		}
		id, ok := strings.CutSuffix(name, ext)
		if !ok || !wire.ValidULID(id) {
			continue // not ours: leave it alone
		}
		info, err := de.Info()
		if err != nil {
			continue // vanished meanwhile
		}
		have = append(have, found{id, info.Size(), info.ModTime().UnixNano()})
	}
	slices.SortFunc(have, func(a, b found) int {
		return cmp.Or(cmp.Compare(a.mod, b.mod), cmp.Compare(a.id, b.id))
	})
	s := &Store{dir: dir, maxBytes: maxBytes, files: make(map[string]entry, len(have))}
	for _, f := range have {
		s.clock++
		s.files[f.id] = entry{size: f.size, written: s.clock}
		s.total += f.size
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.evictLocked(""); err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return s, nil
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.dir }

// Bytes is the total size of the snapshots kept.
func (s *Store) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Save stores img (BGR, as a frame carries it) as eventID's snapshot, replacing any earlier
// one: downscaled to at most MaxWidth wide, redacted by redact (when not nil), with box (in
// img's pixels) drawn, encoded as JPEG. img is only read. Older snapshots are then evicted
// past the byte budget; the one just saved is always kept.
func (s *Store) Save(eventID string, img models.Image, box models.Box, redact Redact) error {
	_, err := s.SaveJPEG(eventID, img, box, redact)
	return err
}

// SetEncoding sets the size and quality of the snapshots saved from now on. Call it before
// the store is shared.
func (s *Store) SetEncoding(e Encoding) { s.enc = e }

// SaveJPEG is Save that also returns the JPEG it stored.
func (s *Store) SaveJPEG(eventID string, img models.Image, box models.Box, redact Redact) ([]byte, error) {
	if !wire.ValidULID(eventID) {
		return nil, fmt.Errorf("save snapshot %q: %w", eventID, ErrBadID)
	}
	jpeg, err := Encode(img, []Box{{Box: box}}, redact, s.enc)
	if err != nil {
		return nil, fmt.Errorf("save snapshot %s: %w", eventID, err)
	}
	return jpeg, s.Put(eventID, jpeg)
}

// Encoding is how the store's snapshots are encoded (SetEncoding).
func (s *Store) Encoding() Encoding { return s.enc }

// Put stores an encoded snapshot for eventID (a caller that encodes itself, with Encode and
// Encoding, to let go of the picture before the disk write).
func (s *Store) Put(eventID string, jpeg []byte) error {
	if !wire.ValidULID(eventID) {
		return fmt.Errorf("save snapshot %q: %w", eventID, ErrBadID)
	}
	if err := s.write(eventID, jpeg); err != nil {
		return fmt.Errorf("save snapshot %s: %w", eventID, err)
	}
	return nil
}

// write puts b in place as id's file, atomically, and evicts past the budget.
func (s *Store) write(id string, b []byte) error {
	f, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o640)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return werr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Rename(tmp, filepath.Join(s.dir, id+ext)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	s.total += int64(len(b)) - s.files[id].size
	s.clock++
	s.files[id] = entry{size: int64(len(b)), written: s.clock}
	return s.evictLocked(id)
}

// evictLocked deletes the least recently written snapshots, except keep, until the total
// fits the budget.
func (s *Store) evictLocked(keep string) error {
	if s.total <= s.maxBytes {
		return nil
	}
	ids := make([]string, 0, len(s.files))
	for id := range s.files {
		if id != keep {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(s.files[a].written, s.files[b].written) })
	var errs []error
	for _, id := range ids {
		if s.total <= s.maxBytes {
			break
		}
		if err := os.Remove(filepath.Join(s.dir, id+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("evict: %w", err))
			continue
		}
		s.total -= s.files[id].size
		delete(s.files, id)
	}
	return errors.Join(errs...)
}

// Path is the file of eventID's snapshot, or "" when the id is not a ULID. The file need not
// exist.
func (s *Store) Path(eventID string) string {
	if !wire.ValidULID(eventID) {
		return ""
	}
	return filepath.Join(s.dir, eventID+ext)
}

// Has reports whether eventID has a snapshot.
func (s *Store) Has(eventID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.files[eventID]
	return ok
}

// Open opens eventID's snapshot for reading. The error wraps ErrBadID for an id that is not a
// ULID and fs.ErrNotExist when there is no snapshot.
func (s *Store) Open(eventID string) (io.ReadCloser, error) {
	f, _, err := s.open(eventID)
	return f, err
}

func (s *Store) open(eventID string) (*os.File, fs.FileInfo, error) {
	p := s.Path(eventID)
	if p == "" {
		return nil, nil, fmt.Errorf("open snapshot %q: %w", eventID, ErrBadID)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, fmt.Errorf("open snapshot: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open snapshot: %w", err)
	}
	return f, info, nil
}

// ServeHTTP answers GET and HEAD of wire.SnapshotPrefix + "<event id>.jpg" with the JPEG
// (ranges and If-Modified-Since supported), 404 for any other path or an unknown id, and 405
// for other methods.
func (s *Store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, wire.SnapshotPrefix)
	id, isJPEG := strings.CutSuffix(name, ext)
	if !ok || !isJPEG || !wire.ValidULID(id) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, info, err := s.open(id)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
		} else {
			http.Error(w, "snapshot unavailable", http.StatusInternalServerError)
		}
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "image/jpeg")
	// A better frame may replace the snapshot: caches must check back.
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, id+ext, info.ModTime(), f)
}
