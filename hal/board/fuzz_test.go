package board

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// procSeeds returns the named /proc file of every fixture, plus hand-made bad cases.
func procSeeds(f *testing.F, rel string, bad ...string) {
	f.Helper()
	for _, name := range []string{"rpi4", "vm", "x86_desktop"} {
		b, err := os.ReadFile(filepath.Join("testdata", name+".txtar"))
		if err != nil {
			f.Fatal(err)
		}
		_, after, ok := strings.Cut(string(b), "-- "+rel+" --\n")
		if !ok {
			continue
		}
		body, _, _ := strings.Cut(after, "\n-- ")
		f.Add(body)
	}
	for _, s := range bad {
		f.Add(s)
	}
}

func FuzzParseLoadavg(f *testing.F) {
	procSeeds(f, "proc/loadavg", "", "1 2", "NaN 1 1 1/1 1", "-1 0 0", "1e400 0 0 0/0 0", "0.1 0.2 Inf")
	f.Fuzz(func(t *testing.T, s string) {
		l, ok := ParseLoadavg(s)
		if !ok {
			return
		}
		for _, v := range l {
			if !(v >= 0) || math.IsInf(v, 0) {
				t.Fatalf("ParseLoadavg(%q) = %v", s, l)
			}
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	procSeeds(f, "proc/meminfo", "", "MemTotal:", "MemTotal: x kB", "MemTotal: 18446744073709551615 kB", ":::\n:1")
	f.Fuzz(func(t *testing.T, s string) {
		m := ParseMeminfo(s)
		for k := range m {
			if strings.ContainsAny(k, ":") {
				t.Fatalf("ParseMeminfo(%q) key %q", s, k)
			}
		}
	})
}

func FuzzParseStat(f *testing.F) {
	procSeeds(f, "proc/stat", "", "cpu", "cpu 1 2 3", "cpu  18446744073709551615 1 1 1 1", "cpu -1 0 0 0 0", "cpu0 1 2 3 4 5")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := ParseStat(s)
		if ok && c.Idle > c.Total {
			t.Fatalf("ParseStat(%q) = %+v: idle above total", s, c)
		}
	})
}
