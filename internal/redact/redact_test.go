package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://fleet:s3cret@broker:1883":        "tcp://fleet:REDACTED@broker:1883",
		"tcp://fleet@broker:1883":               "tcp://fleet@broker:1883",
		"tcp://broker:1883":                     "tcp://broker:1883",
		"rtsp://u:p%40ss@cam/stream?x=1":        "rtsp://u:REDACTED@cam/stream?x=1",
		"tcp://u:s3cret @broker:bad port":       "tcp://REDACTED@broker:bad port",
		"tcp://u:s3cret@bro ker%zz:1883/x":      "tcp://REDACTED@bro ker%zz:1883/x",
		"::not a url u:s3cret@host":             "REDACTED@host",
		"":                                      "",
		"mqtts://a:s3cret@[::1]:8883/?q=1#frag": "mqtts://a:REDACTED@[::1]:8883/?q=1#frag",
	} {
		got := URL(in)
		if got != want || strings.Contains(got, "s3cret") {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzURL(f *testing.F) {
	f.Add("tcp://fleet:s3cret@broker:1883")
	f.Add("tcp://u:s3cret @broker:bad port")
	f.Fuzz(func(t *testing.T, s string) {
		const secret = "Zq9secretZq9"
		in := "tcp://user:" + secret + "@" + s
		if strings.Contains(s, secret) {
			return
		}
		if got := URL(in); strings.Contains(got, secret) {
			t.Errorf("URL(%q) = %q shows the password", in, got)
		}
	})
}
