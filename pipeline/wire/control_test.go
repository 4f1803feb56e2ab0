package wire

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestSignAndVerify(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	now := time.UnixMilli(1_763_800_000_000)
	cmd := Command{Schema: SchemaCommand, ID: "c1", DeviceID: "edge-1", Name: CmdModelUpdate,
		IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(time.Hour).UnixMilli(),
		Model: &ModelRef{Name: "m", Version: "2", SHA256: "ab", URL: "http://x/m"}}
	sc, err := Sign(cmd, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sc.Verify(pub, "edge-1", now)
	if err != nil || got.ID != "c1" || got.Model.Version != "2" {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	if sc.KeyID != KeyID(pub) || len(sc.KeyID) != 16 {
		t.Fatalf("key id %q", sc.KeyID)
	}
	bad, _ := Sign(cmd, other)
	tampered := sc
	tampered.Payload = bad.Payload[:len(bad.Payload)-4] + "AAAA"
	for name, tc := range map[string]struct {
		sc     SignedCommand
		device string
		at     time.Time
		want   error
	}{
		"other key":      {bad, "edge-1", now, ErrBadSignature},
		"tampered":       {tampered, "edge-1", now, ErrBadSignature},
		"no signature":   {SignedCommand{Payload: sc.Payload}, "edge-1", now, ErrBadSignature},
		"other device":   {sc, "edge-2", now, ErrNotForMe},
		"expired":        {sc, "edge-1", now.Add(2 * time.Hour), ErrExpired},
		"payload base64": {SignedCommand{Payload: "%%%", Sig: sc.Sig}, "edge-1", now, ErrMalformed},
	} {
		if _, err := tc.sc.Verify(pub, tc.device, tc.at); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

// FuzzVerifyCommand feeds arbitrary MQTT payloads through the agent's command path: decode the
// envelope, verify, parse. Nothing may panic, and only correctly signed commands pass.
func FuzzVerifyCommand(f *testing.F) {
	pub, key, _ := ed25519.GenerateKey(nil)
	sc, _ := Sign(Command{Schema: SchemaCommand, ID: "x", DeviceID: "d", Name: CmdModelRollback}, key)
	good, _ := json.Marshal(sc)
	f.Add(good)
	f.Add([]byte(`{"payload":"e30=","sig":""}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var s SignedCommand
		if json.Unmarshal(in, &s) != nil {
			return
		}
		c, err := s.Verify(pub, "d", time.UnixMilli(0))
		if err == nil && (c.DeviceID != "d" || c.Schema != SchemaCommand) {
			t.Fatalf("accepted a command that is not well formed: %+v", c)
		}
	})
}
