package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Defaults of [Options].
const (
	DefaultMaxAge     = 7 * 24 * time.Hour
	DefaultMaxBytes   = 1 << 30 // 1 GiB of keys and values
	DefaultSweepEvery = time.Minute
)

// FileName is the store's file in the fleet's data folder.
const FileName = "events.db"

// sweepBatch bounds the records one sweep transaction deletes, so that writers wait little.
const sweepBatch = 1000

var (
	bucketRecords = []byte("by_received") // key: received_at ms (8 bytes BE) + ID (8 bytes BE)
	// bucketOld is the records bucket of files written before records were ordered by
	// received_at (key: captured_at ms + ID); Open moves its records to bucketRecords.
	bucketOld  = []byte("records")
	bucketMeta = []byte("meta")
	keyBytes   = []byte("bytes") // sum of len(key)+len(value) over records, 8 bytes BE
	keyCount   = []byte("count") // number of records, 8 bytes BE
)

// Options tunes a Bolt store. Zero fields take the defaults; a negative limit turns it off.
type Options struct {
	MaxAge time.Duration // records received longer ago than this are deleted
	// MaxBytes bounds the stored keys and values; the oldest records go first. The file does not
	// shrink: freed pages are reused by later writes.
	MaxBytes   int64
	MaxRecords int64 // bounds the number of records (none by default); the oldest go first
	// SweepEvery is how often the sweeper enforces the limits.
	SweepEvery time.Duration
	Now        func() time.Time // clock of the age limit; time.Now when nil
	Logger     *slog.Logger     // slog.Default() when nil
}

// Bolt is the bbolt-backed Store: one file, records ordered by received_at. A background
// sweeper, owned by the store, enforces the limits; Close waits for it.
type Bolt struct {
	db   *bolt.DB
	opts Options
	log  *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

var _ Store = (*Bolt)(nil)

// Open opens or creates the store at path (its folder is created) and starts its sweeper.
// It fails after a second when another process holds the file.
func Open(path string, opts Options) (*Bolt, error) {
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = DefaultSweepEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketMeta, bucketEventIDs, bucketSnapshots} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: init %s: %w", path, err)
	}
	if n, err := migrate(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", path, err)
	} else if n > 0 {
		opts.Logger.Info("event store: records re-keyed by received_at", "component", "store", "records", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Bolt{db: db, opts: opts, log: opts.Logger.With("component", "store"), cancel: cancel, done: make(chan struct{})}
	go s.sweeper(ctx)
	return s, nil
}

func (s *Bolt) sweeper(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.opts.SweepEvery)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("retention sweep failed", "err", err)
		} else if n > 0 {
			s.log.Debug("retention sweep", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func key(at int64, id uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(max(at, 0)))
	binary.BigEndian.PutUint64(k[8:], id)
	return k
}

func keyAt(k []byte) int64 { return int64(binary.BigEndian.Uint64(k)) }

func getUint(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putUint(b *bolt.Bucket, k []byte, n uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, n))
}

// migrateBatch bounds the records one migration transaction moves.
const migrateBatch = 10_000

// migrate moves the records of a file written by an older version (bucketOld, keyed by
// captured_at) to bucketRecords, keyed by their received_at, in batches that each commit on
// their own: a crash in between leaves every record in one bucket or the other, and the next
// Open finishes the move. Values, the record count and the byte total are unchanged (keys have
// the same length). It returns how many records it moved.
func migrate(db *bolt.DB) (int, error) {
	total := 0
	for {
		done := false
		err := db.Update(func(tx *bolt.Tx) error {
			old := tx.Bucket(bucketOld)
			if old == nil {
				done = true
				return nil
			}
			b := tx.Bucket(bucketRecords)
			if b.Sequence() < old.Sequence() { // ids keep increasing
				if err := b.SetSequence(old.Sequence()); err != nil {
					return err
				}
			}
			var moved [][]byte
			c := old.Cursor()
			for k, v := c.First(); k != nil && len(moved) < migrateBatch; k, v = c.Next() {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("record %x: %w", k, err)
				}
				at := r.ReceivedAt.UnixMilli()
				if r.ReceivedAt.IsZero() {
					at = keyAt(k)
				}
				if err := b.Put(key(at, r.ID), v); err != nil {
					return err
				}
				moved = append(moved, k)
			}
			for _, k := range moved {
				if err := old.Delete(k); err != nil {
					return err
				}
			}
			total += len(moved)
			if len(moved) < migrateBatch {
				done = true
				return tx.DeleteBucket(bucketOld)
			}
			return nil
		})
		if err != nil || done {
			return total, err
		}
	}
}

// Put implements Store. The record is placed at its ReceivedAt (the store's clock when zero);
// its CapturedAt is kept as it came.
func (s *Bolt) Put(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = s.opts.Now().UTC()
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, meta := tx.Bucket(bucketRecords), tx.Bucket(bucketMeta)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.ID = id
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		k := key(r.ReceivedAt.UnixMilli(), id)
		if err := b.Put(k, v); err != nil {
			return err
		}
		if err := putUint(meta, keyCount, getUint(meta, keyCount)+1); err != nil {
			return err
		}
		if err := putUint(meta, keyBytes, getUint(meta, keyBytes)+uint64(len(k)+len(v))); err != nil {
			return err
		}
		if r.Kind == KindEvent && r.EventID != "" {
			return indexEvent(tx, meta, r.EventID, k)
		}
		return nil
	})
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("store: put: %w", err)
	}
	return nil
}

// Query implements Store. It holds one read transaction for the whole scan: page with
// f.Limit and f.After rather than asking for everything at once.
func (s *Bolt) Query(ctx context.Context, f Filter) ([]Record, error) {
	out := []Record{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		lo, hi := int64(0), int64(math.MaxInt64) // received_at in [lo, hi)
		if !f.Since.IsZero() {
			lo = max(f.Since.UnixMilli(), 0)
		}
		if !f.Until.IsZero() {
			hi = f.Until.UnixMilli()
		}
		var k, v []byte
		switch {
		case f.Oldest && f.After != nil:
			after := key(f.After.At, f.After.ID)
			k, v = c.Seek(after)
			if bytes.Equal(k, after) {
				k, v = c.Next()
			}
			if k != nil && keyAt(k) < lo {
				k, v = c.Seek(key(lo, 0))
			}
		case f.Oldest:
			k, v = c.Seek(key(lo, 0))
		default:
			// Newest first: seek just past the upper end and step back.
			end := key(hi, 0)
			if f.After != nil {
				if a := key(f.After.At, f.After.ID); bytes.Compare(a, end) < 0 {
					end = a
				}
			}
			if k, _ = c.Seek(end); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for n := 0; k != nil; n++ {
			at := keyAt(k)
			if f.Oldest && at >= hi || !f.Oldest && at < lo {
				break
			}
			if n%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			if f.Match(r) {
				out = append(out, r)
				if f.Limit > 0 && len(out) >= f.Limit {
					break
				}
			}
			if f.Oldest {
				k, v = c.Next()
			} else {
				k, v = c.Prev()
			}
		}
		return nil
	})
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("store: query: %w", err)
	}
	return out, nil
}

// Usage reports the stored records and the bytes of their keys and values.
func (s *Bolt) Usage() (records, bytes int64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		records, bytes = int64(getUint(meta, keyCount)), int64(getUint(meta, keyBytes))
		return nil
	})
	return records, bytes, err
}

// Sweep enforces the limits now, oldest records first, and returns how many it deleted. The
// sweeper calls it every Options.SweepEvery; tests call it directly.
func (s *Bolt) Sweep(ctx context.Context) (int, error) {
	var cutoff int64 = -1
	if s.opts.MaxAge > 0 {
		cutoff = s.opts.Now().Add(-s.opts.MaxAge).UnixMilli()
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			b, meta := tx.Bucket(bucketRecords), tx.Bucket(bucketMeta)
			count, size := getUint(meta, keyCount), getUint(meta, keyBytes)
			over := func() bool {
				return s.opts.MaxRecords > 0 && count > uint64(s.opts.MaxRecords) ||
					s.opts.MaxBytes > 0 && size > uint64(s.opts.MaxBytes)
			}
			var doomed [][]byte
			c := b.Cursor()
			for k, v := c.First(); k != nil && len(doomed) < sweepBatch; k, v = c.Next() {
				if keyAt(k) >= cutoff && !over() {
					break
				}
				doomed = append(doomed, k)
				count, size = count-1, size-uint64(len(k)+len(v))
				// An event's last record takes its index entry and snapshot with it.
				var ev struct {
					Kind    string `json:"kind"`
					EventID string `json:"event_id"`
				}
				if json.Unmarshal(v, &ev) == nil && ev.Kind == KindEvent && ev.EventID != "" {
					freed, err := forgetEvent(tx, ev.EventID, k)
					if err != nil {
						return err
					}
					size -= freed
				}
			}
			for _, k := range doomed {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(doomed)
			if n == 0 {
				return nil
			}
			if err := putUint(meta, keyCount, count); err != nil {
				return err
			}
			return putUint(meta, keyBytes, size)
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("store: sweep: %w", err)
		}
		if n < sweepBatch {
			return total, nil
		}
	}
}

// Close implements Store: it stops the sweeper, waits for it and closes the file.
func (s *Bolt) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		<-s.done
		if e := s.db.Close(); e != nil {
			err = fmt.Errorf("store: close: %w", e)
		}
	})
	return err
}
