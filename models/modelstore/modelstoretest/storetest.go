// Package modelstoretest serves signed models over real HTTP for the tests of the model store and
// the OTA handler: an httptest server on loopback with Range support (http.ServeContent), a
// fleet signing key, and faults to inject (a dropped connection, a held download, HTTP errors).
package modelstoretest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
)

// Key returns a fixed test signing key made from seed (any byte).
func Key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// YOLOX returns the bytes of the shared YOLOX-nano model.
func YOLOX(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(data.MustPath(t, "models/yolox_nano_coco_416.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Manifest returns the shipped YOLOX-nano manifest (models/yolox_nano_coco_416.json).
func Manifest(t testing.TB) models.Manifest {
	t.Helper()
	_, file, _, _ := runtime.Caller(0) // <project>/models/store/storetest/storetest.go
	m, err := models.LoadManifest(filepath.Join(filepath.Dir(file), "..", "..", "yolox_nano_coco_416.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// SHA256 is the hex sha256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fault is what the server does to the next model request.
type fault struct {
	after   int64         // send this many bytes, then drop the connection
	hold    chan struct{} // when set: after `after` bytes, wait for it (or the client) first
	status  int           // when set: answer with this status instead
	remains int           // how many more requests get it
}

// Server serves models and signed manifests under /m/<name>/<version>/.
type Server struct {
	*httptest.Server
	Key ed25519.PrivateKey // signs manifests

	t      testing.TB
	mu     sync.Mutex
	files  map[string][]byte
	ranges []string // Range header of each model request, in order ("" for none)
	faults []fault
}

// NewServer starts a server on loopback that signs with key; the test's cleanup closes it.
func NewServer(t testing.TB, key ed25519.PrivateKey) *Server {
	s := &Server{Key: key, t: t, files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Publish serves model as name/version with a manifest made from the shipped YOLOX manifest
// (name, version and sha256 set; edit changes more when not nil), signed with the server's
// key, and returns the reference a command would carry.
func (s *Server) Publish(name, version string, model []byte, edit func(*models.Manifest)) wire.ModelRef {
	s.t.Helper()
	m := Manifest(s.t)
	m.Name, m.Version, m.SHA256 = name, version, SHA256(model)
	if edit != nil {
		edit(&m)
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		s.t.Fatal(err)
	}
	return s.PublishRaw(name, version, model, mb, s.Key)
}

// PublishRaw serves model and manifest bytes as they are, the manifest signed with key.
func (s *Server) PublishRaw(name, version string, model, manifest []byte, key ed25519.PrivateKey) wire.ModelRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := "/m/" + name + "/" + version + "/"
	s.files[base+"model.onnx"] = model
	s.files[base+"manifest.json"] = manifest
	return wire.ModelRef{Name: name, Version: version, SHA256: SHA256(model), Size: int64(len(model)),
		URL: s.URL + base + "model.onnx", ManifestURL: s.URL + base + "manifest.json",
		ManifestSig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, manifest))}
}

// DropNext makes the next model request send n bytes of the body and drop the connection.
func (s *Server) DropNext(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{after: n, remains: 1})
}

// HoldNext makes the next model request send n bytes and then wait until release is called
// (or the client goes away) before dropping the connection.
func (s *Server) HoldNext(n int64) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.faults = append(s.faults, fault{after: n, hold: ch, remains: 1})
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// FailNext makes the next count model requests answer status.
func (s *Server) FailNext(count, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{status: status, remains: count})
}

// Ranges returns the Range header of every model request so far ("" for none).
func (s *Server) Ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b, ok := s.files[r.URL.Path]
	var f fault
	model := strings.HasSuffix(r.URL.Path, "/model.onnx")
	if model {
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		if len(s.faults) > 0 {
			f = s.faults[0]
			if s.faults[0].remains--; s.faults[0].remains <= 0 {
				s.faults = s.faults[1:]
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if f.status != 0 {
		http.Error(w, http.StatusText(f.status), f.status)
		return
	}
	if f.after > 0 {
		w = &cutWriter{ResponseWriter: w, left: f.after, hold: f.hold, done: r.Context().Done()}
	}
	http.ServeContent(w, r, "model.onnx", time.Time{}, bytes.NewReader(b))
}

// cutWriter passes left bytes of the body, then (after hold, when set) aborts the response,
// which drops the connection mid-body.
type cutWriter struct {
	http.ResponseWriter
	left int64
	hold chan struct{}
	done <-chan struct{}
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	n, _ := c.ResponseWriter.Write(p[:c.left])
	c.left = 0
	http.NewResponseController(c.ResponseWriter).Flush()
	if c.hold != nil {
		select {
		case <-c.hold:
		case <-c.done:
		}
	}
	_ = n
	panic(http.ErrAbortHandler)
}

// WaitPartial waits until the partial download in the store at dir holds n bytes, and fails
// the test when none does within 30 s.
func WaitPartial(t testing.TB, dir string, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		parts, _ := filepath.Glob(filepath.Join(dir, ".staging", "*", "model.onnx.partial"))
		for _, p := range parts {
			if st, err := os.Stat(p); err == nil && st.Size() == n {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no partial download of %d bytes appeared in %s", n, dir)
}
