package modelstore

import (
	"strings"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	cases := []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 100-199/*", 100, 199, -1, true},
		{"bytes 100-200/200", 0, 0, 200, false},
		{"bytes 5-4/10", 0, 0, 10, false},
		{"bytes */100", 0, 0, 100, false},
		{"items 0-1/2", 0, 0, -1, false},
		{"bytes -1-5/10", 0, 0, 10, false},
		{"", 0, 0, -1, false},
	}
	for _, c := range cases {
		f, l, tot, ok := parseContentRange(c.in)
		if ok != c.ok || ok && (f != c.first || l != c.last) || tot != c.total {
			t.Errorf("parseContentRange(%q) = %d %d %d %v, want %d %d %d %v", c.in, f, l, tot, ok, c.first, c.last, c.total, c.ok)
		}
	}
}

// FuzzParseContentRange: a server's Content-Range header is outside input.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 100-199/*", "bytes */100", "bytes 9223372036854775807-9223372036854775807/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, ok := parseContentRange(s)
		if !ok {
			return
		}
		if first < 0 || last < first || total >= 0 && last >= total || total < -1 {
			t.Fatalf("parseContentRange(%q) accepted %d-%d/%d", s, first, last, total)
		}
		if !strings.HasPrefix(s, "bytes ") {
			t.Fatalf("parseContentRange(%q) accepted a unit other than bytes", s)
		}
	})
}

func TestSafeName(t *testing.T) {
	for _, s := range []string{"yolox", "1.0.0", "v2+build.5", "a_b-c"} {
		if !safeName(s) {
			t.Errorf("safeName(%q) = false", s)
		}
	}
	for _, s := range []string{"", ".", "..", ".state.json", "a/b", "-x", strings.Repeat("a", 65), "a b", "ä"} {
		if safeName(s) {
			t.Errorf("safeName(%q) = true", s)
		}
	}
}

func TestRedact(t *testing.T) {
	got := redact("https://user:pw@host:8443/m/x/model.onnx?X-Amz-Signature=SECRET#frag")
	if got != "https://host:8443/m/x/model.onnx" {
		t.Fatalf("redact = %q", got)
	}
}
