package auth_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/vigil-edge/vigil/fleet/auth"
	"github.com/vigil-edge/vigil/fleet/broker"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

const (
	fleetUser   = "vigil-fleet"
	fleetSecret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

// startBroker starts the embedded broker with the auth hook: devices edge-a and edge-b
// (passwords pw-<id>) and the fleet identity.
func startBroker(t *testing.T, tlsCfg *broker.TLS) (*broker.Broker, *auth.MQTT) {
	t.Helper()
	var file strings.Builder
	file.WriteString("devices:\n")
	for _, id := range []string{"edge-a", "edge-b"} {
		h, err := auth.HashPasswordIterations("pw-"+id, 1000)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&file, "  %s: %s\n", id, h)
	}
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, err := auth.LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.SetIterations(1000); err != nil { // the hashes' own: no re-hash, cheap unknown users
		t.Fatal(err)
	}
	if err := creds.SetFleet(fleetUser, fleetSecret); err != nil {
		t.Fatal(err)
	}
	hook := auth.NewMQTT(creds, slog.New(slog.DiscardHandler))
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", Auth: hook, TLS: tlsCfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, hook
}

type client struct {
	paho.Client
	lost chan error // the connection was lost (e.g. the broker dropped us for an ACL denial)
}

func dial(url, clientID, user, password string, tc *tls.Config) (*client, error) {
	c := &client{lost: make(chan error, 1)}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetUsername(user).SetPassword(password).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetTLSConfig(tc).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	c.Client = paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect %s: timeout", clientID)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

func mustDial(t *testing.T, url, clientID, user, password string, tc *tls.Config) *client {
	t.Helper()
	c, err := dial(url, clientID, user, password, tc)
	if err != nil {
		t.Fatalf("connect %s as %s: %v", clientID, user, err)
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

// collector records the topics a subscription receives.
type collector struct {
	mu     sync.Mutex
	topics []string
	got    chan string
}

func newCollector() *collector { return &collector{got: make(chan string, 100)} }

func (c *collector) handle(_ paho.Client, m paho.Message) {
	c.mu.Lock()
	c.topics = append(c.topics, m.Topic())
	c.mu.Unlock()
	c.got <- m.Topic()
}

// waitFor waits until topic arrives, and returns everything received until then.
func (c *collector) waitFor(t *testing.T, topic string) []string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case got := <-c.got:
			if got == topic {
				c.mu.Lock()
				defer c.mu.Unlock()
				return append([]string(nil), c.topics...)
			}
		case <-deadline:
			t.Fatalf("%s not delivered", topic)
		}
	}
}

func subscribe(t *testing.T, c paho.Client, filter string, h paho.MessageHandler) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, h)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func publish(c paho.Client, topic, payload string) error {
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("publish %s: timeout", topic)
	}
	return tok.Error()
}

func TestDeviceCannotPublishAsAnother(t *testing.T) {
	b, hook := startBroker(t, nil)
	fleet := mustDial(t, b.URL(), "fleet-sub", fleetUser, fleetSecret, nil)
	seen := newCollector()
	if code := subscribe(t, fleet, "vigil/v1/#", seen.handle); code != 1 {
		t.Fatalf("fleet's subscription to everything refused: code %#x", code)
	}

	// edge-a publishes under edge-b: the broker refuses (and, MQTT 3.1.1 having no negative
	// PUBACK, drops edge-a's connection).
	a := mustDial(t, b.URL(), "edge-a", "edge-a", "pw-edge-a", nil)
	_ = publish(a, "vigil/v1/edge-b/status", "forged")
	select {
	case <-a.lost:
	case <-time.After(15 * time.Second):
		t.Fatal("edge-a still connected after publishing as edge-b")
	}
	// Nor may it send itself a command. Then its own topics work; everything it sent before
	// was handled first, so the marker's arrival proves the forgeries were not delivered.
	a2 := mustDial(t, b.URL(), "edge-a", "edge-a", "pw-edge-a", nil)
	_ = publish(a2, "vigil/v1/edge-a/cmd/model_update", "self-command")
	<-a2.lost
	a3 := mustDial(t, b.URL(), "edge-a", "edge-a", "pw-edge-a", nil)
	if err := publish(a3, "vigil/v1/edge-a/status", "marker"); err != nil {
		t.Fatal(err)
	}
	got := seen.waitFor(t, "vigil/v1/edge-a/status")
	for _, topic := range got {
		if topic == "vigil/v1/edge-b/status" || strings.Contains(topic, "/cmd/") {
			t.Errorf("forged message delivered on %s", topic)
		}
	}
	if st := hook.Stats(); st.DeniedPublish < 2 {
		t.Errorf("denied publishes %d, want 2 or more", st.DeniedPublish)
	}
}

func TestDeviceCannotReadAnothersCommands(t *testing.T) {
	b, hook := startBroker(t, nil)
	fleet := mustDial(t, b.URL(), "fleet-pub", fleetUser, fleetSecret, nil)
	a := mustDial(t, b.URL(), "edge-a", "edge-a", "pw-edge-a", nil)
	seen := newCollector()
	for filter, want := range map[string]byte{
		"vigil/v1/edge-b/cmd/#": 0x80,
		"vigil/v1/+/cmd/#":      0x80,
		"#":                     0x80,
		"vigil/v1/edge-a/cmd/#": 1,
	} {
		if code := subscribe(t, a, filter, seen.handle); code != want {
			t.Errorf("edge-a subscribe %s: code %#x, want %#x", filter, code, want)
		}
	}
	// The fleet may send commands to any device, but not publish device topics.
	for _, topic := range []string{"vigil/v1/edge-b/cmd/model_update", "vigil/v1/edge-a/cmd/model_update"} {
		if err := publish(fleet, topic, "cmd"); err != nil {
			t.Fatalf("fleet publish %s: %v", topic, err)
		}
	}
	got := seen.waitFor(t, "vigil/v1/edge-a/cmd/model_update")
	for _, topic := range got {
		if strings.Contains(topic, "edge-b") {
			t.Errorf("edge-a received %s", topic)
		}
	}
	if st := hook.Stats(); st.DeniedRead < 3 {
		t.Errorf("denied reads %d, want 3 or more", st.DeniedRead)
	}

	// A positive control: edge-b does receive its command.
	bc := mustDial(t, b.URL(), "edge-b", "edge-b", "pw-edge-b", nil)
	seenB := newCollector()
	subscribe(t, bc, "vigil/v1/edge-b/cmd/#", seenB.handle)
	if err := publish(fleet, "vigil/v1/edge-b/cmd/model_rollback", "cmd"); err != nil {
		t.Fatal(err)
	}
	seenB.waitFor(t, "vigil/v1/edge-b/cmd/model_rollback")

	_ = publish(fleet, "vigil/v1/edge-b/status", "fleet posing as a device")
	select {
	case <-fleet.lost:
	case <-time.After(15 * time.Second):
		t.Error("the fleet identity published a device topic")
	}
}

func TestConnectRefused(t *testing.T) {
	b, hook := startBroker(t, nil)
	for _, tt := range []struct{ name, clientID, user, pw string }{
		{"wrong password", "edge-a", "edge-a", "pw-edge-b"},
		{"unknown user", "edge-c", "edge-c", "pw-edge-c"},
		{"anonymous", "edge-a", "", ""},
		{"client id differs from the device id", "edge-b", "edge-a", "pw-edge-a"},
		{"wrong fleet secret", "fleet", fleetUser, "guess"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dial(b.URL(), tt.clientID, tt.user, tt.pw, nil)
			if err == nil {
				c.Disconnect(50)
				t.Fatal("connected")
			}
			// Mochi answers MQTT 3.1.1 clients with CONNACK code 5 (not authorised).
			if !errors.Is(err, packets.ErrorRefusedNotAuthorised) && !errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
				t.Errorf("err %v, want a refused CONNACK", err)
			}
		})
	}
	st := hook.Stats()
	want := map[string]uint64{auth.RejectBadPassword: 3, auth.RejectAnonymous: 1, auth.RejectClientID: 1}
	for k, v := range want {
		if st.Rejected[k] != v {
			t.Errorf("rejected[%s] = %d, want %d (all: %v)", k, st.Rejected[k], v, st.Rejected)
		}
	}
	// A last will on another device's status would forge it when edge-a goes away.
	opts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID("edge-a").SetUsername("edge-a").SetPassword("pw-edge-a").
		SetProtocolVersion(4).SetAutoReconnect(false).SetWill("vigil/v1/edge-b/status", "offline", 1, true)
	if tok := paho.NewClient(opts).Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		t.Error("connected with a will on edge-b's status")
	}
	if st := hook.Stats(); st.Rejected[auth.RejectWillTopic] != 1 {
		t.Errorf("rejected %v, want one will_topic", st.Rejected)
	}
	mustDial(t, b.URL(), "edge-a", "edge-a", "pw-edge-a", nil)
	if st := hook.Stats(); st.Accepted != 1 {
		t.Errorf("accepted %d, want 1", st.Accepted)
	}
}

func clientTLS(t *testing.T, serverCA, certFile, keyFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(serverCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc
}

func TestTLSClientCertificates(t *testing.T) {
	pki := testharness.NewPKI(t, "vigil-test-ca")
	other := testharness.NewPKI(t, "someone-else-ca")
	srvCert, srvKey := pki.Issue(t, "broker", true)
	b, hook := startBroker(t, &broker.TLS{Addr: "127.0.0.1:0", CertFile: srvCert, KeyFile: srvKey, ClientCAFile: pki.CAFile})
	url := "ssl://" + b.TLSAddr()

	fleet := mustDial(t, b.URL(), "fleet-sub", fleetUser, fleetSecret, nil)
	seen := newCollector()
	subscribe(t, fleet, "vigil/v1/#", seen.handle)

	// A certificate from the right CA: the CN is the device id, no password needed.
	cert, key := pki.Issue(t, "edge-tls", false)
	dev := mustDial(t, url, "edge-tls", "", "", clientTLS(t, pki.CAFile, cert, key))
	if err := publish(dev, "vigil/v1/edge-tls/status", "online"); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "vigil/v1/edge-tls/status")
	if code := subscribe(t, dev, "vigil/v1/edge-a/cmd/#", func(paho.Client, paho.Message) {}); code != 0x80 {
		t.Errorf("certificate device subscribed to another's commands: code %#x", code)
	}

	// A certificate from another CA: the handshake fails.
	ocert, okey := other.Issue(t, "edge-tls", false)
	if c, err := dial(url, "edge-tls", "", "", clientTLS(t, pki.CAFile, ocert, okey)); err == nil {
		c.Disconnect(50)
		t.Error("a certificate from another CA connected")
	}
	// No certificate at all: the handshake fails too.
	if c, err := dial(url, "edge-tls", "", "", clientTLS(t, pki.CAFile, "", "")); err == nil {
		c.Disconnect(50)
		t.Error("connected without a client certificate")
	}
	// The right CA, but a user name other than the CN, or a client id other than the CN.
	if c, err := dial(url, "edge-tls", "edge-a", "pw-edge-a", clientTLS(t, pki.CAFile, cert, key)); err == nil {
		c.Disconnect(50)
		t.Error("a certificate for edge-tls connected as edge-a")
	}
	if c, err := dial(url, "edge-a", "", "", clientTLS(t, pki.CAFile, cert, key)); err == nil {
		c.Disconnect(50)
		t.Error("a certificate for edge-tls connected with client id edge-a")
	}
	st := hook.Stats()
	if st.Rejected[auth.RejectCertUser] != 1 || st.Rejected[auth.RejectClientID] != 1 {
		t.Errorf("rejected %v", st.Rejected)
	}
}
