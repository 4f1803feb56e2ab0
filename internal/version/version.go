// Package version is the one version of every Vigil binary (vigil-agent, vigil-fleet,
// vigil-testvideos, vigil-dronesim), stamped at build time:
//
//	go build -ldflags '-X github.com/vigil-edge/vigil/internal/version.Version=v1.2.3' ./...
//
// (`make build` does it with `git describe`). A leaf under internal/: binaries, the agent's
// status and build-info metric all read it here.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set with -ldflags -X; "dev" when it was not.
var Version = "dev"

// Get is Version; for an unstamped build ("dev") it adds the commit the Go toolchain recorded,
// if any ("dev-0123456789ab", "-dirty" when the tree had changes).
func Get() string {
	if Version != "dev" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return Version
	}
	return Version + "-" + rev[:min(12, len(rev))] + dirty
}

// String is the line a binary's `version` command prints: "vigil-agent v1.2.3 (go1.26.8 linux/amd64)".
func String(binary string) string {
	return fmt.Sprintf("%s %s (%s %s/%s)", binary, Get(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
