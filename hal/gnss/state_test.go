package gnss

import (
	"errors"
	"testing"
	"time"
)

// clock is a settable clock for staleness checks.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSerialFixState(t *testing.T) {
	c := &clock{t: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	src, err := NewSerial(SerialConfig{Path: "/dev/unused", MaxAge: 3 * time.Second, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	pos := func() error { _, err := src.Position(); return err }
	if err := pos(); !errors.Is(err, ErrNoFix) {
		t.Fatalf("no sentences: %v, want ErrNoFix", err)
	}
	src.Handle(Sentence("GPGGA,,,,,,0,00,99.99,,,,,,"))
	if err := pos(); !errors.Is(err, ErrNoFix) {
		t.Fatalf("receiver without fix: %v, want ErrNoFix", err)
	}
	src.Handle(Sentence("GPRMC,235959,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"))
	src.Handle(Sentence("GPGGA,235959,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
	fix, err := src.Position()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(1994, 3, 23, 23, 59, 59, 0, time.UTC); !fix.Time.Equal(want) {
		t.Errorf("fix time %v, want %v", fix.Time, want)
	}
	// Past midnight, before the next RMC: GGA's time of day rolls the date.
	src.Handle(Sentence("GPGGA,000001,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
	if fix, _ := src.Position(); !fix.Time.Equal(time.Date(1994, 3, 24, 0, 0, 1, 0, time.UTC)) {
		t.Errorf("after midnight fix time %v, want 1994-03-24 00:00:01", fix.Time)
	}
	c.t = c.t.Add(4 * time.Second)
	fix, err = src.Position()
	if !errors.Is(err, ErrStale) || fix.Lat == 0 {
		t.Fatalf("4 s later: %v %+v, want ErrStale with the old fix", err, fix)
	}
	src.Handle(Sentence("GPGGA,000005,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
	if err := pos(); err != nil {
		t.Fatalf("fresh fix: %v", err)
	}
	src.Handle(Sentence("GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"))
	if err := pos(); !errors.Is(err, ErrNoFix) {
		t.Fatalf("GSA says no fix: %v, want ErrNoFix", err)
	}
	src.Handle(Sentence("GPRMC,000006,V,,,,,,,230394,,,N"))
	if err := pos(); !errors.Is(err, ErrNoFix) {
		t.Fatalf("RMC void: %v, want ErrNoFix", err)
	}
	src.Handle("$GPGGA,garbage*00\r\n")
	src.Handle("\r\n")
	if st := src.Stats(); st.Malformed != 1 || st.Sentences != 7 {
		t.Errorf("stats %+v, want 1 malformed, 7 sentences", st)
	}
}

func TestStatic(t *testing.T) {
	s, err := NewStatic(-33.8568, 151.2153, 12, true)
	if err != nil {
		t.Fatal(err)
	}
	fix, err := s.Position()
	if err != nil || fix.Lat != -33.8568 || fix.Lon != 151.2153 || !fix.HasAlt || fix.Quality != QualityManual {
		t.Errorf("static fix %+v, %v", fix, err)
	}
	for _, ll := range [][2]float64{{91, 0}, {0, -181}} {
		if _, err := NewStatic(ll[0], ll[1], 0, false); err == nil {
			t.Errorf("NewStatic(%v) accepted", ll)
		}
	}
}
