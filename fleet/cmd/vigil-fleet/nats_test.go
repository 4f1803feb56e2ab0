package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// serve --share-group against nats-server's MQTT (no shared subscriptions: $share/… is a plain
// topic there) stops at start with an error that names --share-group and points at --ingest;
// the same cluster works with --ingest nats://….
func TestServeShareGroupOnNATSFailsAndIngestWorks(t *testing.T) {
	node := testharness.StartNATS(t, 1).Nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	logs := &testharness.SyncBuffer{}
	start := time.Now()
	err := run(ctx, []string{"serve", "--http", fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)),
		"--broker", node.MQTTURL, "--share-group", "vigil"}, logs, logs)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("serve --share-group on nats-server: %v after %v (want an error at start); logs:\n%s", err, time.Since(start), logs)
	}
	for _, want := range []string{"--share-group vigil", "does not support MQTT shared subscriptions", "--ingest nats://"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)

	if err := run(context.Background(), []string{"serve", "--ingest", node.URL}, logs, logs); err == nil ||
		!strings.Contains(err.Error(), "--ingest needs --broker") {
		t.Errorf("serve --ingest without --broker: %v", err)
	}
	if err := run(context.Background(), []string{"serve", "--ingest", "http://x", "--broker", node.MQTTURL}, logs, logs); err == nil ||
		!strings.Contains(err.Error(), "--ingest") {
		t.Errorf("serve --ingest http://x: %v", err)
	}

	health, _ := serveHealthy(t, "--broker", node.MQTTURL, "--ingest", node.URL)
	if !regexp.MustCompile(`"connected":\s*true`).MatchString(health) {
		t.Errorf("serve --ingest: /healthz %s", health)
	}
}
