package rtsp

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/server"
)

// freezer is a TCP proxy on loopback that can stop forwarding without closing anything: a
// camera that dies (power, cable) leaves its connection open and silent.
type freezer struct {
	ln     net.Listener
	frozen atomic.Bool
	wg     sync.WaitGroup
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			conns = append(conns, c, u)
			for _, pair := range [][2]net.Conn{{c, u}, {u, c}} {
				f.wg.Add(1)
				go func() {
					defer f.wg.Done()
					buf := make([]byte, 32<<10)
					for {
						n, err := pair[0].Read(buf)
						if err != nil {
							pair[1].Close()
							return
						}
						if f.frozen.Load() {
							continue // swallowed: the peer hears nothing, the connection stays up
						}
						if _, err := pair[1].Write(buf[:n]); err != nil {
							return
						}
					}
				}()
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

// TestSilentCameraIsNoticedQuickly: over TCP through a proxy that goes silent (no close), the
// session ends with ErrSilent about Silence after the last packet, not after ReadTimeout
// (10 s by default), so the camera is retried (and probed) at once.
func TestSilentCameraIsNoticedQuickly(t *testing.T) {
	s := startServer(t, server.Config{Files: []string{data.MustPath(t, campus)}})
	f := newFreezer(t, s.Addr())
	url := "rtsp://" + f.ln.Addr().String() + "/mot15_tud_campus"
	src := newSource(t, Config{URL: url, Transport: TransportTCP, ReadTimeout: 10 * time.Second, Silence: time.Second})
	var got atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(frame.Packet) { got.Add(1) }) }()
	deadline := time.Now().Add(20 * time.Second)
	for got.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d packets before the freeze", got.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.frozen.Store(true)
	frozen := time.Now()
	select {
	case err := <-done:
		took := time.Since(frozen)
		if !errors.Is(err, ErrSilent) {
			t.Fatalf("Run: %v, want ErrSilent", err)
		}
		t.Logf("silent camera noticed %s after the freeze (silence %s)", took.Round(time.Millisecond), time.Second)
		if took > 4*time.Second {
			t.Fatalf("noticed after %s, want about 1 s", took)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("the silent session still runs 6 s after the camera went silent")
	}
}
