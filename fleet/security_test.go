package fleet_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	c := start(t, fleet.Config{MQTTListen: "127.0.0.1:0", ClientID: "shared", MQTTCredentials: creds, MQTTHashIterations: 1000})
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

// apiRequest sends one request to the API with the given headers; host, when set, replaces
// the Host header. It returns the status and body.
func apiRequest(t *testing.T, method, url, body, host string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = nil, 0
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The API without tokens cannot be driven from a web page: a form-like text/plain POST, a
// cross-origin request and a request through a rebound DNS name are refused before they reach
// the rollout engine; the fleet's own clients (JSON, same origin) still get through.
func TestAPIRefusesWebPages(t *testing.T) {
	c := start(t, fleet.Config{MQTTListen: "127.0.0.1:0", OTA: fleet.OTAConfig{DataDir: t.TempDir()}})
	base := "http://" + c.HTTPAddr()
	spec := `{"model":"yolox_nano@2.0.0","devices":"all","canary":1}`
	for _, tc := range []struct {
		name, method, path, body, host string
		headers                        []string
		want                           int
	}{
		{"text/plain POST (a form or no-cors fetch)", "POST", "/api/v1/rollouts", spec, "", []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"form POST", "POST", "/api/v1/rollouts", "model=x", "", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"multipart POST", "POST", "/api/v1/rollouts", spec, "", []string{"Content-Type", "multipart/form-data; boundary=x"}, http.StatusUnsupportedMediaType},
		{"Blob POST without content type, cross-origin", "POST", "/api/v1/rollouts", spec, "", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"foreign Origin", "POST", "/api/v1/rollouts", spec, "", []string{"Content-Type", "application/json", "Origin", "http://evil.example"}, http.StatusForbidden},
		{"foreign Origin, no body", "POST", "/api/v1/rollouts/r1/abort", "", "", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"null Origin", "POST", "/api/v1/rollouts", spec, "", []string{"Content-Type", "application/json", "Origin", "null"}, http.StatusForbidden},
		{"foreign Host (DNS rebinding)", "POST", "/api/v1/rollouts", spec, "evil.example:" + portOf(c.HTTPAddr()),
			[]string{"Content-Type", "application/json", "Origin", "http://evil.example:" + portOf(c.HTTPAddr())}, http.StatusForbidden},
		{"foreign Host, read", "GET", "/api/v1/devices", "", "evil.example", nil, http.StatusForbidden},
	} {
		code, body := apiRequest(t, tc.method, base+tc.path, tc.body, tc.host, tc.headers...)
		if code != tc.want || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	var list []any
	if code := get(t, base+"/api/v1/rollouts", &list); code != http.StatusOK || len(list) != 0 {
		t.Errorf("rollouts after the refused requests: %d %v", code, list)
	}
	// The fleet's own clients: JSON from no page, or from the dashboard's own origin.
	for _, h := range [][]string{{"Content-Type", "application/json"}, {"Content-Type", "application/json; charset=utf-8", "Origin", base}} {
		if code, body := apiRequest(t, "POST", base+"/api/v1/rollouts", spec, "", h...); code == http.StatusForbidden || code == http.StatusUnsupportedMediaType {
			t.Errorf("%v: refused: %d %s", h, code, body)
		}
	}
	if code, _ := apiRequest(t, "GET", base+"/api/v1/devices", "", "localhost:"+portOf(c.HTTPAddr())); code != http.StatusOK {
		t.Errorf("GET through localhost: %d", code)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// An API without tokens on an address other machines reach does not start.
func TestOpenAPIOnlyOnLoopback(t *testing.T) {
	_, err := fleet.New(fleet.Config{MQTTListen: "127.0.0.1:0", HTTPListen: "192.0.2.1:0", Logger: logger()})
	if err == nil || !strings.Contains(err.Error(), "no tokens") || !strings.Contains(err.Error(), "192.0.2.1:0") {
		t.Fatalf("New with a non-loopback API and no tokens: %v", err)
	}
}
