// Package harness starts the real servers that Vigil's tests run against, on 127.0.0.1 and
// free ports: a Mosquitto broker today. Each start registers its own cleanup with the test.
package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Mosquitto is a real Mosquitto broker run by a test.
type Mosquitto struct {
	Port int
	Addr string // 127.0.0.1:port
	URL  string // tcp://127.0.0.1:port
	Dir  string // its config and log folder

	t   testing.TB
	cmd *exec.Cmd
	cfg string
}

// MosquittoOptions tweaks the broker's configuration.
type MosquittoOptions struct {
	// Extra lines appended to mosquitto.conf (e.g. password_file, TLS settings).
	Extra []string
	// Port to listen on; 0 picks a free one.
	Port int
}

// StartMosquitto starts mosquitto on 127.0.0.1 and a free port, with set_tcp_nodelay on and
// anonymous access unless opts.Extra says otherwise, and stops it when the test ends.
// It fails the test with a clear message when mosquitto is not installed (run `make deps`).
func StartMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatalf("mosquitto is not installed: run `make deps` (apt-get install mosquitto)")
	}
	dir := t.TempDir()
	// As root, mosquitto drops to the mosquitto user: let it read and write its folder.
	_ = os.Chmod(dir, 0o777)
	port := opts.Port
	if port == 0 {
		port = FreePort(t)
	}
	m := &Mosquitto{Port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, t: t, cfg: filepath.Join(dir, "mosquitto.conf")}
	m.URL = "tcp://" + m.Addr
	lines := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"set_tcp_nodelay true",
		"persistence false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
	}
	if !hasPrefix(opts.Extra, "allow_anonymous") {
		lines = append(lines, "allow_anonymous true")
	}
	lines = append(lines, opts.Extra...)
	if err := os.WriteFile(m.cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatalf("write mosquitto.conf: %v", err)
	}
	m.start(bin)
	t.Cleanup(m.Stop)
	return m
}

func hasPrefix(lines []string, p string) bool {
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), p) {
			return true
		}
	}
	return false
}

func (m *Mosquitto) start(bin string) {
	m.t.Helper()
	logf, err := os.OpenFile(filepath.Join(m.Dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		m.t.Fatalf("mosquitto log: %v", err)
	}
	cmd := exec.Command(bin, "-c", m.cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		m.t.Fatalf("start mosquitto: %v", err)
	}
	logf.Close()
	m.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", m.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(m.Dir, "mosquitto.log"))
	m.Stop()
	m.t.Fatalf("mosquitto did not listen on %s within 10s; its log:\n%s", m.Addr, log)
}

// Stop kills the broker and waits for it. Safe to call twice.
func (m *Mosquitto) Stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}

// Restart starts the broker again on the same port after Stop.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	bin, _ := exec.LookPath("mosquitto")
	if bin == "" {
		bin = "/usr/sbin/mosquitto"
	}
	m.start(bin)
}
