package registry

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Record is one device as a Store keeps it: its id and its state as JSON (the registry's own
// format; a Store does not look inside).
type Record struct {
	ID   string
	Data []byte
}

// Store keeps the device records of a registry made with [OpenStore]: a bbolt file for one
// fleet instance ([OpenFile]), or PostgreSQL shared by several (fleet/postgres.RegistryStore).
// Its methods may be called from several goroutines at once, and, for a shared store, from
// several processes.
type Store interface {
	// Load returns the records changed since the cursor after (0: every record), in id order,
	// and the cursor to pass next time. A record may come back again though it did not change
	// (a Store may re-read a little to miss nothing); one changed after Load returned is in a
	// later Load.
	Load(ctx context.Context, after int64) (recs []Record, next int64, err error)
	// Update calls fn once for each of ids (sorted, no repeats) with its saved data (nil when
	// there is none) and saves what fn returns (nothing when fn returns nil data), all in one
	// transaction: no other Update of these ids, in this process or another, runs in between.
	// An error of fn or of the store saves nothing. fn runs under the store's lock and must
	// not call the Store; it may be called again for the same id when the store retries the
	// transaction (then only the last call's data is saved), so it must depend only on its
	// arguments and on what the caller holds still.
	Update(ctx context.Context, ids []string, fn func(id string, old []byte) ([]byte, error)) error
	// Close releases the store; call it once, after the last Load and Update.
	Close() error
}

// FileStore is the registry's bbolt file: a [Store] for one fleet instance.
type FileStore struct {
	path string
	db   *bolt.DB
}

var _ Store = (*FileStore)(nil)

var (
	bucketRevs = []byte("revs") // device id → revision (8 bytes) of its last Update
	keyRev     = []byte("rev")  // in bucketMeta: the newest revision
)

// OpenFile opens (creating it when missing) the registry file at path. A file that is not a
// registry file is an error naming it.
func OpenFile(path string) (*FileStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return errors.New("not a registry file")
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketDevices); err != nil {
				return err
			}
			if err := meta.Put(keyFormat, []byte(fileFormat)); err != nil {
				return err
			}
		}
		if f := meta.Get(keyFormat); string(f) != fileFormat {
			return fmt.Errorf("format %q, want %q", f, fileFormat)
		}
		if tx.Bucket(bucketDevices) == nil {
			return errors.New("no devices bucket")
		}
		_, err := tx.CreateBucketIfNotExists(bucketRevs) // files written before revisions lack it
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("registry: load %s: %w", path, err)
	}
	return &FileStore{path: path, db: db}, nil
}

func revOf(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

// Load implements Store. A device saved before revisions were kept has revision 0: it comes
// back only from Load(ctx, 0).
func (s *FileStore) Load(_ context.Context, after int64) (recs []Record, next int64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		next = revOf(tx.Bucket(bucketMeta).Get(keyRev))
		revs := tx.Bucket(bucketRevs)
		return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			if after > 0 && revOf(revs.Get(k)) <= after {
				return nil
			}
			recs = append(recs, Record{ID: string(k), Data: append([]byte(nil), v...)})
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("registry: load %s: %w", s.path, err)
	}
	return recs, next, nil
}

// Update implements Store.
func (s *FileStore) Update(_ context.Context, ids []string, fn func(id string, old []byte) ([]byte, error)) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta, b, revs := tx.Bucket(bucketMeta), tx.Bucket(bucketDevices), tx.Bucket(bucketRevs)
		rev := revOf(meta.Get(keyRev)) + 1
		var rb [8]byte
		binary.BigEndian.PutUint64(rb[:], uint64(rev))
		for _, id := range ids {
			old := b.Get([]byte(id))
			if old != nil {
				old = append([]byte(nil), old...) // valid only in the transaction
			}
			v, err := fn(id, old)
			if err != nil {
				return err
			}
			if v == nil {
				continue
			}
			if err := b.Put([]byte(id), v); err != nil {
				return err
			}
			if err := revs.Put([]byte(id), rb[:]); err != nil {
				return err
			}
		}
		return meta.Put(keyRev, rb[:])
	})
	if err != nil {
		return fmt.Errorf("registry: write %s: %w", s.path, err)
	}
	return nil
}

// Close implements Store.
func (s *FileStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("registry: close %s: %w", s.path, err)
	}
	return nil
}
