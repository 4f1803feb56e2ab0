package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/internal/testpub"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// serveEnv, when set, makes the test binary run `vigil-fleet` with the JSON list of arguments
// it holds (see TestMain): a real vigil-fleet process the test can start several of.
const serveEnv = "VIGIL_TEST_FLEET_ARGS"

func TestMain(m *testing.M) {
	if v := os.Getenv(serveEnv); v != "" {
		var args []string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := run(ctx, args, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "vigil-fleet:", err)
			os.Exit(exitCode(err))
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type fleetProc struct {
	base string
	cmd  *exec.Cmd
	log  *testharness.SyncBuffer
}

// startFleet runs `vigil-fleet args…` as a process with env added, and waits until its API
// answers.
func startFleet(t *testing.T, name, httpAddr string, env []string, args ...string) *fleetProc {
	t.Helper()
	b, _ := json.Marshal(append(args, "--http", httpAddr))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...), serveEnv+"="+string(b))
	p := &fleetProc{base: "http://" + httpAddr, cmd: cmd, log: &testharness.SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/api/v1/devices")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start: %v\n%s", name, err, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // subscribed by now (the API starts after the subscriber)
	return p
}

func (p *fleetProc) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestTwoInstancesShareRegistryAndModels runs two vigil-fleet serve processes on one Mosquitto
// (shared subscription) and one PostgreSQL (password authentication, the password in
// $PGPASSWORD). A device's messages are split between them and one seq is never sent: both
// instances' APIs show the device with every message, the one missing seq, and its cameras.
// A model added to instance A's catalogue (vigil-fleet models add --store --data A) is listed
// and downloaded byte for byte from instance B, whose cache was empty.
func TestTwoInstancesShareRegistryAndModels(t *testing.T) {
	mosq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	const pw = "sc4le-out-pw"
	pg := testharness.StartPostgresWith(t, testharness.PostgresOptions{Password: pw})
	dsn := strings.Replace(pg.DSN, ":"+pw+"@", "@", 1) // the password comes from $PGPASSWORD
	env := []string{"PGPASSWORD=" + pw}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"keygen", "--out", keys}, &out, &out); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out.String())
	}
	key := filepath.Join(keys, catalog.PrivateKeyFile)
	serve := func(name string) *fleetProc {
		return startFleet(t, name, fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), env, "serve",
			"--broker", mosq.URL, "--share-group", "vigil", "--client-id", name, "--store", dsn,
			"--data", filepath.Join(dir, name), "--key", key, "--log-level", "warn")
	}
	a, b := serve("fleet-a"), serve("fleet-b")

	pub := testpub.Connect(t, mosq.URL, "edge-42")
	pub.Online()
	const last = 30
	for seq := uint64(1); seq <= last; seq++ {
		if seq == 7 {
			continue // never sent: a gap neither instance can see alone
		}
		pub.DetectionsSeq(fmt.Sprintf("cam%d", 1+seq%2), seq, false, "person", "car")
	}

	want := func(d api.Device) bool {
		return d.Online && d.Messages["detections"] == last-1 && d.HighestSeq == last && d.Watermark == 6 && d.Missing == 1 &&
			len(d.Cameras) == 2 && d.Cameras[0].Detections+d.Cameras[1].Detections == last-1
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, in := range []*fleetProc{a, b} {
		var d api.Device
		for {
			code, body := in.get(t, "/api/v1/devices/edge-42")
			d = api.Device{}
			if code == http.StatusOK {
				if err := json.Unmarshal(body, &d); err != nil {
					t.Fatal(err)
				}
			}
			if want(d) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !want(d) {
			t.Fatalf("%s: edge-42 is %+v; want online, %d detections over 2 cameras, highest seq %d, seq 7 missing", in.base, d, last-1, last)
		}
	}
	// Each instance handled a share of the detections itself.
	var handled [2]float64
	for i, in := range []*fleetProc{a, b} {
		_, body := in.get(t, "/metrics")
		handled[i], _ = testharness.MetricValue(string(body), "vigil_fleet_messages_received_total", `kind="detections"`)
	}
	if handled[0] == 0 || handled[1] == 0 || handled[0]+handled[1] != last-1 {
		t.Errorf("detections handled by a: %v, by b: %v; want both a share, %d in all", handled[0], handled[1], last-1)
	}

	// A model added to A's catalogue is served by B.
	model := data.MustPath(t, "models/yolox_nano_coco_416.onnx")
	out.Reset()
	t.Setenv("PGPASSWORD", pw)
	err := run(context.Background(), []string{"models", "add", model, "--name", "yolox_nano", "--version", "3.1.0", "--family", "yolox",
		"--manifest", filepath.Join("..", "..", "..", "models", "yolox_nano_coco_416.json"), "--key", key,
		"--store", dsn, "--data", filepath.Join(dir, "fleet-a")}, &out, &out)
	if err != nil {
		t.Fatalf("models add: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"models", "list", "--store", dsn}, &out, &out); err != nil ||
		!strings.Contains(out.String(), "yolox_nano") || !strings.Contains(out.String(), "3.1.0") {
		t.Fatalf("models list --store: %v\n%s", err, out.String())
	}
	code, body := b.get(t, "/api/v1/models")
	var ms []api.Model
	if err := json.Unmarshal(body, &ms); code != http.StatusOK || err != nil || len(ms) != 1 || ms[0].Version != "3.1.0" {
		t.Fatalf("B's model list: %d %s (%v)", code, body, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fleet-b", "models", "yolox_nano", "3.1.0")); err == nil {
		t.Fatal("B has the model's files before any download: the test would prove nothing")
	}
	code, got := b.get(t, "/models/yolox_nano/3.1.0/model.onnx")
	wantBytes, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(got)
	if code != http.StatusOK || !bytes.Equal(got, wantBytes) || hex.EncodeToString(sum[:]) != ms[0].SHA256 {
		t.Fatalf("B serves %d: %d bytes, want the %d of the model with sha256 %s", code, len(got), len(wantBytes), ms[0].SHA256)
	}
	codeA, manA := a.get(t, "/models/yolox_nano/3.1.0/manifest.json")
	codeB, manB := b.get(t, "/models/yolox_nano/3.1.0/manifest.json")
	if codeA != http.StatusOK || codeB != http.StatusOK || !bytes.Equal(manA, manB) {
		t.Fatalf("manifests: A %d, B %d, equal %v", codeA, codeB, bytes.Equal(manA, manB))
	}
}

// An unreachable database and a wrong password stop serve at start with an error naming
// --store, and no password shows.
func TestServeBadStore(t *testing.T) {
	const pw = "r1ght-pw"
	pg := testharness.StartPostgresWith(t, testharness.PostgresOptions{Password: pw})
	for _, c := range []struct{ dsn, want string }{
		{"postgres://vigil:s3cret-pw@127.0.0.1:1/vigil?connect_timeout=2", "cannot reach the database"},
		{strings.Replace(pg.DSN, ":"+pw+"@", ":s3cret-pw@", 1), "refused the login"},
	} {
		var logs testharness.SyncBuffer
		err := run(context.Background(), []string{"serve", "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)),
			"--http", fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), "--store", c.dsn, "--log-level", "warn"}, &logs, &logs)
		if err == nil || !strings.Contains(err.Error(), "--store") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve --store %s: %v; want an error naming --store saying %q", c.dsn, err, c.want)
			continue
		}
		if strings.Contains(err.Error()+logs.String(), "s3cret-pw") || strings.Contains(err.Error()+logs.String(), pw) {
			t.Errorf("a password shows: %v\n%s", err, logs.String())
		}
		t.Logf("%v", err)
	}
}
