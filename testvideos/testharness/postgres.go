package testharness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Postgres is a throw-away PostgreSQL cluster run by a test: its own data folder, a unix
// socket in its own folder and no TCP listener, trust authentication, no fsync.
type Postgres struct {
	Dir string // data folder and socket folder live under it
	// DSN connects as the superuser to the database "vigil", over the unix socket.
	DSN string

	t       testing.TB
	bin     string
	data    string
	sock    string
	stopped bool
}

// postgresBin finds the PostgreSQL server programs (Debian keeps them in
// /usr/lib/postgresql/<major>/bin).
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		p, _ = filepath.EvalSymlinks(p)
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL server programs (initdb, pg_ctl) not found: run `make deps` (apt package postgresql)")
}

// asUnprivileged runs cmd as nobody (uid/gid 65534) when the test runs as root: initdb and
// postgres refuse to run as root.
func asUnprivileged(cmd *exec.Cmd) {
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
}

// StartPostgres initialises and starts a cluster in a temporary folder and creates the
// database "vigil"; the cluster is stopped (immediate mode) and removed when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent is not reachable by uid 65534 when the tests run as root.
	dir, err := os.MkdirTemp("", "vigil-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{Dir: dir, t: t, bin: bin, data: filepath.Join(dir, "data"), sock: filepath.Join(dir, "sock")}
	t.Cleanup(func() { p.Stop(); _ = os.RemoveAll(dir) })
	if err := os.MkdirAll(p.sock, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		for _, d := range []string{dir, p.sock} {
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.run("initdb", "-D", p.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", p.sock)
	p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(dir, "postgres.log"), "-w", "-t", "30", "-o", opts, "start")
	p.run("createdb", "-h", p.sock, "-U", "postgres", "vigil")
	p.DSN = fmt.Sprintf("postgres://postgres@/vigil?host=%s&sslmode=disable", p.sock)
	return p
}

// AdminDSN connects to the database "postgres" (to create or drop other databases).
func (p *Postgres) AdminDSN() string {
	return strings.Replace(p.DSN, "/vigil?", "/postgres?", 1)
}

// CreateDB creates another database in the cluster and returns its DSN.
func (p *Postgres) CreateDB(name string) string {
	p.t.Helper()
	p.run("createdb", "-h", p.sock, "-U", "postgres", name)
	return strings.Replace(p.DSN, "/vigil?", "/"+name+"?", 1)
}

func (p *Postgres) run(prog string, args ...string) {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(p.bin, prog), args...)
	asUnprivileged(cmd)
	cmd.Dir = p.Dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(p.Dir, "postgres.log"))
		p.t.Fatalf("%s %s: %v (after %v)\n%s\n%s", prog, strings.Join(args, " "), err, time.Since(start), out, log)
	}
}

// Stop stops the cluster at once (pg_ctl stop -m immediate): what was committed is kept.
func (p *Postgres) Stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	cmd := exec.Command(filepath.Join(p.bin, "pg_ctl"), "-D", p.data, "-m", "immediate", "-w", "stop")
	asUnprivileged(cmd)
	_ = cmd.Run()
}
