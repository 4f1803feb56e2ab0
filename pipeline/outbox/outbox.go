// Package outbox is the agent's store-and-forward queue: every outbound message (detections,
// events, alerts, telemetry) is appended here, durably, before anything tries to send it, and
// is deleted only once the broker has acknowledged it.
//
// Durability: Append returns only after the transaction holding the message is committed and
// fsynced. Appends from many goroutines are group-committed: the committer goroutine writes
// every message waiting at that moment in one bbolt transaction, so throughput grows with
// concurrency while each caller still waits for its own message to be on disk. A message
// that Append reported stored survives kill -9 and power loss; one whose Append had not
// returned may or may not be there.
//
// Order: each message gets the next per-device sequence number (seq) inside the outbox, under
// the same lock that queues it, so seq order is commit order and the numbers survive restarts.
//
// Bounds: past MaxBytes the oldest messages of the droppable classes (snapshots, then
// detections, then telemetry, then event updates: frame.DropOrder) are evicted; past HardMaxBytes events and then alerts too.
// Messages older than MaxAge are dropped. Every drop is counted by class and reason.
package outbox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

var (
	bucketMsgs = []byte("msgs") // seq → record
	bucketMeta = []byte("meta")
	keyNext    = []byte("next_seq")
	keyEpoch   = []byte("epoch")
)

// classBucket holds, per class, seq → size (4 bytes) + stored_at ms (8 bytes): the eviction
// and expiry index.
func classBucket(c Class) []byte { return []byte("class_" + c.String()) }

// Drop reasons.
const (
	ReasonFull    = "full"     // evicted at MaxBytes (droppable classes)
	ReasonHardCap = "hard_cap" // evicted at HardMaxBytes (events, alerts)
	ReasonExpired = "expired"  // older than MaxAge
)

// Options bound the outbox.
type Options struct {
	MaxBytes     int64         // soft cap; default 256 MiB
	HardMaxBytes int64         // hard cap for events and alerts; default MaxBytes + MaxBytes/4
	MaxAge       time.Duration // default 7 days
	// OnDrop is called (from the committer goroutine) for each message dropped.
	OnDrop func(c Class, reason string)
	// OnCommit is called after each commit with the outbox's state (for metrics).
	OnCommit func(Stats)
	// Reserve is the room (bytes) kept inside the file for events and alerts when the disk is
	// full: freed when a write fails, put back once writes succeed again. Default 1 MiB;
	// negative: none.
	Reserve int64
	// MoveAsideCorrupt makes Open move a corrupt file aside (kept, see Recovery) and start a
	// new one instead of failing.
	MoveAsideCorrupt bool
	// OnCorrupt is called (from a reader's goroutine) for each stored record that fails its
	// checksum or does not decode: it is skipped, counted in Stats.Corrupt and deleted.
	OnCorrupt func(seq uint64, err error)
	Now       func() time.Time
}

func (o *Options) defaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	if o.HardMaxBytes < o.MaxBytes {
		o.HardMaxBytes = o.MaxBytes + o.MaxBytes/4
	}
	if o.Reserve == 0 {
		o.Reserve = 1 << 20
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 7 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Message is what a producer appends (frame.Outgoing).
type Message = frame.Outgoing

// Stats is the outbox's state.
type Stats struct {
	Messages  int64
	Bytes     int64
	ByClass   [NumClasses]int64 // messages
	OldestAt  time.Time         // stored_at of the oldest message; zero when empty
	NextSeq   uint64
	Committed uint64 // transactions committed since Open
	Corrupt   uint64 // records skipped since Open because they failed their checksum or did not decode
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("outbox closed")

// Outbox is a durable, bounded, ordered message queue in one bbolt file.
// Its methods are safe for concurrent use.
type Outbox struct {
	db    *bolt.DB
	opts  Options
	path  string
	epoch string

	mu      sync.Mutex
	next    uint64
	pending []*pending
	acks    []uint64
	bad     map[uint64]bool // corrupt records seen by Read, deleted with the next commit
	// The reserve (fulldisk.go): in place, and when it was last put back or freed.
	reserveOK    bool
	reserveTried time.Time
	closed       bool
	recov        *Recovery
	stats        Stats
	kick         chan struct{} // wakes the committer
	notify       chan struct{} // tells a reader that messages were committed
	done         chan struct{} // closed when the committer has exited
}

type pending struct {
	seq  uint64
	rec  Record
	err  error
	done chan struct{}
}

// Open opens (or creates) the outbox at path and starts its committer.
func Open(path string, opts Options) (*Outbox, error) {
	opts.defaults()
	db, err := openChecked(path)
	var recov *Recovery
	if errors.Is(err, ErrCorrupt) && opts.MoveAsideCorrupt {
		now := opts.Now()
		to, mvErr := moveAside(path, now)
		if mvErr != nil {
			return nil, fmt.Errorf("open outbox %s: %w (%v)", path, err, mvErr)
		}
		recov = &Recovery{MovedTo: to, Reason: err.Error(), At: now}
		db, err = openChecked(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	o := &Outbox{db: db, opts: opts, path: path, recov: recov, bad: map[uint64]bool{},
		kick: make(chan struct{}, 1), notify: make(chan struct{}, 1), done: make(chan struct{})}
	if err := db.Update(o.load); err != nil {
		db.Close()
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	o.keepReserve(opts.Now())
	go o.commitLoop()
	return o, nil
}

// load creates the buckets, reads the next seq and the epoch, and counts what is stored.
func (o *Outbox) load(tx *bolt.Tx) error {
	msgs, err := tx.CreateBucketIfNotExists(bucketMsgs)
	if err != nil {
		return err
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	for c := Class(0); c < NumClasses; c++ {
		if _, err := tx.CreateBucketIfNotExists(classBucket(c)); err != nil {
			return err
		}
	}
	if e := meta.Get(keyEpoch); len(e) > 0 {
		o.epoch = string(e)
	} else {
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.epoch = hex.EncodeToString(b[:])
		if err := meta.Put(keyEpoch, []byte(o.epoch)); err != nil {
			return err
		}
	}
	o.next = 1
	if v := meta.Get(keyNext); len(v) == 8 {
		o.next = binary.BigEndian.Uint64(v)
	}
	if k, _ := msgs.Cursor().Last(); k != nil && binary.BigEndian.Uint64(k)+1 > o.next {
		o.next = binary.BigEndian.Uint64(k) + 1
	}
	o.stats = Stats{}
	for c := Class(0); c < NumClasses; c++ {
		cur := tx.Bucket(classBucket(c)).Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			size, at := decodeIndex(v)
			o.stats.ByClass[c]++
			o.stats.Messages++
			o.stats.Bytes += size
			if t := time.UnixMilli(at); o.stats.OldestAt.IsZero() || t.Before(o.stats.OldestAt) {
				o.stats.OldestAt = t
			}
		}
	}
	o.stats.NextSeq = o.next
	return o.enforce(tx, o.opts.Now())
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func encodeIndex(size int64, storedAt time.Time) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(size))
	return binary.BigEndian.AppendUint64(b, uint64(storedAt.UnixMilli()))
}

func decodeIndex(v []byte) (size int64, storedAtMS int64) {
	if len(v) != 12 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint32(v[:4])), int64(binary.BigEndian.Uint64(v[4:]))
}

// Epoch identifies this outbox file: it changes only when the file is created anew, which is
// also when seq starts again from 1. Message ids carry it so they stay unique.
func (o *Outbox) Epoch() string { return o.epoch }

// Recovered is non-nil when Open found the file corrupt and started a new one.
func (o *Outbox) Recovered() *Recovery { return o.recov }

// Path is the outbox file.
func (o *Outbox) Path() string { return o.path }

// Append stores m and returns its seq once it is durable. If ctx ends first, Append returns
// ctx's error and the message may or may not be stored.
func (o *Outbox) Append(ctx context.Context, m Message) (uint64, error) {
	t, err := o.Enqueue(m)
	if err != nil {
		return 0, err
	}
	return t.Wait(ctx)
}

// Ticket is a message handed to the outbox by Enqueue, on its way to the disk.
type Ticket struct{ p *pending }

// Seq is the message's sequence number.
func (t *Ticket) Seq() uint64 { return t.p.seq }

// Wait returns once the message is durable (nil) or could not be stored. If ctx ends first,
// Wait returns ctx's error and the message may or may not be stored.
func (t *Ticket) Wait(ctx context.Context) (uint64, error) {
	select {
	case <-t.p.done:
		return t.p.seq, t.p.err
	case <-ctx.Done():
		return t.p.seq, ctx.Err()
	}
}

// Enqueue hands m to the outbox and returns at once, with its seq fixed (messages enqueued
// one after another keep their order): a caller with several messages to store enqueues them
// all and waits for the tickets, one group commit for all instead of one each. A message is
// published only once it is durable. Call Wait on every ticket: its error is the only report
// that the message could not be stored.
func (o *Outbox) Enqueue(m Message) (*Ticket, error) {
	if m.Class >= NumClasses {
		return nil, fmt.Errorf("outbox: unknown class %d", m.Class)
	}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, ErrClosed
	}
	seq := o.next
	payload, err := m.Build(seq)
	if err != nil {
		o.mu.Unlock()
		return nil, fmt.Errorf("outbox: build message: %w", err)
	}
	o.next++
	p := &pending{seq: seq, done: make(chan struct{}),
		rec: Record{Class: m.Class, CapturedAt: m.CapturedAt, StoredAt: o.opts.Now(), Topic: m.Topic, Payload: payload}}
	o.pending = append(o.pending, p)
	o.mu.Unlock()
	o.wake()
	return &Ticket{p: p}, nil
}

func (o *Outbox) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Acknowledgements are coalesced: deleting costs a write transaction, so deletions wait for
// the next append's commit, ackDelay, or ackBatch pending acknowledgements, whichever is first.
const (
	ackDelay = 20 * time.Millisecond
	ackBatch = 4096
)

// Ack deletes delivered messages. It does not wait: deletions are written with a later commit
// (see ackDelay). A message acknowledged but not yet deleted when the agent stops is sent
// again (at-least-once).
func (o *Outbox) Ack(seqs ...uint64) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	first := len(o.acks) == 0
	o.acks = append(o.acks, seqs...)
	full := len(o.acks) >= ackBatch
	o.mu.Unlock()
	switch {
	case full:
		o.wake()
	case first:
		time.AfterFunc(ackDelay, o.wake)
	}
}

// Notify returns a channel that receives a value after commits that stored messages.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// NextSeq is the seq the next appended message will get.
func (o *Outbox) NextSeq() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.next
}

// Stats returns the outbox's state as of the last commit.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// Read returns up to max stored messages with seq > after and seq < before (before 0 = no
// upper bound), in seq order.
func (o *Outbox) Read(after, before uint64, max int) ([]frame.Stored, error) {
	var out []frame.Stored
	err := o.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketMsgs).Cursor()
		for k, v := cur.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = cur.Next() {
			seq := binary.BigEndian.Uint64(k)
			if before != 0 && seq >= before {
				break
			}
			r, err := DecodeRecord(v)
			if err != nil {
				o.skipCorrupt(seq, err)
				continue
			}
			out = append(out, frame.Stored{Seq: seq, Class: r.Class, Topic: r.Topic, Payload: r.Payload, CapturedAt: r.CapturedAt, StoredAt: r.StoredAt})
		}
		return nil
	})
	return out, err
}

// skipCorrupt counts a record that does not decode (once) and has it deleted with the next
// commit, so that it never blocks delivery of the others.
func (o *Outbox) skipCorrupt(seq uint64, err error) {
	o.mu.Lock()
	first := !o.bad[seq]
	if first {
		o.bad[seq] = true
		o.stats.Corrupt++
	}
	o.mu.Unlock()
	if first {
		if o.opts.OnCorrupt != nil {
			o.opts.OnCorrupt(seq, err)
		}
		o.wake()
	}
}

// commitLoop writes pending messages and acknowledgements, one transaction per round, until
// Close. It also expires old messages once a minute.
func (o *Outbox) commitLoop() {
	defer close(o.done)
	expire := time.NewTicker(time.Minute)
	defer expire.Stop()
	for {
		expiring := false
		select {
		case <-o.kick:
		case <-expire.C:
			expiring = true
		}
		o.mu.Lock()
		batch, acks, closed := o.pending, o.acks, o.closed
		o.pending, o.acks = nil, nil
		var bad []uint64
		for seq := range o.bad {
			bad = append(bad, seq) // deleted like a delivered message
		}
		acks = append(acks, bad...)
		o.mu.Unlock()
		if len(batch) > 0 || len(acks) > 0 || expiring {
			o.commit(batch, acks, expiring)
		}
		if len(bad) > 0 {
			o.mu.Lock()
			for _, seq := range bad {
				delete(o.bad, seq) // gone now (or retried with the next commit if that failed: counted once more)
			}
			o.mu.Unlock()
		}
		if closed {
			return
		}
	}
}

func (o *Outbox) commit(batch []*pending, acks []uint64, expiring bool) {
	now := o.opts.Now()
	// Deletions first, in a transaction of their own: a full disk that refuses the appends must
	// not keep delivered messages (whose deletion frees room) from being deleted.
	if len(acks) > 0 {
		if err := o.update(func(tx *bolt.Tx, st *Stats) error {
			for _, seq := range acks {
				if err := o.remove(tx, st, seq); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			o.mu.Lock()
			o.acks = append(o.acks, acks...) // tried again with the next commit
			o.mu.Unlock()
		}
	}
	errs := o.writeBatch(batch, now, expiring) // fulldisk.go: evicts by priority when the disk is full
	o.mu.Lock()
	o.stats.Committed++
	o.stats.NextSeq = o.next
	stats := o.stats
	o.mu.Unlock()
	for i, p := range batch {
		p.err = errs[i]
		close(p.done)
	}
	if len(batch) > 0 {
		select {
		case o.notify <- struct{}{}:
		default:
		}
	}
	if o.opts.OnCommit != nil {
		o.opts.OnCommit(stats)
	}
}

// update runs fn in a write transaction with a copy of the statistics, which become the
// outbox's when the transaction commits; when it fails, the statistics are recounted from the
// file.
func (o *Outbox) update(fn func(tx *bolt.Tx, st *Stats) error) error {
	err := o.db.Update(func(tx *bolt.Tx) error {
		st := o.Stats()
		if err := fn(tx, &st); err != nil {
			return err
		}
		o.mu.Lock()
		o.stats = st
		o.mu.Unlock()
		return nil
	})
	if err != nil {
		o.recount()
	}
	return err
}

// put stores the batch's messages, then applies the bounds (enforce).
func (o *Outbox) put(batch []*pending, now time.Time) error {
	var next uint64
	if len(batch) > 0 {
		next = batch[len(batch)-1].seq + 1
	}
	return o.update(func(tx *bolt.Tx, st *Stats) error {
		msgs, meta := tx.Bucket(bucketMsgs), tx.Bucket(bucketMeta)
		for _, p := range batch {
			// bbolt keeps a reference to each value until the commit: one buffer per record.
			buf, err := p.rec.Encode(make([]byte, 0, p.rec.EncodedLen()))
			if err != nil {
				return err
			}
			k := seqKey(p.seq)
			if err := msgs.Put(k, buf); err != nil {
				return err
			}
			size := int64(len(buf) + len(k))
			if err := tx.Bucket(classBucket(p.rec.Class)).Put(k, encodeIndex(size, p.rec.StoredAt)); err != nil {
				return err
			}
			st.Messages++
			st.ByClass[p.rec.Class]++
			st.Bytes += size
			if st.OldestAt.IsZero() {
				st.OldestAt = p.rec.StoredAt
			}
		}
		if next != 0 {
			if err := meta.Put(keyNext, binary.BigEndian.AppendUint64(nil, next)); err != nil {
				return err
			}
		}
		o.mu.Lock()
		o.stats = *st
		o.mu.Unlock()
		if err := o.enforce(tx, now); err != nil {
			return err
		}
		o.mu.Lock()
		*st = o.stats
		o.mu.Unlock()
		return nil
	})
}

// recount rebuilds the statistics from the file (after a failed commit).
func (o *Outbox) recount() {
	_ = o.db.View(func(tx *bolt.Tx) error {
		var st Stats
		for c := Class(0); c < NumClasses; c++ {
			cur := tx.Bucket(classBucket(c)).Cursor()
			for k, v := cur.First(); k != nil; k, v = cur.Next() {
				size, at := decodeIndex(v)
				st.ByClass[c]++
				st.Messages++
				st.Bytes += size
				if t := time.UnixMilli(at); st.OldestAt.IsZero() || t.Before(st.OldestAt) {
					st.OldestAt = t
				}
			}
		}
		o.mu.Lock()
		st.Committed, st.NextSeq = o.stats.Committed, o.next
		o.stats = st
		o.mu.Unlock()
		return nil
	})
}

// remove deletes seq (if still stored) from the messages and its class index.
func (o *Outbox) remove(tx *bolt.Tx, st *Stats, seq uint64) error {
	k := seqKey(seq)
	v := tx.Bucket(bucketMsgs).Get(k)
	if v == nil {
		return nil // already gone (evicted, or acknowledged twice)
	}
	c := ClassDetections
	if len(v) >= 2 {
		c = Class(v[1])
	}
	if c >= NumClasses || tx.Bucket(classBucket(c)).Get(k) == nil {
		// A corrupt record: its class byte cannot be trusted; find the index that names it.
		for cc := Class(0); cc < NumClasses; cc++ {
			if tx.Bucket(classBucket(cc)).Get(k) != nil {
				c = cc
				break
			}
		}
	}
	idx := tx.Bucket(classBucket(c))
	iv := idx.Get(k)
	size, _ := decodeIndex(iv)
	if err := tx.Bucket(bucketMsgs).Delete(k); err != nil {
		return err
	}
	if iv == nil {
		return nil // indexed nowhere: never counted
	}
	if err := idx.Delete(k); err != nil {
		return err
	}
	st.Messages--
	st.ByClass[c]--
	st.Bytes -= size
	return nil
}

// enforce applies MaxAge, MaxBytes and HardMaxBytes inside tx, and recomputes OldestAt.
func (o *Outbox) enforce(tx *bolt.Tx, now time.Time) error {
	o.mu.Lock()
	st := o.stats
	o.mu.Unlock()
	drop := func(c Class, reason string) (bool, error) {
		k, _ := tx.Bucket(classBucket(c)).Cursor().First()
		if k == nil {
			return false, nil
		}
		if err := o.remove(tx, &st, binary.BigEndian.Uint64(k)); err != nil {
			return false, err
		}
		if o.opts.OnDrop != nil {
			o.opts.OnDrop(c, reason)
		}
		return true, nil
	}
	// Expiry: the oldest of each class first.
	cutoff := now.Add(-o.opts.MaxAge).UnixMilli()
	for c := Class(0); c < NumClasses; c++ {
		for {
			k, v := tx.Bucket(classBucket(c)).Cursor().First()
			if k == nil {
				break
			}
			if _, at := decodeIndex(v); at >= cutoff {
				break
			}
			if _, err := drop(c, ReasonExpired); err != nil {
				return err
			}
		}
	}
	for _, c := range frame.DropOrder {
		for st.Bytes > o.opts.MaxBytes {
			ok, err := drop(c, ReasonFull)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
		}
	}
	for _, c := range [...]Class{ClassEvent, ClassAlert} {
		for st.Bytes > o.opts.HardMaxBytes {
			ok, err := drop(c, ReasonHardCap)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
		}
	}
	st.OldestAt = time.Time{}
	for c := Class(0); c < NumClasses; c++ {
		if k, v := tx.Bucket(classBucket(c)).Cursor().First(); k != nil {
			_, at := decodeIndex(v)
			if t := time.UnixMilli(at); st.OldestAt.IsZero() || t.Before(st.OldestAt) {
				st.OldestAt = t
			}
		}
	}
	o.mu.Lock()
	o.stats = st
	o.mu.Unlock()
	return nil
}

// Check verifies the file: bbolt's own consistency check, every record decodes, and the class
// indexes name exactly the stored messages. It runs in a write transaction (rolled back) so
// that no commit runs beside it: bbolt's check is only reliable that way.
func (o *Outbox) Check() error {
	err := o.db.Update(func(tx *bolt.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		return errRollback
	})
	if errors.Is(err, errRollback) {
		return nil
	}
	return err
}

var errRollback = errors.New("rollback")

func check(tx *bolt.Tx) error {
	var first error
	for err := range tx.Check() { // drain: the checker stops only when all is read
		if first == nil {
			first = fmt.Errorf("bbolt check: %w", err)
		}
	}
	if first != nil {
		return first
	}
	msgs := tx.Bucket(bucketMsgs)
	indexed := 0
	for c := Class(0); c < NumClasses; c++ {
		b := tx.Bucket(classBucket(c))
		if b == nil {
			return fmt.Errorf("class bucket %s missing", c)
		}
		err := b.ForEach(func(k, v []byte) error {
			indexed++
			rec := msgs.Get(k)
			if rec == nil {
				return fmt.Errorf("index %s names seq %d, which is not stored", c, binary.BigEndian.Uint64(k))
			}
			r, err := DecodeRecord(rec)
			if err != nil {
				return fmt.Errorf("seq %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if r.Class != c {
				return fmt.Errorf("seq %d is %s but indexed as %s", binary.BigEndian.Uint64(k), r.Class, c)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if n := msgs.Stats().KeyN; n != indexed {
		return fmt.Errorf("%d messages stored, %d indexed", n, indexed)
	}
	return nil
}

// CheckFile opens the outbox file read-only and checks it (see Check).
func CheckFile(path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	return db.View(check)
}

// Close writes what is pending, stops the committer and closes the file.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	o.wake()
	<-o.done
	return o.db.Close()
}
