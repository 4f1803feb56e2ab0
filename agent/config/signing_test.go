package config

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMAVLinkKeyForms(t *testing.T) {
	var want [32]byte
	for i := range want {
		want[i] = byte(i * 3)
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw.key")
	os.WriteFile(raw, want[:], 0o600)
	hexFile := filepath.Join(dir, "hex.key")
	os.WriteFile(hexFile, []byte(hex.EncodeToString(want[:])+"\n"), 0o600)
	for _, v := range []string{hex.EncodeToString(want[:]), base64.StdEncoding.EncodeToString(want[:]), raw, hexFile} {
		k, err := Drone{MAVLinkKey: v}.SigningKey()
		if err != nil || k == nil || *k != want {
			t.Errorf("SigningKey(%q) = %v, %v", v, k, err)
		}
	}
	cfg := Default()
	cfg.Cameras = []Camera{{ID: "c", URL: "rtsp://127.0.0.1/x"}}
	cfg.Cameras[0].ApplyDefaults()
	cfg.Drone.MAVLink = "udp://127.0.0.1:14550"
	for v, frag := range map[string]string{
		"abcd":                     "32 bytes",
		"not a key at all!":        "hex digits or base64",
		filepath.Join(dir, "none"): "read the key file",
	} {
		cfg.Drone.MAVLinkKey = v
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "'drone.mavlink_key'") || !strings.Contains(err.Error(), frag) {
			t.Errorf("key %q: %v, want 'drone.mavlink_key' … %s", v, err, frag)
		}
	}
	cfg.Drone.MAVLinkKey, cfg.Drone.SystemID = "", 300
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "'drone.system_id'") {
		t.Errorf("system id 300: %v", err)
	}
}
