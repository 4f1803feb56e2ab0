package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// serveHealthy runs serve with args until it answers /healthz with 200 (which needs its
// subscriber connected to the broker), and returns the body of /healthz and serve's logs so
// far; serve is stopped when the test ends.
func serveHealthy(t *testing.T, args ...string) (health string, logs *testharness.SyncBuffer) {
	h, logs, _ := serveAPIHealthy(t, args...)
	return h, logs
}

// serveAPIHealthy is serveHealthy that also returns the API's base URL.
func serveAPIHealthy(t *testing.T, args ...string) (health string, logs *testharness.SyncBuffer, base string) {
	t.Helper()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	logs = &testharness.SyncBuffer{}
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, append([]string{"serve", "--http", httpAddr, "--log-level", "debug"}, args...), logs, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b), logs, "http://" + httpAddr
			}
			health = string(b)
		}
		select {
		case err := <-served:
			t.Fatalf("serve ended early: %v; logs:\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not healthy after 15s: %v %s; logs:\n%s", err, health, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With an external broker that wants a password, the fleet's clients send the credentials
// given in the URL, a file or the environment, and neither /healthz (public even with API
// tokens) nor the logs ever show the password.
func TestExternalBrokerCredentials(t *testing.T) {
	const user, secret = "fleet", "s3cret-broker-pw"
	pw := testharness.PasswordFile(t, map[string]string{user: secret})
	m := testharness.StartMosquitto(t, testharness.MosquittoOptions{Extra: []string{"allow_anonymous false", "password_file " + pw}})
	pwFile := filepath.Join(t.TempDir(), "broker-password")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(name, health string, logs *testharness.SyncBuffer) {
		t.Helper()
		for what, text := range map[string]string{"/healthz": health, "logs": logs.String()} {
			if strings.Contains(text, secret) {
				t.Errorf("%s: %s shows the broker password:\n%s", name, what, text)
			}
		}
		if !strings.Contains(health, "127.0.0.1:"+fmt.Sprint(m.Port)) {
			t.Errorf("%s: /healthz does not name the broker: %s", name, health)
		}
	}
	t.Run("url", func(t *testing.T) {
		h, logs := serveHealthy(t, "--broker", fmt.Sprintf("tcp://%s:%s@%s", user, secret, m.Addr), "--client-id", "creds-url")
		check("url", h, logs)
	})
	t.Run("file", func(t *testing.T) {
		h, logs := serveHealthy(t, "--broker", m.URL, "--broker-username", user, "--broker-password-file", pwFile, "--client-id", "creds-file")
		check("file", h, logs)
	})
	t.Run("env", func(t *testing.T) {
		t.Setenv(envBrokerPassword, secret)
		h, logs := serveHealthy(t, "--broker", m.URL, "--broker-username", user, "--client-id", "creds-env")
		check("env", h, logs)
	})
	// Mistakes are named, without the password.
	for _, args := range [][]string{
		{"--broker", fmt.Sprintf("tcp://%s:%s@%s", user, secret, m.Addr), "--broker-password-file", pwFile},
		{"--broker-username", user},
		{"--broker", fmt.Sprintf("tcp://%s:%s@%s:bad", user, secret, m.Addr)},
	} {
		var out testharness.SyncBuffer
		err := run(context.Background(), append([]string{"serve", "--http", "127.0.0.1:0"}, args...), &out, &out)
		if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(out.String(), secret) {
			t.Errorf("serve %q: %v\n%s", args, err, out.String())
		}
	}
}
