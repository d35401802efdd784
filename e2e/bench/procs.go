package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// proc is a child process of the benchmark, in its own process group, with
// its standard output and error in a log file.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	logf    *os.File
	done    chan struct{}
	err     error
}

// startProc starts bin with args and env (added to the benchmark's own
// environment), logging to logDir/name.log.
func startProc(name, bin, logDir string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, logf: f, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// Own process group: a Ctrl-C reaches the benchmark only, which then
	// stops its children in order.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitLog waits until the log holds substr, the process exits or the
// timeout passes.
func (p *proc) waitLog(ctx context.Context, substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(p.logPath)
		if err == nil && bytes.Contains(b, []byte(substr)) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before logging %q; see %s", p.name, p.err, substr, p.logPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log %q within %s; see %s", p.name, substr, timeout, p.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logLine returns the first log line holding substr.
func (p *proc) logLine(substr string) (string, bool) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			return sc.Text(), true
		}
	}
	return "", false
}

// stop sends SIGTERM (the services drain and commit) and, after timeout,
// SIGKILL to the process group. It returns the exit error, if any.
func (p *proc) stop(timeout time.Duration) error {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(timeout):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			return fmt.Errorf("%s did not stop within %s and was killed", p.name, timeout)
		}
	}
	if p.err != nil {
		var ee *exec.ExitError
		if errors.As(p.err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			return nil // stopped by our signal
		}
		return fmt.Errorf("%s exited: %w; see %s", p.name, p.err, p.logPath)
	}
	return nil
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *proc) peakRSS() (int64, error) {
	return procStatusKB(p.cmd.Process.Pid, "VmHWM:")
}

func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s %q: %w", field, rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startRedis starts a redis-server on a free port, without persistence, and
// waits until it answers PING.
func startRedis(ctx context.Context, logDir string) (*proc, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", errors.New("redis-server is not on PATH: install it (apt-get install redis-server)")
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	p, err := startProc("redis", bin, logDir, nil, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", logDir)
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return p, addr, nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			_ = p.stop(5 * time.Second)
			return nil, "", fmt.Errorf("redis-server did not come up: %w; see %s", err, p.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startBroker starts the devbroker on a free port with a fresh data
// directory and the given topics, and waits for its ready line.
func startBroker(ctx context.Context, bin, logDir, dataDir string, partitions int, topics []string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	p, err := startProc("devbroker", bin, logDir, nil, "--port", strconv.Itoa(port), "--partitions", strconv.Itoa(partitions),
		"--data-dir", dataDir, "--topics", strings.Join(topics, ","), "--auto-create=false")
	if err != nil {
		return nil, "", err
	}
	if err := p.waitLog(ctx, "devbroker ready ", 60*time.Second); err != nil {
		_ = p.stop(10 * time.Second)
		return nil, "", err
	}
	line, _ := p.logLine("devbroker ready ")
	_, addr, _ := strings.Cut(line, "devbroker ready ")
	return p, strings.TrimSpace(addr), nil
}

// buildBinaries builds the commands the benchmark runs into dir, once.
func buildBinaries(ctx context.Context, root, dir string, names ...string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, n := range names {
		path := filepath.Join(dir, n)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "./services/"+n)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./services/%s: %w\n%s", n, err, b)
		}
		out[n] = path
	}
	return out, nil
}

// repoRoot returns the folder holding go.work, walking up from the working
// directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run the benchmark inside the repository")
		}
		dir = parent
	}
}
