// Package proctest builds the project's commands and runs them as real
// processes in tests: the embedded broker, the services, the demo producer.
// Output of every process is kept and printed when the test fails, so a
// failing end-to-end test shows what each service said.
package proctest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/internal/syncbuf"
)

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// RepoRoot returns the folder holding go.work, found by walking up from the
// working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.work above the working directory: run the tests inside the repository")
		}
		dir = parent
	}
}

// Build compiles the command in rel (a folder relative to the repository
// root, such as "services/enforcer") once per test binary and returns the
// path of the executable. The environment variable CONSENTGATE_BIN_DIR, when
// set, names a folder of prebuilt binaries (named after the folder's last
// element) that is used instead.
func Build(t testing.TB, rel string) string {
	t.Helper()
	name := filepath.Base(rel)
	if dir := os.Getenv("CONSENTGATE_BIN_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[rel]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "consentgate-bin-")
		if err != nil {
			t.Fatalf("temp dir: %v", err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, name)
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./"+rel)
	cmd := exec.Command("go", args...)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", rel, err, b)
	}
	buildCache[rel] = out
	return out
}

// Proc is a running process started by Start.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
}

// Start runs bin with args and extra environment (KEY=VALUE) added to the
// test's own. The process is killed at the end of the test if still running,
// and its output is logged when the test failed.
func Start(t testing.TB, name, bin string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	// Services' telemetry endpoints default to fixed ports; tests run many
	// processes at once, so they get free ports unless the test says
	// otherwise (its env comes later and wins).
	p.cmd.Env = append(os.Environ(), "ENFORCER_TELEMETRY_ADDR=127.0.0.1:0", "CONSENT_SYNC_TELEMETRY_ADDR=127.0.0.1:0", "LEDGER_TELEMETRY_ADDR=127.0.0.1:0")
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() || testing.Verbose() {
			t.Logf("---- output of %s ----\n%s", name, p.Output())
		}
	})
	return p
}

// Output returns everything the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// WaitFor waits until the output contains substr, the process exits, or the
// timeout passes.
func (p *Proc) WaitFor(substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Output(), substr) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), substr) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q", p.Name, p.err, substr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not print %q within %s", p.Name, substr, timeout)
}

// Line returns the first output line that starts with prefix.
func (p *Proc) Line(prefix string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return sc.Text(), true
		}
	}
	return "", false
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits for the process to exit and returns its error (nil for exit 0).
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to timeout for a clean exit; it returns the
// process's exit error, or an error if it had to be killed.
func (p *Proc) Stop(timeout time.Duration) error {
	if p.Exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s after SIGTERM", p.Name, timeout)
	}
}

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// ExitCode returns the exit status once the process has ended, -1 otherwise.
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		return -1
	}
	return 0
}
