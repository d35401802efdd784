// Package redistest starts real redis-server processes for tests.
//
// Tests that talk to Redis run against the real server, never against an
// in-process fake of the client library. Each call to [Start] launches its own
// redis-server child process on a free loopback port, with persistence turned
// off (--save "" --appendonly no) and a private working directory, and stops it
// when the test ends. [PrefixFor] gives every test a unique key prefix, so tests
// that share a server (for example the one a developer runs on 6379) cannot see
// each other's keys.
//
// [StartWith] adds what production servers have: a TLS port only, with a
// throwaway CA and certificates made in Go ([NewCerts]), client
// certificates, and ACL users with the default user off ([Options]).
// [StartCluster] and [StartClusterWith] start a Redis Cluster of masters
// joined by redis-cli --cluster create, optionally over TLS and with ACL
// users.
//
// When redis-server is not on PATH the test fails (it never skips) with a
// message saying how to install it.
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/internal/syncbuf"
	"github.com/redis/go-redis/v9"
)

const (
	// startAttempts bounds the retries when the chosen port is taken between
	// picking it and redis-server binding it.
	startAttempts = 5
	// readyTimeout bounds the wait for the first PONG of a new process.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds the wait for the process to exit after SIGKILL.
	stopTimeout = 5 * time.Second
)

// installHint is part of every failure that comes from a missing binary.
const installHint = "redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install redis-server; " +
	"macOS: brew install redis) or put a redis-server 7 binary on PATH"

// Server is one redis-server child process listening on 127.0.0.1.
//
// The address stays the same across [Server.Stop] and [Server.Restart], so that
// clients created before an outage reconnect to the restarted server by
// themselves; that is what outage tests need. A restarted server is empty,
// unless the test took a snapshot ([Server.Snapshot]): then it comes back
// with the snapshot's data, as a server restored from an old RDB file does.
// All methods are safe for concurrent use.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	args []string // extra redis-server arguments (cluster mode, TLS, ACL)
	opts Options

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	output *syncbuf.Buffer
}

// Start launches a redis-server on a free 127.0.0.1 port, waits until it
// answers PING and registers a cleanup that stops it when tb ends.
//
// It retries with another port when the chosen one turns out to be taken. It
// calls tb.Fatal, with the server's own output, when redis-server is missing or
// does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is Start with TLS, ACL users or both (see [Options]).
func StartWith(tb testing.TB, o Options) *Server {
	tb.Helper()
	s := newServer(tb, o.withAdmin(), nil)
	var errs []error
	for attempt := 0; attempt < startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: pick a free port: %v", err)
		}
		s.port = port
		if err := s.launch(); err != nil {
			errs = append(errs, err)
			continue
		}
		tb.Cleanup(s.Stop)
		return s
	}
	tb.Fatalf("redistest: start redis-server: %v", errors.Join(errs...))
	return nil
}

// Addr returns the server's "127.0.0.1:port" address, suitable for
// redis.Options.Addr and for REDIS_ADDR. With TLS it is the TLS port (the
// server has no plain port).
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Options returns the go-redis options of an administrator's connection:
// the address, and with TLS or ACL users the TLS configuration (with the
// client certificate) and the administrator's user and password.
func (s *Server) Options() *redis.Options {
	o := &redis.Options{Addr: s.Addr()}
	s.opts.apply(&o.TLSConfig, &o.Username, &o.Password)
	return o
}

// Client returns a new go-redis client connected to the server (as the
// administrator when the server has ACL users), closed when tb ends. Each
// call returns a separate client with its own connection pool, so tests can
// race two independent clients against one server.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(s.Options())
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Pause freezes the server process (SIGSTOP): connections stay open but
// nothing answers, as with a hung or overloaded Redis. The data is kept;
// Resume continues it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		s.tb.Fatalf("redistest: no running server to send %v to", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

// Stop kills the server process and waits for it to exit. The data is lost.
// Stopping a stopped server does nothing. Clients see connection errors until
// [Server.Restart].
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart starts a fresh, empty server on the same address after [Server.Stop]
// (or kills and restarts a running one) and waits until it answers PING. It
// calls tb.Fatal of the test that started the server when the server does not
// come back, for example because another process took the port meanwhile.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
	var errs []error
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.launch()
		if err == nil {
			return
		}
		errs = append(errs, err)
		if time.Now().After(deadline) {
			s.tb.Fatalf("redistest: restart redis-server on %s: %v", s.Addr(), errors.Join(errs...))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// launch starts the process on s.port and waits for PONG. On failure the
// process is gone and the error carries its output.
func (s *Server) launch() error {
	out := &syncbuf.Buffer{}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	cmd.Args = append(cmd.Args, s.args...)
	if s.opts.TLS != nil {
		// The TLS port replaces the plain one.
		cmd.Args[2] = "0"
		cmd.Args = append(cmd.Args, "--tls-port", strconv.Itoa(s.port))
	}
	cmd.Stdout = out
	cmd.Stderr = out
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.output = cmd, exited, out
	s.mu.Unlock()

	if err := waitReady(s.Options(), cmd.Process.Pid, exited); err != nil {
		s.Stop()
		return fmt.Errorf("port %d: %w; server output: %s", s.port, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		s.tb.Errorf("redistest: redis-server on %s did not exit within %v", s.Addr(), stopTimeout)
	}
	s.cmd, s.exited = nil, nil
}

// waitReady pings addr until it answers or the process exits. It then checks
// that the server answering is the process it started (pid), not another
// server that already held the port.
func waitReady(o *redis.Options, pid int, exited <-chan struct{}) error {
	o.MaxRetries, o.DialTimeout = -1, time.Second
	c := redis.NewClient(o)
	defer c.Close()
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited before answering PING")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Info(ctx, "server").Result()
		cancel()
		last = err
		if err == nil {
			if !strings.Contains(info, "process_id:"+strconv.Itoa(pid)+"\r\n") {
				return errors.New("another server answers on this port")
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PONG within %v: %w", readyTimeout, last)
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before redis-server binds it; Start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PrefixFor returns a key prefix unique to this call, such as "t3f9a0c1d2e4b5a67:",
// for isolating a test's keys on a shared server. It is random, so it is also
// unique across test binaries and repeated runs (-count).
func PrefixFor(tb testing.TB) string {
	tb.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("redistest: random prefix: %v", err)
	}
	return "t" + hex.EncodeToString(b[:]) + ":"
}
