package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Credentials are the MQTT identities the embedded broker accepts, with their password
// hashes. The file is YAML (JSON is accepted too, being YAML); unknown keys are errors:
//
//	# device id → password hash (vigil-fleet hash-password)
//	devices:
//	  edge-01: pbkdf2-sha256$100000$<salt>$<key>
//	# other identities with the fleet's rights (another vigil-fleet, an operator's tool)
//	fleet:
//	  ops-tool: pbkdf2-sha256$100000$<salt>$<key>
//
// A Credentials is read-only once built, except for [Credentials.SetFleet] which must be
// called before it is used; its methods may then be called concurrently.
type Credentials struct {
	devices map[string]hash
	fleet   map[string]hash
}

type credentialsFile struct {
	Devices map[string]string `yaml:"devices"`
	Fleet   map[string]string `yaml:"fleet"`
}

// maxCredentialsFile bounds what LoadCredentials reads.
const maxCredentialsFile = 16 << 20

// LoadCredentials reads a credentials file.
func LoadCredentials(path string) (*Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialsFile+1))
	if err != nil {
		return nil, fmt.Errorf("credentials: read %s: %w", path, err)
	}
	if len(data) > maxCredentialsFile {
		return nil, fmt.Errorf("credentials: %s is larger than %d bytes", path, maxCredentialsFile)
	}
	c, err := ParseCredentials(data)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	return c, nil
}

// ParseCredentials parses a credentials file's content. Errors name the entry, never its hash.
func ParseCredentials(data []byte) (*Credentials, error) {
	var f credentialsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse: %w", err)
	}
	c := &Credentials{devices: map[string]hash{}, fleet: map[string]hash{}}
	for _, id := range sortedKeys(f.Devices) {
		if !wire.ValidID(id) {
			return nil, fmt.Errorf("'devices.%s': a device id is 1-64 of A-Z a-z 0-9 _ . -", id)
		}
		h, err := parseHash(f.Devices[id])
		if err != nil {
			return nil, fmt.Errorf("'devices.%s': %w", id, err)
		}
		c.devices[id] = h
	}
	for _, name := range sortedKeys(f.Fleet) {
		if name == "" || len(name) > 128 {
			return nil, fmt.Errorf("'fleet.%s': a name is 1-128 bytes", name)
		}
		if _, ok := c.devices[name]; ok {
			return nil, fmt.Errorf("'fleet.%s': also a device", name)
		}
		h, err := parseHash(f.Fleet[name])
		if err != nil {
			return nil, fmt.Errorf("'fleet.%s': %w", name, err)
		}
		c.fleet[name] = h
	}
	return c, nil
}

// NewCredentials returns credentials with no identity; add the fleet's with SetFleet.
func NewCredentials() *Credentials {
	return &Credentials{devices: map[string]hash{}, fleet: map[string]hash{}}
}

// SetFleet adds (or replaces) an identity with the fleet's rights whose password is secret, a
// random high-entropy value (the fleet controller makes one at start for its own subscriber).
// Call it before the credentials are used.
func (c *Credentials) SetFleet(name, secret string) error {
	if name == "" || secret == "" {
		return errors.New("credentials: fleet name and secret must not be empty")
	}
	if _, ok := c.devices[name]; ok {
		return fmt.Errorf("credentials: fleet name %q is also a device", name)
	}
	h, err := parseHash(hashSHA256(secret))
	if err != nil {
		return err
	}
	c.fleet[name] = h
	return nil
}

// Role is what an identity may do.
type Role int

// Roles of MQTT identities.
const (
	RoleNone   Role = iota // unknown
	RoleDevice             // publishes under its own topics, reads its own commands
	RoleFleet              // reads everything, publishes commands to any device
)

// Role tells an identity's role by name alone (for certificate identities, whose names are
// vouched for by the CA): RoleFleet for a fleet name, RoleDevice for any valid device id.
func (c *Credentials) Role(name string) Role {
	if _, ok := c.fleet[name]; ok {
		return RoleFleet
	}
	if wire.ValidID(name) {
		return RoleDevice
	}
	return RoleNone
}

// dummy is verified against when a user is unknown, so that an unknown user costs as much as a
// wrong password.
var dummy, _ = parseHash("pbkdf2-sha256$100000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")

// Check verifies a user name and password and returns the identity's role: RoleNone when the
// user is unknown or the password wrong.
func (c *Credentials) Check(user, password string) Role {
	if h, ok := c.fleet[user]; ok {
		if h.verify(password) {
			return RoleFleet
		}
		return RoleNone
	}
	if h, ok := c.devices[user]; ok {
		if h.verify(password) {
			return RoleDevice
		}
		return RoleNone
	}
	dummy.verify(password)
	return RoleNone
}

// Devices is the number of device identities.
func (c *Credentials) Devices() int { return len(c.devices) }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
