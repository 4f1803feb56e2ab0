package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// ReasonDiskFull is the drop reason of messages evicted because the file could not grow (the
// disk is full, or the file hit a size limit) while MaxBytes was not reached.
const ReasonDiskFull = "disk_full"

// The ballast: Options.Reserve bytes that the outbox frees when the disk is full so that events
// and alerts still fit, and puts back once writes succeed. It has a bucket of its own: a value
// in a bucket that every commit changes would be rewritten (and need that much contiguous
// room) by every commit.
var (
	bucketReserve = []byte("reserve")
	keyReserve    = []byte("ballast")
)

// reserveRetry is how often a missing reserve is put back.
const reserveRetry = 10 * time.Second

// writeBatch stores the batch. When that fails (the disk is full: the file cannot grow), it
// makes room by priority and tries again:
//
//  1. the oldest messages of the droppable classes (frame.DropOrder) are evicted;
//  2. the batch's droppable messages are refused and the reserve is freed, so that its events
//     and alerts fit;
//  3. the oldest events, then the oldest alerts, are evicted.
//
// It returns each message's error (nil: stored). With an empty batch it only applies the
// bounds when expiring.
func (o *Outbox) writeBatch(batch []*pending, now time.Time, expiring bool) []error {
	errs := make([]error, len(batch))
	if len(batch) == 0 {
		if expiring {
			_ = o.put(nil, now)
		}
		return errs
	}
	err := o.put(batch, now)
	if err == nil {
		o.keepReserve(now)
		return errs
	}
	need := int64(0)
	for _, p := range batch {
		need += int64(p.rec.EncodedLen() + 8)
	}
	need = max(2*need, 256<<10)
	todo := batch
	for step := 1; err != nil && step <= 3; step++ {
		switch step {
		case 1:
			if o.evict(need, frame.DropOrder[:]) == 0 {
				continue
			}
		case 2:
			var keep []*pending
			for i, p := range batch {
				if p.rec.Class.Droppable() {
					errs[i] = fmt.Errorf("outbox full (disk): %s refused to keep room for events and alerts: %w", p.rec.Class, err)
					if o.opts.OnDrop != nil {
						o.opts.OnDrop(p.rec.Class, ReasonDiskFull)
					}
				} else {
					keep = append(keep, p)
				}
			}
			todo = keep
			if len(todo) == 0 {
				return errs
			}
			o.releaseReserve()
		case 3:
			o.evict(need, []Class{ClassEvent, ClassAlert})
		}
		err = o.put(todo, now)
	}
	if err != nil {
		err = fmt.Errorf("outbox commit: %w", err)
	}
	for i, p := range batch {
		if errs[i] == nil && (err != nil || !contains(todo, p)) {
			errs[i] = err
		}
	}
	return errs
}

func contains(ps []*pending, p *pending) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// evict deletes, in its own transaction, the oldest messages of classes (in that order) until
// need bytes are freed, counting each drop as ReasonDiskFull. It returns the bytes freed.
func (o *Outbox) evict(need int64, classes []Class) int64 {
	var freed int64
	_ = o.update(func(tx *bolt.Tx, st *Stats) error {
		freed = 0
		for _, c := range classes {
			for freed < need {
				k, _ := tx.Bucket(classBucket(c)).Cursor().First()
				if k == nil {
					break
				}
				before := st.Bytes
				if err := o.remove(tx, st, binary.BigEndian.Uint64(k)); err != nil {
					return err
				}
				freed += before - st.Bytes
				if o.opts.OnDrop != nil {
					o.opts.OnDrop(c, ReasonDiskFull)
				}
			}
		}
		return nil
	})
	return freed
}

// releaseReserve deletes the ballast, freeing its pages inside the file for what follows; it
// is put back no sooner than reserveRetry later.
func (o *Outbox) releaseReserve() {
	_ = o.update(func(tx *bolt.Tx, _ *Stats) error {
		if b := tx.Bucket(bucketReserve); b != nil {
			return b.Delete(keyReserve)
		}
		return nil
	})
	o.mu.Lock()
	o.reserveOK, o.reserveTried = false, time.Now()
	o.mu.Unlock()
}

// keepReserve puts the ballast (Options.Reserve bytes) in place when it is missing, trying at
// most every reserveRetry; a failure (the disk is still full) is left for later.
func (o *Outbox) keepReserve(now time.Time) {
	o.mu.Lock()
	due := o.opts.Reserve > 0 && !o.reserveOK && (o.reserveTried.IsZero() || now.Sub(o.reserveTried) >= reserveRetry)
	if due {
		o.reserveTried = now
	}
	o.mu.Unlock()
	if !due {
		return
	}
	err := o.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketReserve)
		if err != nil {
			return err
		}
		if v := b.Get(keyReserve); int64(len(v)) >= o.opts.Reserve {
			return errReserveOK
		}
		return b.Put(keyReserve, make([]byte, o.opts.Reserve))
	})
	if err == nil || errors.Is(err, errReserveOK) {
		o.mu.Lock()
		o.reserveOK = true
		o.mu.Unlock()
	}
}

var errReserveOK = errors.New("reserve in place")
