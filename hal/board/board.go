// Package board reads the health of the board the agent runs on from /sys and /proc: CPU
// temperature, throttling, load, memory, disk, uptime and CPU usage, and exposes it as
// Prometheus metrics (vigil_board_*).
//
// Every reading is optional: a sensor the board lacks (a VM has no thermal zones, only a
// Raspberry Pi has get_throttled) is reported as absent (a nil pointer, no metric), never as
// an error. Read takes a filesystem root, so tests point it at fixture trees.
package board

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Zone is one thermal zone.
type Zone struct {
	Type  string  // e.g. "cpu-thermal", "x86_pkg_temp", "acpitz"
	TempC float64 // degrees Celsius
}

// Health is one reading of the board. Nil pointers are readings the board does not offer.
type Health struct {
	CPUTempC *float64 // the CPU's thermal zone (see CPUZone), else the hottest zone
	Zones    []Zone   // all readable thermal zones, in zone order

	// Throttled is the Raspberry Pi firmware's get_throttled bit field (bit 0 under-voltage,
	// 1 frequency capped, 2 throttled, 3 soft temperature limit, each now; bits 16-19 the
	// same since boot).
	Throttled *uint32
	// CPUFreqHz and CPUMaxFreqHz are cpu0's current and maximum frequency: a current well
	// below the maximum under load hints at throttling on boards without get_throttled.
	CPUFreqHz, CPUMaxFreqHz *float64

	Load1, Load5, Load15 *float64

	MemTotalBytes, MemAvailableBytes *uint64

	DiskPath                     string // as configured
	DiskSizeBytes, DiskFreeBytes *uint64

	UptimeSeconds *float64

	// CPU is the aggregate line of /proc/stat; CPUUsage the busy fraction (0-1) since the
	// Monitor's previous reading (nil on the first, or from Read).
	CPU      *CPUTimes
	CPUUsage *float64
}

// ThrottledNow reports whether the Raspberry Pi firmware says the board is under-voltage,
// capped, throttled or at its soft temperature limit now; ok is false without get_throttled.
func (h Health) ThrottledNow() (now, ok bool) {
	if h.Throttled == nil {
		return false, false
	}
	return *h.Throttled&0xf != 0, true
}

// CPUZone reports whether a thermal zone type is the CPU's (Raspberry Pi cpu-thermal,
// Intel x86_pkg_temp, AMD k10temp/Tctl, many ARM SoCs' cpu*/soc* zones).
func CPUZone(typ string) bool {
	t := strings.ToLower(typ)
	return strings.Contains(t, "cpu") || t == "x86_pkg_temp" || strings.HasPrefix(t, "soc") || strings.Contains(t, "k10temp") || strings.Contains(t, "tctl")
}

// Read reads the board's health under root ("/" on a real board). diskPath, when not empty,
// is the filesystem whose size and free space are reported, relative to root.
func Read(root, diskPath string) Health {
	h := Health{DiskPath: diskPath}
	readThermal(root, &h)
	if s, ok := readFile(root, "sys/devices/platform/soc/soc:firmware/get_throttled"); ok {
		if v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "throttled="), "0x"), 16, 32); err == nil {
			h.Throttled = ptr(uint32(v))
		}
	}
	cpufreq := "sys/devices/system/cpu/cpu0/cpufreq/"
	if v, ok := readUint(root, cpufreq+"scaling_cur_freq"); ok {
		h.CPUFreqHz = ptr(float64(v) * 1000)
	}
	if v, ok := readUint(root, cpufreq+"cpuinfo_max_freq"); ok {
		h.CPUMaxFreqHz = ptr(float64(v) * 1000)
	}
	if s, ok := readFile(root, "proc/loadavg"); ok {
		if l, ok := ParseLoadavg(s); ok {
			h.Load1, h.Load5, h.Load15 = ptr(l[0]), ptr(l[1]), ptr(l[2])
		}
	}
	if s, ok := readFile(root, "proc/meminfo"); ok {
		m := ParseMeminfo(s)
		if v, ok := m["MemTotal"]; ok {
			h.MemTotalBytes = ptr(v)
		}
		if v, ok := m["MemAvailable"]; ok {
			h.MemAvailableBytes = ptr(v)
		}
	}
	if s, ok := readFile(root, "proc/uptime"); ok {
		if f := strings.Fields(s); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil && v >= 0 && !math.IsInf(v, 0) {
				h.UptimeSeconds = ptr(v)
			}
		}
	}
	if s, ok := readFile(root, "proc/stat"); ok {
		if c, ok := ParseStat(s); ok {
			h.CPU = &c
		}
	}
	if diskPath != "" {
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Join(root, diskPath), &st); err == nil {
			h.DiskSizeBytes = ptr(st.Blocks * uint64(st.Bsize))
			h.DiskFreeBytes = ptr(st.Bavail * uint64(st.Bsize))
		}
	}
	return h
}

func readThermal(root string, h *Health) {
	dirs, _ := filepath.Glob(filepath.Join(root, "sys/class/thermal/thermal_zone*"))
	slices.SortFunc(dirs, func(a, b string) int { return zoneNum(a) - zoneNum(b) })
	var cpu, hottest *float64
	for _, d := range dirs {
		rel, _ := filepath.Rel(root, d)
		milli, ok := readInt(root, filepath.Join(rel, "temp"))
		if !ok {
			continue // a zone whose sensor is off reads EINVAL or ENODATA
		}
		typ, _ := readFile(root, filepath.Join(rel, "type"))
		z := Zone{Type: typ, TempC: float64(milli) / 1000}
		h.Zones = append(h.Zones, z)
		if cpu == nil && CPUZone(typ) {
			cpu = ptr(z.TempC)
		}
		if hottest == nil || z.TempC > *hottest {
			hottest = ptr(z.TempC)
		}
	}
	h.CPUTempC = cpu
	if cpu == nil {
		h.CPUTempC = hottest
	}
}

func zoneNum(path string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "thermal_zone"))
	return n
}

func ptr[T any](v T) *T { return &v }

// readFile returns the trimmed contents of root/rel, ok false when it cannot be read.
func readFile(root, rel string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func readUint(root, rel string) (uint64, bool) {
	s, ok := readFile(root, rel)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

func readInt(root, rel string) (int64, bool) {
	s, ok := readFile(root, rel)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// ParseLoadavg reads the three load averages from /proc/loadavg's contents.
func ParseLoadavg(s string) ([3]float64, bool) {
	var l [3]float64
	f := strings.Fields(s)
	if len(f) < 3 {
		return l, false
	}
	for i := range 3 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || !(v >= 0) || math.IsInf(v, 0) {
			return l, false
		}
		l[i] = v
	}
	return l, true
}

// ParseMeminfo reads /proc/meminfo's contents into bytes by key ("MemTotal"). Lines it
// cannot read are skipped; values in kB are converted to bytes.
func ParseMeminfo(s string) map[string]uint64 {
	m := make(map[string]uint64)
	for line := range strings.Lines(s) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			if v > math.MaxUint64/1024 {
				continue
			}
			v *= 1024
		}
		m[strings.TrimSpace(key)] = v
	}
	return m
}

// CPUTimes is the aggregate "cpu" line of /proc/stat, in clock ticks.
type CPUTimes struct {
	Total uint64 // all fields but guest time (already counted in user)
	Idle  uint64 // idle + iowait
}

// ParseStat reads the aggregate cpu line of /proc/stat's contents.
func ParseStat(s string) (CPUTimes, bool) {
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var c CPUTimes
		for i, x := range f[1:] {
			if i >= 8 { // guest and guest_nice are included in user and nice
				break
			}
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil || c.Total+v < c.Total {
				return CPUTimes{}, false
			}
			c.Total += v
			if i == 3 || i == 4 { // idle, iowait
				c.Idle += v
			}
		}
		return c, true
	}
	return CPUTimes{}, false
}

// Usage is the busy fraction (0-1) between two readings, ok false when no time passed or
// the counters went backwards.
func Usage(prev, cur CPUTimes) (float64, bool) {
	if cur.Total <= prev.Total || cur.Idle < prev.Idle {
		return 0, false
	}
	dt, di := cur.Total-prev.Total, cur.Idle-prev.Idle
	if di > dt {
		return 0, false
	}
	return 1 - float64(di)/float64(dt), true
}
