package agent

import (
	"context"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/internal/sdnotify"
)

// notifySystemd tells systemd (Type=notify) that the agent runs, and, when the unit has
// WatchdogSec, keeps sending WATCHDOG=1 at half the interval for as long as the agent answers
// its own status (which takes the agent's lock and reads the outbox): a wedged agent stops
// the pings and systemd restarts it. The returned stop sends STOPPING=1 and waits for the
// pinger. Outside systemd it does nothing.
func (a *Agent) notifySystemd(ctx context.Context) (stop func()) {
	if sent, err := sdnotify.Notify(sdnotify.Ready); err != nil {
		a.log.Warn("systemd notification", "err", err)
	} else if sent {
		a.log.Info("told systemd the agent is ready")
	}
	interval, ok, err := sdnotify.WatchdogInterval()
	if err != nil {
		a.log.Warn("systemd watchdog", "err", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(max(interval/2, 10*time.Millisecond))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					_ = a.Status() // blocks, and so withholds the ping, while the agent is wedged
					if _, err := sdnotify.Notify(sdnotify.Watchdog); err != nil {
						a.log.Warn("systemd watchdog ping", "err", err)
					}
				}
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		_, _ = sdnotify.Notify(sdnotify.Stopping)
	}
}
