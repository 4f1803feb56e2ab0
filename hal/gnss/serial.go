package gnss

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// SerialConfig configures a Serial source.
type SerialConfig struct {
	// Path is the device: /dev/ttyUSB0, /dev/serial0, a pty's slave side.
	Path string
	// Baud is the line speed set on a tty (4800, 9600, 38400, 115200...); 0 leaves it as is.
	// Non-tty paths ignore it.
	Baud int
	// MaxAge is how old the last valid fix may be before Position says ErrStale; 0 means 5 s.
	MaxAge time.Duration
	// Retry is the pause before reopening the device after it fails; 0 means 1 s.
	Retry time.Duration
	// Logger receives open failures (once per change of error); nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests set it to check staleness.
	Now func() time.Time
}

// Stats are a Serial source's counters since Start.
type Stats struct {
	Sentences   uint64 // parsed and applied
	Malformed   uint64 // bad checksum, not NMEA, out-of-range fields, over-long lines
	Unsupported uint64 // well-formed sentences of other types or talkers
	Opens       uint64 // successful opens of the device
}

// Serial is a Source reading NMEA 0183 from a serial device. It reopens the device after a
// read or open error (unplugged receiver, closed pty) until Close.
type Serial struct {
	cfg SerialConfig
	log *slog.Logger

	mu       sync.Mutex
	st       Stats
	fix      Fix
	valid    bool      // receiver's latest report was a fix
	lastGood time.Time // local time of the latest valid position
	date     time.Time // latest RMC date (midnight UTC), for GGA's time of day
	fileMu   sync.Mutex
	file     *os.File

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

var _ Source = (*Serial)(nil)

// NewSerial validates cfg without I/O.
func NewSerial(cfg SerialConfig) (*Serial, error) {
	if cfg.Path == "" {
		return nil, errors.New("gnss: 'path' is empty")
	}
	if cfg.Baud < 0 {
		return nil, fmt.Errorf("gnss: 'baud' must be >= 0, got %d", cfg.Baud)
	}
	if cfg.Baud != 0 && baudFlag(cfg.Baud) == 0 {
		return nil, fmt.Errorf("gnss: 'baud' %d is not a standard rate", cfg.Baud)
	}
	if cfg.MaxAge < 0 || cfg.Retry < 0 {
		return nil, errors.New("gnss: 'max_age' and 'retry' must be >= 0")
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 5 * time.Second
	}
	if cfg.Retry == 0 {
		cfg.Retry = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Serial{cfg: cfg, log: log.With("component", "gnss", "path", cfg.Path), fix: Fix{Satellites: -1}}, nil
}

// Start opens the device once, so that a wrong path fails here, and starts the reader.
func (s *Serial) Start(ctx context.Context) error {
	if s.done != nil {
		return errors.New("gnss: Start called twice")
	}
	f, err := openDevice(s.cfg.Path, s.cfg.Baud)
	if err != nil {
		return fmt.Errorf("gnss: open %s: %w", s.cfg.Path, err)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	s.setFile(f)
	go s.run(ctx, f)
	return nil
}

// Close stops the reader and waits for it.
func (s *Serial) Close() error {
	s.once.Do(func() {
		if s.done == nil {
			return
		}
		s.cancel()
		s.setFile(nil) // unblocks a pending Read
		<-s.done
	})
	return nil
}

func (s *Serial) setFile(f *os.File) {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if s.file != nil && s.file != f {
		s.file.Close()
	}
	s.file = f
}

// run reads the device until ctx ends, reopening it after errors.
func (s *Serial) run(ctx context.Context, f *os.File) {
	defer close(s.done)
	var lastErr string
	for {
		if f != nil {
			s.mu.Lock()
			s.st.Opens++
			s.mu.Unlock()
			err := s.read(f)
			if ctx.Err() != nil {
				return
			}
			s.log.Debug("device read ended; reopening", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Retry):
		}
		var err error
		f, err = openDevice(s.cfg.Path, s.cfg.Baud)
		if err != nil {
			if err.Error() != lastErr {
				s.log.Warn("cannot open device", "err", err)
				lastErr = err.Error()
			}
			f = nil
			continue
		}
		lastErr = ""
		s.setFile(f)
		if ctx.Err() != nil { // Close ran between the open and setFile
			s.setFile(nil)
			return
		}
	}
}

// read handles lines until the device fails or is closed.
func (s *Serial) read(f io.Reader) error {
	br := bufio.NewReaderSize(f, 2*maxSentence)
	skipping := false // inside an over-long line
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !skipping {
				s.count(ErrMalformed)
			}
			skipping = true
			continue
		case err != nil:
			return err
		case skipping:
			skipping = false
			continue
		}
		s.Handle(string(line))
	}
}

func (s *Serial) count(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(err, ErrUnsupported) {
		s.st.Unsupported++
	} else {
		s.st.Malformed++
	}
}

// Handle parses one line and applies it to the fix state, counting it. Blank lines are
// ignored. The reader calls it for every line; simulators and replays may call it directly.
func (s *Serial) Handle(line string) {
	if len(line) == 0 || line == "\n" || line == "\r\n" {
		return
	}
	v, err := Parse(line)
	if err != nil {
		s.count(err)
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Sentences++
	switch v := v.(type) {
	case GGA:
		if v.Quality == QualityInvalid || !v.HasPos {
			s.valid = false
			return
		}
		s.fix.Lat, s.fix.Lon, s.fix.Quality = v.Lat, v.Lon, v.Quality
		s.fix.AltM, s.fix.HasAlt = v.AltM, v.HasAlt
		s.fix.Satellites, s.fix.HDOP = v.Satellites, v.HDOP
		if !s.date.IsZero() && v.TimeOfDay >= 0 {
			t := s.date.Add(v.TimeOfDay)
			if s.fix.Time.Sub(t) > 12*time.Hour { // past midnight since the last RMC
				t = t.Add(24 * time.Hour)
			}
			s.fix.Time = t
		}
		s.fix.Received, s.lastGood, s.valid = now, now, true
	case RMC:
		if !v.Time.IsZero() {
			y, m, d := v.Time.Date()
			s.date = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		}
		if !v.Valid || !v.HasPos {
			s.valid = false
			return
		}
		s.fix.Lat, s.fix.Lon = v.Lat, v.Lon
		if !v.Time.IsZero() {
			s.fix.Time = v.Time
		}
		s.fix.SpeedMS, s.fix.CourseDeg, s.fix.HasCourse = v.SpeedMS, v.CourseDeg, v.HasCourse
		if s.fix.Quality == QualityInvalid {
			s.fix.Quality = QualityGPS // RMC alone says valid, not how
		}
		s.fix.Received, s.lastGood, s.valid = now, now, true
	case GSA:
		s.fix.Mode = v.Mode
		if v.HDOP > 0 {
			s.fix.HDOP = v.HDOP
		}
		if v.Mode == 1 {
			s.valid = false
		}
	}
}

// Position returns the latest fix: ErrNoFix before the first valid one or after the
// receiver reports none, ErrStale (with the old fix) when it is older than MaxAge.
func (s *Serial) Position() (Fix, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.valid {
		return Fix{}, ErrNoFix
	}
	if age := s.cfg.Now().Sub(s.lastGood); age > s.cfg.MaxAge {
		return s.fix, fmt.Errorf("%w: %v old", ErrStale, age.Round(time.Millisecond))
	}
	return s.fix, nil
}

// Stats returns the counters.
func (s *Serial) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}
