package stack

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestChoose: every value of CONSENTGATE_E2E_STACK, with a Docker engine
// and without one.
func TestChoose(t *testing.T) {
	noDocker := errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\nIs the docker daemon running?")
	for _, tc := range []struct {
		value      string
		docker     bool
		want       Kind
		reason     string   // substring of Choice.Reason
		errWants   []string // substrings of the error; nil: no error
		probeCalls int
	}{
		{value: "", docker: true, want: KindContainers, reason: "auto: a Docker engine answers", probeCalls: 1},
		{value: "", docker: false, want: KindLocal, reason: "auto: no Docker engine: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", probeCalls: 1},
		{value: "auto", docker: true, want: KindContainers, reason: "auto: a Docker engine answers", probeCalls: 1},
		{value: "auto", docker: false, want: KindLocal, reason: "auto: no Docker engine", probeCalls: 1},
		{value: "local", docker: true, want: KindLocal, reason: "CONSENTGATE_E2E_STACK=local", probeCalls: 0},
		{value: "local", docker: false, want: KindLocal, reason: "CONSENTGATE_E2E_STACK=local", probeCalls: 0},
		{value: "containers", docker: true, want: KindContainers, reason: "CONSENTGATE_E2E_STACK=containers", probeCalls: 1},
		{value: "containers", docker: false, errWants: []string{"CONSENTGATE_E2E_STACK=containers", "no Docker engine answers", "Cannot connect to the Docker daemon", "start Docker", "CONSENTGATE_E2E_STACK=local"}, probeCalls: 1},
		{value: "kafka", docker: true, errWants: []string{`CONSENTGATE_E2E_STACK="kafka"`, "local", "containers", "auto"}, probeCalls: 0},
		{value: "Local", docker: false, errWants: []string{`CONSENTGATE_E2E_STACK="Local"`, "set it to local"}, probeCalls: 0},
		{value: " local", docker: false, errWants: []string{`CONSENTGATE_E2E_STACK=" local"`}, probeCalls: 0},
	} {
		calls := 0
		probe := func() error {
			calls++
			if tc.docker {
				return nil
			}
			return noDocker
		}
		got, err := Choose(tc.value, probe)
		name := tc.value + map[bool]string{true: " with Docker", false: " without Docker"}[tc.docker]
		if calls != tc.probeCalls {
			t.Errorf("%q: the Docker probe ran %d times, want %d", name, calls, tc.probeCalls)
		}
		if tc.errWants != nil {
			if err == nil {
				t.Errorf("%q: chose %+v, want an error", name, got)
				continue
			}
			for _, w := range tc.errWants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q: error %q does not say %q", name, err, w)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", name, err)
			continue
		}
		if got.Kind != tc.want || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%q: chose %+v, want %s with a reason containing %q", name, got, tc.want, tc.reason)
		}
		if strings.Contains(got.Reason, "\n") {
			t.Errorf("%q: the reason %q spans lines", name, got.Reason)
		}
	}
}

// TestDockerProbeWithoutEngine: testcontainers' check fails, quickly, when
// DOCKER_HOST names a socket nobody listens on and when it names a TCP
// port that accepts connections but never answers (the short timeout).
// testcontainers resolves the Docker host once per process, so each case
// runs in a child process of this test binary (TestProbeChild).
func TestDockerProbeWithoutEngine(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn // accepted, never answered
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	for _, tc := range []struct{ name, host string }{
		{"no socket", "unix://" + t.TempDir() + "/docker.sock"},
		{"silent engine", "tcp://" + l.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestProbeChild$", "-test.v")
			cmd.Env = append(os.Environ(), "STACK_PROBE_CHILD=1", "DOCKER_HOST="+tc.host, "TESTCONTAINERS_HOST_OVERRIDE=", "DOCKER_CONTEXT=",
				"TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE=")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "PROBE FAILED:") {
				t.Fatalf("the probe found a Docker engine at %s:\n%s", tc.host, out)
			}
			// The child's own start-up takes a moment; the probe is bounded by 1s.
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the probe took %v, want about its 1s timeout", d)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "PROBE") {
					t.Log(strings.TrimSpace(line))
				}
			}
		})
	}
}

// TestProbeChild is the child process of TestDockerProbeWithoutEngine.
func TestProbeChild(t *testing.T) {
	if os.Getenv("STACK_PROBE_CHILD") != "1" {
		t.Skip("runs only as the child of TestDockerProbeWithoutEngine")
	}
	start := time.Now()
	if err := dockerHealth(time.Second); err != nil {
		fmt.Printf("PROBE FAILED: after %v: %s\n", time.Since(start).Round(time.Millisecond), oneLine(err))
		return
	}
	fmt.Println("PROBE OK")
}
