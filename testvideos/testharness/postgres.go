package testharness

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Postgres is a throw-away PostgreSQL cluster run by a test: its own data folder, a unix
// socket in its own folder and no TCP listener, no fsync; trust authentication, or
// scram-sha-256 passwords with PostgresOptions.Password.
type Postgres struct {
	Dir string // data folder and socket folder live under it
	// DSN connects as the superuser to the database "vigil", over the unix socket (with the
	// password when the cluster has one).
	DSN string
	// Password is the superuser's password; "" for a trust cluster.
	Password string

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

// PostgresOptions tunes StartPostgresWith.
type PostgresOptions struct {
	// Password, when set, makes every connection authenticate with scram-sha-256 as the
	// superuser "postgres" with this password (initdb --auth=scram-sha-256 --pwfile); a wrong
	// one is refused by the server. Empty: trust authentication.
	Password string
}

// StartPostgres initialises and starts a cluster in a temporary folder and creates the
// database "vigil"; the cluster is stopped (immediate mode) and removed when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	return StartPostgresWith(t, PostgresOptions{})
}

// StartPostgresWith is StartPostgres with options (password authentication).
func StartPostgresWith(t testing.TB, o PostgresOptions) *Postgres {
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
	p := &Postgres{Dir: dir, Password: o.Password, t: t, bin: bin, data: filepath.Join(dir, "data"), sock: filepath.Join(dir, "sock")}
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
	auth := []string{"-A", "trust"}
	if o.Password != "" {
		pwfile := filepath.Join(dir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(o.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(pwfile, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		auth = []string{"-A", "scram-sha-256", "--pwfile", pwfile}
	}
	p.run("initdb", append(auth, "-D", p.data, "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")...)
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", p.sock)
	p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(dir, "postgres.log"), "-w", "-t", "30", "-o", opts, "start")
	p.run("createdb", "-h", p.sock, "-U", "postgres", "vigil")
	user := url.User("postgres")
	if o.Password != "" {
		user = url.UserPassword("postgres", o.Password)
	}
	p.DSN = fmt.Sprintf("postgres://%s@/vigil?host=%s&sslmode=disable", user.String(), p.sock)
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
	if p.Password != "" {
		cmd.Env = append(os.Environ(), "PGPASSWORD="+p.Password)
	}
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
