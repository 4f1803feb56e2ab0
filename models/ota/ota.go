// Package ota carries out the fleet's signed model commands on the device:
//
//	cmd/model_update:   verify → accepted → download (modelstore.Install: downloading %, verifying)
//	                    → loading (open with ONNX Runtime, warm up, self-test) → Swap into the
//	                    cameras → modelstore.Activate → active
//	cmd/model_rollback: previous version → loading (self-test) → Swap → modelstore.Rollback → rolled_back
//
// A command acts only when its ed25519 signature verifies with the fleet key pinned in the
// configuration, it names this device, it has not expired and its id is new; anything else
// is counted in Stats().Rejected and ignored. On any failure the device stays on the model it
// ran (the store's active version does not change), nothing in use is deleted, and the
// result says failed with the reason. Progress goes to Config.Report, which the agent
// publishes on vigil/v1/<device>/cmd_result/<name>.
//
// One command runs at a time, on a goroutine the Handler owns (Close cancels and waits for
// it). A command that arrives while another runs is rejected, not queued: it is reported
// failed with reason "busy …" and its id is not remembered, so the fleet may send it again.
// The update in progress is kept in the store (a signed record), so an agent restarted
// mid-download resumes it with ResumePending.
package ota

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/modelstore"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Records the handler keeps in the store (modelstore.PutMeta keys).
const (
	pendingKey = "ota-pending" // the SignedCommand of the update in progress
	seenKey    = "ota-seen"    // recent command ids, oldest first
)

// maxPayload bounds a command message.
const maxPayload = 64 << 10

// Rejection reasons: the keys of Stats.Rejected.
const (
	ReasonMalformed = "malformed"       // not a SignedCommand, or its command is malformed
	ReasonSignature = "bad_signature"   // unsigned, or not signed by the pinned fleet key
	ReasonNotForMe  = "not_for_device"  // signed for another device
	ReasonExpired   = "expired"         // arrived after its expiry
	ReasonTopic     = "wrong_topic"     // the topic does not match the command
	ReasonDuplicate = "duplicate"       // an id already seen
	ReasonBusy      = "busy"            // another command is running
	ReasonUnknown   = "unknown_command" // a name (or a command without its model) this agent does not run
	ReasonClosed    = "closed"          // arrived after Close
)

// Errors Handle returns besides wire's verification errors.
var (
	ErrBusy      = errors.New("busy: another command is running")
	ErrDuplicate = errors.New("command id already seen")
	ErrTopic     = errors.New("topic does not match the command")
	ErrUnknown   = errors.New("unknown command")
	ErrClosed    = errors.New("command handler is closed")
)

// Config configures a Handler.
type Config struct {
	// DeviceID is this device's id; commands for others are rejected.
	DeviceID string
	// FleetKey is the pinned fleet public key that signs commands and manifests.
	FleetKey ed25519.PublicKey
	// Store holds the installed models.
	Store *modelstore.Store
	// Swap puts the model m describes into the running cameras between two frames. It is
	// called from the handler's goroutine, one call at a time, after m passed its self-test.
	// It returns nil only when the cameras run m; on an error they must still run the model
	// they ran before.
	Swap func(ctx context.Context, m models.Manifest) error
	// Report receives every progress report, in order, never two calls at once. It must not
	// block for long (the agent hands the result to its outbox). The agent may replace
	// Header.Seq and Header.MsgID with its own numbering.
	Report func(wire.CmdResult)
	// Now is the clock for expiry and report times; nil means time.Now.
	Now func() time.Time
	// Remember is how many recent command ids the dedupe memory (kept in the store) holds;
	// 0 means 1024.
	Remember int
	// SelfTestImage is a JPEG or PNG the new model must run on before it goes live; empty
	// means a synthetic gray 640x480 image.
	SelfTestImage string
	// SelfTestLabels, when set, must each be found in SelfTestImage by the new model.
	SelfTestLabels []string
	// Threads is ONNX Runtime's thread count for the self-test; 0 means 1.
	Threads int
	// Logger gets a line per command and per rejection; nil means slog.Default().
	Logger *slog.Logger
}

// Validate checks the configuration without I/O.
func (c Config) Validate() error {
	switch {
	case !wire.ValidID(c.DeviceID):
		return fmt.Errorf("ota: device id %q is not valid", c.DeviceID)
	case len(c.FleetKey) != ed25519.PublicKeySize:
		return fmt.Errorf("ota: fleet key has %d bytes, want %d", len(c.FleetKey), ed25519.PublicKeySize)
	case c.Store == nil:
		return errors.New("ota: no model store")
	case c.Swap == nil || c.Report == nil:
		return errors.New("ota: Swap and Report are required")
	}
	return nil
}

// Stats counts commands since the Handler was made.
type Stats struct {
	Accepted  uint64            // commands started
	Succeeded uint64            // ended active or rolled_back
	Failed    uint64            // ended failed (the device stays on its model)
	Rejected  map[string]uint64 // ignored or refused, by reason (the Reason… constants)
}

// Handler runs the fleet's model commands. Its methods are safe for concurrent use.
type Handler struct {
	cfg    Config
	cfgErr error
	log    *slog.Logger

	ctx    context.Context // the running command's; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reportMu sync.Mutex // one Report call at a time
	img      selfTestImage

	mu         sync.Mutex
	closed     bool
	running    string // id of the running command; "" when idle
	seen       map[string]bool
	seenOrder  []string
	seenLoaded bool
	reports    uint64
	stats      Stats
}

// New makes a Handler. A bad Config is reported by every Handle and ResumePending call.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Remember <= 0 {
		cfg.Remember = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Handler{cfg: cfg, cfgErr: cfg.Validate(), log: cfg.Logger.With("component", "ota"),
		ctx: ctx, cancel: cancel, seen: map[string]bool{}, stats: Stats{Rejected: map[string]uint64{}}}
}

// Handle takes one message from topic (vigil/v1/<device>/cmd/<name>; empty skips the topic
// check). It verifies the command and, when it is accepted, reports accepted and starts it on
// the handler's goroutine, then returns nil without waiting for it. A rejected message is
// counted in Stats and Handle returns why; a command that is signed and for this device but
// cannot run now (busy, unknown) is also reported failed. ctx is not used by the command,
// which runs until it ends or Close.
func (h *Handler) Handle(ctx context.Context, topic string, payload []byte) error {
	if h.cfgErr != nil {
		return h.cfgErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(payload) > maxPayload {
		return h.reject(ReasonMalformed, fmt.Errorf("%w: %d bytes, at most %d", wire.ErrMalformed, len(payload), maxPayload))
	}
	var sc wire.SignedCommand
	if err := json.Unmarshal(payload, &sc); err != nil {
		return h.reject(ReasonMalformed, fmt.Errorf("%w: %v", wire.ErrMalformed, err))
	}
	cmd, err := sc.Verify(h.cfg.FleetKey, h.cfg.DeviceID, h.cfg.Now())
	if err != nil {
		return h.reject(reason(err), fmt.Errorf("command %q: %w", cmd.ID, err))
	}
	if topic != "" {
		dev, kind, name, err := wire.ParseTopic(topic)
		if err != nil || dev != h.cfg.DeviceID || kind != wire.KindCmd || name != cmd.Name {
			return h.reject(ReasonTopic, fmt.Errorf("command %q (%s) on %q: %w", cmd.ID, cmd.Name, topic, ErrTopic))
		}
	}
	return h.start(cmd, payload, false)
}

// ResumePending restarts the model update that was running when the agent stopped (its
// download resumes where it was), if there is one; call it once at start. The stored record
// is verified again with the fleet key; its expiry no longer matters, since the update was
// accepted before it. It returns nil when nothing is pending.
func (h *Handler) ResumePending(ctx context.Context) error {
	if h.cfgErr != nil {
		return h.cfgErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	raw, ok, err := h.cfg.Store.GetMeta(pendingKey)
	if err != nil || !ok {
		return err
	}
	var sc wire.SignedCommand
	cmd, err := wire.Command{}, json.Unmarshal(raw, &sc)
	if err == nil {
		cmd, err = sc.Verify(h.cfg.FleetKey, h.cfg.DeviceID, h.cfg.Now())
		if errors.Is(err, wire.ErrExpired) {
			err = nil
		}
	}
	if err == nil && cmd.Name != wire.CmdModelUpdate {
		err = fmt.Errorf("%w: %s", ErrUnknown, cmd.Name)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("pending command: %w", err), h.cfg.Store.DeleteMeta(pendingKey))
	}
	h.log.Info("resuming the model update that was running", "cmd_id", cmd.ID)
	return h.start(cmd, raw, true)
}

// Stats returns a copy of the counters.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.Rejected = make(map[string]uint64, len(h.stats.Rejected))
	for k, v := range h.stats.Rejected {
		s.Rejected[k] = v
	}
	return s
}

// Running returns the id of the running command, "" when none runs.
func (h *Handler) Running() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.running
}

// Close cancels the running command and waits for it. An update stopped this way is not
// reported failed: it stays pending for ResumePending. Later messages are rejected.
func (h *Handler) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
	return nil
}

// reason maps a verification error to a rejection reason.
func reason(err error) string {
	switch {
	case errors.Is(err, wire.ErrBadSignature):
		return ReasonSignature
	case errors.Is(err, wire.ErrNotForMe):
		return ReasonNotForMe
	case errors.Is(err, wire.ErrExpired):
		return ReasonExpired
	}
	return ReasonMalformed
}

// reject counts a rejection and returns err.
func (h *Handler) reject(why string, err error) error {
	h.mu.Lock()
	h.stats.Rejected[why]++
	h.mu.Unlock()
	h.log.Warn("command rejected", "reason", why, "err", err)
	return err
}

// start runs an accepted command on the handler's goroutine, unless it is a repeat, another
// command runs, or the handler is closed. raw is the SignedCommand's bytes, kept while an
// update runs; resumed says it comes from ResumePending.
func (h *Handler) start(cmd wire.Command, raw []byte, resumed bool) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return h.reject(ReasonClosed, ErrClosed)
	}
	h.loadSeenLocked()
	if h.seen[cmd.ID] && !resumed {
		h.mu.Unlock()
		return h.reject(ReasonDuplicate, fmt.Errorf("command %q: %w", cmd.ID, ErrDuplicate))
	}
	var refuse error
	why := ""
	switch {
	case h.running != "":
		why, refuse = ReasonBusy, fmt.Errorf("%w (command %s)", ErrBusy, h.running)
	case cmd.Name != wire.CmdModelUpdate && cmd.Name != wire.CmdModelRollback:
		why, refuse = ReasonUnknown, fmt.Errorf("%w %q", ErrUnknown, cmd.Name)
	case cmd.Name == wire.CmdModelUpdate && cmd.Model == nil:
		why, refuse = ReasonUnknown, fmt.Errorf("%w: model_update without a model", wire.ErrMalformed)
	}
	if refuse != nil {
		h.stats.Rejected[why]++
		h.mu.Unlock()
		res := h.result(cmd, wire.CmdFailed)
		res.Reason = refuse.Error()
		h.report(res)
		h.log.Warn("command refused", "cmd_id", cmd.ID, "name", cmd.Name, "reason", why)
		return fmt.Errorf("command %q: %w", cmd.ID, refuse)
	}
	h.running = cmd.ID
	h.stats.Accepted++
	if !resumed {
		h.rememberLocked(cmd.ID)
	}
	h.wg.Add(1)
	h.mu.Unlock()

	if cmd.Name == wire.CmdModelUpdate && !resumed {
		if err := h.cfg.Store.PutMeta(pendingKey, raw); err != nil {
			h.log.Warn("cannot keep the update for a resume after a restart", "cmd_id", cmd.ID, "err", err)
		}
	}
	h.log.Info("command accepted", "cmd_id", cmd.ID, "name", cmd.Name, "rollout_id", cmd.RolloutID)
	h.report(h.result(cmd, wire.CmdAccepted))
	go func() {
		defer h.wg.Done()
		h.run(cmd)
	}()
	return nil
}

// run carries out a command and reports how it ended.
func (h *Handler) run(cmd wire.Command) {
	var model *wire.ModelRef
	var err error
	switch cmd.Name {
	case wire.CmdModelUpdate:
		model, err = h.update(h.ctx, cmd)
	case wire.CmdModelRollback:
		model, err = h.rollback(h.ctx, cmd)
	}
	if err != nil && h.ctx.Err() != nil {
		// Close stopped it: the update stays pending for ResumePending.
		h.log.Info("command interrupted by shutdown", "cmd_id", cmd.ID, "err", err)
		h.mu.Lock()
		h.running = ""
		h.mu.Unlock()
		return
	}
	if cmd.Name == wire.CmdModelUpdate {
		if derr := h.cfg.Store.DeleteMeta(pendingKey); derr != nil {
			h.log.Warn("cannot clear the pending update", "cmd_id", cmd.ID, "err", derr)
		}
	}
	res := h.result(cmd, wire.CmdActive)
	if cmd.Name == wire.CmdModelRollback {
		res.State = wire.CmdRolledBack
	}
	res.Model = model
	if err != nil {
		res.State, res.Model, res.Reason = wire.CmdFailed, nil, truncate(err.Error(), 1000)
		h.log.Warn("command failed; the device stays on its model", "cmd_id", cmd.ID, "name", cmd.Name, "err", err)
	} else {
		h.log.Info("command done", "cmd_id", cmd.ID, "name", cmd.Name, "state", res.State, "model", model.Name, "version", model.Version)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = ""
	if err != nil {
		h.stats.Failed++
	} else {
		h.stats.Succeeded++
	}
	h.report(res) // under h.mu, so the next command's reports come after this one
}

// update installs, tests, swaps in and activates the model cmd names.
func (h *Handler) update(ctx context.Context, cmd wire.Command) (*wire.ModelRef, error) {
	ref := *cmd.Model
	st := h.cfg.Store
	if a, ok := st.Active(); ok && a.Name == ref.Name && a.Version == ref.Version && strings.EqualFold(a.SHA256, ref.SHA256) {
		return &ref, nil // already running it (a repeat after a restart)
	}
	last, verifying := -1, false
	progress := func(state string, pct float64) {
		switch {
		case state == modelstore.StateDownloading && int(pct/10) > last:
			last = int(pct / 10)
			r := h.result(cmd, wire.CmdDownloading)
			r.Percent = float64(int(pct*10)) / 10
			h.report(r)
		case state == modelstore.StateVerifying && !verifying:
			verifying = true
			h.report(h.result(cmd, wire.CmdVerifying))
		}
	}
	m, err := st.Install(ctx, ref, h.cfg.FleetKey, progress)
	if err != nil {
		return nil, err
	}
	h.report(h.result(cmd, wire.CmdLoading))
	if err := h.selfTest(ctx, m); err != nil {
		h.discard(m)
		return nil, fmt.Errorf("self-test of %s %s: %w", m.Name, m.Version, err)
	}
	if err := h.cfg.Swap(ctx, m); err != nil {
		h.discard(m)
		return nil, fmt.Errorf("swap to %s %s: %w", m.Name, m.Version, err)
	}
	if err := st.Activate(m.Name, m.Version); err != nil {
		// The cameras run the new model but the store cannot record it: go back.
		err = fmt.Errorf("activate %s %s: %w", m.Name, m.Version, err)
		if old, ok := st.Active(); ok {
			if serr := h.cfg.Swap(context.WithoutCancel(ctx), old); serr != nil {
				err = errors.Join(err, fmt.Errorf("swap back to %s %s: %w", old.Name, old.Version, serr))
			}
		}
		h.discard(m)
		return nil, err
	}
	return &ref, nil
}

// rollback goes back to the previous version.
func (h *Handler) rollback(ctx context.Context, cmd wire.Command) (*wire.ModelRef, error) {
	st := h.cfg.Store
	prev, ok := st.Previous()
	if want := cmd.Model; want != nil && want.Version != "" {
		if a, ok := st.Active(); ok && names(a, want) {
			return refOf(a), nil // already there (a repeat)
		}
		if !ok || !names(prev, want) {
			return nil, fmt.Errorf("rollback to %s %s: it is not the previous version (%s %s)", want.Name, want.Version, prev.Name, prev.Version)
		}
	}
	if !ok {
		return nil, fmt.Errorf("rollback: %w", modelstore.ErrNoPrevious)
	}
	h.report(h.result(cmd, wire.CmdLoading))
	if err := h.selfTest(ctx, prev); err != nil {
		return nil, fmt.Errorf("self-test of %s %s: %w", prev.Name, prev.Version, err)
	}
	if err := h.cfg.Swap(ctx, prev); err != nil {
		return nil, fmt.Errorf("swap to %s %s: %w", prev.Name, prev.Version, err)
	}
	old, _ := st.Active()
	m, err := st.Rollback()
	if err != nil {
		if serr := h.cfg.Swap(context.WithoutCancel(ctx), old); serr != nil {
			err = errors.Join(err, fmt.Errorf("swap back to %s %s: %w", old.Name, old.Version, serr))
		}
		return nil, err
	}
	return refOf(m), nil
}

// names reports whether ref names m (an empty ref name matches any).
func names(m models.Manifest, ref *wire.ModelRef) bool {
	return (ref.Name == "" || ref.Name == m.Name) && ref.Version == m.Version
}

// refOf describes an installed model for a report.
func refOf(m models.Manifest) *wire.ModelRef {
	return &wire.ModelRef{Name: m.Name, Version: m.Version, SHA256: strings.ToLower(m.SHA256)}
}

// discard removes a version that failed before it went live, unless it is in use.
func (h *Handler) discard(m models.Manifest) {
	if err := h.cfg.Store.Remove(m.Name, m.Version); err != nil && !errors.Is(err, modelstore.ErrInUse) {
		h.log.Warn("cannot remove a model version that failed", "model", m.Name, "version", m.Version, "err", err)
	}
}

// result starts a report about cmd.
func (h *Handler) result(cmd wire.Command, state string) wire.CmdResult {
	now := h.cfg.Now()
	h.mu.Lock()
	h.reports++
	n := h.reports
	h.mu.Unlock()
	return wire.CmdResult{
		Header: wire.Header{Schema: wire.SchemaCmdResult, DeviceID: h.cfg.DeviceID, CapturedAt: now.UnixMilli(),
			MsgID: fmt.Sprintf("%s-cmd-%s-%d-%d", h.cfg.DeviceID, cmd.ID, now.UnixNano(), n)},
		CmdID: cmd.ID, RolloutID: cmd.RolloutID, Name: cmd.Name, State: state,
	}
}

// report hands a result to Config.Report, one at a time.
func (h *Handler) report(r wire.CmdResult) {
	h.reportMu.Lock()
	defer h.reportMu.Unlock()
	h.cfg.Report(r)
}

// loadSeenLocked reads the remembered command ids from the store once. h.mu is held.
func (h *Handler) loadSeenLocked() {
	if h.seenLoaded {
		return
	}
	h.seenLoaded = true
	b, ok, err := h.cfg.Store.GetMeta(seenKey)
	if err == nil && ok {
		err = json.Unmarshal(b, &h.seenOrder)
	}
	if err != nil {
		h.log.Warn("cannot read the remembered command ids", "err", err)
		h.seenOrder = nil
	}
	for _, id := range h.seenOrder {
		h.seen[id] = true
	}
}

// rememberLocked adds id to the dedupe memory and keeps it in the modelstore. h.mu is held.
func (h *Handler) rememberLocked(id string) {
	h.seen[id] = true
	h.seenOrder = append(h.seenOrder, id)
	for len(h.seenOrder) > h.cfg.Remember {
		delete(h.seen, h.seenOrder[0])
		h.seenOrder = h.seenOrder[1:]
	}
	b, err := json.Marshal(h.seenOrder)
	if err == nil {
		err = h.cfg.Store.PutMeta(seenKey, b)
	}
	if err != nil {
		h.log.Warn("cannot keep the command ids", "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
