package subscriber

import (
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

func TestNewValidates(t *testing.T) {
	reg := HandlerFunc(func(*wire.Decoded) error { return nil })
	tests := []struct {
		url, want string
	}{
		{"", "want tcp://host:port"},
		{"127.0.0.1:1883", "broker url"},
		{"http://127.0.0.1:1883", "want tcp://host:port"},
		{"tcp://", "has no host"},
		{"tcp://127.0.0.1:1883", ""},
		{"ssl://broker.example:8883", ""},
		{"tcp://127.0.0.1:1883,tcp://127.0.0.1:1884", ""},
		{"tcp://127.0.0.1:1883,http://127.0.0.1:1884", "want tcp://host:port"},
	}
	for _, tt := range tests {
		_, err := New(Config{BrokerURL: tt.url}, reg)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("New(%q) = %v, want %q", tt.url, err, tt.want)
		}
	}
	if _, err := New(Config{BrokerURL: "tcp://127.0.0.1:1883"}, nil); err == nil {
		t.Error("New with a nil handler succeeded")
	}
	s, _ := New(Config{BrokerURL: "tcp://127.0.0.1:1883"}, reg)
	if !strings.HasPrefix(s.cfg.ClientID, wire.FleetClientPrefix) {
		t.Errorf("default client id %q", s.cfg.ClientID)
	}
	if err := s.Close(); err != nil || s.Connected() {
		t.Errorf("Close before Start: %v, connected %v", err, s.Connected())
	}
}

func TestNewValidatesIngest(t *testing.T) {
	reg := HandlerFunc(func(*wire.Decoded) error { return nil })
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Ingest: "nats://127.0.0.1:4222,nats://127.0.0.1:4223"}, ""},
		{Config{Ingest: "tls://nats.example:4222"}, ""},
		{Config{Ingest: "nats://127.0.0.1:4222", IngestGroup: "a.b"}, "NATS ingest group"},
		{Config{Ingest: "http://127.0.0.1:4222"}, "--ingest"},
		{Config{Ingest: "nats://u:secret@127.0.0.1:4222,127.0.0.1"}, "--ingest"},
		{Config{Ingest: "nats://127.0.0.1:4222", ShareGroup: "g"}, "exclude each other"},
	}
	for _, tt := range tests {
		tt.cfg.BrokerURL = "tcp://127.0.0.1:1883"
		_, err := New(tt.cfg, reg)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}
