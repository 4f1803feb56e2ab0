package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Credentials are the MQTT identities the embedded broker accepts, with their password
// hashes. The file is YAML (JSON is accepted too, being YAML); unknown keys are errors:
//
//	# device id → password hash (vigil-fleet hash-password)
//	devices:
//	  edge-01: pbkdf2-sha256$600000$<salt>$<key>
//	# other identities with the fleet's rights (another vigil-fleet, an operator's tool)
//	fleet:
//	  ops-tool: pbkdf2-sha256$600000$<salt>$<key>
//
// A PBKDF2 hash with fewer iterations than the credentials' target (DefaultIterations unless
// [Credentials.SetIterations] says otherwise) is replaced by a new one at the identity's next
// successful login, in memory and, for credentials read with LoadCredentials, in the file (the
// rest of the file, comments included, is kept).
//
// [Credentials.SetFleet] must be called before the credentials are used; the methods may then
// be called concurrently.
type Credentials struct {
	mu      sync.RWMutex
	devices map[string]hash
	fleet   map[string]hash
	path    string       // the file to re-hash into; "" when not read from a file
	fileMu  sync.Mutex   // serialises rewrites of path
	log     *slog.Logger // re-hash outcomes; slog.Default() when nil
	iter    int          // re-hash target and cost of an unknown user; DefaultIterations when 0
}

// SetIterations sets the PBKDF2 iterations that weaker hashes are re-hashed to at login and
// that an unknown user's attempt costs (DefaultIterations by default; at least 1000). Call it
// before the credentials are used.
func (c *Credentials) SetIterations(n int) error {
	if n < minIter || n > maxIter {
		return fmt.Errorf("credentials: iterations %d: want %d to %d", n, minIter, maxIter)
	}
	c.iter = n
	return nil
}

func (c *Credentials) iterations() int {
	if c.iter == 0 {
		return DefaultIterations
	}
	return c.iter
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
	c.path = path
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
	c.mu.Lock()
	defer c.mu.Unlock()
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
	c.mu.RLock()
	_, fleet := c.fleet[name]
	c.mu.RUnlock()
	if fleet {
		return RoleFleet
	}
	if wire.ValidID(name) {
		return RoleDevice
	}
	return RoleNone
}

// hashing bounds the password verifications that run at once to half the cores (at least
// one): a flood of connects from many addresses, each costing a full PBKDF2, queues here
// instead of taking every core from ingest and the API.
var hashing = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))

// Check verifies a user name and password and returns the identity's role: RoleNone when the
// user is unknown or the password wrong. An unknown user costs a verification too. A correct
// password whose hash is weaker than DefaultIterations is re-hashed (see [Credentials]).
func (c *Credentials) Check(user, password string) Role {
	c.mu.RLock()
	// An unknown user is verified against a dummy hash of the target strength: it costs as
	// much as a known one.
	role, h := RoleNone, hash{scheme: SchemePBKDF2, iter: c.iterations(), salt: make([]byte, saltLen), sum: make([]byte, keyLen)}
	if fh, ok := c.fleet[user]; ok {
		role, h = RoleFleet, fh
	} else if dh, ok := c.devices[user]; ok {
		role, h = RoleDevice, dh
	}
	c.mu.RUnlock()
	hashing <- struct{}{}
	ok := h.verify(password)
	<-hashing
	if !ok || role == RoleNone {
		return RoleNone
	}
	if h.needsRehash(c.iterations()) {
		c.rehash(role, user, password)
	}
	return role
}

// rehash stores a DefaultIterations hash of user's password, in memory and in the file.
func (c *Credentials) rehash(role Role, user, password string) {
	log := c.log
	if log == nil {
		log = slog.Default()
	}
	hashing <- struct{}{}
	s, err := HashPasswordIterations(password, c.iterations())
	<-hashing
	if err != nil {
		log.Warn("credentials: re-hash failed", "user", user, "err", err)
		return
	}
	h, _ := parseHash(s)
	section := "devices"
	c.mu.Lock()
	if role == RoleFleet {
		section, c.fleet[user] = "fleet", h
	} else {
		c.devices[user] = h
	}
	c.mu.Unlock()
	if c.path == "" {
		return
	}
	if err := c.rewrite(section, user, s); err != nil {
		log.Warn("credentials: re-hashed password not saved; it is re-hashed again at the next login", "user", user, "file", c.path, "err", err)
		return
	}
	log.Info("credentials: password re-hashed", "user", user, "iterations", c.iterations(), "file", c.path)
}

// rewrite replaces the hash of name in section of the credentials file, keeping the rest of
// it, and writes the file atomically with its mode.
func (c *Credentials) rewrite(section, name, newHash string) error {
	c.fileMu.Lock()
	defer c.fileMu.Unlock()
	data, err := os.ReadFile(c.path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return errors.New("not a mapping")
	}
	var entry *yaml.Node
	top := doc.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		if top[i].Value != section || top[i+1].Kind != yaml.MappingNode {
			continue
		}
		m := top[i+1].Content
		for j := 0; j+1 < len(m); j += 2 {
			if m[j].Value == name {
				entry = m[j+1]
			}
		}
	}
	if entry == nil {
		return fmt.Errorf("'%s.%s' is no longer in the file", section, name)
	}
	entry.Value, entry.Style = newHash, 0
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	st, err := os.Stat(c.path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".credentials-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.path)
}

// Devices is the number of device identities.
func (c *Credentials) Devices() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.devices)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
