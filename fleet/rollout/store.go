package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store keeps the rollouts of an Engine: DATA/rollouts.db (bbolt, [OpenBolt]) for a fleet on
// its own, PostgreSQL (fleet/postgres) for several instances sharing one fleet.
//
// Call contract: the Engine calls Load once, before any Save; then Save from one goroutine at
// a time (its run goroutine); Close once, last. Save writes whole rollouts, replacing those
// with the same ID, all of rs or none of it; a Save that returned nil is what the next Load
// returns, also from another process. A Store may refuse writes for good (a leader that lost
// its lock): Save then keeps failing, and the Engine sends no command whose state was not
// saved.
type Store interface {
	// Load returns every stored rollout, in any order.
	Load(ctx context.Context) ([]Rollout, error)
	// Save stores rs in one transaction.
	Save(ctx context.Context, rs []Rollout) error
	// Close releases what the store holds.
	Close() error
}

// BoltFile is the name of the bbolt rollout store in its folder.
const BoltFile = "rollouts.db"

// boltStore keeps the rollouts in DataDir/rollouts.db, one JSON record per rollout.
type boltStore struct {
	db *bolt.DB
}

var bucketRollouts = []byte("rollouts")

// OpenBolt opens (creating) dir/rollouts.db.
func OpenBolt(dir string) (Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, BoltFile), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("rollout: open database: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketRollouts)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("rollout: open database: %w", err)
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) Load(context.Context) ([]Rollout, error) {
	var all []Rollout
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRollouts).ForEach(func(k, v []byte) error {
			var r Rollout
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			all = append(all, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: load: %w", err)
	}
	return all, nil
}

func (s *boltStore) Save(_ context.Context, rs []Rollout) error {
	if len(rs) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		for i := range rs {
			v, err := json.Marshal(&rs[i])
			if err != nil {
				return err
			}
			if err := b.Put([]byte(rs[i].ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rollout: save: %w", err)
	}
	return nil
}

func (s *boltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("rollout: close database: %w", err)
	}
	return nil
}
