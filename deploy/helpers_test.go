package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the folder holding go.work (the parent of deploy/).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.work")); err != nil {
		t.Fatalf("no go.work in %s: run the tests from deploy/", dir)
	}
	return dir
}

// commands maps a service image (the Dockerfile's SERVICE) to the package
// built for it, as deploy/Dockerfile does.
var commands = map[string]string{
	"enforcer":      "./services/enforcer",
	"consent-sync":  "./services/consent-sync",
	"ledger":        "./services/ledger",
	"consentctl":    "./services/consentctl",
	"provision":     "./services/provision",
	"devbroker":     "./services/devbroker",
	"demo-producer": "./deploy/cmd/demo-producer",
}

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	binDir   string
	helpMu   sync.Mutex
	helpSeen = map[string]map[string]bool{}
)

// binary builds the command of service once per test run, from the
// workspace, and returns its path.
func binary(t testing.TB, service string) string {
	t.Helper()
	pkg, ok := commands[service]
	if !ok {
		t.Fatalf("no command for service %q (deploy/Dockerfile builds %v)", service, commands)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[service]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "consentgate-deploy-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	out := filepath.Join(binDir, service)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[service] = out
	return out
}

var envName = regexp.MustCompile(`\b[A-Z][A-Z0-9_]*_[A-Z0-9_]+\b|\b[A-Z]{3,}\b`)

// helpEnv returns the environment variable names that service's --help
// prints (the ENVIRONMENT column, and names its help text mentions, such as
// OTEL_EXPORTER_OTLP_ENDPOINT).
func helpEnv(t testing.TB, service string) map[string]bool {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	if s, ok := helpSeen[service]; ok {
		return s
	}
	cmd := exec.Command(binary(t, service), "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", service, err, out)
	}
	if !strings.Contains(string(out), "ENVIRONMENT") {
		t.Fatalf("%s --help has no ENVIRONMENT column:\n%s", service, out)
	}
	set := map[string]bool{}
	for _, m := range envName.FindAllString(string(out), -1) {
		set[m] = true
	}
	helpSeen[service] = set
	return set
}

// pendingSecurityEnv are settings a branch is adding to the services that
// the deploy files wire already: accepted while missing from --help. The
// Kafka and the Redis TLS/ACL settings have merged and must be in --help.
var pendingSecurityEnv = map[string]bool{}

// checkEnvKnown fails the test for every name the service's --help does not
// print (pendingSecurityEnv aside).
func checkEnvKnown(t *testing.T, where, service string, names []string) {
	t.Helper()
	help := helpEnv(t, service)
	for _, n := range names {
		if !help[n] && !pendingSecurityEnv[n] {
			t.Errorf("%s sets %s, which `%s --help` does not know", where, n, service)
		}
	}
}

// pinned reports whether an image reference names a release: a digest, or
// a tag other than latest.
func pinned(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if colon < slash+1 || colon == len(ref)-1 {
		return false
	}
	tag := ref[colon+1:]
	return tag != "latest" && !strings.Contains(tag, "$")
}

func TestPinnedRecognisesReleases(t *testing.T) {
	for ref, want := range map[string]bool{
		"apache/kafka:3.9.1": true, "redis": false, "redis:latest": false, "localhost:5000/x": false,
		"localhost:5000/x:1.2": true, "golang:1.26.8-bookworm": true, "busybox@sha256:abc": true, "x:": false,
	} {
		if got := pinned(ref); got != want {
			t.Errorf("pinned(%q) = %v, want %v", ref, got, want)
		}
	}
}
