package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// cancelOnWrite cancels a context once anything is written to it (the URL lines).
type cancelOnWrite struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel()
	return w.buf.Write(p)
}

func TestServeUntilCancelled(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOnWrite{cancel: cancel}
	err := run(ctx, []string{"serve", "--addr", addr, "--cache", t.TempDir(), data.MustPath(t, "videos/mot15_tud_campus.mp4")}, out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := "mot15_tud_campus\trtsp://" + addr + "/mot15_tud_campus\n"; out.buf.String() != want {
		t.Fatalf("printed %q, want %q", out.buf.String(), want)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"play"}, {"serve"}, {"serve", "--bogus"}, {"serve", "/no/such/video.mp4"}} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run(%q) succeeded", args)
		} else if len(args) == 2 && strings.HasPrefix(args[1], "/") && !strings.Contains(err.Error(), args[1]) {
			t.Errorf("error %q does not name the file", err)
		}
	}
}
