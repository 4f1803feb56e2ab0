package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestKeygenModelsRollout drives the OTA commands end to end: keygen, models add and list,
// serve with the data folder and key, then rollout create, get, pause and abort through the API.
func TestKeygenModelsRollout(t *testing.T) {
	dir := t.TempDir()
	keys, dataDir := filepath.Join(dir, "keys"), filepath.Join(dir, "data")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"keygen", "--out", keys}, &out, &out); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out.String())
	}
	pub, err := catalog.LoadPublicKey(filepath.Join(keys, catalog.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info := catalog.Info(pub); !strings.Contains(out.String(), info.ID) || !strings.Contains(out.String(), info.Base64) {
		t.Errorf("keygen output lacks the key id or base64:\n%s", out.String())
	}

	out.Reset()
	model := data.MustPath(t, "models/yolox_nano_coco_416.onnx")
	err = run(context.Background(), []string{"models", "add", model, "--name", "yolox_nano", "--version", "1.1.0", "--family", "yolox",
		"--manifest", filepath.Join("..", "..", "..", "models", "yolox_nano_coco_416.json"), "--key", filepath.Join(keys, catalog.PrivateKeyFile),
		"--data", dataDir}, &out, &out)
	if err != nil {
		t.Fatalf("models add: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"models", "list", "--data", dataDir}, &out, &out); err != nil {
		t.Fatalf("models list: %v", err)
	}
	if !regexp.MustCompile(`yolox_nano\s+1\.1\.0\s+yolox\s+\d+\s+c789161ed43c8269`).MatchString(out.String()) {
		t.Errorf("models list:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"models", "add", model, "--name", "x"}, &out, &out); exitCode(err) != 2 {
		t.Errorf("models add without flags: %v", err)
	}

	mqttAddr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	base := "http://" + httpAddr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testharness.SyncBuffer
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve", "--mqtt-listen", mqttAddr, "--http", httpAddr, "--client-id", "fleet-ota-test",
			"--log-level", "warn", "--data", dataDir, "--key", filepath.Join(keys, catalog.PrivateKeyFile)}, &logs, &logs)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/api/v1/models")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not up after 15s: %v; logs:\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	var cli testharness.SyncBuffer
	err = run(ctx, []string{"rollout", "create", "--api", base, "--model", "yolox_nano@1.1.0", "--devices", "edge-1,edge-2",
		"--canary", "1", "--waves", "100%", "--health-window", "1m", "--active-timeout", "1h"}, &cli, &cli)
	if err != nil {
		t.Fatalf("rollout create: %v\n%s", err, cli.String())
	}
	m := regexp.MustCompile(`created rollout (\S+):`).FindStringSubmatch(cli.String())
	if m == nil {
		t.Fatalf("rollout create output:\n%s", cli.String())
	}
	id := m[1]
	// No agent answers: the canary waits in "sent".
	for deadline := time.Now().Add(15 * time.Second); ; {
		var o testharness.SyncBuffer
		if err := run(ctx, []string{"rollout", "get", id, "--api", base}, &o, &o); err != nil {
			t.Fatalf("rollout get: %v", err)
		}
		if regexp.MustCompile(`edge-1\s+0\s+sent`).MatchString(o.String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("canary not sent:\n%s", o.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, step := range []struct{ cmd, want string }{{"pause", "state paused"}, {"abort", "state aborted"}} {
		var o testharness.SyncBuffer
		if err := run(ctx, []string{"rollout", step.cmd, "--api", base, id}, &o, &o); err != nil {
			t.Fatalf("rollout %s: %v", step.cmd, err)
		}
		if !strings.Contains(o.String(), step.want) {
			t.Errorf("rollout %s output:\n%s", step.cmd, o.String())
		}
	}
	var o testharness.SyncBuffer
	if err := run(ctx, []string{"rollout", "resume", id, "--api", base}, &o, &o); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("resume of an aborted rollout: %v", err)
	}
	o = testharness.SyncBuffer{}
	if err := run(ctx, []string{"rollout", "list", "--api", base}, &o, &o); err != nil || !strings.Contains(o.String(), id) {
		t.Errorf("rollout list: %v\n%s", err, o.String())
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return")
	}
}
