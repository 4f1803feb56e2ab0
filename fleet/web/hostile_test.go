package web_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// The dashboard puts device strings in the page as text only: no static file may use an API
// that parses HTML.
func TestDashboardNeverParsesHTML(t *testing.T) {
	bad := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser|createContextualFragment|\beval\(|new Function`)
	n := 0
	err := filepath.WalkDir("static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") {
			return err
		}
		n++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if code, _, _ := strings.Cut(line, "//"); bad.MatchString(code) {
				t.Errorf("%s:%d parses HTML or code: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("read static: %d scripts, %v", n, err)
	}
}

// A device sending markup, terminal escapes and telemetry with null cameras neither runs code in
// the page nor breaks the device table for every viewer: what breaks the schema or holds a
// control character is refused at the fleet's edge (and counted), and markup that is valid text
// reaches the page as text.
func TestDashboardHostileDevice(t *testing.T) {
	core := startCore(t)
	base := "http://" + core.HTTPAddr()
	dev := connectDevice(t, core)
	dev.publish("vigil/v1/edge-07/status", true, map[string]any{"schema": wire.SchemaStatus, "state": "online", "version": "v0.9.1", "cameras": []string{"gate"}})

	c := testharness.StartChromium(t)
	c.Call("Page.navigate", map[string]any{"url": base + "/#token=" + readToken}, nil)
	waitPage(t, c, "the device", func(s pageState) bool { return anyContains(s.Devices, "edge-07", "v0.9.1") })

	const markup = `<img src=x onerror="window.__pwned=1">`
	dev.publish("vigil/v1/edge-07/telemetry", false, map[string]any{"schema": wire.SchemaTelemetry, "uptime_s": 1,
		"cameras": []any{nil, map[string]any{"id": markup, "state": markup}}, "model": nil})
	dev.publish("vigil/v1/edge-07/events/gate", false, eventMsg(markup+"\x1b]52;c;cHduZWQ=\x07\x1b[2J", 7))
	dev.publish("vigil/v1/edge-07/events/gate", false, eventMsg(markup, 8))
	st := waitPage(t, c, "the event, as text", func(s pageState) bool { return anyContains(s.Events, markup, "#8") })
	if anyContains(st.Events, "#7") {
		t.Errorf("the event whose label holds ESC reached the page: %q", st.Events)
	}
	// The stream delivered the telemetry before the event: the table has been redrawn with it.
	time.Sleep(200 * time.Millisecond)
	st = waitPage(t, c, "the device table after the bad telemetry", func(s pageState) bool { return true })
	if !anyContains(st.Devices, "edge-07", "online") {
		t.Errorf("the device table lost edge-07 after bad telemetry: %q", st.Devices)
	}
	var imgs int
	c.Eval(`document.querySelectorAll('img, script:not([src])').length`, &imgs)
	var pwned bool
	c.Eval(`window.__pwned === 1`, &pwned)
	if imgs != 0 || pwned {
		t.Errorf("device markup became elements (%d) or ran (%v)", imgs, pwned)
	}
	// Both refusals are counted by reason.
	_, health := get(t, "GET", base+"/healthz", "")
	for _, want := range []string{`"invalid": 1`, `"control_char": 1`} {
		if !strings.Contains(health, want) {
			t.Errorf("/healthz rejected lacks %s: %s", want, health)
		}
	}
}
