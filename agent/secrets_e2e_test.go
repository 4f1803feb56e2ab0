package agent_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/agent"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestCredentialsNeverInLogs runs the real agent with a broker password (in mqtt.url, as paho
// takes it) and a camera password, through a connect, a lost connection, failed reconnects
// and a stop, and looks for the passwords in everything it wrote and served; then the same for
// check-config with a broken URL that holds a password.
func TestCredentialsNeverInLogs(t *testing.T) {
	const mqttPass, camPass = "Mq77-s3cret-Pw", "Cam-s3cret-Pw"
	rtsp := startRTSP(t, "viewer", camPass, petsClip)
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{Extra: []string{
		"allow_anonymous false", "password_file " + testharness.PasswordFile(t, map[string]string{"edge": mqttPass}),
	}})
	camURL := strings.Replace(rtsp.URL("pedestrians_pets09_s2l1_vtest"), "rtsp://", "rtsp://viewer:"+camPass+"@", 1)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	dir := t.TempDir()
	cfg := writeYAML(t, fmt.Sprintf(`device_id: secret-edge
log_level: debug
http: {listen: %q}
mqtt: {url: "tcp://edge:%s@%s", keepalive: 1s}
outbox: {path: %q}
snapshots: {dir: ""}
model: {manifest: %q}
cameras:
  - {id: c1, url: %q, detect_fps: 2}
`, httpAddr, mqttPass, broker.Addr, filepath.Join(dir, "outbox.db"), filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"), camURL))

	var logs testharness.SyncBuffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EDGE_TEST_AGENT_CONFIG="+cfg, "EDGE_DATA_DIR="+data.Dir())
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	get := func(path string) string {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor(t, 60*time.Second, "the agent connected and streaming", func() bool {
		return strings.Contains(logs.String(), "connected to broker") && strings.Contains(get("/api/v1/status"), `"streaming"`)
	})
	served := get("/api/v1/status") + get("/metrics") + get("/healthz")
	broker.Stop() // the connection is lost, reconnects fail
	waitFor(t, 30*time.Second, "the loss and a failed reconnect in the log", func() bool {
		l := logs.String()
		return strings.Contains(l, "connection to broker lost") && strings.Contains(l, "connect to broker failed")
	})
	served += get("/api/v1/status")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop within 30s of SIGTERM")
	}
	out := logs.String()
	for what, text := range map[string]string{"logs": out, "status, metrics and healthz": served} {
		for _, secret := range []string{mqttPass, camPass} {
			if strings.Contains(text, secret) {
				i := strings.Index(text, secret)
				t.Errorf("a password is in the agent's %s: …%s…", what, text[max(0, i-200):min(len(text), i+50)])
			}
		}
	}
	if !strings.Contains(out, "edge:REDACTED@") {
		t.Errorf("the logs never name the broker (redacted); the test looked at nothing:\n%s", out)
	}

	// Configuration errors echo URLs: redacted too.
	bad := writeYAML(t, fmt.Sprintf("device_id: d\nmqtt: {url: \"tcp://edge:%s@127.0.0.1:notaport\"}\ncameras:\n  - {id: c1, url: \"rtsp://viewer:%s@cam:bad port/x\"}\n", mqttPass, camPass))
	var o, e strings.Builder
	if code := agent.Main([]string{"check-config", "--config", bad}, &o, &e); code != 1 || !strings.Contains(e.String(), "'mqtt.url'") {
		t.Fatalf("check-config: exit %d, stderr %q; want 1 naming 'mqtt.url'", code, e.String())
	}
	for _, secret := range []string{mqttPass, camPass} {
		if strings.Contains(o.String()+e.String(), secret) {
			t.Errorf("check-config echoes a password: %s", e.String())
		}
	}
}
