package gnss

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair through /dev/ptmx (posix_openpt, grantpt, unlockpt,
// ptsname) and returns the master side and the slave's path. The master plays the GNSS
// receiver: what is written to it is what a program reading the slave receives.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil { // unlockpt
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN) // ptsname
	}); err != nil || ioErr != nil {
		t.Fatalf("pty setup: %v %v", err, ioErr)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// receiver writes NMEA into the pty master every interval until ctx ends, like a receiver
// at 1 Hz (faster here), walking north by 0.0001 minutes per epoch. Garbage lines are mixed
// in. It returns when ctx ends.
func receiver(ctx context.Context, w *os.File, every time.Duration, garbage []string) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		hh, mm, ss := 12, 35+i/60%24, i%60
		lat := fmt.Sprintf("4807.%04d", 380+i%1000)
		var b strings.Builder
		b.WriteString(Sentence(fmt.Sprintf("GNRMC,%02d%02d%02d.00,A,%s,N,01131.0000,E,0.5,90.0,230394,,,A", hh, mm, ss, lat)))
		b.WriteString(Sentence(fmt.Sprintf("GNGGA,%02d%02d%02d.00,%s,N,01131.0000,E,1,09,0.9,545.4,M,46.9,M,,", hh, mm, ss, lat)))
		b.WriteString(Sentence("GNGSA,A,3,04,05,09,12,24,,,,,,,,1.8,0.9,1.5"))
		b.WriteString(Sentence("GPGSV,1,1,04,04,40,083,46,05,17,308,41,09,07,344,39,12,50,110,44"))
		b.WriteString(garbage[i%len(garbage)])
		if _, err := w.WriteString(b.String()); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// waitFor polls cond until it holds or a generous deadline (a hang, not a timing check).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSerialOverPTY runs a Serial source on the slave side of a real pty while a simulated
// receiver writes NMEA (with garbage) into the master: the fix arrives, garbage is counted,
// and Close returns.
func TestSerialOverPTY(t *testing.T) {
	master, slave := openPTY(t)
	src, err := NewSerial(SerialConfig{Path: slave, Baud: 9600, MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Position(); !errors.Is(err, ErrNoFix) {
		t.Fatalf("Position before Start = %v, want ErrNoFix", err)
	}
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	garbage := []string{
		"not nmea at all\r\n",
		"$GNGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*00\r\n", // bad checksum
		strings.Repeat("x", 1000) + "\r\n",                                      // over-long line
		"$GNGGA,123519,4807.038,N*7F\r\n",
	}
	go func() { defer close(done); receiver(ctx, master, 10*time.Millisecond, garbage) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "a fix", func() bool { _, err := src.Position(); return err == nil })
	waitFor(t, "garbage counted", func() bool { return src.Stats().Malformed >= 8 })
	fix, err := src.Position()
	if err != nil {
		t.Fatal(err)
	}
	if fix.Lat < 48+7.038/60 || fix.Lat > 48+7.1/60 || fix.Lon != 11+31.0/60 {
		t.Errorf("fix at %v,%v, want near 48.1173,11.5167", fix.Lat, fix.Lon)
	}
	if fix.Quality != QualityGPS || fix.Satellites != 9 || fix.Mode != 3 || !fix.HasAlt || fix.AltM != 545.4 || fix.HDOP != 0.9 {
		t.Errorf("fix %+v: want quality 1, 9 satellites, 3D, altitude 545.4 m, hdop 0.9", fix)
	}
	if y, m, d := fix.Time.Date(); y != 1994 || m != 3 || d != 23 {
		t.Errorf("fix time %v, want on 1994-03-23", fix.Time)
	}
	st := src.Stats()
	if st.Sentences < 3 || st.Unsupported < 1 || st.Opens != 1 {
		t.Errorf("stats %+v: want sentences, GSV counted as unsupported, one open", st)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
	if _, err := src.Position(); err != nil {
		t.Errorf("Position after Close = %v, want the last fix", err)
	}
}

// TestSerialReopens feeds the source through a FIFO whose writer goes away after each
// sentence (as an unplugged receiver does): the source reopens the path and takes the next
// writer's position.
func TestSerialReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gps.fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	src, err := NewSerial(SerialConfig{Path: path, Retry: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, lat := range []string{"4807.038", "4808.000"} {
		// The source may be closing the FIFO after an EOF just as this writer opens it; the
		// write then fails with EPIPE and is simply tried again, as a receiver would.
		waitFor(t, "a write at "+lat, func() bool {
			w, err := os.OpenFile(path, os.O_WRONLY, 0) // blocks until the source has it open
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			_, err = w.WriteString(Sentence("GPGGA,123519," + lat + ",N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
			return err == nil
		})
		want, _ := degMin(lat, 2, 90)
		waitFor(t, "fix at "+lat, func() bool { f, err := src.Position(); return err == nil && f.Lat == want })
	}
	if n := src.Stats().Opens; n < 2 {
		t.Errorf("%d opens, want >= 2", n)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSerialStartErrors(t *testing.T) {
	src, err := NewSerial(SerialConfig{Path: "/nonexistent/tty"})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "/nonexistent/tty") {
		t.Errorf("Start on a missing device = %v, want an error naming it", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("Close after a failed Start = %v", err)
	}
	for _, cfg := range []SerialConfig{{}, {Path: "/dev/x", Baud: 1234}, {Path: "/dev/x", MaxAge: -1}} {
		if _, err := NewSerial(cfg); err == nil {
			t.Errorf("NewSerial(%+v) accepted", cfg)
		}
	}
}
