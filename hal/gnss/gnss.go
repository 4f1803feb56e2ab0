// Package gnss gives a camera its position: a static one from configuration, or a live one
// from an NMEA 0183 receiver on a serial device (a tty, or a pty in tests and simulators).
//
//	receiver ──NMEA 0183 (GGA, RMC, GSA)──▶ tty ──▶ NMEA.run ──▶ Parse ──▶ fix state ──▶ Position
//	                                                           └▶ malformed lines: counted
//
// Position reports ErrNoFix until the receiver reports a valid fix (and again when it says it
// lost it) and ErrStale when no valid fix arrived for longer than the configured age.
package gnss

import (
	"context"
	"errors"
	"time"
)

// Errors of Position.
var (
	// ErrNoFix: no valid fix has been received, or the receiver reports it has none now.
	ErrNoFix = errors.New("gnss: no fix")
	// ErrStale: the last valid fix is older than the source's maximum age.
	ErrStale = errors.New("gnss: fix is stale")
)

// Fix is a position and how good it is.
type Fix struct {
	Lat, Lon   float64   // WGS84 degrees, north and east positive
	AltM       float64   // metres above mean sea level; valid when HasAlt
	HasAlt     bool      //
	Time       time.Time // UTC time of the fix from the receiver; zero when it sent no date
	Received   time.Time // local clock when the position arrived
	Quality    Quality   // GGA fix quality; QualityManual for a static position
	Mode       int       // GSA: 2 for 2D, 3 for 3D; 0 when unknown
	Satellites int       // in use; -1 when unknown
	HDOP       float64   // 0 when unknown
	SpeedMS    float64   // over ground (RMC)
	CourseDeg  float64   // true course over ground (RMC); valid when HasCourse
	HasCourse  bool      //
}

// Source gives the current position.
//
// Call contract: Start is called once, before Position; Position may be called from any
// goroutine at any time, also concurrently with the source's own work; Close stops the
// source's goroutines and waits for them, may be called more than once, and Position keeps
// answering (with the last state) after it.
type Source interface {
	Start(ctx context.Context) error
	Position() (Fix, error)
	Close() error
}

// Static is a Source for a fixed camera whose position is configured.
type Static struct {
	fix Fix
}

var _ Source = (*Static)(nil)

// NewStatic returns a Source that always reports lat, lon (degrees) and, when hasAlt,
// altM. It checks the coordinates' ranges.
func NewStatic(lat, lon, altM float64, hasAlt bool) (*Static, error) {
	if !(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180) {
		return nil, errors.New("gnss: static position: 'lat' must be in [-90, 90] and 'lon' in [-180, 180]")
	}
	return &Static{fix: Fix{Lat: lat, Lon: lon, AltM: altM, HasAlt: hasAlt, Quality: QualityManual, Satellites: -1}}, nil
}

// Start does nothing: the position is known.
func (s *Static) Start(context.Context) error { return nil }

// Position returns the configured position, Received set to now.
func (s *Static) Position() (Fix, error) {
	f := s.fix
	f.Received = time.Now()
	return f, nil
}

// Close does nothing.
func (s *Static) Close() error { return nil }
