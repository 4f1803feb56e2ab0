package rollout

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// store keeps the rollouts in DataDir/rollouts.db, one JSON record per rollout.
//
// Call contract: save and close are called from one goroutine at a time (the engine's); a
// store holds no lock of the engine.
type store struct {
	db *bolt.DB
}

var bucketRollouts = []byte("rollouts")

// openStore opens (creating) dir/rollouts.db and returns the rollouts in it.
func openStore(dir string) (*store, []Rollout, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "rollouts.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("rollout: open database: %w", err)
	}
	var all []Rollout
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRollouts)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var r Rollout
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			all = append(all, r)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("rollout: load: %w", err)
	}
	return &store{db: db}, all, nil
}

// save writes rs in one transaction.
func (s *store) save(rs []Rollout) error {
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

func (s *store) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("rollout: close database: %w", err)
	}
	return nil
}
