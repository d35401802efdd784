package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfile is deploy/Dockerfile as instructions: continuation lines
// joined, comments and blank lines dropped.
func dockerfile(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		out = append(out, cur+trimmed)
		cur = ""
	}
	return out
}

func TestDockerfileIsMultiStageStaticAndNonRoot(t *testing.T) {
	ins := dockerfile(t)
	args := map[string]string{}
	var froms, users, runs []string
	for _, in := range ins {
		op, rest, _ := strings.Cut(in, " ")
		switch strings.ToUpper(op) {
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			if _, ok := args[k]; !ok || v != "" {
				args[k] = v
			}
		case "FROM":
			froms = append(froms, rest)
		case "USER":
			users = append(users, rest)
		case "RUN":
			runs = append(runs, rest)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM %v: want a build stage and a runtime stage", froms)
	}
	// Every base is pinned; ${VAR} bases by their ARG default.
	expand := regexp.MustCompile(`\$\{(\w+)\}`)
	stages := map[string]bool{}
	for _, f := range froms {
		fields := strings.Fields(f)
		base := expand.ReplaceAllStringFunc(fields[0], func(m string) string { return args[expand.FindStringSubmatch(m)[1]] })
		if base != "scratch" && !stages[base] && !pinned(base) {
			t.Errorf("FROM %s: base %q is not pinned", f, base)
		}
		if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
			stages[fields[2]] = true
		}
	}
	if final := strings.Fields(froms[len(froms)-1])[0]; final != "scratch" && !strings.Contains(final, "distroless") {
		t.Errorf("runtime stage FROM %s: want scratch or distroless", final)
	}
	// The final stage runs as a numeric non-root user.
	if len(users) == 0 {
		t.Fatal("no USER: the image would run as root")
	}
	u := users[len(users)-1]
	if !regexp.MustCompile(`^[1-9][0-9]*:[1-9][0-9]*$`).MatchString(u) {
		t.Errorf("USER %q: want a numeric non-root uid:gid (runAsNonRoot can only check a number)", u)
	}
	build := strings.Join(runs, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./services/${SERVICE}", "./deploy/cmd/healthprobe", "./deploy/cmd/demo-producer"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build step lacks %q", want)
		}
	}
	if n := strings.Count(build, "go build"); n != strings.Count(build, "go build -trimpath") {
		t.Errorf("%d go build commands, not all with -trimpath", n)
	}
	// The passwd the image ships names that user.
	if !strings.Contains(build, "consentgate:x:"+strings.Split(u, ":")[0]+":") {
		t.Errorf("/etc/passwd written by the build does not name uid %s", u)
	}
	var hc, ep string
	for _, in := range ins {
		if strings.HasPrefix(in, "HEALTHCHECK ") {
			hc = in
		}
		if strings.HasPrefix(in, "ENTRYPOINT ") {
			ep = in
		}
	}
	if !strings.Contains(hc, `"/usr/local/bin/healthprobe", "/healthz"`) {
		t.Errorf("HEALTHCHECK %q: want the probe of /healthz", hc)
	}
	if ep != `ENTRYPOINT ["/usr/local/bin/consentgate"]` {
		t.Errorf("ENTRYPOINT %q", ep)
	}
	// Every service the Dockerfile accepts is one the tests build, and back.
	m := regexp.MustCompile(`case "\$\{SERVICE:-\}" in (.*?)\) pkg="\./services/\$\{SERVICE\}"`).FindStringSubmatch(build)
	if m == nil {
		t.Fatal("the build step has no case over SERVICE")
	}
	services := append(strings.Split(strings.TrimSpace(m[1]), "|"), "demo-producer")
	slices.Sort(services)
	var known []string
	for k := range commands {
		known = append(known, k)
	}
	slices.Sort(known)
	if !slices.Equal(services, known) {
		t.Errorf("the Dockerfile builds %v, the tests know %v", services, known)
	}
}

// TestDockerignoreKeepsTheBuildInputs lists, with `go list -deps`, every
// file of the workspace the images' packages are built from (Go and
// assembly files, embedded files, go.mod and go.sum of every module of
// go.work, go.work and go.work.sum) and checks that .dockerignore, matched as
// Docker matches it (dockerignored), lets each one into the build context.
func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	root := repoRoot(t)
	patterns := dockerignorePatterns(t)
	for _, out := range []string{".git", ".git/config", "bin/enforcer", ".data/ledger.db", ".artifacts/x", "deploy/helm/consentgate/values.yaml",
		"README.md", "services/enforcer/enforcer", "pkg/policy/policy_test.go"} {
		if !dockerignored(patterns, out) {
			t.Errorf(".dockerignore lets %s into the build context", out)
		}
	}
	pkgs := []string{"./deploy/cmd/healthprobe"}
	for _, pkg := range commands {
		pkgs = append(pkgs, pkg)
	}
	slices.Sort(pkgs)
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f",
		`{{if not .Standard}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .SFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}` +
			`{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %v: %v", pkgs, err)
	}
	inputs := []string{"go.work", "go.work.sum"}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		rel, err := filepath.Rel(root, f)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // the module cache: downloaded in the build, not in the context
		}
		inputs = append(inputs, filepath.ToSlash(rel))
	}
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*\./(\S+)\s*$`).FindAllStringSubmatch(string(work), -1) {
		inputs = append(inputs, m[1]+"/go.mod")
		if _, err := os.Stat(filepath.Join(root, m[1], "go.sum")); err == nil {
			inputs = append(inputs, m[1]+"/go.sum")
		}
	}
	if len(inputs) < 100 {
		t.Fatalf("go list found %d build inputs in the workspace; want the sources of every service", len(inputs))
	}
	embedded := 0
	for _, f := range inputs {
		if strings.HasSuffix(f, ".avsc") || strings.HasSuffix(f, ".html") || strings.HasSuffix(f, ".sql") {
			embedded++
		}
		if dockerignored(patterns, f) {
			t.Errorf(".dockerignore leaves out %s, which the image build reads", f)
		}
	}
	if embedded == 0 {
		t.Error("go list named no embedded file (schemas, console templates, migrations): the check does not see them")
	}
}

func TestMakeImagesSaysWhenDockerIsMissing(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on this machine")
	}
	cmd := exec.Command("make", "-s", "images", "DOCKER=consentgate-no-such-docker")
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("make images without Docker succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "no 'consentgate-no-such-docker' command on this machine") || strings.Contains(string(out), "building ") {
		t.Errorf("make images without Docker said:\n%s", out)
	}
}
