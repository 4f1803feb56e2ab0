package outbox

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrCorrupt is wrapped by Open's error when the file is not a readable outbox (scrambled
// meta or data pages). With Options.MoveAsideCorrupt, Open moves such a file aside instead.
var ErrCorrupt = errors.New("outbox file is corrupt")

// Recovery tells that Open found the file corrupt, moved it aside (kept for inspection) and
// started a new one, with a new epoch: what the old file held is lost to the fleet.
type Recovery struct {
	MovedTo string    `json:"moved_to"` // where the corrupt file now is
	Reason  string    `json:"reason"`   // what was wrong with it
	At      time.Time `json:"at"`       // when
}

// precheck walks every page reachable from the file's buckets in a read-only bbolt handle and
// reports a file that cannot be walked as ErrCorrupt. It exists because bbolt, opening a file
// for writing without a synced freelist, rebuilds the freelist by walking the pages on a
// goroutine of its own, where a scrambled page makes it panic beyond any recover: the walk
// here meets the same pages on this goroutine first, where the panic is caught. A file that
// does not exist passes.
func precheck(path string) (err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return err // held by another process: not corruption
		}
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: %v", ErrCorrupt, r)
			}
		}()
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			c := b.Cursor()
			n := 0
			for k, v := c.First(); k != nil; k, v = c.Next() {
				n += len(v) // touch the value: overflow pages included
			}
			_ = n
			return nil
		})
	})
	return err
}

// openChecked opens path with bbolt, first checking it (precheck) and turning a panic of
// bbolt's own open into ErrCorrupt.
func openChecked(path string) (db *bolt.DB, err error) {
	if err := precheck(path); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil && !errors.Is(err, bolt.ErrTimeout) && !errors.Is(err, os.ErrPermission) {
		if _, statErr := os.Stat(path); statErr == nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	return db, err
}

// moveAside renames a corrupt file to <path>.corrupt-<UTC time>.
func moveAside(path string, now time.Time) (string, error) {
	to := fmt.Sprintf("%s.corrupt-%s", path, now.UTC().Format("20060102T150405.000Z"))
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("move the corrupt outbox aside: %w", err)
	}
	return to, nil
}
