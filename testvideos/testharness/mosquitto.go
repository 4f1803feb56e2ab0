// Package testharness is for tests only (_test.go files; TestOnlyInTests in this package fails
// the build's tests when any other file imports it). It starts the real servers that Vigil's
// tests run against, on 127.0.0.1 and free ports (Mosquitto, PostgreSQL, Chromium), makes a
// throw-away PKI, validates messages against the JSON Schemas in docs/schemas, and lints
// Prometheus expositions with promtool. Each start registers its own cleanup with the test.
package testharness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// FreePorts returns n distinct free TCP ports on 127.0.0.1: all are held open until the
// last is found, so that the kernel cannot hand the same one out twice (FreePort called n
// times can).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
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
	// Persist keeps sessions and queued messages on disk across restarts (saved on a clean
	// stop, and every second).
	Persist bool
	// NoListener leaves the listener to Extra (e.g. a TLS listener on Port).
	NoListener bool
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
		"set_tcp_nodelay true",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
	}
	if !opts.NoListener {
		lines = append([]string{fmt.Sprintf("listener %d 127.0.0.1", port)}, lines...)
	}
	if opts.Persist {
		lines = append(lines, "persistence true", "persistence_location "+dir+"/", "autosave_interval 1")
	} else {
		lines = append(lines, "persistence false")
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

// Freeze stops the broker's process (SIGSTOP) without closing its connections: clients stay
// connected and get no answer, as with a hung broker or a dead link. Thaw resumes it.
func (m *Mosquitto) Freeze() {
	if m.cmd != nil {
		_ = m.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Thaw resumes a frozen broker (SIGCONT).
func (m *Mosquitto) Thaw() {
	if m.cmd != nil {
		_ = m.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Terminate stops the broker with SIGTERM (it saves its persistent state) and waits.
func (m *Mosquitto) Terminate() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
	}
	m.cmd = nil
}

// Log returns what the broker logged so far.
func (m *Mosquitto) Log() string {
	b, _ := os.ReadFile(filepath.Join(m.Dir, "mosquitto.log"))
	return string(b)
}

// PublicDir makes a temporary folder that other users can read (Mosquitto, started as root,
// reads password files and certificates as the mosquitto user), removed when the test ends.
func PublicDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vigil-test-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// FreeFixedPort returns a free TCP port outside the kernel's ephemeral range, for a server
// that must come up on a port that clients are already dialling: a client retrying an
// ephemeral port with nothing listening can connect to itself and take the port.
func FreeFixedPort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 200; i++ {
		port := 20000 + int(time.Now().UnixNano()%10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port in 20000-29999")
	return 0
}

// PasswordFile writes a mosquitto password file with the given user:password pairs (through
// mosquitto_passwd) and returns its path, readable by the broker.
func PasswordFile(t testing.TB, users map[string]string) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Fatalf("mosquitto_passwd is not installed: run `make deps` (apt-get install mosquitto)")
	}
	p := filepath.Join(PublicDir(t), "passwd")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for u, pw := range users {
		if out, err := exec.Command(bin, "-b", p, u, pw).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	_ = os.Chmod(p, 0o644)
	return p
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
