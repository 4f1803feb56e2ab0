// Package auth is the fleet controller's access control: who may connect to the embedded MQTT
// broker and what each client may publish and subscribe to ([MQTT], a mochi-mqtt hook), and
// who may call the HTTP API ([Tokens]).
//
//	device ──MQTT (password or client certificate)──▶ broker ──MQTT hook──▶ identity, topic ACL
//	browser, tools ──HTTP (Authorization: Bearer)──▶ Tokens.Middleware ──▶ API, dashboard
//
// Passwords are stored as hashes only (see [HashPassword]); API tokens may be stored as hashes
// too. No secret is ever written to a log line.
package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Password hash formats. golang.org/x/crypto (bcrypt) is not a dependency of the module, so
// passwords are hashed with the standard library:
//
//	pbkdf2-sha256$<iterations>$<salt>$<key>   PBKDF2-HMAC-SHA256, 32-byte key (HashPassword)
//	sha256$<salt>$<hash>                      SHA-256(salt || password): only for random,
//	                                          high-entropy secrets (128 bits or more)
//
// salt, key and hash are unpadded standard base64. Both are compared in constant time.
const (
	SchemePBKDF2 = "pbkdf2-sha256"
	SchemeSHA256 = "sha256"
)

// DefaultIterations is HashPassword's PBKDF2 iteration count: OWASP's recommendation for
// PBKDF2-HMAC-SHA256 (2023). It costs a few hundred milliseconds of one core per verification,
// paid on every MQTT connect; the embedded broker bounds what others can make it pay (a
// connect rate per address, at most half the cores hashing at once, see [Credentials.Check]).
// Hashes with fewer iterations still verify and are re-hashed at the next successful login.
const DefaultIterations = 600_000

const (
	saltLen     = 16
	keyLen      = 32
	maxIter     = 10_000_000
	minIter     = 1_000
	maxPassword = 1024 // longer passwords are rejected before hashing
)

var b64 = base64.RawStdEncoding

// ErrBadHash means a stored password hash is not in one of the formats above.
var ErrBadHash = errors.New("password hash is not pbkdf2-sha256$<iterations>$<salt>$<key> or sha256$<salt>$<hash>")

// HashPassword hashes password with PBKDF2-HMAC-SHA256, DefaultIterations and a random salt.
func HashPassword(password string) (string, error) {
	return HashPasswordIterations(password, DefaultIterations)
}

// HashPasswordIterations is HashPassword with a chosen iteration count (at least 1000).
func HashPasswordIterations(password string, iterations int) (string, error) {
	if iterations < minIter || iterations > maxIter {
		return "", fmt.Errorf("iterations %d: want %d to %d", iterations, minIter, maxIter)
	}
	if password == "" || len(password) > maxPassword {
		return "", fmt.Errorf("password must be 1 to %d bytes", maxPassword)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, keyLen)
	if err != nil {
		return "", fmt.Errorf("pbkdf2: %w", err)
	}
	return SchemePBKDF2 + "$" + strconv.Itoa(iterations) + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key), nil
}

// hashSHA256 hashes a random secret with a random salt in the sha256 format.
func hashSHA256(secret string) string {
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read does not fail
	sum := sha256.Sum256(append(salt, secret...))
	return SchemeSHA256 + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(sum[:])
}

// hash is a parsed password hash.
type hash struct {
	scheme string
	iter   int
	salt   []byte
	sum    []byte
}

// parseHash parses a stored hash; errors wrap ErrBadHash and never contain the hash.
func parseHash(s string) (hash, error) {
	parts := strings.Split(s, "$")
	var h hash
	var err error
	switch {
	case len(parts) == 4 && parts[0] == SchemePBKDF2:
		h.scheme = SchemePBKDF2
		h.iter, err = strconv.Atoi(parts[1])
		if err != nil || h.iter < minIter || h.iter > maxIter {
			return hash{}, fmt.Errorf("%w: iterations must be %d to %d", ErrBadHash, minIter, maxIter)
		}
		parts = parts[2:]
	case len(parts) == 3 && parts[0] == SchemeSHA256:
		h.scheme = SchemeSHA256
		parts = parts[1:]
	default:
		return hash{}, ErrBadHash
	}
	if h.salt, err = b64.DecodeString(parts[0]); err != nil || len(h.salt) < 8 {
		return hash{}, fmt.Errorf("%w: salt must be 8 bytes or more of base64", ErrBadHash)
	}
	if h.sum, err = b64.DecodeString(parts[1]); err != nil || len(h.sum) != keyLen {
		return hash{}, fmt.Errorf("%w: key must be %d bytes of base64", ErrBadHash, keyLen)
	}
	return h, nil
}

// needsRehash reports whether a successful login should store a hash of target iterations.
func (h hash) needsRehash(target int) bool { return h.scheme == SchemePBKDF2 && h.iter < target }

// verify reports, in time independent of where the inputs differ, whether password matches.
func (h hash) verify(password string) bool {
	if len(password) > maxPassword {
		return false
	}
	var got []byte
	switch h.scheme {
	case SchemePBKDF2:
		k, err := pbkdf2.Key(sha256.New, password, h.salt, h.iter, keyLen)
		if err != nil {
			return false
		}
		got = k
	case SchemeSHA256:
		sum := sha256.Sum256(append(append([]byte(nil), h.salt...), password...))
		got = sum[:]
	default:
		return false
	}
	return subtle.ConstantTimeCompare(got, h.sum) == 1
}

// VerifyPassword reports whether password matches the stored hash; a malformed hash is an
// error.
func VerifyPassword(stored, password string) (bool, error) {
	h, err := parseHash(stored)
	if err != nil {
		return false, err
	}
	return h.verify(password), nil
}
