package catalog_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/catalog"
	vmodels "github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
)

// setup makes a key pair and a registry with the shared YOLOX-nano model added as
// yolox_nano@1.0.0, its manifest based on the one in models/.
func setup(t *testing.T) (*catalog.Registry, ed25519.PrivateKey, ed25519.PublicKey, string) {
	t.Helper()
	keyDir := t.TempDir()
	pub, err := catalog.GenerateKey(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := catalog.LoadPrivateKey(filepath.Join(keyDir, catalog.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	reg, err := catalog.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	base, err := vmodels.LoadManifest(filepath.Join("..", "..", "models", "yolox_nano_coco_416.json"))
	if err != nil {
		t.Fatal(err)
	}
	src := data.MustPath(t, "models/yolox_nano_coco_416.onnx")
	if _, err := reg.Add(src, catalog.AddSpec{Name: "yolox_nano", Version: "1.0.0", Family: "yolox", Base: &base}, priv); err != nil {
		t.Fatal(err)
	}
	return reg, priv, pub, dataDir
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	pub, err := catalog.GenerateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, catalog.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", st.Mode().Perm())
	}
	priv, err := catalog.LoadPrivateKey(filepath.Join(dir, catalog.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pub2, err := catalog.LoadPublicKey(filepath.Join(dir, catalog.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(pub2) || !pub.Equal(priv.Public()) {
		t.Fatal("the key files do not hold one pair")
	}
	info := catalog.Info(pub)
	if info.ID != wire.KeyID(pub) || len(info.ID) != 16 {
		t.Errorf("key id %q", info.ID)
	}
	if b, _ := base64.StdEncoding.DecodeString(info.Base64); !bytes.Equal(b, pub) {
		t.Errorf("base64 %q is not the public key", info.Base64)
	}
	if _, err := catalog.GenerateKey(dir); err == nil {
		t.Error("GenerateKey overwrote an existing key")
	}
	if _, err := catalog.ParsePrivateKey([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")); err == nil {
		t.Error("a public key parsed as a private one")
	}
}

func TestAddListServe(t *testing.T) {
	reg, _, pub, dataDir := setup(t)
	src := data.MustPath(t, "models/yolox_nano_coco_416.onnx")
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(orig)

	list, err := reg.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("list: %+v", list)
	}
	m := list[0]
	if m.SHA256 != hex.EncodeToString(sum[:]) || m.Size != int64(len(orig)) || m.File != "yolox_nano_coco_416.onnx" || m.Bad {
		t.Errorf("record %+v", m)
	}

	// A second registry on the same folder (as `vigil-fleet models add` beside `serve`) sees it,
	// and the version is immutable.
	reg2, err := catalog.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _, _ := setup(t)
	if _, err := reg2.Add(src, catalog.AddSpec{Name: "yolox_nano", Version: "1.0.0", Family: "yolox", Labels: []string{"person"}}, priv); !errors.Is(err, catalog.ErrExists) {
		t.Errorf("adding the same version again: %v, want ErrExists", err)
	}
	if _, err := reg2.Add(src, catalog.AddSpec{Name: "x/..", Version: "1", Family: "yolox", Labels: []string{"a"}}, priv); !errors.Is(err, catalog.ErrBadRequest) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := reg2.Add(src, catalog.AddSpec{Name: "v8", Version: "2", Family: "yolov8", Labels: []string{"person", "car"}, InputSize: 320}, priv); err != nil {
		t.Errorf("add with family defaults: %v", err)
	}

	mux := http.NewServeMux()
	api.RegisterModels(mux, reg, "http://fleet.example:8080", nil)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// Range: exactly bytes 100-199.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/models/yolox_nano/1.0.0/model.onnx", nil)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("range: status %d", resp.StatusCode)
	}
	if !bytes.Equal(body, orig[100:200]) {
		t.Errorf("range: got %d bytes, not bytes 100-199 of the artifact", len(body))
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 100-199/%d", len(orig)) {
		t.Errorf("Content-Range %q", cr)
	}

	// The whole file.
	resp, err = http.Get(srv.URL + "/models/yolox_nano/1.0.0/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, orig) {
		t.Errorf("full download: status %d, %d bytes", resp.StatusCode, len(body))
	}

	// The manifest verifies with the public key and names the artifact.
	resp, err = http.Get(srv.URL + "/models/yolox_nano/1.0.0/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sig, _ := base64.StdEncoding.DecodeString(m.Signature)
	if !ed25519.Verify(pub, mb, sig) {
		t.Fatal("manifest signature does not verify with the fleet's public key")
	}
	var man vmodels.Manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		t.Fatal(err)
	}
	if man.File != m.File || man.SHA256 != m.SHA256 || man.Name != "yolox_nano" || man.Version != "1.0.0" || len(man.Labels) != 80 || man.Input.Width != 416 {
		t.Errorf("manifest %+v", man)
	}
	if err := man.Validate(); err != nil {
		t.Error(err)
	}

	// The list API.
	var out []api.Model
	resp, err = http.Get(srv.URL + "/api/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(out) != 2 || out[1].Name != "yolox_nano" || out[1].SHA256 != m.SHA256 || out[1].Size != m.Size || out[1].Signature != m.Signature ||
		out[1].URL != "http://fleet.example:8080/models/yolox_nano/1.0.0/model.onnx" {
		t.Errorf("api list %+v", out)
	}

	// Unknown versions are 404.
	for _, p := range []string{"/models/yolox_nano/9/model.onnx", "/models/nope/1/manifest.json"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}

	ref := m.Ref("http://fleet.example:8080/")
	if ref.ManifestURL != "http://fleet.example:8080/models/yolox_nano/1.0.0/manifest.json" || ref.ManifestSig != m.Signature || ref.SHA256 != m.SHA256 {
		t.Errorf("ref %+v", ref)
	}
}

func TestCorruptArtifactIsMarkedBad(t *testing.T) {
	reg, _, _, dataDir := setup(t)
	if _, err := reg.Load("yolox_nano", "1.0.0"); err != nil {
		t.Fatalf("intact model: %v", err)
	}
	p := filepath.Join(dataDir, "models", "yolox_nano", "1.0.0", "yolox_nano_coco_416.onnx")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0x00, 0xff}, 1000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := reg.Load("yolox_nano", "1.0.0"); !errors.Is(err, catalog.ErrBadModel) {
		t.Fatalf("corrupt model: %v, want ErrBadModel", err)
	}
	// Marked bad for good, also for another process reading the folder.
	reg2, err := catalog.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := reg2.Get("yolox_nano", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Bad || m.BadReason == "" {
		t.Errorf("record %+v, want bad", m)
	}
	if _, err := reg2.Load("yolox_nano", "1.0.0"); !errors.Is(err, catalog.ErrBadModel) {
		t.Errorf("second load: %v", err)
	}
}

func TestTamperedManifestIsMarkedBad(t *testing.T) {
	reg, _, _, dataDir := setup(t)
	p := filepath.Join(dataDir, "models", "yolox_nano", "1.0.0", catalog.ManifestFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte(`"score": 0.35`), []byte(`"score": 0.05`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Load("yolox_nano", "1.0.0"); !errors.Is(err, catalog.ErrBadModel) {
		t.Fatalf("tampered manifest: %v, want ErrBadModel", err)
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"a@1", "yolox_nano@1.0.0", "@", "a@", "../x@1", "a@b@c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, version, err := catalog.ParseRef(s)
		if err != nil {
			return
		}
		if !catalog.ValidName(name) || !catalog.ValidName(version) || name+"@"+version != s {
			t.Fatalf("ParseRef(%q) = %q, %q", s, name, version)
		}
	})
}
