package subscriber

import (
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

func TestNATSSubjectAndBack(t *testing.T) {
	tests := []struct{ topic, subject, err string }{
		{"vigil/v1/dev-1/detections/cam_1", "vigil.v1.dev-1.detections.cam_1", ""},
		{"vigil/v1/+/events/+/+", "vigil.v1.*.events.*.*", ""},
		{"vigil/v1/#", "vigil.v1.>", ""},
		{"a//b", "a./.b", ""},
		{"/lead", "/.lead", ""},
		{"trail/", "trail./", ""},
		{"vigil/v1/dev.1/status", "", "cannot be a NATS subject token"},
		{"a b/c", "", "cannot be a NATS subject token"},
		{"a/*/b", "", "cannot be a NATS subject token"},
		{"a/#/b", "", "cannot be a NATS subject token"},
		{"", "", "empty topic"},
	}
	for _, tt := range tests {
		got, err := NATSSubject(tt.topic)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NATSSubject(%q) = %q, %v; want error %q", tt.topic, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.subject {
			t.Errorf("NATSSubject(%q) = %q, %v; want %q", tt.topic, got, err, tt.subject)
		}
		if strings.ContainsAny(tt.topic, "+#") {
			continue
		}
		if back, err := MQTTTopic(got); err != nil || back != tt.topic {
			t.Errorf("MQTTTopic(%q) = %q, %v; want %q", got, back, err, tt.topic)
		}
	}
	for _, bad := range []string{"", "a..b", "a.*", "a.>", "a.b/c", "a. b"} {
		if got, err := MQTTTopic(bad); err == nil {
			t.Errorf("MQTTTopic(%q) = %q, want an error", bad, got)
		}
	}
}

// FuzzMQTTTopic: subjects come from the NATS server. MQTTTopic never panics, and what it
// accepts converts back to the same subject.
func FuzzMQTTTopic(f *testing.F) {
	for _, s := range []string{"vigil.v1.d.detections.cam1", "a./.b", "/", ".", "a..b", "*", ">", "a.b c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		topic, err := MQTTTopic(subject)
		if err != nil {
			return
		}
		back, err := NATSSubject(topic)
		if err != nil || back != subject {
			t.Fatalf("MQTTTopic(%q) = %q, whose subject is %q, %v", subject, topic, back, err)
		}
	})
}

// What nats-server 2.9 really does with MQTT topics: the subject a NATS subscriber sees is
// NATSSubject(topic), and MQTTTopic gives the topic back; a topic with '.' is refused.
func TestNATSServerMapsTopicsAsWeDo(t *testing.T) {
	node := testharness.StartNATS(t, 1).Nodes[0]
	nc, err := nats.Connect(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe("vigil.>", got); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	dev := mqttClient(t, node.MQTTURL, "dev-1")
	for _, topic := range []string{"vigil/v1/dev-1/detections/cam_1", "vigil/v1/dev-1/status", "vigil/v1//x"} {
		if tok := dev.Publish(topic, 1, false, topic); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
		select {
		case m := <-got:
			want, _ := NATSSubject(topic)
			back, err := MQTTTopic(m.Subject)
			if m.Subject != want || back != topic || err != nil || string(m.Data) != topic {
				t.Errorf("topic %s arrived as subject %q (want %q), back to %q, %v", topic, m.Subject, want, back, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("topic %s never arrived on NATS", topic)
		}
	}
	// A '.' in a topic: nats-server refuses it and closes the connection.
	dev.Publish("vigil/v1/dev.1/status", 1, false, "x").WaitTimeout(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for dev.IsConnectionOpen() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if dev.IsConnectionOpen() {
		t.Error("nats-server kept the connection of a client that published a topic with '.'")
	}
	select {
	case m := <-got:
		t.Errorf("a topic with '.' reached NATS as %q", m.Subject)
	default:
	}
}

func mqttClient(t *testing.T, broker, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// --share-group on a broker without MQTT shared subscriptions (nats-server's MQTT) stops the
// subscriber at its first subscribe with an error naming --share-group and --ingest; on
// Mosquitto, which has them, the check passes and traffic flows.
func TestShareGroupNeedsSharedSubscriptions(t *testing.T) {
	nop := HandlerFunc(func(*wire.Decoded) error { return nil })
	start := func(broker string) (*Subscriber, chan error) {
		fatal := make(chan error, 1)
		s, err := New(Config{BrokerURL: broker, ClientID: wire.FleetClientID("probe-test"), ShareGroup: "g",
			RetryInterval: 200 * time.Millisecond, CleanSession: true,
			OnFatal: func(err error) { fatal <- err }}, nop)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, fatal
	}

	t.Run("nats-server", func(t *testing.T) {
		node := testharness.StartNATS(t, 1).Nodes[0]
		s, fatal := start(node.MQTTURL)
		select {
		case err := <-fatal:
			for _, want := range []string{"--share-group g", "does not support MQTT shared subscriptions", "--ingest nats://"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if s.SharedChecked() || s.Connected() || s.Status().Subscribes != 0 {
				t.Errorf("after the failed check: checked %v, connected %v, subscribes %d", s.SharedChecked(), s.Connected(), s.Status().Subscribes)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no error within 20 s; status %+v", s.Status())
		}
	})

	t.Run("mosquitto", func(t *testing.T) {
		m := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
		s, fatal := start(m.URL)
		deadline := time.Now().Add(20 * time.Second)
		for !s.Connected() && time.Now().Before(deadline) {
			select {
			case err := <-fatal:
				t.Fatalf("Mosquitto has shared subscriptions, yet: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		if !s.Connected() || !s.SharedChecked() {
			t.Fatalf("connected %v, shared subscriptions checked %v; status %+v", s.Connected(), s.SharedChecked(), s.Status())
		}
	})
}
