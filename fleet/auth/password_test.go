package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestHashAndVerify(t *testing.T) {
	h, err := HashPasswordIterations("s3cret-device-pw", minIter)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "pbkdf2-sha256$1000$") || strings.Contains(h, "s3cret") {
		t.Fatalf("hash %q", h)
	}
	for pw, want := range map[string]bool{"s3cret-device-pw": true, "s3cret-device-pW": false, "": false, "s3cret-device-pw ": false} {
		ok, err := VerifyPassword(h, pw)
		if err != nil || ok != want {
			t.Errorf("verify %q: %v, %v; want %v", pw, ok, err, want)
		}
	}
	h2, _ := HashPasswordIterations("s3cret-device-pw", minIter)
	if h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	def, err := HashPassword("x")
	if err != nil || !strings.HasPrefix(def, "pbkdf2-sha256$600000$") {
		t.Errorf("default hash %q, %v", def, err)
	}

	s := hashSHA256("random-secret")
	if ok, err := VerifyPassword(s, "random-secret"); !ok || err != nil {
		t.Errorf("sha256 verify: %v %v", ok, err)
	}
	if ok, _ := VerifyPassword(s, "random-secreT"); ok {
		t.Error("sha256: wrong secret accepted")
	}
}

func TestBadHashes(t *testing.T) {
	for _, h := range []string{
		"",
		"plain",
		"pbkdf2-sha256$100$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",      // too few iterations
		"pbkdf2-sha256$x$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",        // not a number
		"pbkdf2-sha256$100000$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",                     // short salt
		"pbkdf2-sha256$100000$AAAAAAAAAAAAAAAAAAAAAA$AAAA",                                          // short key
		"sha256$AAAAAAAAAAAAAAAAAAAAAA$!!!",                                                         // not base64
		"md5$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",                    // unknown scheme
		"pbkdf2-sha256$100000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$x", // extra part
	} {
		if _, err := VerifyPassword(h, "pw"); !errors.Is(err, ErrBadHash) {
			t.Errorf("%q: err %v, want ErrBadHash", h, err)
		}
	}
	if _, err := HashPasswordIterations("pw", 10); err == nil {
		t.Error("10 iterations accepted")
	}
	if _, err := HashPasswordIterations("", minIter); err == nil {
		t.Error("empty password accepted")
	}
}

func TestParseCredentials(t *testing.T) {
	h, _ := HashPasswordIterations("pw-edge-01", minIter)
	c, err := ParseCredentials([]byte("devices:\n  edge-01: " + h + "\nfleet:\n  ops: " + h + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetIterations(minIter); err != nil { // no re-hash, cheap unknown users (see TestRehashOnLogin)
		t.Fatal(err)
	}
	if c.Devices() != 1 || c.Check("edge-01", "pw-edge-01") != RoleDevice || c.Check("ops", "pw-edge-01") != RoleFleet {
		t.Error("file identities not accepted")
	}
	if c.Check("edge-01", "nope") != RoleNone || c.Check("edge-02", "pw-edge-01") != RoleNone || c.Check("", "") != RoleNone {
		t.Error("wrong credentials accepted")
	}
	// JSON is YAML.
	if c, err := ParseCredentials([]byte(`{"devices": {"edge-01": "` + h + `"}}`)); err != nil || c.Devices() != 1 {
		t.Errorf("json: %v", err)
	}
	if err := c.SetFleet("edge-01", "x"); err == nil {
		t.Error("a fleet identity may take a device's name")
	}
	if err := c.SetFleet("vigil-fleet", "0123456789abcdef0123456789abcdef"); err != nil || c.Check("vigil-fleet", "0123456789abcdef0123456789abcdef") != RoleFleet {
		t.Errorf("SetFleet: %v", err)
	}
	if c.Role("edge-77") != RoleDevice || c.Role("vigil-fleet") != RoleFleet || c.Role("a/b") != RoleNone {
		t.Error("roles by name")
	}

	for _, tt := range []struct{ in, want string }{
		{"devices:\n  a/b: " + h, "'devices.a/b': a device id"},
		{"devices:\n  edge-01: nothash", "'devices.edge-01': password hash is not"},
		{"devices:\n  edge-01: " + h + "\nfleet:\n  edge-01: " + h, "'fleet.edge-01': also a device"},
		{"users: {}", "field users not found"},
		{"devices: [1]", "parse:"},
	} {
		_, err := ParseCredentials([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err %v, want %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), h) {
			t.Errorf("error shows the hash: %v", err)
		}
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte("devices:\n  edge-01: pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"))
	f.Add([]byte(`{"devices": {"d": "sha256$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "fleet": {"f": "x"}}`))
	f.Add([]byte("fleet:\n  ''  : x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCredentials(data)
		if err != nil {
			return
		}
		for id := range c.devices {
			if c.Role(id) != RoleDevice {
				t.Fatalf("device %q has role %v", id, c.Role(id))
			}
		}
		for name := range c.fleet {
			if _, dup := c.devices[name]; dup {
				t.Fatalf("%q is fleet and device", name)
			}
		}
	})
}

func FuzzVerifyPassword(f *testing.F) {
	f.Add("pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "pw")
	f.Add("sha256$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "")
	f.Fuzz(func(t *testing.T, stored, pw string) {
		h, err := parseHash(stored)
		if err != nil {
			return
		}
		if h.scheme == SchemePBKDF2 && h.iter > 5000 {
			return // valid but slow: not what the fuzzer is for
		}
		_ = h.verify(pw)
	})
}
