// Package data finds Vigil's shared test data (models, videos, ground truth, images), which is
// never committed: it lives in $EDGE_DATA_DIR, by default ../shared/data beside the project.
package data

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// EnvVar is the setting that points at the shared data folder.
const EnvVar = "EDGE_DATA_DIR"

// Dir returns the shared data folder: $EDGE_DATA_DIR, else ../shared/data beside the project.
func Dir() string {
	if d := os.Getenv(EnvVar); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0) // <project>/testvideos/data/data.go
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data")
}

// Path returns the path of rel (e.g. "videos/mot15_tud_campus.mp4") inside the shared data
// folder, or an error that says what is missing and how to get it.
func Path(rel string) (string, error) {
	p := filepath.Join(Dir(), rel)
	if st, err := os.Stat(p); err != nil || st.Size() == 0 && !st.IsDir() {
		return "", fmt.Errorf("shared test data %s is missing (looked in %s): put the shared data folder "+
			"(models/, videos/, gt/, images/) at ../shared/data beside the project, or set %s to a copy of it", rel, Dir(), EnvVar)
	}
	return p, nil
}

// TB is the part of testing.TB that MustPath uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// MustPath is Path for tests: a missing file fails the test with the message above.
func MustPath(t TB, rel string) string {
	t.Helper()
	p, err := Path(rel)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return p
}
