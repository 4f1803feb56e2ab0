package logflag

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var f Flags
	f.Register(fs, "info")
	if err := fs.Parse([]string{"--log-format", "json", "--log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log, err := f.New(&buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "err", errors.New("boom"))
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, buf.String())
	}
	if rec["msg"] != "shown" || rec["err"] != "boom" {
		t.Fatalf("record %v", rec)
	}
	for _, bad := range []Flags{{Level: "loud", Format: "text"}, {Level: "info", Format: "xml"}} {
		if _, err := bad.New(&buf); err == nil || !strings.Contains(err.Error(), "--log-") {
			t.Errorf("%+v: err %v, want one naming the flag", bad, err)
		}
	}
}
