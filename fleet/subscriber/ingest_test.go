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
