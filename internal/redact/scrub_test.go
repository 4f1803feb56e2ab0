package redact

import (
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	sec := Secrets("rtsp://u:a%2Fb@h/x")
	got := Scrub(`dial "rtsp://u:a%2Fb@h/x": a/b refused`, sec...)
	if strings.Contains(got, "a/b") || strings.Contains(got, "a%2Fb") {
		t.Fatalf("Scrub left the secret: %q", got)
	}
	if Secrets("rtsp://h/x") != nil || Secrets("rtsp://u@h/x") != nil {
		t.Fatal("Secrets of a URL without a password")
	}
}
