package testharness

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ChromiumPath is where build/deps.sh installs Debian's chromium.
const ChromiumPath = "/usr/bin/chromium"

// Page is one page of a headless Chromium started by a test, driven over the DevTools
// protocol (a minimal client: commands and their answers; events are skipped).
type Page struct {
	t    testing.TB
	ws   *websocket.Conn
	next int
}

// StartChromium starts headless Chromium (fresh profile, 1280×900, background networking
// off) and returns its first page; the test's cleanup stops it and its helpers.
func StartChromium(t testing.TB) *Page {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("%s not found: run `make deps` (build/deps.sh installs Debian's chromium): %v", ChromiumPath, err)
	}
	profile := t.TempDir()
	cmd := exec.Command(ChromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=0", "--window-size=1280,900", "about:blank")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers go with it
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	var port string
	deadline := time.Now().Add(30 * time.Second)
	for port == "" {
		b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if err == nil && strings.Contains(string(b), "\n") {
			port = strings.SplitN(string(b), "\n", 2)[0]
			break
		}
		select {
		case <-exited:
			t.Fatalf("chromium exited: %s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("chromium wrote no DevToolsActivePort in 30s")
		}
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	var targets []struct{ Type, WebSocketDebuggerURL string }
	err = json.NewDecoder(resp.Body).Decode(&targets)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			ws, _, err := websocket.DefaultDialer.Dial(tg.WebSocketDebuggerURL, nil)
			if err != nil {
				t.Fatalf("devtools websocket: %v", err)
			}
			t.Cleanup(func() { ws.Close() })
			return &Page{t: t, ws: ws}
		}
	}
	t.Fatalf("no page target in %+v", targets)
	return nil
}

// Call sends a DevTools command and decodes its result into result (when not nil).
func (p *Page) Call(method string, params any, result any) {
	p.t.Helper()
	p.next++
	id := p.next
	if err := p.ws.WriteJSON(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		p.t.Fatalf("cdp %s: %v", method, err)
	}
	_ = p.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := p.ws.ReadJSON(&msg); err != nil {
			p.t.Fatalf("cdp %s: read: %v", method, err)
		}
		if msg.ID != id {
			continue // an event
		}
		if msg.Error != nil {
			p.t.Fatalf("cdp %s: %s", method, msg.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(msg.Result, result); err != nil {
				p.t.Fatalf("cdp %s: decode: %v", method, err)
			}
		}
		return
	}
}

// Navigate opens url.
func (p *Page) Navigate(url string) {
	p.t.Helper()
	p.Call("Page.navigate", map[string]any{"url": url}, nil)
}

// Eval evaluates a JavaScript expression (awaiting a promise) and decodes its JSON-able value.
func (p *Page) Eval(expr string, v any) {
	p.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails any `json:"exceptionDetails"`
	}
	p.Call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if res.ExceptionDetails != nil {
		p.t.Fatalf("eval %s: %v", expr, res.ExceptionDetails)
	}
	if v == nil {
		return
	}
	if err := json.Unmarshal(res.Result.Value, v); err != nil {
		p.t.Fatalf("eval %s: %v", expr, err)
	}
}

// Screenshot captures the page as PNG, full length, and writes it to ArtifactPath(name);
// it returns the PNG.
func (p *Page) Screenshot(name string) []byte {
	p.t.Helper()
	var shot struct{ Data string }
	p.Call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot)
	b, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		p.t.Fatal(err)
	}
	path := ArtifactPath(p.t, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
	return b
}

// ArtifactPath is where a test keeps a file for people to look at after the run (screenshots):
// .artifacts/<test name>/<name> under the repository root, a folder git ignores. A later run
// overwrites the files of the same names.
func ArtifactPath(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(), ".artifacts", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}
