package board

import (
	"bytes"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite the golden .prom files in testdata/")

// tree writes the fixture testdata/name.txtar (txtar: "-- path --" lines, each followed by
// that file's contents) into a temporary folder and returns it. A fixture is a text file
// rather than a folder because sysfs names such as soc:firmware are not valid in Go module
// zips.
func tree(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".txtar"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var path string
	var body strings.Builder
	flush := func() {
		if path == "" {
			return
		}
		p := filepath.Join(root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		body.Reset()
	}
	for line := range strings.Lines(string(b)) {
		if s := strings.TrimSpace(line); strings.HasPrefix(s, "-- ") && strings.HasSuffix(s, " --") {
			flush()
			path = strings.TrimSuffix(strings.TrimPrefix(s, "-- "), " --")
			continue
		}
		if path != "" {
			body.WriteString(line)
		}
	}
	flush()
	return root
}

func val[T any](p *T) any {
	if p == nil {
		return "absent"
	}
	return *p
}

func TestReadFixtures(t *testing.T) {
	type want struct {
		cpuTemp, freq, maxFreq, load1, uptime any
		throttled                             any
		throttledNow                          bool
		memTotal, memAvail                    any
		zones                                 int
		cpu                                   any
	}
	cases := map[string]want{
		"rpi4": {cpuTemp: 81.328, freq: 6e8, maxFreq: 1.5e9, load1: 3.91, uptime: 86523.41, throttled: uint32(0x50005), throttledNow: true,
			memTotal: uint64(3885396 * 1024), memAvail: uint64(2602108 * 1024), zones: 1,
			cpu: CPUTimes{Total: 2255740 + 2100 + 481025 + 31001850 + 12042 + 9133, Idle: 31001850 + 12042}},
		"vm": {cpuTemp: "absent", freq: "absent", maxFreq: "absent", load1: 0.08, uptime: 3605.12, throttled: "absent",
			memTotal: uint64(2030140 * 1024), memAvail: uint64(1563228 * 1024), zones: 0,
			cpu: CPUTimes{Total: 10132 + 12 + 3401 + 700233 + 421 + 88 + 15, Idle: 700233 + 421}},
		"x86_desktop": {cpuTemp: 47.0, freq: 3.9e9, maxFreq: 4.7e9, load1: 0.52, uptime: 1234.0, throttled: "absent",
			memTotal: uint64(32559784 * 1024), memAvail: uint64(27001160 * 1024), zones: 3, cpu: CPUTimes{Total: 1000, Idle: 800}},
	}
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			root := tree(t, name)
			h := Read(root, "var/lib/vigil")
			got := want{cpuTemp: val(h.CPUTempC), freq: val(h.CPUFreqHz), maxFreq: val(h.CPUMaxFreqHz), load1: val(h.Load1),
				uptime: val(h.UptimeSeconds), throttled: val(h.Throttled), memTotal: val(h.MemTotalBytes),
				memAvail: val(h.MemAvailableBytes), zones: len(h.Zones), cpu: val(h.CPU)}
			got.throttledNow, _ = h.ThrottledNow()
			if got != w {
				t.Errorf("Read(%s)\n got %+v\nwant %+v", name, got, w)
			}
			if h.CPUUsage != nil {
				t.Errorf("CPUUsage from a single Read = %v, want absent", *h.CPUUsage)
			}
			// The disk path exists in the rpi4 tree only; elsewhere it is absent, not an error.
			if (h.DiskFreeBytes != nil) != (name == "rpi4") || h.DiskFreeBytes != nil && *h.DiskFreeBytes > *h.DiskSizeBytes {
				t.Errorf("disk: size %v free %v", val(h.DiskSizeBytes), val(h.DiskFreeBytes))
			}
		})
	}
}

// TestReadHere reads this machine: whatever it lacks must be absent, what every Linux has
// must be there and sane.
func TestReadHere(t *testing.T) {
	if _, err := os.Stat("/proc/loadavg"); err != nil {
		t.Skip("no /proc here")
	}
	m := NewMonitor("/", os.TempDir())
	h := m.Read()
	if h.Load1 == nil || h.MemTotalBytes == nil || h.MemAvailableBytes == nil || h.UptimeSeconds == nil || h.CPU == nil {
		t.Fatalf("missing /proc readings: %+v", h)
	}
	if *h.MemAvailableBytes > *h.MemTotalBytes || *h.MemTotalBytes < 64<<20 {
		t.Errorf("memory available %d of total %d", *h.MemAvailableBytes, *h.MemTotalBytes)
	}
	if h.DiskSizeBytes == nil || *h.DiskFreeBytes > *h.DiskSizeBytes {
		t.Errorf("disk of %s: size %v free %v", os.TempDir(), val(h.DiskSizeBytes), val(h.DiskFreeBytes))
	}
	if h.CPUTempC != nil && (*h.CPUTempC < -40 || *h.CPUTempC > 150) {
		t.Errorf("CPU temperature %v °C", *h.CPUTempC)
	}
	for i := 0; i < 1e7; i++ { // burn a little CPU so the tick counters move
		_ = math.Sqrt(float64(i))
	}
	h2 := m.Read()
	if h2.CPUUsage != nil && (*h2.CPUUsage < 0 || *h2.CPUUsage > 1) {
		t.Errorf("CPU usage %v", *h2.CPUUsage)
	}
	t.Logf("this machine: cpu temp %v, zones %d, load1 %v, mem avail %v/%v, cpu usage %v",
		val(h.CPUTempC), len(h.Zones), val(h.Load1), val(h.MemAvailableBytes), val(h.MemTotalBytes), val(h2.CPUUsage))
}

func TestUsage(t *testing.T) {
	a := CPUTimes{Total: 1000, Idle: 800}
	if u, ok := Usage(a, CPUTimes{Total: 1100, Idle: 850}); !ok || u != 0.5 {
		t.Errorf("Usage = %v %v, want 0.5", u, ok)
	}
	for _, b := range []CPUTimes{a, {Total: 900, Idle: 800}, {Total: 1100, Idle: 700}, {Total: 1010, Idle: 900}} {
		if _, ok := Usage(a, b); ok {
			t.Errorf("Usage(%v, %v) ok", a, b)
		}
	}
}

// TestCollector compares each fixture's scrape with its golden testdata/NAME.prom (go test
// -run TestCollector -update rewrites them), lints it as promtool does, and runs promtool
// check metrics on it when promtool is on PATH or in $PROMTOOL.
func TestCollector(t *testing.T) {
	for _, name := range []string{"rpi4", "vm", "x86_desktop"} {
		t.Run(name, func(t *testing.T) {
			c := NewCollector(tree(t, name), "var/lib/vigil")
			// Disk sizes are the temporary folder's, and CPU usage needs two scrapes:
			// the golden files hold the rest.
			names := []string{"vigil_board_cpu_temperature_celsius", "vigil_board_thermal_zone_temperature_celsius",
				"vigil_board_throttled", "vigil_board_throttled_flags", "vigil_board_cpu_frequency_hertz",
				"vigil_board_cpu_frequency_max_hertz", "vigil_board_load1", "vigil_board_load5", "vigil_board_load15",
				"vigil_board_memory_total_bytes", "vigil_board_memory_available_bytes", "vigil_board_uptime_seconds"}
			golden := filepath.Join("testdata", name+".prom")
			if *update {
				if err := os.WriteFile(golden, scrape(t, c, names), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, err := os.Open(golden)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := testutil.CollectAndCompare(c, f, names...); err != nil {
				t.Error(err)
			}
			problems, err := testutil.CollectAndLint(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
			promtool(t, scrape(t, c, nil))
		})
	}
}

// TestCollectorHere scrapes this machine twice (the second has CPU usage) and checks it
// with promtool when available.
func TestCollectorHere(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc here")
	}
	c := NewCollector("/", os.TempDir())
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "vigil_board_memory_available_bytes", "vigil_board_load1", "vigil_board_disk_free_bytes"); n != 3 {
		t.Errorf("%d of the always-present metrics, want 3", n)
	}
	promtool(t, scrape(t, c, nil))
}

// scrape gathers c (only names, when given) in the text exposition format.
func scrape(t *testing.T, c prometheus.Collector, names []string) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if len(names) > 0 && !contains(names, mf.GetName()) {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// promtool runs `promtool check metrics` on a scrape when the tool is available.
func promtool(t *testing.T, scrape []byte) {
	t.Helper()
	bin := os.Getenv("PROMTOOL")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("promtool"); err != nil {
			t.Log("promtool not found (set PROMTOOL): skipping promtool check metrics")
			return
		}
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n--- scrape ---\n%s", err, out, scrape)
	}
}
