// Package pgtest starts a real PostgreSQL cluster for tests.
//
// Tests that talk to PostgreSQL run against the real server, never against
// a fake. The first call to [Start] in a test binary creates a cluster with
// initdb in a private temporary directory (fsync off, trust authentication,
// listening on a free 127.0.0.1 port and on a unix socket in that
// directory) and starts it with pg_ctl; every call then gets a database of
// its own (CREATE DATABASE), dropped when its test ends. The postmaster is
// a child of the test binary with a parent-death signal, so it never
// outlives it; [Main] (call it from TestMain) stops it cleanly
// (pg_ctl stop -m immediate) and removes its directory.
//
// The binaries are looked up on PATH, in /usr/local/bin and in
// /usr/lib/postgresql/*/bin (newest version first), or only in the
// directory PGTEST_BINDIR when that is set. When they are missing,
// Start fails the test if the environment variable CI is set (CI must
// install postgresql) and skips it otherwise.
//
// initdb and postgres refuse to run as root. When the test binary runs as
// uid 0 they run as the "postgres" system user, which then owns the data
// directory.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/internal/syncbuf"
	"github.com/jackc/pgx/v5"
)

// readyTimeout bounds the wait for a new cluster to accept connections.
const readyTimeout = 30 * time.Second

// installHint is part of every message about missing binaries.
const installHint = "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH, in /usr/local/bin or in " +
	"/usr/lib/postgresql/*/bin: install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql)"

// Cluster is one running PostgreSQL cluster.
type Cluster struct {
	// BinDir is the directory of the binaries used; Version is what
	// `postgres --version` printed.
	BinDir  string
	Version string
	// Dir is the temporary directory holding the data directory and the
	// unix socket.
	Dir  string
	Port int

	dataDir string
	cred    *syscall.Credential
	uid     int
	gid     int
	proc    *exec.Cmd
	exited  chan struct{}
}

// DB is one test's database in the shared cluster.
type DB struct {
	Cluster *Cluster
	Name    string
	// DSN is a postgres:// URL of the database over TCP (user postgres,
	// no password: trust authentication).
	DSN string
}

var (
	mu      sync.Mutex
	shared  *Cluster
	initErr error
	skipMsg string
)

// Start returns a fresh, empty database in the test binary's shared
// cluster, starting the cluster on first use. The database is dropped when
// tb ends. It fails tb when the cluster does not come up, and skips it (or
// fails it when CI is set) when PostgreSQL is not installed.
func Start(tb testing.TB) *DB {
	tb.Helper()
	c := cluster(tb)
	name := "t_" + randomHex(tb, 8)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := c.exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		if err := c.exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database: %v", err)
		}
	})
	tb.Logf("pgtest: database %s on %s (%s) at 127.0.0.1:%d", name, c.Version, c.BinDir, c.Port)
	return &DB{Cluster: c, Name: name, DSN: c.DSN(name)}
}

// DSN returns the postgres:// URL of database name over TCP.
func (c *Cluster) DSN(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}

func (c *Cluster) exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// cluster returns the shared cluster, starting it on first use.
func cluster(tb testing.TB) *Cluster {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared == nil && initErr == nil && skipMsg == "" {
		binDir, err := findBinDir()
		if err != nil {
			if os.Getenv("CI") != "" {
				initErr = fmt.Errorf("%s (CI is set, so this fails: CI must install postgresql)", installHint)
			} else {
				skipMsg = installHint + " (set CI to make this a failure)"
			}
		} else {
			shared, initErr = startCluster(binDir)
			if initErr == nil {
				tb.Logf("pgtest: started %s from %s on 127.0.0.1:%d", shared.Version, shared.BinDir, shared.Port)
			}
		}
	}
	if skipMsg != "" {
		tb.Skipf("pgtest: %s", skipMsg)
	}
	if initErr != nil {
		tb.Fatalf("pgtest: %v", initErr)
	}
	return shared
}

// Main runs the tests of a package and then stops the shared cluster, if
// one was started: call it from TestMain (os.Exit(pgtest.Main(m))).
func Main(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Stop stops the shared cluster (pg_ctl stop -m immediate) and removes its
// directory. A later Start starts a new one.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if shared == nil {
		return
	}
	c := shared
	shared = nil
	c.stop()
	_ = os.RemoveAll(c.Dir)
}

// findBinDir returns the first directory holding initdb, pg_ctl and
// postgres: PATH's, /usr/local/bin, then /usr/lib/postgresql/*/bin from
// the highest version down.
func findBinDir() (string, error) {
	var dirs []string
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		dirs = []string{d}
	} else {
		if p, err := exec.LookPath("initdb"); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
		dirs = append(dirs, searchDirs()...)
	}
	for _, d := range dirs {
		ok := true
		for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
			if st, err := os.Stat(filepath.Join(d, b)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				ok = false
				break
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", errors.New("not found")
}

// searchDirs are /usr/local/bin and /usr/lib/postgresql/*/bin, highest
// version first.
func searchDirs() []string {
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versions, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(versions[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(versions[j])))
		return vi > vj
	})
	return append([]string{"/usr/local/bin"}, versions...)
}

func startCluster(binDir string) (*Cluster, error) {
	c := &Cluster{BinDir: binDir, uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and initdb refuses root: need the postgres system user to run it as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.uid, c.gid = uid, gid
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	out, err := c.command(filepath.Join(binDir, "postgres"), "--version").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %v: %s", filepath.Join(binDir, "postgres"), err, bytes.TrimSpace(out))
	}
	c.Version = strings.TrimSpace(string(out))

	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c.Dir = dir
	fail := func(err error) (*Cluster, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c.dataDir = filepath.Join(dir, "data")
	if err := os.Mkdir(c.dataDir, 0o700); err != nil {
		return fail(err)
	}
	if c.cred != nil {
		// The postgres user must reach the data directory and write the
		// socket in dir: make dir and its parents traversable.
		if err := os.Chmod(dir, 0o711); err != nil {
			return fail(err)
		}
		if err := traversable(filepath.Dir(dir)); err != nil {
			return fail(err)
		}
		for _, p := range []string{dir, c.dataDir} {
			if err := os.Chown(p, c.uid, c.gid); err != nil {
				return fail(err)
			}
		}
	}
	initdb := c.command(filepath.Join(binDir, "initdb"), "-D", c.dataDir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v: %s", err, bytes.TrimSpace(out)))
	}
	var errs []error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		c.Port = port
		if err := c.launch(); err != nil {
			errs = append(errs, fmt.Errorf("port %d: %w", port, err))
			continue
		}
		return c, nil
	}
	return fail(errors.Join(errs...))
}

// launch runs the postmaster as a child process (so that the kernel kills
// it if the test binary dies: a parent-death signal) and waits until it
// accepts connections.
func (c *Cluster) launch() error {
	out := &syncbuf.Buffer{}
	cmd := c.command(filepath.Join(c.BinDir, "postgres"), "-D", c.dataDir,
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(c.Port), "-k", c.Dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=100", "-c", "shared_buffers=128MB", "-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = out, out
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	c.proc, c.exited = cmd, exited
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("postgres exited: %s", bytes.TrimSpace(out.Bytes()))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = c.exec(ctx, "postgres", "SELECT 1")
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.stop()
	return fmt.Errorf("not ready within %v: %v; output: %s", readyTimeout, last, bytes.TrimSpace(out.Bytes()))
}

// stop stops the postmaster with pg_ctl stop -m immediate, and kills it if
// that does not work.
func (c *Cluster) stop() {
	if c.proc == nil {
		return
	}
	cmd := c.command(filepath.Join(c.BinDir, "pg_ctl"), "stop", "-D", c.dataDir, "-m", "immediate", "-w", "-t", "10")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: pg_ctl stop: %v: %s\n", err, bytes.TrimSpace(out))
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.proc.Process.Kill()
		<-c.exited
	}
	c.proc = nil
}

// command runs name as the postgres user when the test runs as root.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if c.cred != nil {
		cmd.SysProcAttr.Credential = c.cred
		cmd.Dir = "/"
		cmd.Env = append(os.Environ(), "HOME=/tmp")
	}
	return cmd
}

// traversable adds o+x to dir and every parent that lacks it.
func traversable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("pgtest: random: %v", err)
	}
	return hex.EncodeToString(b)
}
