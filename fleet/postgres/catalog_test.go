package postgres_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/postgres"
	vmodels "github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// Two fleet instances, each with its own data folder, share the catalogue in PostgreSQL: a
// model added through one is listed, served byte for byte and loaded for a rollout by the
// other, which fills its cache from the database. A damaged cache is fetched again, not
// blamed on the model; damaged bytes in the database mark the version bad for every instance.
func TestCatalogSharedByInstances(t *testing.T) {
	pg := testharness.StartPostgres(t)
	open := func() *catalog.Registry {
		c, err := postgres.OpenCatalog(ctx, pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		r, err := catalog.OpenShared(t.TempDir(), c)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := open(), open()
	keyDir := t.TempDir()
	if _, err := catalog.GenerateKey(keyDir); err != nil {
		t.Fatal(err)
	}
	key, err := catalog.LoadPrivateKey(filepath.Join(keyDir, catalog.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	base, err := vmodels.LoadManifest(filepath.Join("..", "..", "models", "yolox_nano_coco_416.json"))
	if err != nil {
		t.Fatal(err)
	}
	src := data.MustPath(t, "models/yolox_nano_coco_416.onnx") // 3.6 MB: four chunks
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	spec := catalog.AddSpec{Name: "yolox_nano", Version: "2.0.0", Family: "yolox", Base: &base}
	added, err := a.Add(src, spec, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(src, spec, key); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("adding the version again through b: %v, want ErrExists", err)
	}

	ms, err := b.List()
	if err != nil || len(ms) != 1 || ms[0].SHA256 != added.SHA256 || ms[0].Signature != added.Signature {
		t.Fatalf("b lists %+v, %v; want a's version", ms, err)
	}
	f, m, err := b.OpenArtifact("yolox_nano", "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, want) || m.Size != int64(len(want)) {
		t.Fatalf("b serves %d bytes (%v), want the %d of the file", len(got), err, len(want))
	}
	manA, _, err := a.Manifest("yolox_nano", "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	manB, _, err := b.Manifest("yolox_nano", "2.0.0")
	if err != nil || !bytes.Equal(manA, manB) {
		t.Fatalf("b's manifest differs from a's (%v)", err)
	}
	if _, err := b.Load("yolox_nano", "2.0.0"); err != nil {
		t.Fatalf("b loads the version for a rollout: %v", err)
	}
	if _, err := b.Get("nosuch", "1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}

	// b's cached copy is damaged (same size): Load fetches it again and passes.
	cachedPath := func(r *catalog.Registry) string {
		f, _, err := r.OpenArtifact("yolox_nano", "2.0.0")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		return f.Name()
	}
	p := cachedPath(b)
	damaged := bytes.Clone(want)
	damaged[1000] ^= 0xff
	if err := os.WriteFile(p, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load("yolox_nano", "2.0.0"); err != nil {
		t.Fatalf("Load with a damaged cache: %v, want it fetched again", err)
	}
	if again, _ := os.ReadFile(p); !bytes.Equal(again, want) {
		t.Fatal("the damaged cache was not replaced")
	}

	// A data folder holding other bytes for the version (same size, left by an earlier use of
	// the folder): the files are checked once before they are served, and fetched again.
	staleDir := t.TempDir()
	vdir := filepath.Join(staleDir, "models", "yolox_nano", "2.0.0")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vdir, added.File), damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vdir, catalog.ManifestFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	pc, err := postgres.OpenCatalog(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	stale, err := catalog.OpenShared(staleDir, pc)
	if err != nil {
		t.Fatal(err)
	}
	if f, _, err := stale.OpenArtifact("yolox_nano", "2.0.0"); err != nil {
		t.Fatal(err)
	} else {
		got, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(got, want) {
			t.Fatal("stale files in the data folder were served")
		}
	}
	if man, _, err := stale.Manifest("yolox_nano", "2.0.0"); err != nil || !bytes.Equal(man, manA) {
		t.Fatalf("stale manifest served: %v", err)
	}

	// The bytes in the database are damaged: a fresh instance refuses them, and the version is
	// marked bad for every instance.
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE vigil_model_chunks SET data = overlay(data placing '\\xff'::bytea from 10) WHERE n = 1"); err != nil {
		t.Fatal(err)
	}
	c := open()
	if _, _, err := c.OpenArtifact("yolox_nano", "2.0.0"); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("serving damaged bytes from the database: %v, want a sha256 mismatch", err)
	}
	if _, err := c.Load("yolox_nano", "2.0.0"); !errors.Is(err, catalog.ErrBadModel) {
		t.Fatalf("Load of damaged bytes: %v, want ErrBadModel", err)
	}
	if _, err := a.Load("yolox_nano", "2.0.0"); !errors.Is(err, catalog.ErrBadModel) {
		t.Fatalf("a after c marked it bad: %v, want ErrBadModel", err)
	}
	sum := sha256.Sum256(want)
	if added.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("record sha256 %s", added.SHA256)
	}
}
