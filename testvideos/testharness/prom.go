package testharness

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// LintMetrics runs `promtool check metrics` on exposition and fails the test on any complaint.
func LintMetrics(t testing.TB, exposition string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		bin = filepath.Join(RepoRoot(), ".deps", "prometheus", "usr", "bin", "promtool")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("promtool not found: run `make deps`")
		}
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// MetricValue returns the value of the sample of metric name whose label set is exactly labels
// (`a="x",b="y"` in exposition order; "" for none), and whether it is there.
func MetricValue(exposition, name, labels string) (float64, bool) {
	want := name
	if labels != "" {
		want += "{" + labels + "}"
	}
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || key != want {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		return v, err == nil
	}
	return 0, false
}
