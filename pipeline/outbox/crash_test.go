package outbox

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash child: appends from four goroutines and prints "stored SEQ" after each Append
// that returned nil, until it is killed.
func TestMain(m *testing.M) {
	if path := os.Getenv("VIGIL_OUTBOX_CRASH_CHILD"); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

func crashChild(path string) {
	o, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				seq, err := o.Append(context.Background(), msg(Class(i%int(NumClasses)), 300))
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "stored %d\n", seq)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestSurvivesKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	stored := map[uint64]bool{}
	var maxSeq uint64
	const kills = 20
	for i := 0; i < kills; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "VIGIL_OUTBOX_CRASH_CHILD="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it write for a while (at least one message), then kill it mid-flight.
		deadline := time.After(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		got := 0
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				got++
				seq, _ := strconv.ParseUint(strings.TrimPrefix(l, "stored "), 10, 64)
				stored[seq] = true
				maxSeq = max(maxSeq, seq)
			case <-deadline:
				if got > 0 {
					break read
				}
				deadline = time.After(100 * time.Millisecond)
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		for l := range lines { // what it printed before dying was reported stored too
			seq, _ := strconv.ParseUint(strings.TrimPrefix(l, "stored "), 10, 64)
			stored[seq] = true
			maxSeq = max(maxSeq, seq)
		}
		_ = cmd.Wait()
		if strings.Contains(stderr.String(), "open:") || strings.Contains(stderr.String(), "append:") {
			t.Fatalf("run %d: child failed: %s", i, stderr.String())
		}
		if err := CheckFile(path); err != nil {
			t.Fatalf("after kill %d: consistency check: %v", i+1, err)
		}
	}
	o := open(t, path, Options{})
	es, err := o.Read(0, 0, len(stored)*2+100)
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	for _, e := range es {
		have[e.Seq] = true
	}
	lost := 0
	for s := range stored {
		if !have[s] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d messages reported stored were lost across %d kill -9", lost, len(stored), kills)
	}
	if o.NextSeq() <= maxSeq {
		t.Fatalf("next seq %d would reuse stored seq %d", o.NextSeq(), maxSeq)
	}
	t.Logf("%d kills, %d messages reported stored, all present; %d in the file", kills, len(stored), len(es))
}

// TestPowerLossLosesAtMostTheUnstoredTail tears the newest bbolt meta page and cuts the file
// back to its size before the last commit: what a power cut in the middle of that commit
// leaves. The outbox must reopen, pass its checks, and hold everything committed before.
func TestPowerLossLosesAtMostTheUnstoredTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := appendN(t, o, ClassAlert, 50, 400)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); before = append(before, appendN(t, o, ClassDetections, 20, 4000)...) }()
		wg.Wait()
	}
	st, _ := os.Stat(path)
	sizeBefore := st.Size()
	// The last commit, a single transaction: one big message that also grows the file.
	commits := o.Stats().Committed
	appendN(t, o, ClassDetections, 1, 3<<20)
	if o.Stats().Committed != commits+1 {
		t.Fatalf("the last append took %d commits", o.Stats().Committed-commits)
	}
	o.Close()

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(os.Getpagesize())
	pages := make([][]byte, 2)
	for i := range pages {
		pages[i] = make([]byte, 256)
		if _, err := f.ReadAt(pages[i], int64(i)*ps); err != nil {
			t.Fatal(err)
		}
	}
	newest := 0
	if metaTxID(pages[1]) > metaTxID(pages[0]) {
		newest = 1
	}
	t.Logf("meta txids: %d %d, tearing page %d; size before %d", metaTxID(pages[0]), metaTxID(pages[1]), newest, sizeBefore)
	// A torn write: the newest meta page half written.
	if _, err := f.WriteAt(make([]byte, 48), int64(newest)*ps+40); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(max(sizeBefore, 4*ps)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if err := CheckFile(path); err != nil {
		t.Fatalf("consistency check after the power cut: %v", err)
	}
	o2 := open(t, path, Options{})
	es, err := o2.Read(0, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	for _, e := range es {
		have[e.Seq] = true
	}
	for _, s := range before {
		if !have[s] {
			t.Fatalf("seq %d, committed before the cut, is gone", s)
		}
	}
	// It works on: appends continue after the last seq it holds.
	next := appendN(t, o2, ClassAlert, 1, 10)[0]
	if last := es[len(es)-1].Seq; next <= last {
		t.Fatalf("new seq %d <= last stored %d", next, last)
	}
}
