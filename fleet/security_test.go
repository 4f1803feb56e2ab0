package fleet_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/auth"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// credentialsFile writes an MQTT credentials file for devices id → password (cheap hashes).
func credentialsFile(t *testing.T, devices map[string]string) string {
	t.Helper()
	body := "devices:\n"
	for id, pw := range devices {
		h, err := auth.HashPasswordIterations(pw, 1000)
		if err != nil {
			t.Fatal(err)
		}
		body += "  " + id + ": " + h + "\n"
	}
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mqttConnect(brokerURL, clientID, user, password string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(brokerURL).SetClientID(clientID).SetUsername(user).
		SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect %s: timeout", clientID)
	}
	return c, tok.Error()
}

// A device whose id equals the name the fleet's clients were given cannot take over the fleet's
// MQTT session: the fleet's client ids carry a prefix no device id can have, and the broker
// refuses that prefix to devices.
func TestDeviceCannotTakeFleetSession(t *testing.T) {
	creds := credentialsFile(t, map[string]string{"shared": "pw-shared", "edge-01": "pw-edge"})
	c := start(t, fleet.Config{MQTTListen: "127.0.0.1:0", ClientID: "shared", MQTTCredentials: creds})
	base := "http://" + c.HTTPAddr()
	h := waitHealth(t, base, http.StatusOK)
	if !wire.IsFleetClientID(h.MQTT.ClientID) || wire.ValidID(h.MQTT.ClientID) {
		t.Errorf("the fleet's client id %q is a valid device id", h.MQTT.ClientID)
	}
	url := "tcp://" + c.BrokerAddr()
	dev, err := mqttConnect(url, "shared", "shared", "pw-shared")
	if err != nil {
		t.Fatalf("device shared: %v", err)
	}
	defer dev.Disconnect(100)
	if _, err := mqttConnect(url, h.MQTT.ClientID, "edge-01", "pw-edge"); err == nil {
		t.Errorf("device edge-01 connected with the fleet's client id %s", h.MQTT.ClientID)
	}
	time.Sleep(500 * time.Millisecond) // a takeover would disconnect the fleet's subscriber now
	var h2 api.Health
	get(t, base+"/healthz", &h2)
	if !h2.MQTT.Connected || h2.MQTT.Subscribes != 1 {
		t.Errorf("the fleet's subscriber lost its session to a device: %+v", h2.MQTT)
	}
	if st, _ := c.MQTTAuthStats(); st.Rejected[auth.RejectClientID] != 1 {
		t.Errorf("refused client ids: %v, want 1", st.Rejected)
	}
}
