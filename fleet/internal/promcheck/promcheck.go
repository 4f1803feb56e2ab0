// Package promcheck helps the fleet's tests read a Prometheus exposition: it lints one with
// promtool (installed by `make deps`) and reads single values out of it.
package promcheck

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/testvideos/harness"
)

// Lint runs `promtool check metrics` on exposition and fails the test on any complaint.
func Lint(t testing.TB, exposition string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		bin = filepath.Join(harness.RepoRoot(), ".deps", "prometheus", "usr", "bin", "promtool")
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

// Value returns the value of the sample of metric name whose label set is exactly labels
// (`a="x",b="y"` in exposition order; "" for none), and whether it is there.
func Value(exposition, name, labels string) (float64, bool) {
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
