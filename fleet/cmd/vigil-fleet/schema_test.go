package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// A database migrated by a newer vigil-fleet stops serve at start with an error naming --store
// and the two versions, and serve writes nothing to it.
func TestServeSchemaNewerThanBinary(t *testing.T) {
	ctx := context.Background()
	pg := testharness.StartPostgres(t)
	pool, err := postgres.Connect(ctx, pg.DSN) // migrated to this binary's version
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	future := postgres.SchemaVersion() + 1
	if _, err := conn.Exec(ctx, "INSERT INTO vigil_schema_migrations (version, name) VALUES ($1, 'from_the_future')", future); err != nil {
		t.Fatal(err)
	}
	var logs testharness.SyncBuffer
	err = run(ctx, []string{"serve", "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)),
		"--http", fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), "--data", t.TempDir(), "--store", pg.DSN,
		"--log-level", "warn"}, &logs, &logs)
	want := fmt.Sprintf("schema version %d, this binary knows up to %d", future, future-1)
	if !errors.Is(err, postgres.ErrSchemaTooNew) || !strings.Contains(err.Error(), "--store") || !strings.Contains(err.Error(), want) {
		t.Fatalf("serve on a newer schema: %v; want ErrSchemaTooNew naming --store and saying %q", err, want)
	}
	t.Logf("%v", err)
	var versions, rollouts, requests int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM vigil_schema_migrations), (SELECT count(*) FROM vigil_rollouts),
		(SELECT count(*) FROM vigil_rollout_requests)`).Scan(&versions, &rollouts, &requests); err != nil {
		t.Fatal(err)
	}
	if versions != future || rollouts != 0 || requests != 0 {
		t.Errorf("after the refused start: %d schema versions (want %d), %d rollouts, %d rollout calls", versions, future, rollouts, requests)
	}
}
