package fleet

import (
	"strings"
	"testing"
)

// --broker with several nodes of one cluster: each URL loses its user information the same
// way, and nodes with different credentials are refused without showing a password.
func TestBrokerCredentialsList(t *testing.T) {
	u, user, pw, err := brokerCredentials(Config{Broker: "tcp://fleet:s3cret@a:1883,tcp://fleet:s3cret@b:1883"})
	if err != nil || u != "tcp://a:1883,tcp://b:1883" || user != "fleet" || pw != "s3cret" {
		t.Errorf("= %q %q %q %v", u, user, pw, err)
	}
	u, user, _, err = brokerCredentials(Config{Broker: "tcp://a:1883, tcp://b:1883", BrokerUsername: "fleet", BrokerPassword: "x"})
	if err != nil || u != "tcp://a:1883,tcp://b:1883" || user != "fleet" {
		t.Errorf("= %q %q %v", u, user, err)
	}
	_, _, _, err = brokerCredentials(Config{Broker: "tcp://fleet:s3cret@a:1883,tcp://other:pw2@b:1883"})
	if err == nil || !strings.Contains(err.Error(), "different credentials") || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "pw2") {
		t.Errorf("different credentials: %v", err)
	}
}
