package publish_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/publish"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

const device = "chaos-edge"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type rig struct {
	t   *testing.T
	ob  *outbox.Outbox
	m   *metrics.Metrics
	pub *publish.Publisher
}

func openOutbox(t *testing.T, path string, opts outbox.Options) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ob.Check(); err != nil {
			t.Errorf("outbox check: %v", err)
		}
		ob.Close()
	})
	return ob
}

func startPublisher(t *testing.T, ob *outbox.Outbox, m *metrics.Metrics, cfg publish.Config) *publish.Publisher {
	t.Helper()
	cfg.DeviceID, cfg.Epoch = device, ob.Epoch()
	pub, err := publish.New(cfg, ob, m, quiet())
	if err != nil {
		t.Fatal(err)
	}
	pub.Start()
	t.Cleanup(func() { pub.Close(time.Second) })
	return pub
}

func detections(cam string, n int) frame.Detections {
	return frame.Detections{Camera: cam, FrameSeq: uint64(n), CapturedAt: time.Now(), Width: 640, Height: 480,
		Model:   frame.ModelInfo{Name: "m", Version: "1"},
		Objects: []models.Detection{{Label: "person", Box: models.Box{X1: 10, Y1: 20, X2: 50, Y2: 120}, Score: 0.9}}}
}

// producer appends a message every period until stopped, recording the seqs reported stored.
type producer struct {
	mu     sync.Mutex
	stored []uint64
	at     []time.Time
	stop   chan struct{}
	done   chan struct{}
}

func produce(t *testing.T, ob *outbox.Outbox, period time.Duration, msg func(i int) frame.Outgoing) *producer {
	p := &producer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tk := time.NewTicker(period)
		defer tk.Stop()
		for i := 1; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tk.C:
			}
			seq, err := ob.Append(context.Background(), msg(i))
			if err != nil {
				t.Errorf("append: %v", err)
				return
			}
			p.mu.Lock()
			p.stored = append(p.stored, seq)
			p.at = append(p.at, time.Now())
			p.mu.Unlock()
		}
	}()
	return p
}

// storedBetween counts the messages stored in [from, to].
func (p *producer) storedBetween(from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.at {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// times maps each stored seq to when it was stored.
func (p *producer) times() map[uint64]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[uint64]time.Time, len(p.stored))
	for i, s := range p.stored {
		m[s] = p.at[i]
	}
	return m
}

func (p *producer) Stop() []uint64 {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.stored...)
}

// received is one message as a consumer saw it.
type received struct {
	Seq        uint64 `json:"seq"`
	Replayed   bool   `json:"replayed"`
	CapturedAt int64  `json:"captured_at"`
	Kind       string `json:"-"`
}

// consumer is a subscriber with a persistent session, as the central platform runs one.
type consumer struct {
	mu   sync.Mutex
	msgs []received
	c    mqtt.Client
}

func subscribe(t *testing.T, url, id string) *consumer {
	t.Helper()
	cs := &consumer{}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(wire.Root+"/+/+/#", 1, func(_ mqtt.Client, m mqtt.Message) {
				_, kind, _, err := wire.ParseTopic(m.Topic())
				if err != nil || kind == wire.KindStatus {
					return
				}
				var r received
				if err := json.Unmarshal(m.Payload(), &r); err != nil {
					t.Errorf("bad payload %s: %v", m.Payload(), err)
					return
				}
				r.Kind = kind
				cs.mu.Lock()
				cs.msgs = append(cs.msgs, r)
				cs.mu.Unlock()
			})
		})
	cs.c = mqtt.NewClient(opts)
	if tok := cs.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("consumer connect: %v", tok.Error())
	}
	time.Sleep(200 * time.Millisecond) // the subscription is in place
	t.Cleanup(func() { cs.c.Disconnect(100) })
	return cs
}

func (c *consumer) get() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.msgs...)
}

// has reports whether every seq in want has been received.
func (c *consumer) has(want []uint64) bool {
	got := map[uint64]bool{}
	for _, r := range c.get() {
		got[r.Seq] = true
	}
	for _, s := range want {
		if !got[s] {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkExactlyOnceInLaneOrder: after dropping repeats by seq, the consumer holds exactly the
// stored seqs; live messages arrived in seq order, and so did replayed ones.
func checkExactlyOnceInLaneOrder(t *testing.T, got []received, stored []uint64) (dups, replayed int) {
	t.Helper()
	first := map[uint64]bool{}
	var lastLive, lastReplay uint64
	for _, r := range got {
		if first[r.Seq] {
			dups++
			continue
		}
		first[r.Seq] = true
		if r.Replayed {
			replayed++
			if r.Seq < lastReplay {
				t.Errorf("replayed seq %d after %d", r.Seq, lastReplay)
			}
			lastReplay = r.Seq
		} else {
			if r.Seq < lastLive {
				t.Errorf("live seq %d after %d", r.Seq, lastLive)
			}
			lastLive = r.Seq
		}
	}
	want := map[uint64]bool{}
	for _, s := range stored {
		want[s] = true
		if !first[s] {
			t.Errorf("seq %d was stored but never received", s)
		}
	}
	for s := range first {
		if !want[s] {
			t.Errorf("seq %d received but never stored", s)
		}
	}
	return dups, replayed
}

func TestBrokerDownFor30sLosesNothing(t *testing.T) {
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{Persist: true})
	cons := subscribe(t, broker.URL, "platform-1")
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{})
	m := metrics.NewUnregistered()
	pub := startPublisher(t, ob, m, publish.Config{URL: broker.URL, ReplayRate: 200})
	prod := produce(t, ob, 50*time.Millisecond, func(i int) frame.Outgoing {
		return wire.Device{ID: device, Epoch: ob.Epoch()}.Outgoing(wire.NewDetections(detections("gate", i)))
	})

	time.Sleep(3 * time.Second)
	broker.Terminate()
	outageStart := time.Now()
	time.Sleep(30 * time.Second)
	outageEnd := time.Now()
	broker.Restart()
	time.Sleep(3 * time.Second)
	stored := prod.Stop()
	duringOutage := prod.storedBetween(outageStart.Add(time.Second), outageEnd)
	if duringOutage < 50 {
		t.Fatalf("only %d messages stored during the 30 s outage", duringOutage)
	}
	defer func() {
		if t.Failed() {
			got := map[uint64]bool{}
			for _, r := range cons.get() {
				got[r.Seq] = true
			}
			var missing []uint64
			for _, s := range stored {
				if !got[s] {
					missing = append(missing, s)
				}
			}
			es, _ := ob.Read(0, 0, 10)
			t.Logf("missing %d seqs (first %v); outbox holds %d, first %v; publisher error %q",
				len(missing), missing[:min(len(missing), 10)], ob.Stats().Messages, es, pub.LastError())
		}
	}()
	waitFor(t, 60*time.Second, "every stored message at the consumer", func() bool { return cons.has(stored) })
	dups, replayed := checkExactlyOnceInLaneOrder(t, cons.get(), stored)
	// The messages stored while the broker was down came back marked as replayed, with the
	// time they were captured, not the time they were sent.
	if replayed < duringOutage {
		t.Errorf("%d messages marked replayed, want at least the %d stored during the outage", replayed, duringOutage)
	}
	storedAt := prod.times()
	for _, r := range cons.get() {
		at, ok := storedAt[r.Seq]
		// Captured just before it was stored (an append can take a while on a loaded disk).
		if d := at.Sub(time.UnixMilli(r.CapturedAt)); r.Replayed && ok && (d < -time.Millisecond || d > 10*time.Second) {
			t.Errorf("replayed seq %d: captured_at %v, but it was captured at %v", r.Seq, time.UnixMilli(r.CapturedAt), at)
			break
		}
	}
	waitFor(t, 10*time.Second, "an empty outbox", func() bool { return ob.Stats().Messages == 0 })
	if v := testutil.ToFloat64(m.Replayed.WithLabelValues("detections")); v < float64(duringOutage) {
		t.Errorf("vigil_mqtt_replayed_total = %v", v)
	}
	t.Logf("stored %d, received %d (%d repeats), %d replayed", len(stored), len(cons.get()), dups, replayed)
}

func TestLongOutageDropsOnlyLowPriorityAndStaysFlat(t *testing.T) {
	port := testharness.FreeFixedPort(t) // nothing listens here yet: the broker is "down"
	url := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	m := metrics.NewUnregistered()
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{MaxBytes: 100_000, HardMaxBytes: 150_000,
		OnDrop: func(c frame.Class, reason string) { m.OutboxDropped.WithLabelValues(c.String(), reason).Inc() }})
	startPublisher(t, ob, m, publish.Config{URL: url})

	alert := func(i int) frame.Outgoing {
		return frame.Outgoing{Class: frame.ClassAlert, Topic: wire.Topic(device, "alerts", "gate"), CapturedAt: time.Now(),
			Build: func(seq uint64) ([]byte, error) {
				return json.Marshal(map[string]any{"schema": "test.alert/1", "device_id": device, "seq": seq, "n": i})
			}}
	}
	var alerts []uint64
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var h1 uint64
	ctx := context.Background()
	const rounds = 1200
	for i := 1; i <= rounds; i++ {
		if _, err := ob.Append(ctx, wire.Device{ID: device, Epoch: ob.Epoch()}.Outgoing(wire.NewDetections(detections("gate", i)))); err != nil {
			t.Fatal(err)
		}
		if i%30 == 0 {
			s, err := ob.Append(ctx, alert(i))
			if err != nil {
				t.Fatal(err)
			}
			alerts = append(alerts, s)
		}
		if i == 400 {
			h1 = heap()
		}
	}
	h2 := heap()
	st := ob.Stats()
	if st.Bytes > 100_000 {
		t.Fatalf("outbox holds %d bytes, over its cap", st.Bytes)
	}
	if st.ByClass[frame.ClassAlert] != int64(len(alerts)) {
		t.Fatalf("alerts kept %d of %d", st.ByClass[frame.ClassAlert], len(alerts))
	}
	dropped := testutil.ToFloat64(m.OutboxDropped.WithLabelValues("detections", "full"))
	if int64(dropped)+st.ByClass[frame.ClassDetections] != rounds {
		t.Fatalf("detections: %v dropped + %d kept != %d appended", dropped, st.ByClass[frame.ClassDetections], rounds)
	}
	if testutil.ToFloat64(m.OutboxDropped.WithLabelValues("alert", "hard_cap")) != 0 {
		t.Fatal("alerts were dropped")
	}
	if h2 > h1+8<<20 {
		t.Errorf("heap grew from %d to %d bytes over 800 messages at the cap", h1, h2)
	}
	if v := testutil.ToFloat64(m.MQTTAttempts); v < 2 {
		t.Errorf("connect attempts = %v, want retries while the broker is down", v)
	}

	// The broker comes up: every alert arrives.
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{Port: port})
	cons := subscribe(t, broker.URL, "platform-2")
	waitFor(t, 30*time.Second, "every alert", func() bool { return cons.has(alerts) })
	waitFor(t, 30*time.Second, "an empty outbox", func() bool { return ob.Stats().Messages == 0 })
}

func TestRefusedCredentialsAndTLSMismatchLoseNothing(t *testing.T) {
	pki := testharness.NewPKI(t, "vigil-test-ca")
	other := testharness.NewPKI(t, "some-other-ca")
	serverCert, serverKey := pki.Issue(t, "broker", true)
	clientCert, clientKey := pki.Issue(t, device, false)
	passwd := testharness.PasswordFile(t, map[string]string{device: "right", "platform": "p"})
	port := testharness.FreePort(t)
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{Port: port, NoListener: true, Extra: []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"cafile " + pki.CAFile, "certfile " + serverCert, "keyfile " + serverKey,
		"require_certificate true",
		"allow_anonymous false", "password_file " + passwd,
	}})
	url := fmt.Sprintf("ssl://127.0.0.1:%d", port)

	for _, tc := range []struct {
		name    string
		cfg     publish.Config
		wantErr string
	}{
		{"wrong password", publish.Config{Username: device, Password: "wrong",
			TLS: publish.TLS{CAFile: pki.CAFile, CertFile: clientCert, KeyFile: clientKey}}, "not authori"},
		{"unknown CA", publish.Config{Username: device, Password: "right",
			TLS: publish.TLS{CAFile: other.CAFile, CertFile: clientCert, KeyFile: clientKey}}, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{})
			m := metrics.NewUnregistered()
			for i := 0; i < 20; i++ {
				if _, err := ob.Append(context.Background(), wire.Device{ID: device, Epoch: ob.Epoch()}.Outgoing(wire.NewDetections(detections("gate", i)))); err != nil {
					t.Fatal(err)
				}
			}
			cfg := tc.cfg
			cfg.URL = url
			pub := startPublisher(t, ob, m, cfg)
			defer func() {
				if t.Failed() {
					t.Logf("last error %q, attempts %v; broker log:\n%s", pub.LastError(), testutil.ToFloat64(m.MQTTAttempts), broker.Log())
				}
			}()
			waitFor(t, 20*time.Second, "a clear error and a retry", func() bool {
				return strings.Contains(strings.ToLower(pub.LastError()), tc.wantErr) && testutil.ToFloat64(m.MQTTAttempts) >= 2
			})
			if strings.Contains(pub.LastError(), "wrong") {
				t.Errorf("the password leaked into the error: %q", pub.LastError())
			}
			if n := ob.Stats().Messages; n != 20 {
				t.Fatalf("outbox holds %d messages, want all 20", n)
			}
			pub.Close(time.Second)

			// Fixed configuration, same outbox: everything arrives.
			cons := subscribeTLS(t, url, pki)
			good := publish.Config{URL: url, Username: device, Password: "right",
				TLS: publish.TLS{CAFile: pki.CAFile, CertFile: clientCert, KeyFile: clientKey}}
			startPublisher(t, ob, metrics.NewUnregistered(), good)
			es, _ := ob.Read(0, 0, 100)
			var want []uint64
			for _, e := range es {
				want = append(want, e.Seq)
			}
			waitFor(t, 20*time.Second, "the 20 messages", func() bool { return cons.has(want) })
		})
	}
}

func subscribeTLS(t *testing.T, url string, pki *testharness.PKI) *consumer {
	t.Helper()
	cert, key := pki.Issue(t, fmt.Sprintf("platform-%d", time.Now().UnixNano()), false)
	tc, err := publish.TLSConfig(publish.TLS{CAFile: pki.CAFile, CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	cs := &consumer{}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("platform-%d", time.Now().UnixNano())).
		SetUsername("platform").SetPassword("p").SetTLSConfig(tc)
	cs.c = mqtt.NewClient(opts)
	if tok := cs.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("consumer connect: %v", tok.Error())
	}
	tok := cs.c.Subscribe(wire.Root+"/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		var r received
		if json.Unmarshal(m.Payload(), &r) == nil && !bytes.Contains([]byte(m.Topic()), []byte("/status")) {
			cs.mu.Lock()
			cs.msgs = append(cs.msgs, r)
			cs.mu.Unlock()
		}
	})
	tok.WaitTimeout(5 * time.Second)
	t.Cleanup(func() { cs.c.Disconnect(100) })
	return cs
}
