package web_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// The page works without a token when the API needs none (the demo's fleet), and asks for one
// when it does.
func TestDashboardTokenNeededOnlyWhenTheAPIWantsOne(t *testing.T) {
	open, err := fleet.New(fleet.Config{MQTTListen: fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), HTTPListen: "127.0.0.1:0",
		ClientID: "fleet-tokenless-test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { open.Close() })
	guarded := startCore(t) // with tokens
	dev := connectDevice(t, guarded)
	dev.publish("vigil/v1/edge-07/status", true, map[string]any{"schema": wire.SchemaStatus, "state": "online", "version": "v0.9.1", "cameras": []string{"gate"}})

	c := testharness.StartChromium(t)
	c.Call("Page.navigate", map[string]any{"url": "http://" + open.HTTPAddr() + "/"}, nil)
	st := waitPage(t, c, "the open fleet's dashboard, live", func(s pageState) bool { return s.Live == "stream: live" })
	if st.Login {
		t.Error("the login form shows although the API needs no token")
	}
	var logout bool
	c.Eval(`!document.getElementById('logout').hidden`, &logout)
	if logout {
		t.Error("a 'forget token' button without a token")
	}

	c.Call("Page.navigate", map[string]any{"url": "http://" + guarded.HTTPAddr() + "/"}, nil)
	st = waitPage(t, c, "the login form", func(s pageState) bool { return s.Login })
	if len(st.Devices) != 0 {
		t.Errorf("devices shown without a token: %q", st.Devices)
	}
	// With the read-only token the devices show, and the current view says it needs an admin token.
	c.Call("Page.navigate", map[string]any{"url": "http://" + guarded.HTTPAddr() + "/?again#token=" + readToken}, nil)
	waitPage(t, c, "the device", func(s pageState) bool { return anyContains(s.Devices, "edge-07") && !s.Login })
	c.Eval(`(() => { document.querySelector('button.live-view[data-camera="gate"]').click(); return true; })()`, new(bool))
	deadline := 0
	for ; deadline < 100; deadline++ {
		var msg string
		c.Eval(`document.getElementById('viewer-msg').textContent`, &msg)
		if msg == "The current view sends a command to the device: it needs an admin token." {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if deadline == 100 {
		t.Error("the current view with a read-only token did not say it needs an admin token")
	}
}
