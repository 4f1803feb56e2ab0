package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A hash weaker than the target is replaced at the next successful login, in memory and in
// the file, whose other entries and comments are kept; a wrong password changes nothing.
func TestRehashOnLogin(t *testing.T) {
	weak, err := HashPasswordIterations("pw-a", 1000)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := HashPasswordIterations("pw-b", 5000)
	ops, _ := HashPasswordIterations("pw-ops", 1000)
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	body := "# devices of site 4\ndevices:\n  edge-a: " + weak + " # the gate\n  edge-b: " + other + "\nfleet:\n  ops: " + ops + "\n"
	if err := os.WriteFile(path, []byte(body), 0o640); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetIterations(5000); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if c.Check("edge-a", "wrong") != RoleNone || read() != body {
		t.Fatal("a wrong password was accepted or changed the file")
	}
	if c.Check("edge-a", "pw-a") != RoleDevice {
		t.Fatal("edge-a refused")
	}
	got := read()
	for _, want := range []string{"# devices of site 4", "# the gate", "edge-b: " + other, "ops: " + ops, "edge-a: pbkdf2-sha256$5000$"} {
		if !strings.Contains(got, want) {
			t.Errorf("file after the re-hash lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, weak) {
		t.Errorf("the weak hash is still in the file:\n%s", got)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("file mode %v, want 0640", st.Mode().Perm())
	}
	// The new hash works, from memory and from the file; edge-b (at the target) is untouched,
	// the fleet identity is re-hashed in its own section.
	if c.Check("edge-a", "pw-a") != RoleDevice || c.Check("edge-b", "pw-b") != RoleDevice || c.Check("ops", "pw-ops") != RoleFleet {
		t.Error("a login failed after the re-hash")
	}
	c2, err := LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	_ = c2.SetIterations(5000)
	if c2.Check("edge-a", "pw-a") != RoleDevice || c2.Check("ops", "pw-ops") != RoleFleet {
		t.Error("the re-hashed file does not verify")
	}
	if !strings.Contains(read(), "ops: pbkdf2-sha256$5000$") || !strings.Contains(read(), "edge-b: "+other) {
		t.Errorf("file after the fleet re-hash:\n%s", read())
	}
	// The default target is OWASP's 600k; an unknown user costs a hash of the target too.
	if DefaultIterations < 600_000 || NewCredentials().iterations() != DefaultIterations {
		t.Errorf("default iterations %d", DefaultIterations)
	}
}
