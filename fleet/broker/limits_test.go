package broker

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

func startBroker(t *testing.T, lim Limits) *Broker {
	t.Helper()
	b, err := New(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// closedWithin reports how long the broker took to close c (reading until EOF or error), or
// false when it kept it open for longer than limit.
func closedWithin(c net.Conn, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return limit, false
	}
	return time.Since(start), true
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Three connections each sending a CONNECT header that claims 256 MiB are refused at once and
// the broker's heap stays small; a client that sends nothing is dropped after the deadline.
func TestConnectFloodBounded(t *testing.T) {
	b := startBroker(t, Limits{ConnectTimeout: 500 * time.Millisecond})
	runtime.GC()
	before := heapAlloc()
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// CONNECT, remaining length 268435455 (256 MiB - 1), then nothing.
		if _, err := c.Write([]byte{0x10, 0xff, 0xff, 0xff, 0x7f}); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond) // the broker has read the headers
	grown := int64(heapAlloc()) - int64(before)
	if grown > 32<<20 {
		t.Errorf("the broker's heap grew by %d MiB for three CONNECT headers", grown>>20)
	}
	for i, c := range conns {
		if d, ok := closedWithin(c, 2*time.Second); !ok || d > 400*time.Millisecond {
			t.Errorf("connection %d claiming 256 MiB: closed %v after %v; want at once", i, ok, d)
		}
	}
	slow, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if d, ok := closedWithin(slow, 5*time.Second); !ok || d < 400*time.Millisecond {
		t.Errorf("a client that sends nothing: closed %v after %v; want after the 500 ms deadline", ok, d)
	}
	st := b.Stats()
	if st.Refused[RefuseConnectSize] != 3 || st.Refused[RefuseTimeout] != 1 {
		t.Errorf("refusals %v, want 3 %s and 1 %s", st.Refused, RefuseConnectSize, RefuseTimeout)
	}
}

// The connection cap and the per-address connect rate refuse further connections at once;
// real clients below them connect, and a message of several hundred kB (an event snapshot)
// gets through while one over the maximum packet size does not.
func TestConnectionCapRateAndPacketSize(t *testing.T) {
	b := startBroker(t, Limits{MaxConnections: 2, ConnectRate: -1, MaxPacketSize: 1 << 20})
	c1, c2 := connect(t, b.URL(), "c1"), connect(t, b.URL(), "c2")
	third, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if d, ok := closedWithin(third, 2*time.Second); !ok || d > 400*time.Millisecond {
		t.Errorf("a connection over the cap: closed %v after %v", ok, d)
	}
	got := make(chan int, 2)
	if tok := c2.Subscribe("big", 1, func(_ mqtt.Client, m mqtt.Message) { got <- len(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	snapshot := bytes.Repeat([]byte{'j'}, 600<<10)
	if tok := c1.Publish("big", 1, false, snapshot); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish 600 kB: %v", tok.Error())
	}
	select {
	case n := <-got:
		if n != len(snapshot) {
			t.Errorf("delivered %d bytes", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a 600 kB message was not delivered")
	}
	c1.Publish("big", 1, false, bytes.Repeat([]byte{'j'}, 2<<20)).WaitTimeout(2 * time.Second)
	select {
	case n := <-got:
		t.Errorf("a %d-byte message over the 1 MiB maximum was delivered", n)
	case <-time.After(500 * time.Millisecond):
	}
	if st := b.Stats(); st.Refused[RefuseMaxConnections] != 1 {
		t.Errorf("refusals %v", st.Refused)
	}

	r := startBroker(t, Limits{ConnectRate: 0.01, ConnectBurst: 3, RateLoopback: true})
	for i := range 5 {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(r.URL()).SetClientID("r").SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(2 * time.Second))
		tok := c.Connect()
		ok := tok.WaitTimeout(5*time.Second) && tok.Error() == nil
		if ok != (i < 3) {
			t.Errorf("connect %d from one address: connected %v, want %v (burst 3)", i+1, ok, i < 3)
		}
		c.Disconnect(10)
	}
	if st := r.Stats(); st.Refused[RefuseRate] != 2 {
		t.Errorf("rate refusals %v, want 2", st.Refused)
	}
}

// The default maximum packet holds the largest real message, a picture (event snapshot), with
// its topic and MQTT header.
func TestDefaultMaxPacketHoldsPictures(t *testing.T) {
	if DefaultMaxPacketSize < wire.MaxPictureBytes+64<<10 {
		t.Errorf("DefaultMaxPacketSize %d is too small for a %d-byte picture", DefaultMaxPacketSize, wire.MaxPictureBytes)
	}
}

// slowAuth accepts every client after a pause, as a 600k-iteration PBKDF2 does on a busy host.
type slowAuth struct{ mochi.HookBase }

func (slowAuth) ID() string { return "slow-auth" }
func (slowAuth) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (slowAuth) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool {
	time.Sleep(time.Second)
	return true
}
func (slowAuth) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// Close returns while a client is still authenticating: its connection is closed too, not
// left to read forever once authenticated.
func TestCloseDuringSlowAuth(t *testing.T) {
	b, err := New(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Auth: &slowAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("slow").SetProtocolVersion(4).SetAutoReconnect(false))
	tok := c.Connect()
	defer c.Disconnect(10)
	time.Sleep(300 * time.Millisecond) // the broker is in the auth hook
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while a client authenticates")
	}
	tok.WaitTimeout(time.Second)
}
