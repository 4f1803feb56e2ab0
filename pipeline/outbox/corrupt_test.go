package outbox

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// filledFile makes an outbox file holding n (a multiple of 20) detections messages and returns its path and epoch.
func filledFile(t *testing.T, n int) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup // concurrent appends: group commits keep this quick
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 20 {
				if _, err := o.Append(context.Background(), msg(ClassDetections, 300+w)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	epoch := o.Epoch()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	return path, epoch
}

// scramble overwrites pages of the file with random bytes: one in three of the data pages
// (first >= 2), or both meta pages (meta true).
func scramble(t *testing.T, path string, meta bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	r := rand.New(rand.NewPCG(1, 2))
	for p := 0; p*page < len(b); p++ {
		if meta != (p < 2) || (!meta && r.IntN(3) != 0) {
			continue
		}
		for i := p * page; i < (p+1)*page && i < len(b); i++ {
			b[i] = byte(r.IntN(256))
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptFileIsMovedAsideAndANewOneStarts: scrambled data pages (bbolt panicked on its own
// goroutine while opening them, killing the process) and scrambled meta pages ("invalid
// database") are both reported as ErrCorrupt; with MoveAsideCorrupt the file is kept beside
// under a new name and a new outbox, with a new epoch, takes messages.
func TestCorruptFileIsMovedAsideAndANewOneStarts(t *testing.T) {
	for _, meta := range []bool{false, true} {
		name := map[bool]string{false: "data pages", true: "meta pages"}[meta]
		t.Run(name, func(t *testing.T) {
			path, epoch := filledFile(t, 2000)
			scramble(t, path, meta)
			if o, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
				if o != nil {
					o.Close()
				}
				t.Fatalf("Open without MoveAsideCorrupt: %v, want ErrCorrupt", err)
			}
			o := open(t, path, Options{MoveAsideCorrupt: true})
			rec := o.Recovered()
			if rec == nil || rec.Reason == "" {
				t.Fatalf("Recovered() = %+v, want the recovery", rec)
			}
			if _, err := os.Stat(rec.MovedTo); err != nil || filepath.Dir(rec.MovedTo) != filepath.Dir(path) {
				t.Fatalf("the corrupt file was not kept beside (%q): %v", rec.MovedTo, err)
			}
			if o.Epoch() == epoch || o.Stats().Messages != 0 || o.NextSeq() != 1 {
				t.Fatalf("new outbox: epoch %s (old %s), %d messages, next seq %d", o.Epoch(), epoch, o.Stats().Messages, o.NextSeq())
			}
			appendN(t, o, ClassAlert, 3, 100)
			t.Logf("%s: %s", name, rec.Reason)
		})
	}
}

// TestBadRecordIsSkippedAndDeleted: one record failing its checksum no longer makes Read fail
// (which stopped all delivery): it is skipped, counted once, reported, and deleted; the others
// are read in order.
func TestBadRecordIsSkippedAndDeleted(t *testing.T) {
	path, _ := filledFile(t, 20)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		v := append([]byte(nil), b.Get(seqKey(5))...)
		v[len(v)/2] ^= 0xff // a flipped byte in the payload
		return b.Put(seqKey(5), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	var reported []uint64
	o := open(t, path, Options{OnCorrupt: func(seq uint64, err error) {
		if !errors.Is(err, ErrChecksum) {
			t.Errorf("OnCorrupt(%d, %v), want ErrChecksum", seq, err)
		}
		reported = append(reported, seq)
	}})
	for range 2 { // read twice: counted once
		es, err := o.Read(0, 0, 100)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(es) != 19 || es[3].Seq != 4 || es[4].Seq != 6 {
			t.Fatalf("read %d messages (want 19, seq 5 skipped)", len(es))
		}
	}
	if st := o.Stats(); st.Corrupt != 1 || len(reported) != 1 || reported[0] != 5 {
		t.Fatalf("corrupt count %d, reported %v; want 1, [5]", st.Corrupt, reported)
	}
	appendN(t, o, ClassAlert, 1, 100) // a commit: the bad record goes
	if err := o.Check(); err != nil {
		t.Fatalf("check after the bad record was deleted: %v", err)
	}
	if st := o.Stats(); st.Messages != 20 {
		t.Fatalf("%d messages stored, want 20 (19 + 1)", st.Messages)
	}
}
