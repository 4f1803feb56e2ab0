package build_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpAndVersion builds every binary and runs each command and subcommand with -h, --help
// and the version commands: each must exit 0 and print its usage (or the version) — never an
// "unknown command".
func TestHelpAndVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four binaries")
	}
	bin := t.TempDir()
	const stamp = "v0.0.0-clitest"
	for _, pkg := range []string{"agent/cmd/vigil-agent", "fleet/cmd/vigil-fleet", "testvideos/cmd/vigil-testvideos", "hal/cmd/vigil-dronesim"} {
		cmd := exec.Command("go", "build", "-ldflags", "-X github.com/vigil-edge/vigil/internal/version.Version="+stamp,
			"-o", filepath.Join(bin, filepath.Base(pkg)), "./"+pkg)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	cases := []struct {
		bin  string
		args string
		want string // in stdout or stderr
	}{
		{"vigil-agent", "-h", "vigil-agent run --config FILE"},
		{"vigil-agent", "--help", "vigil-agent run --config FILE"},
		{"vigil-agent", "help", "vigil-agent run --config FILE"},
		{"vigil-agent", "version", "vigil-agent " + stamp},
		{"vigil-agent", "--version", "vigil-agent " + stamp},
		{"vigil-agent", "run -h", "-config"},
		{"vigil-agent", "run --help", "-log-format"},
		{"vigil-agent", "check-config --help", "-config"},
		{"vigil-agent", "detect -h", "-max-frames"},
		{"vigil-agent", "doctor -h", "-strict"},
		{"vigil-agent", "discover -h", "-probe-addr"},

		{"vigil-fleet", "-h", "usage: vigil-fleet"},
		{"vigil-fleet", "--help", "usage: vigil-fleet"},
		{"vigil-fleet", "version", "vigil-fleet " + stamp},
		{"vigil-fleet", "--version", "vigil-fleet " + stamp},
		{"vigil-fleet", "serve -h", "-data"},
		{"vigil-fleet", "serve --help", "-log-format"},
		{"vigil-fleet", "watch --help", "-api"},
		{"vigil-fleet", "keygen -h", "-out"},
		{"vigil-fleet", "hash-password -h", "-iterations"},
		{"vigil-fleet", "simulate -h", "-devices"},
		{"vigil-fleet", "models -h", "usage: vigil-fleet models"},
		{"vigil-fleet", "models --help", "usage: vigil-fleet models"},
		{"vigil-fleet", "models add -h", "-version"},
		{"vigil-fleet", "models list --help", "-data"},
		{"vigil-fleet", "rollout -h", "usage: vigil-fleet rollout"},
		{"vigil-fleet", "rollout --help", "usage: vigil-fleet rollout"},
		{"vigil-fleet", "rollout create -h", "-canary"},
		{"vigil-fleet", "rollout list -h", "-api"},
		{"vigil-fleet", "rollout get -h", "-api"},

		{"vigil-testvideos", "-h", "vigil-testvideos serve"},
		{"vigil-testvideos", "--help", "vigil-testvideos serve"},
		{"vigil-testvideos", "version", "vigil-testvideos " + stamp},
		{"vigil-testvideos", "--version", "vigil-testvideos " + stamp},
		{"vigil-testvideos", "serve -h", "-addr"},
		{"vigil-testvideos", "serve --help", "-log-format"},
		{"vigil-testvideos", "score -h", "-log-level"},
		{"vigil-testvideos", "score --help", "-clip"},

		{"vigil-dronesim", "-h", "-pattern"},
		{"vigil-dronesim", "--help", "-pattern"},
		{"vigil-dronesim", "-h", "-log-format"},
		{"vigil-dronesim", "version", "vigil-dronesim " + stamp},
		{"vigil-dronesim", "--version", "vigil-dronesim " + stamp},
	}
	for _, c := range cases {
		t.Run(c.bin+" "+c.args, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(bin, c.bin), strings.Fields(c.args)...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			cmd.Env = append(os.Environ(), "VIGIL_FLEET_TOKEN=")
			err := cmd.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("exit status %d, want 0\n%s", ee.ExitCode(), out.String())
			} else if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), c.want) {
				t.Fatalf("output lacks %q:\n%s", c.want, out.String())
			}
		})
	}
}
