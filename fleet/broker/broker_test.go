package broker

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/testvideos/testharness"
)

func connect(t *testing.T, url, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func TestPublishSubscribeAndClose(t *testing.T) {
	var logs testharness.SyncBuffer
	b, err := New(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if strings.HasSuffix(b.Addr(), ":0") || b.URL() != "tcp://"+b.Addr() {
		t.Fatalf("addr %q url %q", b.Addr(), b.URL())
	}

	// A retained QoS 1 message reaches a later subscriber: allow-all auth, retained store.
	pub := connect(t, b.URL(), "pub")
	if tok := pub.Publish("vigil/v1/d1/status", 1, true, "hello"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	got := make(chan string, 1)
	sub := connect(t, b.URL(), "sub")
	if tok := sub.Subscribe("vigil/v1/+/status", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case p := <-got:
		if p != "hello" {
			t.Errorf("payload %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("retained message not delivered")
	}

	addr := b.Addr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Close", addr)
	}
	// mochi's info chatter (connects, start, stop) is below warn: not logged.
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.Contains(line, `msg="mqtt broker listening"`) && (strings.Contains(line, "level=INFO") || strings.Contains(line, "level=DEBUG")) {
			t.Errorf("mochi logged below warn: %s", line)
		}
	}
}

func TestStartFailsOnBusyAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, _ := New(Config{Addr: l.Addr().String(), Logger: slog.New(slog.DiscardHandler)})
	err = b.Start()
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("Start on a busy address: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close after a failed Start: %v", err)
	}
}

func TestCloseBeforeStart(t *testing.T) {
	b, _ := New(Config{})
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	if b.Addr() != DefaultAddr {
		t.Errorf("default addr %q", b.Addr())
	}
}
