package outbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fileLimit is the child's RLIMIT_FSIZE: no file it writes may grow past it, as on a full disk.
const fileLimit = 4 << 20

// TestFullDisk runs TestFullDiskChild in a child process whose files may not grow past
// fileLimit (RLIMIT_FSIZE): the outbox file hits it long before MaxBytes, as when something
// else fills the disk.
func TestFullDisk(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "OUTBOX_FULLDISK_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFullDiskChild") {
		t.Fatalf("the outbox on a full disk: %v", err)
	}
}

// TestFullDiskChild: on a full disk the outbox evicts the oldest low-priority messages to store
// new ones, alerts always fit (the reserve), and acknowledgements are deleted even when the
// append they were committed with fails. Before: eviction only at MaxBytes, so alerts were
// refused while detections were kept, and acknowledgements rolled back with the appends.
func TestFullDiskChild(t *testing.T) {
	dir := os.Getenv("OUTBOX_FULLDISK_DIR")
	if dir == "" {
		t.Skip("run by TestFullDisk in a child process")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: fileLimit, Max: fileLimit}); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	var mu sync.Mutex
	drops := map[string]int{}
	o, err := Open(filepath.Join(dir, "outbox.db"), Options{MaxBytes: 1 << 30, OnDrop: func(c Class, reason string) {
		mu.Lock()
		drops[c.String()+"/"+reason]++
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()

	// Twice the limit in detections, from 8 goroutines.
	var wg sync.WaitGroup
	var failed, stored int
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 * fileLimit / 1500 / 8 {
				_, err := o.Append(context.Background(), msg(ClassDetections, 1500))
				mu.Lock()
				if err != nil {
					failed++
				} else {
					stored++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("detections: %d stored, %d refused; drops %v; %d messages, %d bytes kept", stored, failed, drops, o.Stats().Messages, o.Stats().Bytes)
	if drops["detections/"+ReasonDiskFull] == 0 {
		t.Errorf("no detections evicted for want of disk: %v", drops)
	}

	// Alerts always fit.
	for i := range 50 {
		if _, err := o.Append(context.Background(), msg(ClassAlert, 1500)); err != nil {
			t.Fatalf("alert %d refused on a full disk: %v", i, err)
		}
	}

	// An acknowledgement committed with an append is deleted even if the append fails.
	es, err := o.Read(0, 0, 20)
	if err != nil || len(es) < 20 {
		t.Fatalf("read: %d messages, %v", len(es), err)
	}
	var acked []uint64
	for _, e := range es[:20] {
		acked = append(acked, e.Seq)
	}
	o.Ack(acked...)
	for range 20 {
		_, _ = o.Append(context.Background(), msg(ClassDetections, 20000))
	}
	rest, err := o.Read(0, acked[len(acked)-1]+1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rest {
		for _, a := range acked {
			if e.Seq == a {
				t.Fatalf("acknowledged message %d is still stored", a)
			}
		}
	}
	if err := o.Check(); err != nil {
		t.Fatalf("check: %v", err)
	}
}
