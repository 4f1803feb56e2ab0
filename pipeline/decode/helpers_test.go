package decode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/ingest/file"
)

// readPackets reads every video packet of a file with the file source.
func readPackets(tb testing.TB, path string) []frame.Packet {
	tb.Helper()
	src, err := file.New(file.Config{Path: path})
	if err != nil {
		tb.Fatal(err)
	}
	var pkts []frame.Packet
	err = src.Run(context.Background(), func(p frame.Packet) { pkts = append(pkts, p) })
	if !errors.Is(err, io.EOF) {
		tb.Fatalf("Run(%s) = %v, want io.EOF", path, err)
	}
	return pkts
}

// needFFmpeg returns the ffmpeg CLI's path or skips the test.
func needFFmpeg(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		tb.Skip("ffmpeg CLI not installed (apt-get install -y ffmpeg)")
	}
	return p
}

// ffmpeg runs the ffmpeg CLI and returns its stdout.
func ffmpeg(tb testing.TB, args ...string) []byte {
	tb.Helper()
	bin := needFFmpeg(tb)
	cmd := exec.Command(bin, append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		tb.Fatalf("ffmpeg %v: %v: %s", args, err, errb.String())
	}
	return out.Bytes()
}

// makeClip encodes a test pattern clip with ffmpeg into dir and returns its path.
func makeClip(tb testing.TB, dir, name string, args ...string) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	ffmpeg(tb, append(args, "-y", p)...)
	if st, err := os.Stat(p); err != nil || st.Size() == 0 {
		tb.Fatalf("ffmpeg made no %s: %v", name, err)
	}
	return p
}

// splitAUs cuts an Annex-B elementary stream into access units, each starting at an access
// unit delimiter NAL unit (isAUD tells one by its first header byte).
func splitAUs(data []byte, isAUD func(hdr byte) bool) [][]byte {
	var starts []int
	for i := 0; i+4 < len(data); i++ {
		if data[i] == 0 && data[i+1] == 0 && data[i+2] == 1 {
			s := i
			if s > 0 && data[s-1] == 0 {
				s--
			}
			if isAUD(data[i+3]) {
				starts = append(starts, s)
			}
			i += 2
		}
	}
	var aus [][]byte
	for k, s := range starts {
		e := len(data)
		if k+1 < len(starts) {
			e = starts[k+1]
		}
		aus = append(aus, data[s:e])
	}
	return aus
}

func isH264AUD(h byte) bool { return h&0x1f == 9 }
func isHEVCAUD(h byte) bool { return (h>>1)&0x3f == 35 }

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

// rssBytes reads the process's resident set size from /proc.
func rssBytes() (int64, bool) {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb); err == nil {
				return kb << 10, true
			}
		}
	}
	return 0, false
}
