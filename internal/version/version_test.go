package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v1.2.3"
	if got, want := String("vigil-x"), "vigil-x v1.2.3 ("+runtime.Version(); !strings.HasPrefix(got, want) {
		t.Fatalf("String = %q, want prefix %q", got, want)
	}
	Version = "dev"
	if got := Get(); !strings.HasPrefix(got, "dev") {
		t.Fatalf("unstamped Get = %q, want dev...", got)
	}
}
