package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-edge/vigil/hal/gnss"
	"github.com/vigil-edge/vigil/hal/mavlink"
)

// Drone is the companion-computer mode: the agent follows an autopilot over MAVLink and
// geo-references the detections of the cameras that have optics.
type Drone struct {
	// MAVLink is the autopilot's endpoint (see hal/mavlink): udp://0.0.0.0:14550 (listen),
	// udpclient://host:port, tcp://host:port, serial:///dev/ttyACM0?baud=57600. Empty: no drone.
	MAVLink string `yaml:"mavlink"`
	// MAVLinkKey is the MAVLink 2 signing key shared with the autopilot: 32 bytes as 64 hex
	// digits or base64, or the path of a file holding them (or the 32 raw bytes). With it only
	// signed frames are read and the agent signs its own. Empty: no signing.
	MAVLinkKey string `yaml:"mavlink_key"`
	// SystemID pins the vehicle's MAVLink system id; messages of other systems are ignored
	// and counted. 0 follows the first system whose heartbeat names an autopilot.
	SystemID int `yaml:"system_id"`
	// MaxAge is how far past the newest telemetry a frame may be before its pose is stale.
	MaxAge time.Duration `yaml:"max_age"`
	// GroundAltM is the ground's altitude above mean sea level; nil takes the home altitude
	// (altitude minus relative altitude) of the first pose received.
	GroundAltM *float64 `yaml:"ground_alt_m"`
	// AttitudeSigmaDeg is the 1-sigma error of each attitude angle (vehicle and camera mount),
	// AltSigmaM that of the height above the ground; they give each point's err_m.
	AttitudeSigmaDeg float64 `yaml:"attitude_sigma_deg"`
	AltSigmaM        float64 `yaml:"alt_sigma_m"`
}

// SigningKey decodes MAVLinkKey (reading its file when it names one); nil when unset.
func (d Drone) SigningKey() (*[32]byte, error) {
	v := strings.TrimSpace(d.MAVLinkKey)
	if v == "" {
		return nil, nil
	}
	raw := []byte(v)
	if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "./") || strings.HasPrefix(v, "../") {
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("read the key file: %w", err)
		}
		if len(b) == 32 {
			var k [32]byte
			copy(k[:], b)
			return &k, nil
		}
		raw = bytes.TrimSpace(b)
	}
	var key []byte
	if b, err := hex.DecodeString(string(raw)); err == nil {
		key = b
	} else if b, err := base64.StdEncoding.DecodeString(string(raw)); err == nil {
		key = b
	} else {
		return nil, errors.New("must be 32 bytes as 64 hex digits or base64, or a file holding them")
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("must be 32 bytes (got %d)", len(key))
	}
	var k [32]byte
	copy(k[:], key)
	return &k, nil
}

// Enabled reports whether the agent follows a drone.
func (d Drone) Enabled() bool { return d.MAVLink != "" }

// GNSS is the device's own position receiver, reported in telemetry: a static position or an
// NMEA 0183 receiver on a serial device. Both empty: none.
type GNSS struct {
	Static *GNSSStatic `yaml:"static"`
	NMEA   string      `yaml:"nmea"` // serial device, e.g. /dev/ttyUSB0
	Baud   int         `yaml:"baud"` // 0 leaves the line speed as it is
}

// GNSSStatic is a surveyed position.
type GNSSStatic struct {
	Lat  float64  `yaml:"lat"`
	Lon  float64  `yaml:"lon"`
	AltM *float64 `yaml:"alt_m"` // metres above mean sea level; optional
}

// Telemetry is the periodic health report on vigil/v1/<device>/telemetry.
type Telemetry struct {
	Interval time.Duration `yaml:"interval"`
	DiskPath string        `yaml:"disk_path"` // the filesystem whose free space is reported
}

// Optics describe a camera for geo-referencing: its intrinsics (a horizontal field of view, or
// a calibrated fx, fy, cx, cy in source-frame pixels) and how it is mounted.
type Optics struct {
	HFOVDeg float64 `yaml:"hfov_deg"`
	Fx      float64 `yaml:"fx"`
	Fy      float64 `yaml:"fy"`
	Cx      float64 `yaml:"cx"` // 0: the image centre
	Cy      float64 `yaml:"cy"` // 0: the image centre
	Mount   Mount   `yaml:"mount"`
	// UseGimbal takes the camera's attitude from the autopilot's gimbal status instead of Mount.
	UseGimbal bool `yaml:"use_gimbal"`
}

// Mount is a camera's fixed orientation (see hal/geo): Z-Y-X Euler angles in degrees relative to
// the vehicle body (mode body), to north and the horizon (earth), or to the heading and the
// horizon (heading). Pitch -90 looks straight down.
type Mount struct {
	Mode     string  `yaml:"mode"` // body (default), earth, heading
	RollDeg  float64 `yaml:"roll_deg"`
	PitchDeg float64 `yaml:"pitch_deg"`
	YawDeg   float64 `yaml:"yaw_deg"`
}

// Tiling runs the camera's detector over overlapping tiles of each frame (models/tile), for
// objects too small in the whole frame.
type Tiling struct {
	Enabled   bool    `yaml:"enabled"`
	Tile      int     `yaml:"tile"`       // tile side in frame pixels; 0: the model's input size
	Overlap   float64 `yaml:"overlap"`    // fraction shared with a neighbour; 0: 0.2
	FullFrame bool    `yaml:"full_frame"` // add one whole-frame pass, for large objects
	// Auto picks the grid from the drone's height above the ground (tile.GridForAltitude) and
	// falls back to fixed tiles while no pose is known.
	Auto bool `yaml:"auto"`
}

// DefaultDrone is the drone section's default: no drone.
func DefaultDrone() Drone {
	return Drone{MaxAge: time.Second, AttitudeSigmaDeg: 1, AltSigmaM: 2}
}

// DefaultTelemetry is the telemetry section's default.
func DefaultTelemetry() Telemetry {
	return Telemetry{Interval: 10 * time.Second, DiskPath: "/"}
}

// validateHAL checks the drone, gnss and telemetry sections and each camera's optics and
// tiling, without I/O; every error names its key.
func (c Config) validateHAL() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("'%s' %s", key, fmt.Sprintf(format, args...)))
	}
	d := c.Drone
	if d.MAVLink != "" {
		if _, err := mavlink.ParseEndpoint(d.MAVLink); err != nil {
			bad("drone.mavlink", "%v", err)
		}
	}
	if _, err := d.SigningKey(); err != nil { // reads the key's file, if it names one
		bad("drone.mavlink_key", "%v", err)
	} else if d.MAVLinkKey != "" && d.MAVLink == "" {
		bad("drone.mavlink_key", "needs drone.mavlink")
	}
	if d.SystemID < 0 || d.SystemID > 255 {
		bad("drone.system_id", "must be between 0 (the first autopilot heard) and 255")
	}
	if d.MaxAge < 10*time.Millisecond || d.MaxAge > time.Minute {
		bad("drone.max_age", "must be between 10ms and 1m")
	}
	if g := d.GroundAltM; g != nil && !(*g >= -500 && *g <= 9000) {
		bad("drone.ground_alt_m", "must be between -500 and 9000 (metres above mean sea level)")
	}
	if !(d.AttitudeSigmaDeg >= 0 && d.AttitudeSigmaDeg <= 45) {
		bad("drone.attitude_sigma_deg", "must be in [0,45]")
	}
	if !(d.AltSigmaM >= 0 && d.AltSigmaM <= 1000) {
		bad("drone.alt_sigma_m", "must be in [0,1000]")
	}

	g := c.GNSS
	if g.Static != nil && g.NMEA != "" {
		bad("gnss", "must have static or nmea, not both")
	}
	if s := g.Static; s != nil {
		if !(s.Lat >= -90 && s.Lat <= 90) {
			bad("gnss.static.lat", "must be in [-90,90]")
		}
		if !(s.Lon >= -180 && s.Lon <= 180) {
			bad("gnss.static.lon", "must be in [-180,180]")
		}
		if s.AltM != nil && !(*s.AltM >= -500 && *s.AltM <= 20000) {
			bad("gnss.static.alt_m", "must be between -500 and 20000")
		}
	}
	if g.Baud != 0 && g.NMEA == "" {
		bad("gnss.baud", "needs gnss.nmea")
	}
	if g.NMEA != "" {
		if _, err := gnss.NewSerial(gnss.SerialConfig{Path: g.NMEA, Baud: g.Baud}); err != nil {
			bad("gnss.baud", "must be a standard rate such as 4800, 9600 or 115200 (got %d)", g.Baud)
		}
	}

	if c.Telemetry.Interval < time.Second {
		bad("telemetry.interval", "must be >= 1s")
	}
	if p := c.Telemetry.DiskPath; p != "" && !filepath.IsAbs(p) {
		bad("telemetry.disk_path", "must be an absolute path (got %q)", p)
	}

	for i, cam := range c.Cameras {
		k := fmt.Sprintf("cameras[%d]", i)
		if o := cam.Optics; o != nil {
			errs = append(errs, o.validate(k+".optics", d.Enabled())...)
		}
		if t := cam.Tiling; t != nil {
			if t.Tile != 0 && (t.Tile < 32 || t.Tile > 8192) {
				bad(k+".tiling.tile", "must be between 32 and 8192 pixels (0 = the model's input size)")
			}
			if !(t.Overlap >= 0 && t.Overlap < 0.9) {
				bad(k+".tiling.overlap", "must be in [0,0.9) (0 = 0.2)")
			}
			if t.Auto && !d.Enabled() {
				bad(k+".tiling.auto", "needs drone.mavlink (the grid follows the drone's altitude)")
			}
		}
	}
	return errs
}

func (o Optics) validate(k string, drone bool) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("'%s' %s", key, fmt.Sprintf(format, args...)))
	}
	if !drone {
		bad(k, "needs drone.mavlink (geo-referencing follows the drone's pose)")
	}
	calibrated := o.Fx != 0 || o.Fy != 0 || o.Cx != 0 || o.Cy != 0
	switch {
	case o.HFOVDeg != 0 && calibrated:
		bad(k, "must give hfov_deg or fx, fy, cx, cy, not both")
	case o.HFOVDeg == 0 && !calibrated:
		bad(k, "must give hfov_deg or fx, fy (and optionally cx, cy)")
	case o.HFOVDeg != 0:
		if !(o.HFOVDeg > 0 && o.HFOVDeg < 180) {
			bad(k+".hfov_deg", "must be in (0,180)")
		}
	default:
		if !(o.Fx > 0 && o.Fx < 1e6) {
			bad(k+".fx", "must be > 0 (pixels)")
		}
		if !(o.Fy > 0 && o.Fy < 1e6) {
			bad(k+".fy", "must be > 0 (pixels)")
		}
		if !(o.Cx >= 0 && o.Cx < 1e5) {
			bad(k+".cx", "must be >= 0 (pixels; 0 = the image centre)")
		}
		if !(o.Cy >= 0 && o.Cy < 1e5) {
			bad(k+".cy", "must be >= 0 (pixels; 0 = the image centre)")
		}
	}
	switch o.Mount.Mode {
	case "", "body", "earth", "heading":
	default:
		bad(k+".mount.mode", "must be body, earth or heading (got %q)", o.Mount.Mode)
	}
	if !(math.Abs(o.Mount.RollDeg) <= 180) {
		bad(k+".mount.roll_deg", "must be in [-180,180]")
	}
	if !(math.Abs(o.Mount.PitchDeg) <= 90) {
		bad(k+".mount.pitch_deg", "must be in [-90,90]")
	}
	if !(math.Abs(o.Mount.YawDeg) <= 360) {
		bad(k+".mount.yaw_deg", "must be in [-360,360]")
	}
	return errs
}
