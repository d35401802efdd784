package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/consentgate/consentgate/pkg/policy"
)

// loadCompose parses docker-compose.yml as docker compose does (the
// compose-go loader: interpolation, merge keys, validation against the
// compose specification).
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithName("consentgate"), cli.WithEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// consentgateService returns the Dockerfile's SERVICE of a service built
// from deploy/Dockerfile, or "".
func consentgateService(s types.ServiceConfig) string {
	if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
		return ""
	}
	if v := s.Build.Args["SERVICE"]; v != nil {
		return *v
	}
	return ""
}

func envOf(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

func oneShot(s types.ServiceConfig) bool { return s.Restart == "no" }

func TestComposeImagesArePinned(t *testing.T) {
	p := loadCompose(t)
	if len(p.Services) < 14 {
		t.Fatalf("%d services in docker-compose.yml", len(p.Services))
	}
	mk, err := os.ReadFile(filepath.Join(repoRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^IMAGE_TAG\s*\?=\s*(\S+)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no IMAGE_TAG ?= in the Makefile")
	}
	// What `make images` tags, and what compose tags with CONSENTGATE_TAG unset.
	tag := string(m[1])
	for name, s := range p.Services {
		if s.Image == "" {
			t.Errorf("service %s has no image", name)
			continue
		}
		if !pinned(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a tag other than latest", name, s.Image)
		}
		if svc := consentgateService(s); svc != "" && s.Image != "consentgate/"+svc+":"+tag {
			t.Errorf("service %s builds %s but is tagged %q, not consentgate/%s:%s as make images tags it", name, svc, s.Image, svc, tag)
		}
	}
}

// TestComposeEnvironmentIsKnownToTheServices builds every consentgate
// command and checks each variable the compose file sets against its
// --help, and each file a variable names against the service's mounts.
func TestComposeEnvironmentIsKnownToTheServices(t *testing.T) {
	p := loadCompose(t)
	seen := map[string]bool{}
	for name, s := range p.Services {
		svc := consentgateService(s)
		if svc == "" {
			continue
		}
		seen[svc] = true
		names := make([]string, 0, len(s.Environment))
		for k := range s.Environment {
			names = append(names, k)
		}
		checkEnvKnown(t, "docker-compose.yml service "+name, svc, names)
		for k, v := range s.Environment {
			if v == nil || !strings.HasPrefix(*v, "/") && !strings.HasPrefix(*v, "sqlite:/") {
				continue
			}
			path := strings.TrimPrefix(*v, "sqlite:")
			if !mounted(s, path) {
				t.Errorf("service %s: %s=%s is not on a volume the service mounts", name, k, *v)
			}
		}
	}
	for _, want := range []string{"enforcer", "consent-sync", "ledger", "demo-producer"} {
		if !seen[want] {
			t.Errorf("no compose service runs %s", want)
		}
	}
}

func mounted(s types.ServiceConfig, path string) bool {
	for _, v := range s.Volumes {
		if path == v.Target || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/") {
			return true
		}
	}
	return false
}

func TestComposeServicesRunLockedDown(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if consentgateService(s) == "" {
			continue
		}
		if !s.ReadOnly {
			t.Errorf("%s: root filesystem not read-only", name)
		}
		if s.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532 (the image's non-root user)", name, s.User)
		}
		if !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: cap_drop %v, want ALL", name, s.CapDrop)
		}
		if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: security_opt %v, want no-new-privileges:true", name, s.SecurityOpt)
		}
		if !slices.Contains([]string(s.Tmpfs), "/tmp") {
			t.Errorf("%s: no tmpfs on /tmp (the only scratch space of a read-only container)", name)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && !v.ReadOnly {
				t.Errorf("%s: bind mount %s is writable", name, v.Source)
			}
			if v.Source == "secrets" && !v.ReadOnly {
				t.Errorf("%s: the secrets volume is mounted writable", name)
			}
		}
	}
}

func TestComposePortsAndVolumes(t *testing.T) {
	p := loadCompose(t)
	want := map[string]map[uint32]string{ // service: container port: host port
		"kafka-1":         {9092: "29092"},
		"kafka-2":         {9092: "29093"},
		"kafka-3":         {9092: "29094"},
		"schema-registry": {8081: "8081"},
		"otel-collector":  {4317: "4317", 4318: "4318"},
		"consent-sync":    {8080: "8080", 9465: "9465"},
		"ledger":          {8089: "8089", 9467: "9467"},
		"prometheus":      {9090: "9090"},
		"grafana":         {3000: "3000"},
	}
	hostPorts := map[string]string{}
	for name, s := range p.Services {
		got := map[uint32]string{}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %d on %q, not on 127.0.0.1 only", name, port.Target, port.HostIP)
			}
			if other, dup := hostPorts[port.Published]; dup {
				t.Errorf("host port %s published by %s and %s", port.Published, other, name)
			}
			hostPorts[port.Published] = name
			got[port.Target] = port.Published
		}
		if fmt.Sprint(got) != fmt.Sprint(want[name]) && !(len(got) == 0 && want[name] == nil) {
			t.Errorf("%s publishes %v, want %v", name, got, want[name])
		}
		if s.GetScale() > 1 && len(s.Ports) > 0 {
			t.Errorf("%s runs %d replicas but publishes host ports", name, s.GetScale())
		}
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which does not exist: %v", name, v.Source, err)
				}
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s mounts the undeclared volume %s", name, v.Source)
				}
			}
		}
	}
	// Data that must outlive a container lives on named volumes.
	for svc, target := range map[string]string{
		"kafka-1": "/var/lib/kafka/data", "kafka-2": "/var/lib/kafka/data", "kafka-3": "/var/lib/kafka/data",
		"redis": "/data", "ledger": "/var/lib/consentgate", "prometheus": "/prometheus", "grafana": "/var/lib/grafana",
	} {
		found := false
		for _, v := range p.Services[svc].Volumes {
			found = found || v.Type == types.VolumeTypeVolume && v.Target == target
		}
		if !found {
			t.Errorf("%s keeps %s on no named volume", svc, target)
		}
	}
	if got := envOf(p.Services["ledger"], "LEDGER_DSN"); got != "sqlite:/var/lib/consentgate/ledger.db" {
		t.Errorf("ledger LEDGER_DSN %q, want the SQLite file on its volume", got)
	}
}

// noHealthcheck are the long-running services without a healthcheck, and why.
var noHealthcheck = map[string]string{
	"otel-collector": "its image has no shell or HTTP client to probe with",
	"demo-producer":  "it serves no telemetry endpoint",
}

func TestComposeHealthchecksAndStartOrder(t *testing.T) {
	p := loadCompose(t)
	healthy := map[string]bool{}
	for name, s := range p.Services {
		hc := s.HealthCheck
		has := hc != nil && !hc.Disable && len(hc.Test) > 0
		healthy[name] = has
		switch {
		case oneShot(s):
			if has {
				t.Errorf("one-shot %s has a healthcheck", name)
			}
		case noHealthcheck[name] != "":
			if has {
				t.Errorf("%s has a healthcheck now: remove it from noHealthcheck", name)
			}
		case !has:
			t.Errorf("%s runs without a healthcheck", name)
		}
		if svc := consentgateService(s); svc != "" && has {
			if want := []string{"CMD", "/usr/local/bin/healthprobe", "/readyz"}; !slices.Equal(hc.Test, want) {
				t.Errorf("%s healthcheck %v, want %v", name, hc.Test, want)
			}
		}
	}
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on the unknown service %s", name, dep)
				continue
			}
			var want string
			switch {
			case oneShot(target):
				want = types.ServiceConditionCompletedSuccessfully
			case healthy[dep]:
				want = types.ServiceConditionHealthy
			default:
				want = types.ServiceConditionStarted
			}
			// The demo producer needs the enforcers started only: their
			// readiness may wait for consent traffic it sends.
			if name == "demo-producer" && dep == "enforcer" {
				want = types.ServiceConditionStarted
			}
			if d.Condition != want {
				t.Errorf("%s depends on %s with condition %q, want %q", name, dep, d.Condition, want)
			}
		}
	}
	needs := map[string][]string{
		"provision":       {"kafka-1", "kafka-2", "kafka-3"},
		"schema-registry": {"kafka-1", "kafka-2", "kafka-3"},
		"consent-sync":    {"provision", "init-secrets", "redis", "schema-registry"},
		"enforcer":        {"provision", "init-secrets", "redis", "schema-registry", "consent-sync"},
		"ledger":          {"provision", "init-secrets", "schema-registry"},
		"demo-producer":   {"provision", "consent-sync"},
		"grafana":         {"prometheus"},
	}
	for name, deps := range needs {
		for _, d := range deps {
			if _, ok := p.Services[name].DependsOn[d]; !ok {
				t.Errorf("%s does not wait for %s", name, d)
			}
		}
	}
}

func TestComposeKafkaIsThreeKRaftBrokers(t *testing.T) {
	p := loadCompose(t)
	var nodes []string
	for name, s := range p.Services {
		if strings.HasPrefix(s.Image, "apache/kafka:") && envOf(s, "KAFKA_PROCESS_ROLES") != "" {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{"kafka-1", "kafka-2", "kafka-3"}) {
		t.Fatalf("Kafka nodes %v, want kafka-1, kafka-2, kafka-3", nodes)
	}
	ids := map[string]bool{}
	cluster := envOf(p.Services["kafka-1"], "CLUSTER_ID")
	var internal []string
	for i, name := range nodes {
		s := p.Services[name]
		e := func(k string) string { return envOf(s, k) }
		if roles := strings.Split(e("KAFKA_PROCESS_ROLES"), ","); !slices.Contains(roles, "broker") || !slices.Contains(roles, "controller") {
			t.Errorf("%s roles %v: want broker and controller (KRaft, combined)", name, roles)
		}
		if id := e("KAFKA_NODE_ID"); id != fmt.Sprint(i+1) || ids[id] {
			t.Errorf("%s node id %q", name, id)
		}
		ids[e("KAFKA_NODE_ID")] = true
		if e("CLUSTER_ID") != cluster || cluster == "" {
			t.Errorf("%s cluster id %q, kafka-1 has %q", name, e("CLUSTER_ID"), cluster)
		}
		if v := e("KAFKA_CONTROLLER_QUORUM_VOTERS"); v != "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093" {
			t.Errorf("%s quorum voters %q", name, v)
		}
		for k, want := range map[string]string{
			"KAFKA_DEFAULT_REPLICATION_FACTOR":               "3",
			"KAFKA_MIN_INSYNC_REPLICAS":                      "2",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "3",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "2",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
			"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
		} {
			if got := e(k); got != want {
				t.Errorf("%s %s=%q, want %q", name, k, got, want)
			}
		}
		adv := e("KAFKA_ADVERTISED_LISTENERS")
		wantInternal := "PLAINTEXT://" + name + ":19092"
		if !strings.Contains(adv, wantInternal) {
			t.Errorf("%s advertises %q, not %s", name, adv, wantInternal)
		}
		internal = append(internal, name+":19092")
		if s.Hostname != name {
			t.Errorf("%s hostname %q", name, s.Hostname)
		}
	}
	brokers := strings.Join(internal, ",")
	for name, s := range p.Services {
		if consentgateService(s) == "" {
			continue
		}
		if got := envOf(s, "KAFKA_BROKERS"); got != brokers {
			t.Errorf("%s KAFKA_BROKERS %q, want every broker %q", name, got, brokers)
		}
	}
	prov := p.Services["provision"]
	if envOf(prov, "PROVISION_REPLICATION_FACTOR") != "3" || envOf(prov, "PROVISION_MIN_INSYNC_REPLICAS") != "2" {
		t.Errorf("provision: PROVISION_REPLICATION_FACTOR %q, PROVISION_MIN_INSYNC_REPLICAS %q, want 3 and 2", envOf(prov, "PROVISION_REPLICATION_FACTOR"), envOf(prov, "PROVISION_MIN_INSYNC_REPLICAS"))
	}
}

// TestComposeTopicsMatchThePipeline runs `provision plan --json` with the
// environment of the compose service provision (its policy file mapped to
// deploy/policy.yaml) and checks the plan against what the services of the
// compose file read and write: the policy's output topics, the consent
// topic kept for ever, the audit and its checkpoints, the notices, the dead
// letters, replication 3 and min.insync.replicas 2 everywhere.
func TestComposeTopicsMatchThePipeline(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	prov := p.Services["provision"]
	if consentgateService(prov) != "provision" || !oneShot(prov) || !slices.Equal([]string(prov.Command), []string{"apply"}) {
		t.Fatalf("compose service provision: image %q, restart %q, command %v; want the provision image run once with apply", prov.Image, prov.Restart, prov.Command)
	}
	policyFile := filepath.Join(root, "deploy", "policy.yaml")
	if got := envOf(prov, "POLICY_FILE"); got != envOf(p.Services["enforcer"], "POLICY_FILE") || !mounted(prov, got) {
		t.Errorf("provision reads the policy %q, the enforcer %q", got, envOf(p.Services["enforcer"], "POLICY_FILE"))
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range prov.Environment {
		if v != nil && k != "POLICY_FILE" {
			env = append(env, k+"="+*v)
		}
	}
	cmd := exec.Command(binary(t, "provision"), "plan", "--json")
	cmd.Env = append(env, "POLICY_FILE="+policyFile)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("provision plan with the compose environment: %v\n%s", err, out)
	}
	var plan struct {
		Topics []struct {
			Name              string            `json:"name"`
			Partitions        int               `json:"partitions"`
			ReplicationFactor int               `json:"replication_factor"`
			Configs           map[string]string `json:"configs"`
		} `json:"topics"`
		ACLsApplied bool `json:"acls_applied"`
	}
	if err := json.Unmarshal(out, &plan); err != nil {
		t.Fatalf("provision plan --json: %v\n%s", err, out)
	}
	if plan.ACLsApplied {
		t.Error("provision applies ACLs on the compose brokers, which have no authorizer: set PROVISION_ACLS=false")
	}
	pol, err := policy.Load(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	kept := func(c map[string]string) bool { return c["retention.ms"] == "-1" && c["retention.bytes"] == "-1" }
	want := map[string]func(map[string]string) bool{
		"consent.changes": kept, "consent.audit": kept, "consent.audit.checkpoints": kept, "consent.revocations": kept,
		"customer.events": nil, "customer.events.dlq": nil, "consent.changes.dlq": nil, "consent.keys": kept,
	}
	// The keys topic alone is compacted: an erasure's tombstones must
	// remove the data keys from the brokers.
	const keysTopic = "consent.keys"
	for _, s := range pol.Streams {
		want[s.Topic] = nil
	}
	got := map[string]bool{}
	for _, tp := range plan.Topics {
		got[tp.Name] = true
		check, ok := want[tp.Name]
		if !ok {
			t.Errorf("the plan has the topic %s, which no compose service uses", tp.Name)
		}
		if check != nil && !check(tp.Configs) {
			t.Errorf("%s: configs %v, want retention.ms=-1 and retention.bytes=-1 (kept for ever)", tp.Name, tp.Configs)
		}
		cleanup := "delete"
		if tp.Name == keysTopic {
			cleanup = "compact"
		}
		if tp.ReplicationFactor != 3 || tp.Configs["min.insync.replicas"] != "2" || tp.Configs["cleanup.policy"] != cleanup {
			t.Errorf("%s: replication %d, configs %v; want 3, min.insync.replicas=2, cleanup.policy=%s (only the keys topic is compacted)", tp.Name, tp.ReplicationFactor, tp.Configs, cleanup)
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("the plan lacks the topic %s", name)
		}
	}
	// The services of the compose file use the plan's names.
	for svc, vars := range map[string][]string{"enforcer": {"ENFORCER_TOPICS", "AUDIT_TOPIC", "KEYS_TOPIC"}, "consent-sync": {"CONSENT_SYNC_TOPICS", "REVOCATIONS_TOPIC", "KEYS_TOPIC"}, "ledger": {"LEDGER_CHECKPOINTS_TOPIC", "LEDGER_KEYS_TOPIC"}} {
		for _, v := range vars {
			if val := envOf(p.Services[svc], v); val != "" && !got[val] {
				t.Errorf("%s %s=%s is not a topic of the plan", svc, v, val)
			}
		}
	}
}

func TestComposeEnforcersShareOneGroup(t *testing.T) {
	p := loadCompose(t)
	e := p.Services["enforcer"]
	if e.GetScale() != 2 {
		t.Errorf("enforcer replicas %d, want 2", e.GetScale())
	}
	if envOf(e, "ENFORCER_GROUP_ID") == "" || envOf(e, "ENFORCER_TOPICS") != "customer.events" {
		t.Errorf("enforcer group %q topics %q", envOf(e, "ENFORCER_GROUP_ID"), envOf(e, "ENFORCER_TOPICS"))
	}
	if envOf(e, "PSEUDONYMISATION_KEY_FILE") == "" || envOf(e, "PSEUDONYMISATION_KEY") != "" {
		t.Error("the enforcer must read its pseudonymisation key from a file, never inline")
	}
	// The key-encryption key: a file init-secrets makes, mounted into the
	// enforcer alone (consent-sync destroys keys without it, the ledger
	// records them without it); every service names the same keys topic.
	if kek := envOf(e, "CONSENT_KEK_FILE"); kek == "" || envOf(e, "CONSENT_KEK") != "" || !mountedSecret(e, kek, "consent.kek") {
		t.Errorf("the enforcer must read its key-encryption key from the file consent.kek of the secrets volume, never inline: CONSENT_KEK_FILE %q", kek)
	}
	for name, s := range p.Services {
		if name == "enforcer" {
			continue
		}
		if envOf(s, "CONSENT_KEK_FILE") != "" || envOf(s, "CONSENT_KEK") != "" || mountedSecret(s, "", "consent.kek") {
			t.Errorf("%s has the key-encryption key: only the enforcer needs it", name)
		}
	}
	for svc, v := range map[string]string{"enforcer": "KEYS_TOPIC", "consent-sync": "KEYS_TOPIC", "ledger": "LEDGER_KEYS_TOPIC", "provision": "KEYS_TOPIC"} {
		if got := envOf(p.Services[svc], v); got != "consent.keys" {
			t.Errorf("%s %s=%q, want consent.keys (the same keys topic everywhere)", svc, v, got)
		}
	}
	cs := p.Services["consent-sync"]
	if envOf(cs, "CONSENT_INTAKE_ADDR") != "0.0.0.0:8080" || envOf(cs, "CONSENT_INTAKE_TOKENS_FILE") == "" || envOf(cs, "CONSENT_INTAKE_INSECURE") != "" {
		t.Error("consent-sync must serve the intake on :8080 with bearer tokens, not insecure")
	}
}

// TestComposeObservability checks that Prometheus scrapes each service on
// the port it listens on, and that Grafana is provisioned with the dashboard.
func TestComposeObservability(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	targets := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = true
			}
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				targets[fmt.Sprintf("%s:%d", n, d.Port)] = true
			}
		}
	}
	telemetry := map[string]string{"enforcer": "ENFORCER_TELEMETRY_ADDR", "consent-sync": "CONSENT_SYNC_TELEMETRY_ADDR", "ledger": "LEDGER_TELEMETRY_ADDR"}
	for name, s := range p.Services {
		svc := consentgateService(s)
		setting, ok := telemetry[svc]
		if !ok {
			continue
		}
		host, port, err := net.SplitHostPort(envOf(s, setting))
		if err != nil || host != "0.0.0.0" {
			t.Errorf("%s %s=%q: want 0.0.0.0:<port>, reachable by Prometheus", name, setting, envOf(s, setting))
			continue
		}
		if !targets[name+":"+port] {
			t.Errorf("prometheus.yml does not scrape %s:%s (targets %v)", name, port, targets)
		}
		if s.Scale != nil || s.Deploy != nil {
			found := false
			for _, sc := range prom.ScrapeConfigs {
				for _, d := range sc.DNSSDConfigs {
					found = found || slices.Contains(d.Names, name) && d.Type == "A"
				}
			}
			if !found {
				t.Errorf("%s runs replicas; prometheus.yml must discover each by DNS", name)
			}
		}
	}
	g := p.Services["grafana"]
	var dash, prov bool
	for _, v := range g.Volumes {
		dash = dash || strings.HasSuffix(v.Source, "deploy/grafana/consentgate.json") && v.Target == "/etc/grafana/dashboards/consentgate.json"
		prov = prov || strings.HasSuffix(v.Source, "deploy/grafana/provisioning") && v.Target == "/etc/grafana/provisioning"
	}
	if !dash || !prov {
		t.Errorf("grafana mounts the dashboard %v and the provisioning %v", dash, prov)
	}
	b, err = os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "dashboards", "consentgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "path: /etc/grafana/dashboards") {
		t.Error("the dashboard provider does not read /etc/grafana/dashboards, where the dashboard is mounted")
	}
	var otel bool
	for _, v := range p.Services["otel-collector"].Volumes {
		otel = otel || strings.HasSuffix(v.Source, "deploy/otel-collector.yaml")
	}
	if !otel {
		t.Error("the collector does not use deploy/otel-collector.yaml")
	}
}

// mountedSecret reports whether s mounts the file subpath of the secrets
// volume (at target, when target is not empty).
func mountedSecret(s types.ServiceConfig, target, subpath string) bool {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == "secrets" && v.Volume != nil && v.Volume.Subpath == subpath && (target == "" || v.Target == target) && v.ReadOnly {
			return true
		}
	}
	return false
}
