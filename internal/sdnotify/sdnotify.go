// Package sdnotify speaks systemd's service notification protocol (sd_notify(3)): one datagram
// of KEY=VALUE lines to the unix socket named by $NOTIFY_SOCKET ('@' prefix: the abstract
// namespace). Outside systemd (no $NOTIFY_SOCKET) every call does nothing.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// States the agent sends.
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
	socketEnv = "NOTIFY_SOCKET"
)

// Notify sends state to the service manager. It returns false, nil when $NOTIFY_SOCKET is
// unset (not run by systemd with Type=notify), true when the datagram was sent.
func Notify(state string) (bool, error) {
	addr := os.Getenv(socketEnv)
	if addr == "" {
		return false, nil
	}
	if addr[0] != '/' && addr[0] != '@' {
		return false, fmt.Errorf("sd_notify: %s=%q is neither a path nor an abstract socket", socketEnv, addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return true, nil
}

// WatchdogInterval is how often the service must send WATCHDOG=1: $WATCHDOG_USEC, when set and
// meant for this process ($WATCHDOG_PID absent or ours). ok is false without a watchdog.
func WatchdogInterval() (time.Duration, bool, error) {
	us := os.Getenv("WATCHDOG_USEC")
	if us == "" {
		return 0, false, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil || n <= 0 {
		return 0, false, errors.New("sd_notify: WATCHDOG_USEC=" + us + " is not a positive number of microseconds")
	}
	return time.Duration(n) * time.Microsecond, true, nil
}
