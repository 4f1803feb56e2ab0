package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, path string, opts Options) *Outbox {
	t.Helper()
	o, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		o.mu.Lock()
		closed := o.closed
		o.mu.Unlock()
		if !closed {
			if err := o.Check(); err != nil {
				t.Errorf("consistency check at the end: %v", err)
			}
		}
		o.Close()
	})
	return o
}

func msg(c Class, size int) Message {
	return Message{Class: c, Topic: "vigil/v1/d/" + c.String(), CapturedAt: time.UnixMilli(1_763_800_000_000),
		Build: func(seq uint64) ([]byte, error) {
			b := []byte(fmt.Sprintf(`{"seq":%d,"pad":"`, seq))
			b = append(b, bytes.Repeat([]byte("x"), max(size-len(b)-2, 0))...)
			return append(b, `"}`...), nil
		}}
}

func appendN(t *testing.T, o *Outbox, c Class, n, size int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := 0; i < n; i++ {
		seq, err := o.Append(context.Background(), msg(c, size))
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

func TestRecordRoundTripAndCorruption(t *testing.T) {
	r := Record{Class: ClassAlert, CapturedAt: time.UnixMilli(1234567), StoredAt: time.UnixMilli(7654321), Topic: "a/b", Payload: []byte(`{"x":1}`)}
	b, err := r.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil || got.Topic != r.Topic || !bytes.Equal(got.Payload, r.Payload) || got.Class != r.Class ||
		!got.CapturedAt.Equal(r.CapturedAt) || !got.StoredAt.Equal(r.StoredAt) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":     {nil, ErrShortRecord},
		"truncated": {b[:len(b)-3], ErrChecksum},
		"version":   {append([]byte{9}, b[1:]...), ErrBadVersion},
		"flipped":   {func() []byte { c := bytes.Clone(b); c[25] ^= 1; return c }(), ErrChecksum},
	} {
		if _, err := DecodeRecord(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	r := Record{Class: ClassEvent, Topic: "vigil/v1/x/events/c", Payload: []byte(`{"a":1}`)}
	b, _ := r.Encode(nil)
	f.Add(b)
	f.Add(b[:10])
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := DecodeRecord(in)
		if err != nil {
			return
		}
		out, err := r.Encode(nil)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("decode→encode changed the bytes")
		}
	})
}

func TestAppendReadAckAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	seqs := appendN(t, o, ClassDetections, 10, 100)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs = %v, want 1..10", seqs)
		}
	}
	es, err := o.Read(0, 0, 100)
	if err != nil || len(es) != 10 {
		t.Fatalf("read %d, %v", len(es), err)
	}
	if !bytes.HasPrefix(es[3].Payload, []byte(`{"seq":4,`)) || es[3].Seq != 4 {
		t.Fatalf("entry 4 = %d %s", es[3].Seq, es[3].Payload)
	}
	if es, _ := o.Read(7, 10, 100); len(es) != 2 || es[0].Seq != 8 {
		t.Fatalf("Read(7,10) = %v", es)
	}
	o.Ack(1, 2, 3, 3, 99)
	appendN(t, o, ClassAlert, 1, 50) // forces a commit that carries the acks
	if st := o.Stats(); st.Messages != 8 || st.ByClass[ClassDetections] != 7 || st.ByClass[ClassAlert] != 1 {
		t.Fatalf("stats after ack: %+v", st)
	}
	epoch := o.Epoch()
	if err := o.Check(); err != nil {
		t.Fatal(err)
	}
	o.Close()

	o2 := open(t, path, Options{})
	if o2.Epoch() != epoch || o2.NextSeq() != 12 {
		t.Fatalf("after reopen: epoch %s (was %s), next %d (want 12)", o2.Epoch(), epoch, o2.NextSeq())
	}
	if st := o2.Stats(); st.Messages != 8 {
		t.Fatalf("after reopen: %+v", st)
	}
	// Acknowledging everything leaves the seq counter where it was.
	var all []uint64
	es, _ = o2.Read(0, 0, 100)
	for _, e := range es {
		all = append(all, e.Seq)
	}
	o2.Ack(all...)
	if s := appendN(t, o2, ClassDetections, 1, 10); s[0] != 12 {
		t.Fatalf("seq after emptying = %d, want 12", s[0])
	}
}

func TestGroupCommitKeepsSeqsContiguous(t *testing.T) {
	o := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	const producers, each = 16, 50
	var wg sync.WaitGroup
	seen := make(chan uint64, producers*each)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				s, err := o.Append(context.Background(), msg(ClassDetections, 200))
				if err != nil {
					t.Error(err)
					return
				}
				seen <- s
			}
		}()
	}
	wg.Wait()
	close(seen)
	got := map[uint64]bool{}
	for s := range seen {
		got[s] = true
	}
	for s := uint64(1); s <= producers*each; s++ {
		if !got[s] {
			t.Fatalf("seq %d missing", s)
		}
	}
	es, _ := o.Read(0, 0, producers*each+1)
	for i, e := range es {
		if e.Seq != uint64(i+1) || !bytes.HasPrefix(e.Payload, []byte(`{"seq":`+strconv.Itoa(i+1)+`,`)) {
			t.Fatalf("entry %d: seq %d payload %.20s", i, e.Seq, e.Payload)
		}
	}
	if st := o.Stats(); st.Committed >= producers*each {
		t.Fatalf("%d commits for %d appends: no grouping", st.Committed, producers*each)
	}
}

func TestBoundsDropLowestPriorityFirst(t *testing.T) {
	var mu sync.Mutex
	drops := map[string]int{}
	opts := Options{MaxBytes: 20_000, HardMaxBytes: 30_000, OnDrop: func(c Class, reason string) {
		mu.Lock()
		drops[c.String()+"/"+reason]++
		mu.Unlock()
	}}
	o := open(t, filepath.Join(t.TempDir(), "o.db"), opts)
	appendN(t, o, ClassAlert, 20, 500)       // ~10 KB of alerts
	appendN(t, o, ClassEvent, 10, 500)       // ~5 KB of event new/end
	appendN(t, o, ClassDetections, 100, 500) // 50 KB of detections: most must go
	appendN(t, o, ClassEventUpdate, 5, 500)
	st := o.Stats()
	if st.Bytes > opts.MaxBytes {
		t.Fatalf("bytes %d over MaxBytes %d", st.Bytes, opts.MaxBytes)
	}
	if st.ByClass[ClassAlert] != 20 || st.ByClass[ClassEvent] != 10 {
		t.Fatalf("alerts or events dropped below the hard cap: %+v", st.ByClass)
	}
	mu.Lock()
	if drops["detections/full"] == 0 || drops["alert/hard_cap"] != 0 || drops["event/hard_cap"] != 0 {
		t.Fatalf("drops = %v", drops)
	}
	mu.Unlock()
	// The detections that remain are the newest ones.
	es, _ := o.Read(0, 0, 1000)
	var det []uint64
	for _, e := range es {
		if e.Class == ClassDetections {
			det = append(det, e.Seq)
		}
	}
	if len(det) > 0 && det[len(det)-1] != 130 {
		t.Fatalf("newest detection kept is %d, want 130", det[len(det)-1])
	}

	// Only alerts and events left to drop: past the hard cap, events go before alerts.
	appendN(t, o, ClassAlert, 60, 500)
	st = o.Stats()
	if st.Bytes > opts.HardMaxBytes {
		t.Fatalf("bytes %d over the hard cap", st.Bytes)
	}
	mu.Lock()
	defer mu.Unlock()
	if drops["event/hard_cap"] != 10 || drops["alert/hard_cap"] == 0 {
		t.Fatalf("past the hard cap: drops = %v, ByClass %v", drops, st.ByClass)
	}
	if st.ByClass[ClassDetections] != 0 || st.ByClass[ClassEventUpdate] != 0 {
		t.Fatalf("droppable messages survived the hard cap: %v", st.ByClass)
	}
}

func TestExpiry(t *testing.T) {
	now := time.Unix(1_763_800_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	expired := 0
	o := open(t, filepath.Join(t.TempDir(), "o.db"), Options{MaxAge: time.Hour, Now: clock,
		OnDrop: func(_ Class, r string) {
			if r == ReasonExpired {
				expired++
			}
		}})
	appendN(t, o, ClassAlert, 3, 100)
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	appendN(t, o, ClassDetections, 1, 100)
	if st := o.Stats(); st.Messages != 1 || expired != 3 {
		t.Fatalf("after expiry: %+v, expired %d", st, expired)
	}
	if age := now.Sub(o.Stats().OldestAt); age > time.Second {
		t.Fatalf("oldest is %v old, want the fresh one", age)
	}
}

func TestBuildErrorStoresNothing(t *testing.T) {
	o := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	_, err := o.Append(context.Background(), Message{Class: ClassAlert, Build: func(uint64) ([]byte, error) { return nil, errors.New("boom") }})
	if err == nil {
		t.Fatal("build error not returned")
	}
	if s := appendN(t, o, ClassAlert, 1, 10); s[0] != 1 {
		t.Fatalf("a failed build used up seq: next is %d", s[0])
	}
	o.Close()
	if _, err := o.Append(context.Background(), msg(ClassAlert, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// metaTxID reads a bbolt meta page's transaction id (page header 16 bytes, then magic,
// version, page size, flags, root bucket (16), freelist, high water mark, txid).
func metaTxID(page []byte) uint64 {
	return binary.LittleEndian.Uint64(page[16+4+4+4+4+16+8+8:])
}

// Snapshots (the pictures of events) are the lowest priority: at the soft cap they go before
// detections, and never cost an event or an alert.
func TestSnapshotsDropFirst(t *testing.T) {
	var mu sync.Mutex
	drops := map[string]int{}
	opts := Options{MaxBytes: 30_000, HardMaxBytes: 40_000, OnDrop: func(c Class, reason string) {
		mu.Lock()
		drops[c.String()+"/"+reason]++
		mu.Unlock()
	}}
	o := open(t, filepath.Join(t.TempDir(), "o.db"), opts)
	appendN(t, o, ClassEvent, 10, 500)      // 5 KB of events
	appendN(t, o, ClassDetections, 20, 500) // 10 KB of detections
	appendN(t, o, ClassSnapshot, 5, 2_000)  // 10 KB of pictures: fits
	appendN(t, o, ClassAlert, 4, 500)       // 2 KB
	appendN(t, o, ClassSnapshot, 3, 2_000)  // 6 KB more: past the cap, pictures go first
	st := o.Stats()
	mu.Lock()
	defer mu.Unlock()
	if st.Bytes > opts.MaxBytes {
		t.Fatalf("bytes %d over MaxBytes", st.Bytes)
	}
	if drops["snapshot/full"] == 0 || drops["detections/full"] != 0 {
		t.Fatalf("drops = %v, want snapshots only", drops)
	}
	if st.ByClass[ClassEvent] != 10 || st.ByClass[ClassAlert] != 4 || st.ByClass[ClassDetections] != 20 {
		t.Fatalf("by class %v", st.ByClass)
	}
	if err := o.Check(); err != nil {
		t.Fatal(err)
	}
}
