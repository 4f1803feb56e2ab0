package testharness

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyInTests fails when a package of the module, as built without its tests, depends on
// this package (directly or through another): test helpers stay out of the binaries.
func TestOnlyInTests(t *testing.T) {
	const self = "github.com/vigil-edge/vigil/testvideos/testharness"
	cmd := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...")
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	pkgs := 0
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] == self {
			continue
		}
		pkgs++
		for _, dep := range fields[1:] {
			if dep == self {
				t.Errorf("%s imports %s (directly or through another package) in a non-test file; only _test.go files may", fields[0], self)
			}
		}
	}
	if pkgs < 10 {
		t.Fatalf("go list found only %d packages: not run from the module's root?", pkgs)
	}
}
