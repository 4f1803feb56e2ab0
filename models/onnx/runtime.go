//go:build cgo

package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv is the setting that names the ONNX Runtime shared library to load.
const LibraryEnv = "ONNXRUNTIME_LIB"

// libName is the shared library's file name on Linux.
const libName = "libonnxruntime.so"

// Library describes the loaded ONNX Runtime shared library.
type Library struct {
	Path    string // file that was loaded
	Version string // ONNX Runtime's own version string
}

// env guards the ONNX Runtime environment, which onnxruntime_go keeps process-global: it is
// created once, by the first Load (or Open) that succeeds, and lives until the process ends.
// A failed Load is not remembered, so a later call can succeed once the library is installed.
var env struct {
	sync.Mutex
	lib    Library
	shared bool // a CPU arena registered with the environment, for every session to share
}

// Load finds the ONNX Runtime shared library, loads it and creates the process-wide
// environment, once; later calls return the same Library. It is safe for concurrent use.
//
// The library is $ONNXRUNTIME_LIB when set; otherwise the first of
// .deps/onnxruntime/<x64|arm64>/libonnxruntime.so in the working directory or any parent of
// it, the same beside the executable (or any parent of its folder), libonnxruntime.so beside
// the executable, /usr/lib/vigil/ (the package), /usr/lib/ and /usr/local/lib/. When none
// exists the error lists where it looked.
func Load() (Library, error) {
	env.Lock()
	defer env.Unlock()
	if env.lib.Path != "" {
		return env.lib, nil
	}
	if ort.IsInitialized() {
		// Someone else in this process set the runtime up; use theirs, with sessions that
		// keep their own arenas (theirs may have registered an allocator already).
		env.lib = Library{Path: "(initialised elsewhere)", Version: ort.GetVersion()}
		return env.lib, nil
	}
	cwd, _ := os.Getwd()
	exe, _ := os.Executable()
	path, looked := findLibrary(os.Getenv(LibraryEnv), cwd, exe, ortArch(runtime.GOARCH))
	if path == "" {
		return Library{}, notFound(looked)
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return Library{}, fmt.Errorf("load onnxruntime from %s: %w", path, err)
	}
	env.lib = Library{Path: path, Version: ort.GetVersion()}
	// One CPU arena for every session of the process: a detector pool's sessions take their
	// activations from it in turn instead of each growing an arena of its own (with memory
	// patterns off, see Open: ~24 MiB less for two YOLOX-nano sessions, docs/BENCHMARKS.md).
	if mi, err := ort.GetMemoryInfo(); err == nil && ort.CreateAndRegisterAllocator(mi, nil) == nil {
		env.shared = true
	}
	return env.lib, nil
}

// sharedArena reports whether sessions should use the environment's arena.
func sharedArena() bool {
	env.Lock()
	defer env.Unlock()
	return env.shared
}

// ortArch maps GOARCH to the folder names ONNX Runtime's packages use.
func ortArch(goarch string) string {
	if goarch == "amd64" {
		return "x64"
	}
	return goarch
}

// findLibrary returns the library path to load and every place it looked, in order. An
// explicit setting is taken as it is: when it names no file the search stops there.
func findLibrary(setting, cwd, exe, arch string) (string, []string) {
	var looked []string
	try := func(p string) bool {
		looked = append(looked, p)
		st, err := os.Stat(p)
		return err == nil && !st.IsDir()
	}
	if setting != "" {
		if try(setting) {
			return setting, looked
		}
		looked[0] = LibraryEnv + "=" + setting
		return "", looked
	}
	rel := filepath.Join(".deps", "onnxruntime", arch, libName)
	upward := func(dir string) string {
		if dir == "" {
			return ""
		}
		for {
			if p := filepath.Join(dir, rel); try(p) {
				return p
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return ""
			}
			dir = parent
		}
	}
	if p := upward(cwd); p != "" {
		return p, looked
	}
	if exe != "" {
		exeDir := filepath.Dir(exe)
		if p := upward(exeDir); p != "" {
			return p, looked
		}
		if p := filepath.Join(exeDir, libName); try(p) {
			return p, looked
		}
	}
	for _, dir := range []string{"/usr/lib/vigil", "/usr/lib", "/usr/local/lib"} { // /usr/lib/vigil: the vigil-agent package
		if p := filepath.Join(dir, libName); try(p) {
			return p, looked
		}
	}
	return "", looked
}

// notFound is the error for a library that is nowhere it was looked for.
func notFound(looked []string) error {
	return fmt.Errorf("onnxruntime shared library not found (looked in %s): run make deps, or set %s to the path of %s",
		strings.Join(looked, ", "), LibraryEnv, libName)
}
