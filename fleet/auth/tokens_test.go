package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	adminTok = "admin-token-0123456789"
	readTok  = "read-token-0123456789ab"
)

func testTokens(t *testing.T) *Tokens {
	t.Helper()
	sum := sha256.Sum256([]byte(readTok))
	toks, err := ParseTokens([]byte("tokens:\n" +
		"  - {name: ops, role: admin, token: " + adminTok + "}\n" +
		"  - {name: wall, role: read, sha256: " + hex.EncodeToString(sum[:]) + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

func TestTokensMiddleware(t *testing.T) {
	toks := testTokens(t)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.Method) })
	srv := httptest.NewServer(toks.Middleware(next, func(r *http.Request) bool { return r.URL.Path == "/healthz" }))
	defer srv.Close()

	for _, tt := range []struct {
		method, path, auth string
		code               int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/api/v1/devices", "", 401},
		{"GET", "/api/v1/devices", "Bearer wrong-token-0123456789", 401},
		{"GET", "/api/v1/devices", "Basic " + readTok, 401},
		{"GET", "/api/v1/devices", "Bearer", 401},
		{"GET", "/api/v1/devices", "Bearer " + readTok, 200},
		{"GET", "/api/v1/devices", "bearer " + adminTok, 200},
		{"POST", "/api/v1/rollouts", "Bearer " + readTok, 403},
		{"DELETE", "/api/v1/models/x", "Bearer " + readTok, 403},
		{"PUT", "/api/v1/models/x", "", 401},
		{"POST", "/api/v1/rollouts", "Bearer " + adminTok, 200},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := tt.method + " " + tt.path + " " + tt.auth
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %d, want %d (%s)", name, resp.StatusCode, tt.code, body)
			continue
		}
		if tt.code == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", name, resp.Header.Get("WWW-Authenticate"))
		}
		if tt.code >= 400 {
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Errorf("%s: body %q is not a JSON error", name, body)
			}
			if strings.Contains(string(body), readTok) || strings.Contains(string(body), adminTok) {
				t.Errorf("%s: the body echoes a token", name)
			}
		}
	}
}

func TestParseTokensErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"tokens:\n  - {role: admin, token: " + adminTok + "}", "name is required"},
		{"tokens:\n  - {name: a, role: root, token: " + adminTok + "}", `role "root"`},
		{"tokens:\n  - {name: a, role: read, token: short}", "at least 16 bytes"},
		{"tokens:\n  - {name: a, role: read, sha256: abc}", "64 hex digits"},
		{"tokens:\n  - {name: a, role: read}", "token or sha256 is required"},
		{"tokens:\n  - {name: a, role: read, token: " + adminTok + "}\n  - {name: b, role: admin, token: " + adminTok + "}", `also the token of "a"`},
		{"tokens:\n  - {name: a, role: read, secret: x}", "field secret not found"},
	} {
		_, err := ParseTokens([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err %v, want %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), adminTok) {
			t.Errorf("error shows the token: %v", err)
		}
	}
	if toks := testTokens(t); toks.Role(adminTok) != RoleAdmin || toks.Role(readTok) != RoleRead || toks.Role("") != "" || toks.Len() != 2 {
		t.Error("roles")
	}
}

func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("tokens:\n  - {name: ops, role: admin, token: " + adminTok + "}\n"))
	f.Add([]byte(`{"tokens": [{"name": "w", "role": "read", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		toks, err := ParseTokens(data)
		if err != nil {
			return
		}
		for _, e := range toks.entries {
			if e.role != RoleAdmin && e.role != RoleRead || e.name == "" {
				t.Fatalf("bad entry %q role %q", e.name, e.role)
			}
		}
	})
}
