package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// API roles.
const (
	RoleRead  = "read"  // GET and HEAD
	RoleAdmin = "admin" // every method
)

// Tokens are the HTTP API's bearer tokens, each with a role. The tokens file is YAML (or
// JSON); a token is given either in clear or as the hex SHA-256 of the token, so that the
// file need not hold it:
//
//	tokens:
//	  - name: ops            # shown nowhere but in error messages about the file
//	    role: admin          # admin or read
//	    sha256: 9f86d0…      # hex SHA-256 of the token (printf %s TOKEN | sha256sum)
//	  - name: wallboard
//	    role: read
//	    token: 3b1c…         # or the token itself
//
// Presented tokens are hashed and compared with every stored hash in constant time. A
// Tokens is read-only once built; its methods may be called concurrently.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	name string
	role string
	sum  [sha256.Size]byte
}

type tokensFile struct {
	Tokens []struct {
		Name   string `yaml:"name"`
		Role   string `yaml:"role"`
		Token  string `yaml:"token"`
		SHA256 string `yaml:"sha256"`
	} `yaml:"tokens"`
}

// minTokenLen is the shortest token accepted in clear: guessing must stay out of reach.
const minTokenLen = 16

// LoadTokens reads a tokens file.
func LoadTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialsFile+1))
	if err != nil {
		return nil, fmt.Errorf("tokens: read %s: %w", path, err)
	}
	if len(data) > maxCredentialsFile {
		return nil, fmt.Errorf("tokens: %s is larger than %d bytes", path, maxCredentialsFile)
	}
	t, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("tokens %s: %w", path, err)
	}
	return t, nil
}

// ParseTokens parses a tokens file's content. Errors name the entry, never its token.
func ParseTokens(data []byte) (*Tokens, error) {
	var f tokensFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse: %w", err)
	}
	t := &Tokens{}
	for i, e := range f.Tokens {
		key := fmt.Sprintf("'tokens[%d]'", i)
		if e.Name == "" {
			return nil, fmt.Errorf("%s: name is required", key)
		}
		var err error
		switch {
		case e.Token != "" && e.SHA256 != "":
			err = errors.New("give token or sha256, not both")
		case e.Token != "":
			err = t.Add(e.Name, e.Role, e.Token)
		case e.SHA256 != "":
			err = t.addHash(e.Name, e.Role, e.SHA256)
		default:
			err = errors.New("token or sha256 is required")
		}
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", key, e.Name, err)
		}
	}
	return t, nil
}

// Add adds a token in clear (at least 16 bytes) with a role (RoleAdmin or RoleRead), e.g. from
// a command-line flag.
func (t *Tokens) Add(name, role, token string) error {
	if len(token) < minTokenLen {
		return fmt.Errorf("token must be at least %d bytes", minTokenLen)
	}
	return t.add(name, role, sha256.Sum256([]byte(token)))
}

func (t *Tokens) addHash(name, role, hexSum string) error {
	b, err := hex.DecodeString(hexSum)
	if err != nil || len(b) != sha256.Size {
		return errors.New("sha256 must be 64 hex digits")
	}
	return t.add(name, role, [sha256.Size]byte(b))
}

func (t *Tokens) add(name, role string, sum [sha256.Size]byte) error {
	if role != RoleAdmin && role != RoleRead {
		return fmt.Errorf("role %q: want %s or %s", role, RoleAdmin, RoleRead)
	}
	for _, e := range t.entries {
		if e.sum == sum {
			return fmt.Errorf("the token of %q is also the token of %q", name, e.name)
		}
	}
	t.entries = append(t.entries, tokenEntry{name: name, role: role, sum: sum})
	return nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.entries) }

// Role returns the role of a presented token, or "" when it is unknown. Every stored token is
// compared, in constant time.
func (t *Tokens) Role(token string) string {
	sum := sha256.Sum256([]byte(token))
	role := ""
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 {
			role = e.role
		}
	}
	return role
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// Middleware guards next: requests for which public returns true pass untouched; the others
// need "Authorization: Bearer <token>" with a known token (401 and WWW-Authenticate: Bearer
// otherwise), and a method other than GET, HEAD or OPTIONS needs the admin role (403 for a
// read token). Errors are JSON: {"error": "..."}. The token is never logged nor echoed.
func (t *Tokens) Middleware(next http.Handler, public func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if public != nil && public(r) {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-fleet"`)
			deny(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		role := t.Role(tok)
		switch {
		case role == "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-fleet", error="invalid_token"`)
			deny(w, http.StatusUnauthorized, "invalid token")
		case role != RoleAdmin && !readOnly(r.Method):
			deny(w, http.StatusForbidden, "read-only token: "+r.Method+" needs an admin token")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func readOnly(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

func deny(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
