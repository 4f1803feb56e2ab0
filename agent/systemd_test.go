package agent_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// The real agent (this test binary as vigil-agent run), started as systemd would start a
// Type=notify unit with WatchdogSec: READY=1 once it runs, WATCHDOG=1 pings at half the
// interval, STOPPING=1 on SIGTERM; all on a real unixgram socket.
func TestAgentNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	cfg := writeYAML(t, fmt.Sprintf(`device_id: notify-test
http: {listen: "127.0.0.1:0"}
mqtt: {url: %q}
outbox: {path: %q}
snapshots: {dir: ""}
model: {manifest: %q}
cameras:
  - {id: c1, url: %q, loop: true, detect_fps: 2}
`, mq.URL, filepath.Join(dir, "outbox.db"), filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"), data.MustPath(t, petsClip)))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EDGE_TEST_AGENT_CONFIG="+cfg, "EDGE_DATA_DIR="+data.Dir(),
		"NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000") // 0.4 s: pings every 0.2 s
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	next := func(within time.Duration) string {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(within))
		buf := make([]byte, 1024)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification within %s: %v\nagent output:\n%s", within, err, logs.String())
		}
		return string(buf[:n])
	}
	if got := next(60 * time.Second); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	start := time.Now()
	for range 3 {
		if got := next(5 * time.Second); got != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", got)
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("3 watchdog pings took %s with a 0.4 s watchdog", took)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		got := next(30 * time.Second)
		if got == "STOPPING=1" {
			break
		}
		if got != "WATCHDOG=1" {
			t.Fatalf("notification %q while stopping", got)
		}
	}
	if err := <-exited; err != nil {
		t.Errorf("agent exit: %v\n%s", err, logs.String())
	}
}
