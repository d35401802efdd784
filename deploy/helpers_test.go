package deploy

import (
	"fmt"
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

// otelName is an OpenTelemetry SDK variable (OTEL_EXPORTER_OTLP_ENDPOINT...),
// which the services' help names in its text rather than in a row.
var otelName = regexp.MustCompile(`\bOTEL_[A-Z0-9_]*[A-Z0-9]\b`)

// envColumnName is what the ENVIRONMENT column of a row holds.
var envColumnName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// helpEnv returns the environment variable names that service's --help
// prints: the ENVIRONMENT column of its rows (the second field of a line
// starting with a --flag), and the OTEL_* variables its text names. No
// other word of the text counts (PLAIN, PEM, YAML, GRANT are no settings).
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
	set := parseHelpEnv(string(out))
	if len(set) == 0 {
		t.Fatalf("%s --help has no ENVIRONMENT column:\n%s", service, out)
	}
	helpSeen[service] = set
	return set
}

// parseHelpEnv is helpEnv on a help text: nil when it has no FLAG /
// ENVIRONMENT header.
func parseHelpEnv(help string) map[string]bool {
	set := map[string]bool{}
	header := false
	for _, line := range strings.Split(help, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "FLAG" && f[1] == "ENVIRONMENT" {
			header = true
			continue
		}
		if header && len(f) >= 2 && strings.HasPrefix(f[0], "--") && envColumnName.MatchString(f[1]) {
			set[f[1]] = true
		}
	}
	if !header {
		return nil
	}
	for _, m := range otelName.FindAllString(help, -1) {
		set[m] = true
	}
	return set
}

func TestParseHelpEnvTakesTheEnvironmentColumnOnly(t *testing.T) {
	help := `svc: does things with PLAIN, SCRAM and YAML.

Settings (a flag wins over its environment variable):

  FLAG              ENVIRONMENT          DEFAULT   MEANING
  --kafka-tls       KAFKA_TLS            false     on when any KAFKA_TLS_*_FILE is set; PEM files
  --policy          POLICY_FILE          ""        policy YAML; GRANT or DENY
  --trace-ratio     TRACE_SAMPLE_RATIO   0.01      OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set
`
	got := parseHelpEnv(help)
	want := map[string]bool{"KAFKA_TLS": true, "POLICY_FILE": true, "TRACE_SAMPLE_RATIO": true, "OTEL_EXPORTER_OTLP_ENDPOINT": true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseHelpEnv = %v, want %v", got, want)
	}
	if parseHelpEnv("no table here: KAFKA_BROKERS") != nil {
		t.Error("a help text without the FLAG ENVIRONMENT header gave names")
	}
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
