package gnss

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parser errors. Parse wraps one of them, so callers can count by kind.
var (
	// ErrChecksum: the sentence has no checksum, or it does not match.
	ErrChecksum = errors.New("nmea: bad checksum")
	// ErrMalformed: the sentence is not NMEA 0183 or a field is out of range.
	ErrMalformed = errors.New("nmea: malformed sentence")
	// ErrUnsupported: a well-formed sentence of a type or talker this package ignores.
	ErrUnsupported = errors.New("nmea: unsupported sentence")
)

// maxSentence is the longest line accepted; NMEA 0183 allows 82 characters, receivers
// with proprietary extensions send somewhat more.
const maxSentence = 256

// Talkers are the talker ids accepted: GPS, any GNSS combined, GLONASS, Galileo, BeiDou.
var talkers = map[string]bool{"GP": true, "GN": true, "GL": true, "GA": true, "GB": true, "BD": true}

// Quality is GGA's fix quality indicator.
type Quality int

// GGA fix qualities.
const (
	QualityInvalid   Quality = 0
	QualityGPS       Quality = 1
	QualityDGPS      Quality = 2
	QualityPPS       Quality = 3
	QualityRTKFixed  Quality = 4
	QualityRTKFloat  Quality = 5
	QualityEstimated Quality = 6
	QualityManual    Quality = 7
	QualitySimulated Quality = 8
)

// GGA is a fix: time of day, position, quality, satellites, HDOP and altitude.
type GGA struct {
	Talker     string
	TimeOfDay  time.Duration // since 00:00 UTC; -1 when empty
	Lat, Lon   float64       // degrees, north and east positive; valid when HasPos
	HasPos     bool
	Quality    Quality
	Satellites int     // in use; -1 when empty
	HDOP       float64 // 0 when empty
	AltM       float64 // above mean sea level; valid when HasAlt
	HasAlt     bool
}

// RMC is the recommended minimum: time and date, validity, position, speed and course.
type RMC struct {
	Talker    string
	Time      time.Time // UTC; zero when time or date is empty
	Valid     bool      // status A
	Lat, Lon  float64   // valid when HasPos
	HasPos    bool
	SpeedMS   float64 // over ground, metres per second
	CourseDeg float64 // true course over ground; valid when HasCourse
	HasCourse bool
}

// GSA is the fix mode and dilutions of precision.
type GSA struct {
	Talker           string
	Mode             int // 1 no fix, 2 2D, 3 3D
	Satellites       int // PRNs listed as used
	PDOP, HDOP, VDOP float64
}

// Parse parses one NMEA 0183 sentence (with or without the trailing CR LF) into a GGA, RMC
// or GSA value. The checksum is required and verified. Errors wrap ErrChecksum,
// ErrMalformed or ErrUnsupported; Parse never panics, whatever the input.
func Parse(line string) (any, error) {
	line = strings.TrimRight(line, "\r\n")
	if len(line) > maxSentence {
		return nil, fmt.Errorf("%w: %d bytes long", ErrMalformed, len(line))
	}
	if len(line) < 7 || line[0] != '$' {
		return nil, fmt.Errorf("%w: %q does not start with $ and a 5-letter address", ErrMalformed, clip(line))
	}
	star := strings.LastIndexByte(line, '*')
	if star < 0 || star != len(line)-3 {
		return nil, fmt.Errorf("%w: %q has no *hh checksum", ErrChecksum, clip(line))
	}
	want, err := strconv.ParseUint(line[star+1:], 16, 8)
	if err != nil {
		return nil, fmt.Errorf("%w: %q checksum is not hex", ErrChecksum, clip(line))
	}
	var sum byte
	for i := 1; i < star; i++ {
		sum ^= line[i]
	}
	if sum != byte(want) {
		return nil, fmt.Errorf("%w: %q computed %02X", ErrChecksum, clip(line), sum)
	}
	f := strings.Split(line[1:star], ",")
	addr := f[0]
	if len(addr) > 1 && addr[0] == 'P' { // proprietary: $PUBX, $PMTK...
		return nil, fmt.Errorf("%w: proprietary %s", ErrUnsupported, clip(addr))
	}
	if len(addr) != 5 {
		return nil, fmt.Errorf("%w: address %q is not 5 letters", ErrMalformed, clip(addr))
	}
	talker, typ := addr[:2], addr[2:]
	if !talkers[talker] {
		return nil, fmt.Errorf("%w: talker %q", ErrUnsupported, talker)
	}
	switch typ {
	case "GGA":
		return parseGGA(talker, f)
	case "RMC":
		return parseRMC(talker, f)
	case "GSA":
		return parseGSA(talker, f)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, clip(addr))
}

func parseGGA(talker string, f []string) (GGA, error) {
	g := GGA{Talker: talker}
	if len(f) < 10 {
		return g, fmt.Errorf("%w: GGA has %d fields, want >= 10", ErrMalformed, len(f))
	}
	var err error
	if g.TimeOfDay, err = parseTimeOfDay(f[1]); err != nil {
		return g, err
	}
	if g.Lat, g.Lon, g.HasPos, err = parseLatLon(f[2], f[3], f[4], f[5]); err != nil {
		return g, err
	}
	q, err := parseInt(f[6], 0, 9, "GGA quality")
	if err != nil {
		return g, err
	}
	g.Quality = Quality(q)
	if g.Satellites, err = parseInt(f[7], -1, 99, "GGA satellites"); err != nil {
		return g, err
	}
	if g.HDOP, err = parseFloat(f[8], 0, 100, "GGA hdop"); err != nil {
		return g, err
	}
	if f[9] != "" {
		g.HasAlt = true
		if g.AltM, err = parseFloat(f[9], -10000, 100000, "GGA altitude"); err != nil {
			return g, err
		}
	}
	return g, nil
}

func parseRMC(talker string, f []string) (RMC, error) {
	r := RMC{Talker: talker}
	if len(f) < 10 {
		return r, fmt.Errorf("%w: RMC has %d fields, want >= 10", ErrMalformed, len(f))
	}
	tod, err := parseTimeOfDay(f[1])
	if err != nil {
		return r, err
	}
	switch f[2] {
	case "A":
		r.Valid = true
	case "V", "":
	default:
		return r, fmt.Errorf("%w: RMC status %q", ErrMalformed, clip(f[2]))
	}
	if r.Lat, r.Lon, r.HasPos, err = parseLatLon(f[3], f[4], f[5], f[6]); err != nil {
		return r, err
	}
	knots, err := parseFloat(f[7], 0, 10000, "RMC speed")
	if err != nil {
		return r, err
	}
	r.SpeedMS = knots * 1852 / 3600
	if f[8] != "" {
		r.HasCourse = true
		if r.CourseDeg, err = parseFloat(f[8], 0, 360, "RMC course"); err != nil {
			return r, err
		}
	}
	if f[9] != "" && tod >= 0 {
		d, err := time.Parse("020106", f[9])
		if err != nil {
			return r, fmt.Errorf("%w: RMC date %q", ErrMalformed, clip(f[9]))
		}
		r.Time = d.Add(tod)
	}
	return r, nil
}

func parseGSA(talker string, f []string) (GSA, error) {
	g := GSA{Talker: talker}
	if len(f) < 18 {
		return g, fmt.Errorf("%w: GSA has %d fields, want >= 18", ErrMalformed, len(f))
	}
	if f[1] != "A" && f[1] != "M" && f[1] != "" {
		return g, fmt.Errorf("%w: GSA selection %q", ErrMalformed, clip(f[1]))
	}
	var err error
	if g.Mode, err = parseInt(f[2], 0, 3, "GSA mode"); err != nil {
		return g, err
	}
	for _, prn := range f[3:15] {
		if prn != "" {
			if _, err := parseInt(prn, 0, 999, "GSA satellite"); err != nil {
				return g, err
			}
			g.Satellites++
		}
	}
	if g.PDOP, err = parseFloat(f[15], 0, 100, "GSA pdop"); err != nil {
		return g, err
	}
	if g.HDOP, err = parseFloat(f[16], 0, 100, "GSA hdop"); err != nil {
		return g, err
	}
	if g.VDOP, err = parseFloat(f[17], 0, 100, "GSA vdop"); err != nil {
		return g, err
	}
	return g, nil
}

// parseTimeOfDay reads hhmmss[.ss]; empty gives -1.
func parseTimeOfDay(s string) (time.Duration, error) {
	if s == "" {
		return -1, nil
	}
	bad := fmt.Errorf("%w: time %q", ErrMalformed, clip(s))
	if len(s) < 6 {
		return 0, bad
	}
	h, err1 := strconv.Atoi(s[0:2])
	m, err2 := strconv.Atoi(s[2:4])
	sec, err3 := strconv.ParseFloat(s[4:], 64)
	if err1 != nil || err2 != nil || err3 != nil || s[0] == '-' || s[2] == '-' || s[4] == '-' || s[4] == '+' ||
		h > 23 || m > 59 || !(sec >= 0 && sec < 61) {
		return 0, bad
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second)), nil
}

// parseLatLon reads ddmm.mmmm,N|S,dddmm.mmmm,E|W into signed degrees; all four empty means no
// position.
func parseLatLon(lat, ns, lon, ew string) (la, lo float64, ok bool, err error) {
	if lat == "" && ns == "" && lon == "" && ew == "" {
		return 0, 0, false, nil
	}
	if la, err = degMin(lat, 2, 90); err != nil {
		return 0, 0, false, err
	}
	if lo, err = degMin(lon, 3, 180); err != nil {
		return 0, 0, false, err
	}
	switch ns {
	case "N":
	case "S":
		la = -la
	default:
		return 0, 0, false, fmt.Errorf("%w: hemisphere %q", ErrMalformed, clip(ns))
	}
	switch ew {
	case "E":
	case "W":
		lo = -lo
	default:
		return 0, 0, false, fmt.Errorf("%w: hemisphere %q", ErrMalformed, clip(ew))
	}
	return la, lo, true, nil
}

// degMin converts d..dmm.mmmm (degDigits digits of degrees) to degrees, at most maxDeg.
func degMin(s string, degDigits int, maxDeg float64) (float64, error) {
	bad := fmt.Errorf("%w: coordinate %q", ErrMalformed, clip(s))
	dot := strings.IndexByte(s, '.')
	if dot < 0 {
		dot = len(s)
	}
	if dot != degDigits+2 {
		return 0, bad
	}
	for i := range dot {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	deg, _ := strconv.Atoi(s[:degDigits])
	mins, err := strconv.ParseFloat(s[degDigits:], 64)
	if err != nil || !(mins >= 0 && mins < 60) {
		return 0, bad
	}
	v := float64(deg) + mins/60
	if v > maxDeg {
		return 0, bad
	}
	return v, nil
}

func parseInt(s string, empty, hi int, what string) (int, error) {
	if s == "" {
		return empty, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > hi {
		return 0, fmt.Errorf("%w: %s %q", ErrMalformed, what, clip(s))
	}
	return v, nil
}

func parseFloat(s string, lo, hi float64, what string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= lo && v <= hi) {
		return 0, fmt.Errorf("%w: %s %q", ErrMalformed, what, clip(s))
	}
	return v, nil
}

// clip shortens outside input quoted in errors.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Checksum returns the NMEA checksum of body (the part between $ and *), for writing
// sentences (simulators, tests).
func Checksum(body string) byte {
	var sum byte
	for i := 0; i < len(body); i++ {
		sum ^= body[i]
	}
	return sum
}

// Sentence returns "$body*hh\r\n" for body.
func Sentence(body string) string {
	return fmt.Sprintf("$%s*%02X\r\n", body, Checksum(body))
}
