package testharness

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// RepoRoot is the project's root folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0) // <root>/testvideos/harness/schema.go
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	schemaMu    sync.Mutex
	schemaCache = map[string]*jsonschema.Schema{}
)

// Schema compiles docs/schemas/<name>.schema.json (cached).
func Schema(name string) (*jsonschema.Schema, error) {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemaCache[name]; ok {
		return s, nil
	}
	path := filepath.Join(RepoRoot(), "docs", "schemas", name+".schema.json")
	s, err := jsonschema.NewCompiler().Compile(path)
	if err != nil {
		return nil, fmt.Errorf("compile schema %s: %w", path, err)
	}
	schemaCache[name] = s
	return s, nil
}

// ValidateJSON checks payload against docs/schemas/<name>.schema.json.
func ValidateJSON(name string, payload []byte) error {
	s, err := Schema(name)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(v)
}

// MustValidateJSON fails the test when payload does not match the schema.
func MustValidateJSON(t testing.TB, name string, payload []byte) {
	t.Helper()
	if err := ValidateJSON(name, payload); err != nil {
		t.Fatalf("message does not match schema %s: %v\n%s", name, err, payload)
	}
}
