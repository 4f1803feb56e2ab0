package wire

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Schemas of the control and telemetry messages.
const (
	SchemaCommand   = "vigil.cmd/1"
	SchemaCmdResult = "vigil.cmd_result/1"
	SchemaTelemetry = "vigil.telemetry/1"
)

// More message kinds (topic levels).
const (
	KindEvents    = "events"
	KindAlerts    = "alerts"
	KindTelemetry = "telemetry"
	KindCmd       = "cmd"        // vigil/v1/<device>/cmd/<name>, from the fleet
	KindCmdResult = "cmd_result" // vigil/v1/<device>/cmd_result/<name>, from the agent
)

// Command names.
const (
	CmdModelUpdate   = "model_update"
	CmdModelRollback = "model_rollback"
)

// SignedCommand is the payload on vigil/v1/<device>/cmd/<name>: a Command's JSON bytes and the
// fleet's ed25519 signature over exactly those bytes. An agent acts on a command only when
// the signature verifies with the fleet key pinned in its configuration, the command names
// this device, and it has not expired.
type SignedCommand struct {
	Payload string `json:"payload"` // base64 (standard) of the Command JSON
	Sig     string `json:"sig"`     // base64 (standard) ed25519 signature of the decoded payload
	KeyID   string `json:"key_id"`  // which fleet key signed it (hex sha256 of the public key, first 16 digits)
}

// Command is what the fleet asks of one device.
type Command struct {
	Schema    string `json:"schema"` // SchemaCommand
	ID        string `json:"id"`     // unique; a repeated id is ignored
	DeviceID  string `json:"device_id"`
	Name      string `json:"name"`       // CmdModelUpdate, CmdModelRollback, CmdLiveView
	IssuedAt  int64  `json:"issued_at"`  // UTC ms
	ExpiresAt int64  `json:"expires_at"` // UTC ms; later the command is ignored
	// Model is the model to install (model_update) or the version to go back to (model_rollback,
	// optional: the previous one when empty).
	Model *ModelRef `json:"model,omitempty"`
	// RolloutID ties progress reports to a rollout.
	RolloutID string `json:"rollout_id,omitempty"`
	// Camera is the camera a live_view asks for.
	Camera string `json:"camera,omitempty"`
}

// ModelRef points at a model artifact and its signed manifest on the fleet's HTTP server.
type ModelRef struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	SHA256      string `json:"sha256"`       // of the model file
	Size        int64  `json:"size"`         // bytes of the model file
	URL         string `json:"url"`          // the model file (served with Range support)
	ManifestURL string `json:"manifest_url"` // the models.Manifest JSON
	// ManifestSig is base64 ed25519 of the manifest's bytes as served, by the fleet key.
	ManifestSig string `json:"manifest_sig"`
}

// KeyID names an ed25519 public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	return keyID(pub)
}

// Sign wraps cmd in a SignedCommand signed with key.
func Sign(cmd Command, key ed25519.PrivateKey) (SignedCommand, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return SignedCommand{}, err
	}
	return SignedCommand{Payload: base64.StdEncoding.EncodeToString(b),
		Sig:   base64.StdEncoding.EncodeToString(ed25519.Sign(key, b)),
		KeyID: KeyID(key.Public().(ed25519.PublicKey))}, nil
}

// Command verification errors.
var (
	ErrBadSignature = errors.New("command signature does not verify with the pinned fleet key")
	ErrNotForMe     = errors.New("command is for another device")
	ErrExpired      = errors.New("command has expired")
	ErrMalformed    = errors.New("command is malformed")
)

// Verify checks a signed command's signature with pub, then that it is well formed, for
// device, and not expired at now. It returns the command.
func (s SignedCommand) Verify(pub ed25519.PublicKey, device string, now time.Time) (Command, error) {
	var c Command
	payload, err := base64.StdEncoding.DecodeString(s.Payload)
	if err != nil {
		return c, fmt.Errorf("%w: payload is not base64", ErrMalformed)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize {
		return c, ErrBadSignature
	}
	if !ed25519.Verify(pub, payload, sig) {
		return c, ErrBadSignature
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case c.Schema != SchemaCommand:
		return c, fmt.Errorf("%w: schema %q", ErrMalformed, c.Schema)
	case c.ID == "" || c.Name == "":
		return c, fmt.Errorf("%w: id and name are required", ErrMalformed)
	case c.DeviceID != device:
		return c, ErrNotForMe
	case c.ExpiresAt != 0 && now.UnixMilli() > c.ExpiresAt:
		return c, ErrExpired
	}
	return c, nil
}

// Command result states.
const (
	CmdAccepted    = "accepted"
	CmdDownloading = "downloading"
	CmdVerifying   = "verifying"
	CmdLoading     = "loading" // loading, warming up and self-testing the new model
	CmdActive      = "active"  // done: the new model runs
	CmdFailed      = "failed"  // the device stays on its previous model; Reason says why
	CmdRolledBack  = "rolled_back"
)

// CmdResult is the agent's progress report on vigil/v1/<device>/cmd_result/<name>.
type CmdResult struct {
	Header
	CmdID     string    `json:"cmd_id"`
	RolloutID string    `json:"rollout_id,omitempty"`
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Percent   float64   `json:"percent,omitempty"` // downloading
	Reason    string    `json:"reason,omitempty"`  // failed
	Model     *ModelRef `json:"model,omitempty"`   // the model now active (active, rolled_back)
}

// Telemetry is the periodic health report on vigil/v1/<device>/telemetry.
type Telemetry struct {
	Header
	UptimeS float64           `json:"uptime_s"`
	Board   *BoardHealth      `json:"board,omitempty"`
	Outbox  *OutboxHealth     `json:"outbox,omitempty"`
	Model   *Model            `json:"model,omitempty"` // the model the cameras run
	Cameras []CameraTelemetry `json:"cameras,omitempty"`
	Geo     *GeoFix           `json:"position,omitempty"` // where the device (or drone) is
}

// BoardHealth is the box's health; absent sensors are omitted.
type BoardHealth struct {
	CPUTempC     *float64 `json:"cpu_temp_c,omitempty"`
	Throttled    *bool    `json:"throttled,omitempty"`
	Load1        *float64 `json:"load1,omitempty"`
	CPUUsage     *float64 `json:"cpu_usage,omitempty"` // 0-1
	MemTotal     *uint64  `json:"mem_total_bytes,omitempty"`
	MemAvailable *uint64  `json:"mem_available_bytes,omitempty"`
	DiskFree     *uint64  `json:"disk_free_bytes,omitempty"`
}

// OutboxHealth is the store-and-forward queue's state.
type OutboxHealth struct {
	Messages   int64   `json:"messages"`
	Bytes      int64   `json:"bytes"`
	OldestAgeS float64 `json:"oldest_age_s"`
}

// CameraTelemetry is one camera's rates over the last telemetry period.
type CameraTelemetry struct {
	ID              string  `json:"id"`
	State           string  `json:"state"`
	FPS             float64 `json:"fps"`        // decoded frames per second
	DetectFPS       float64 `json:"detect_fps"` // frames detected per second
	DetectionsPerS  float64 `json:"detections_per_s"`
	InferenceErrors uint64  `json:"inference_errors"` // since start
	Dropped         uint64  `json:"frames_dropped"`   // since start
}

// GeoFix is a position.
type GeoFix struct {
	Lat    float64 `json:"lat"`
	Lon    float64 `json:"lon"`
	AltM   float64 `json:"alt_m"`
	Source string  `json:"source"` // static, gnss, mavlink
}
