package agent_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/pipeline/mask"
	"github.com/vigil-edge/vigil/pipeline/rules"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// petsCamera is PETS09 with a line down the middle of the square and the top-left fifth of
// the scene masked black.
func petsCamera(url string) config.Camera {
	return config.Camera{ID: "pets", URL: url, DetectFPS: 10,
		Rules:        []rules.Rule{{ID: "centre-line", Type: rules.TypeLine, A: &rules.Point{X: 0.5, Y: 0.2}, B: &rules.Point{X: 0.5, Y: 0.98}}},
		PrivacyMasks: []mask.Mask{{ID: "corner", Mode: mask.ModeBlack, Points: mask.Polygon{{0, 0}, {0.2, 0}, {0.2, 0.2}, {0, 0.2}}}},
	}
}

// httpGet fetches url and returns the status, a header and the body.
func httpGet(t *testing.T, url, header string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(header), b
}

// storedRecord is what the test reads of GET /api/v1/events.
type storedRecord struct {
	EventID string `json:"event_id"`
	RuleID  string `json:"rule_id"`
	Payload []byte `json:"payload"`
}

func fleetRecords(t *testing.T, base, query string) []storedRecord {
	t.Helper()
	code, _, b := httpGet(t, base+"/api/v1/events?"+query, "")
	var recs []storedRecord
	if code != 200 || json.Unmarshal(b, &recs) != nil {
		t.Fatalf("GET /api/v1/events?%s: %d %s", query, code, b)
	}
	return recs
}

// greenPixels counts the pixels of the drawing colour of boxes (pure green) in a JPEG.
func greenPixels(t *testing.T, b []byte) int {
	t.Helper()
	img, err := gocv.IMDecode(b, gocv.IMReadColor)
	if err != nil || img.Empty() {
		t.Fatalf("not a JPEG: %v", err)
	}
	defer img.Close()
	n := 0
	for y := 0; y < img.Rows(); y++ {
		for x := 0; x < img.Cols(); x++ {
			v := img.GetVecbAt(y, x) // B, G, R
			if v[1] > 200 && v[0] < 90 && v[2] < 90 {
				n++
			}
		}
	}
	return n
}

// TestDashboardWithRealAgent runs the fleet (no API tokens: the page must work without one)
// and the real agent on PETS09 over RTSP, and drives the dashboard in headless Chromium: the
// event of a line crossing shows as a card with its thumbnail within seconds; the snapshot
// the fleet serves has the masked corner black; the current view of the camera comes back
// with boxes drawn. Screenshots go to .artifacts/.
func TestDashboardWithRealAgent(t *testing.T) {
	rtsp := startRTSP(t, "", "", petsClip)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	core, err := fleet.New(fleet.Config{MQTTListen: fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), HTTPListen: "127.0.0.1:0",
		OTA: fleet.OTAConfig{SigningKey: priv}, Logger: quietLog()})
	if err != nil {
		t.Fatalf("fleet: %v", err)
	}
	t.Cleanup(func() { core.Close() })
	base := "http://" + core.HTTPAddr()
	cfg := baseConfig(t, "tcp://"+core.BrokerAddr(), petsCamera(rtsp.URL("pedestrians_pets09_s2l1_vtest")))
	cfg.OTA.FleetKey = base64.StdEncoding.EncodeToString(pub)
	cfg.OTA.StoreDir = t.TempDir()
	startAgent(t, cfg)

	page := testharness.StartChromium(t)
	page.Navigate(base + "/")
	var login bool
	waitFor(t, 20*time.Second, "the dashboard to load", func() bool {
		var st struct{ Ready, Login bool }
		page.Eval(`(() => ({ready: !!document.getElementById('cards'), login: !!document.getElementById('login') && !document.getElementById('login').hidden}))()`, &st)
		login = st.Login
		return st.Ready
	})

	// The first line crossing, as the fleet stores it.
	var crossed time.Time
	var events []string
	waitFor(t, 120*time.Second, "a line crossing at the fleet", func() bool {
		for _, r := range fleetRecords(t, base, "kind=alert&rule=centre-line&limit=5") {
			var a wire.Alert
			if json.Unmarshal(r.Payload, &a) == nil && len(a.EventIDs) > 0 {
				events = a.EventIDs
				crossed = time.Now()
				return true
			}
		}
		return false
	})
	if login {
		t.Error("the page asks for a token while the API needs none")
	}
	idsJS, _ := json.Marshal(events)
	var card string
	waitFor(t, 30*time.Second, "the crossing's card with its rule and thumbnail", func() bool {
		page.Eval(`(() => { const ids = `+string(idsJS)+`;
			const li = [...document.querySelectorAll('#cards li.card')].find(li => ids.includes(li.dataset.event) &&
				li.querySelector('img.thumb-img') && li.querySelector('img.thumb-img').naturalWidth > 0 &&
				li.innerText.includes('rule centre-line'));
			return li ? li.dataset.event : ''; })()`, &card)
		return card != ""
	})
	took := time.Since(crossed)
	t.Logf("card with thumbnail %.1f s after the crossing reached the fleet's API", took.Seconds())
	if took > 15*time.Second {
		t.Errorf("the card took %s", took)
	}
	var text string
	page.Eval(`document.querySelector('#cards li.card[data-event="`+card+`"]').innerText`, &text)
	for _, want := range []string{"person", "pets", "rule centre-line", "→"} {
		if !strings.Contains(text, want) {
			t.Errorf("card %q lacks %q", text, want)
		}
	}
	// Charts and filters.
	var charts int
	page.Eval(`document.querySelectorAll('#charts svg.chart[aria-label*="pets"]').length`, &charts)
	if charts != 1 {
		t.Errorf("%d charts for the camera", charts)
	}
	page.Screenshot("dashboard.png")

	// The snapshot as the fleet serves it: a JPEG with its header, the masked corner black.
	code, ct, snap := httpGet(t, base+"/api/v1/events/"+card+"/snapshot.jpg", "Content-Type")
	if code != 200 || ct != "image/jpeg" {
		t.Fatalf("snapshot: %d %s", code, ct)
	}
	if p, err := wire.DecodePicture(snap, 0); err != nil || p.EventID != card || p.DeviceID != "test-edge" {
		t.Errorf("snapshot header %+v %v", p, err)
	}
	checkMaskedCorner(t, "fleet snapshot", snap)

	// Clicking the card opens the full picture.
	page.Eval(`document.querySelector('#cards li.card[data-event="`+card+`"] button.thumb').click()`, nil)
	waitFor(t, 10*time.Second, "the full picture", func() bool {
		var w int
		page.Eval(`(() => { const i = document.getElementById('viewer-img'); return i ? i.naturalWidth : 0; })()`, &w)
		return w > 0
	})
	page.Eval(`document.getElementById('viewer').close()`, nil)

	// The current view: the page sends the command; the frame comes back with boxes and ids.
	page.Eval(`document.querySelector('button.live-view[data-camera="pets"]').click()`, nil)
	waitFor(t, 20*time.Second, "the current view in the page", func() bool {
		var w int
		page.Eval(`(() => { const i = document.getElementById('viewer-img'); return i ? i.naturalWidth : 0; })()`, &w)
		return w > 0
	})
	page.Screenshot("current-view.png")
	code, cmdID, live := httpGet(t, base+"/api/v1/devices/test-edge/cameras/pets/live.jpg", "X-Vigil-Cmd-Id")
	if code != 200 || !strings.HasPrefix(cmdID, "live-") {
		t.Fatalf("live.jpg: %d, cmd %q", code, cmdID)
	}
	if p, err := wire.DecodePicture(live, 0); err != nil || p.Schema != wire.SchemaLiveView || p.CmdID != cmdID {
		t.Errorf("live view header %+v %v", p, err)
	}
	if n := greenPixels(t, live); n < 100 {
		t.Errorf("the current view has %d box pixels: no boxes drawn", n)
	}
	checkMaskedCorner(t, "current view", live)
	// Two requests at once: the second is refused (rate limit per camera).
	post := func() int {
		resp, err := http.Post(base+"/api/v1/devices/test-edge/cameras/pets/live", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, 10*time.Second, "a live view accepted once the page's has aged", func() bool { return post() == http.StatusAccepted })
	if code := post(); code != http.StatusTooManyRequests {
		t.Errorf("a second live view at once: %d, want 429", code)
	}

	// Filtering by the rule keeps only events that crossed the line.
	page.Eval(`(() => { document.getElementById('f-rule').value = 'centre-line';
		document.getElementById('filters').requestSubmit(); })()`, nil)
	waitFor(t, 10*time.Second, "cards filtered by rule", func() bool {
		var st struct{ N, Other int }
		page.Eval(`(() => { const cs = [...document.querySelectorAll('#cards li.card')];
			return {n: cs.length, other: cs.filter(li => !li.innerText.includes('rule centre-line')).length}; })()`, &st)
		return st.N > 0 && st.Other == 0
	})
	page.Screenshot("filtered.png")
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
