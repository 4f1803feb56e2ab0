package sdnotify_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/internal/sdnotify"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyPathAndAbstractSockets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	if sent, err := sdnotify.Notify(sdnotify.Ready); !sent || err != nil {
		t.Fatalf("Notify: %v %v", sent, err)
	}
	if got := read(t, c); got != "READY=1" {
		t.Errorf("got %q", got)
	}

	abstract := "@vigil-sdnotify-test-" + strconv.Itoa(os.Getpid())
	a := listen(t, abstract)
	t.Setenv("NOTIFY_SOCKET", abstract)
	if sent, err := sdnotify.Notify(sdnotify.Watchdog); !sent || err != nil {
		t.Fatalf("Notify abstract: %v %v", sent, err)
	}
	if got := read(t, a); got != "WATCHDOG=1" {
		t.Errorf("got %q", got)
	}
}

func TestNotifyOutsideSystemdAndErrors(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := sdnotify.Notify(sdnotify.Ready); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v %v", sent, err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if _, err := sdnotify.Notify(sdnotify.Ready); err == nil {
		t.Error("a missing socket was not an error")
	}
	t.Setenv("NOTIFY_SOCKET", "relative")
	if _, err := sdnotify.Notify(sdnotify.Ready); err == nil {
		t.Error("a relative socket name was accepted")
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	if _, ok, err := sdnotify.WatchdogInterval(); ok || err != nil {
		t.Errorf("unset: %v %v", ok, err)
	}
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d, ok, err := sdnotify.WatchdogInterval(); !ok || err != nil || d != 30*time.Second {
		t.Errorf("30 s: %v %v %v", d, ok, err)
	}
	t.Setenv("WATCHDOG_PID", "1")
	if _, ok, _ := sdnotify.WatchdogInterval(); ok {
		t.Error("a watchdog meant for another process was taken")
	}
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("WATCHDOG_USEC", "-5")
	if _, _, err := sdnotify.WatchdogInterval(); err == nil {
		t.Error("a negative interval was accepted")
	}
}
