package postgres_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/fleet/registry/registrytest"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// The registry suite of the bbolt file, on PostgreSQL, with two connection pools as two fleet
// instances.
func TestRegistryStoreConformance(t *testing.T) {
	pg := testharness.StartPostgres(t)
	n := 0
	registrytest.Run(t, func(t *testing.T) (func() registry.Store, bool) {
		n++
		dsn := pg.CreateDB(fmt.Sprintf("reg%d", n))
		return func() registry.Store {
			s, err := postgres.OpenRegistryStore(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, true
	})
}

// While the database refuses the registry's writes (UPDATE revoked from the fleet's role), a
// shared registry keeps what it received and says why in Flush's error; once writes work
// again one flush saves all of it: nothing counted twice, no seq missing.
func TestRegistryKeepsDeltasWhileTheDatabaseRefuses(t *testing.T) {
	pg := testharness.StartPostgres(t)
	admin, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if s, err := postgres.OpenRegistryStore(ctx, pg.DSN); err != nil { // migrate as the superuser
		t.Fatal(err)
	} else {
		_ = s.Close()
	}
	for _, q := range []string{"CREATE ROLE fleet LOGIN", "GRANT SELECT, INSERT, UPDATE ON vigil_devices TO fleet",
		"GRANT SELECT ON vigil_schema_migrations TO fleet", "GRANT USAGE, CREATE ON SCHEMA public TO fleet"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	st, err := postgres.OpenRegistryStore(ctx, strings.Replace(pg.DSN, "postgres://postgres@", "postgres://fleet@", 1))
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.OpenStore(st, registry.Options{Shared: true, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	send := func(from, to uint64) {
		for seq := from; seq <= to; seq++ {
			payload, _ := json.Marshal(wire.Detections{
				Header: wire.Header{Schema: wire.SchemaDetections, DeviceID: "edge-1", Seq: seq,
					MsgID: wire.MessageID("edge-1", "e1", seq), CapturedAt: time.Now().UnixMilli()},
				Camera: "cam1", FrameSeq: seq, FrameWidth: 640, FrameHeight: 480,
				Model: wire.Model{Name: "m", Version: "1"}, Objects: []wire.Object{{Label: "person", Score: 0.9}}})
			if err := r.HandleMessage(wire.Topic("edge-1", wire.KindDetections, "cam1"), payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(1, 10)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "REVOKE UPDATE ON vigil_devices FROM fleet"); err != nil {
		t.Fatal(err)
	}
	send(11, 20)
	if err := r.Flush(); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("flush with UPDATE revoked: %v, want the database's refusal", err)
	}
	send(21, 30)
	if _, err := admin.Exec(ctx, "GRANT UPDATE ON vigil_devices TO fleet"); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	var data []byte
	if err := admin.QueryRow(ctx, "SELECT data FROM vigil_devices WHERE id = 'edge-1'").Scan(&data); err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Messages map[string]uint64
		Seq      struct{ Watermark, Highest uint64 }
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Messages["detections"] != 30 || rec.Seq.Watermark != 30 || rec.Seq.Highest != 30 {
		t.Fatalf("saved: %s; want 30 detections, watermark 30", data)
	}
	d, _ := r.Device("edge-1")
	if d.Messages["detections"] != 30 || d.Missing != 0 || d.Watermark != 30 {
		t.Fatalf("view: %+v %v", d.Stream, d.Messages)
	}
}
