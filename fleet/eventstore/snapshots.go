package eventstore

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Snapshots are the events' pictures (JPEG, privacy masks applied on the device), kept beside
// the events: one per event id, the newest received replacing the one before, deleted with the
// event's last record (by age or the byte limit, whose total counts them).
//
//	event_ids: event id → key of the event's newest record (the snapshot goes when it goes)
//	snapshots: event id → JPEG
type Snapshots interface {
	// PutSnapshot stores jpeg as eventID's picture; on return it is durable. It fails with
	// ErrUnknownEvent when no record of that event is stored.
	PutSnapshot(ctx context.Context, eventID string, jpeg []byte) error
	// Snapshot returns eventID's picture, or ErrNoSnapshot.
	Snapshot(ctx context.Context, eventID string) ([]byte, error)
}

// Snapshot errors.
var (
	ErrUnknownEvent = errors.New("store: no such event")
	ErrNoSnapshot   = errors.New("store: the event has no snapshot")
)

var (
	bucketEventIDs  = []byte("event_ids")
	bucketSnapshots = []byte("snapshots")
)

var _ Snapshots = (*Bolt)(nil)

// indexEvent points eventID's index at record key k (its newest record); tx is a Put's.
func indexEvent(tx *bolt.Tx, meta *bolt.Bucket, eventID string, k []byte) error {
	idx := tx.Bucket(bucketEventIDs)
	if idx.Get([]byte(eventID)) == nil {
		if err := putUint(meta, keyBytes, getUint(meta, keyBytes)+uint64(len(eventID)+len(k))); err != nil {
			return err
		}
	}
	return idx.Put([]byte(eventID), k)
}

// forgetEvent removes eventID's index entry and snapshot when k is its newest record, and
// returns the bytes freed; tx is a Sweep's.
func forgetEvent(tx *bolt.Tx, eventID string, k []byte) (uint64, error) {
	idx, snaps := tx.Bucket(bucketEventIDs), tx.Bucket(bucketSnapshots)
	id := []byte(eventID)
	if v := idx.Get(id); v == nil || string(v) != string(k) {
		return 0, nil
	}
	freed := uint64(len(id) + len(k))
	if err := idx.Delete(id); err != nil {
		return 0, err
	}
	if jpeg := snaps.Get(id); jpeg != nil {
		freed += uint64(len(id) + len(jpeg))
		if err := snaps.Delete(id); err != nil {
			return 0, err
		}
	}
	return freed, nil
}

// PutSnapshot implements Snapshots.
func (s *Bolt) PutSnapshot(ctx context.Context, eventID string, jpeg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		id := []byte(eventID)
		if tx.Bucket(bucketEventIDs).Get(id) == nil {
			return ErrUnknownEvent
		}
		snaps, meta := tx.Bucket(bucketSnapshots), tx.Bucket(bucketMeta)
		size := getUint(meta, keyBytes)
		if old := snaps.Get(id); old != nil {
			size -= uint64(len(id) + len(old))
		}
		if err := snaps.Put(id, jpeg); err != nil {
			return err
		}
		return putUint(meta, keyBytes, size+uint64(len(id)+len(jpeg)))
	})
	switch {
	case errors.Is(err, bolt.ErrDatabaseNotOpen):
		return ErrClosed
	case errors.Is(err, ErrUnknownEvent):
		return fmt.Errorf("snapshot of event %s: %w", eventID, err)
	case err != nil:
		return fmt.Errorf("store: put snapshot: %w", err)
	}
	return nil
}

// Snapshot implements Snapshots.
func (s *Bolt) Snapshot(ctx context.Context, eventID string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSnapshots).Get([]byte(eventID)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("store: snapshot: %w", err)
	}
	if out == nil {
		return nil, ErrNoSnapshot
	}
	return out, nil
}
