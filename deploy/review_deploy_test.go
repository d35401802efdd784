package deploy

// Adversarial review of the deployment artifacts (issue 13, parts 1-3): each
// test below fails on the artifacts as they were reviewed and passes once the
// finding it names is fixed. They reuse the helpers of the other deploy
// tests (loadCompose, render, helpEnv, binary).

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/segmentio/kafka-go"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"helm.sh/helm/v4/pkg/strvals"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/schemas"
)

// with returns minimal() with the top-level value key replaced by the
// result of merging kv over what minimal() has there.
func with(v map[string]any, key string, kv map[string]any) map[string]any {
	cur, _ := v[key].(map[string]any)
	out := map[string]any{}
	for k, x := range cur {
		out[k] = x
	}
	for k, x := range kv {
		out[k] = x
	}
	v[key] = out
	return v
}

// refuses asserts that vals do not render, with an error naming want.
func refuses(t *testing.T, what string, vals map[string]any, want string) {
	t.Helper()
	_, err := render(t, vals)
	if err == nil {
		t.Errorf("%s: the chart renders; want it to refuse, naming %s", what, want)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: render failed with %q, want a message naming %s", what, err, want)
	}
}

func containerEnv(d map[string]corev1.EnvVar, c corev1.Container) map[string]corev1.EnvVar {
	for _, e := range c.Env {
		d[e.Name] = e
	}
	return d
}

// ---------------------------------------------------------------- compose

// Every consentgate service mounts the whole `secrets` volume, so the ledger
// (whose console faces people) and consent-sync (whose intake faces clients)
// can read the pseudonymisation key, and the enforcer the bearer tokens of
// the intake and the console. Whoever takes one service gets every secret;
// with the pseudonymisation key, the pseudonyms of compliant.analytics are
// reversible by hashing the known subject ids.
func TestReviewComposeServicesSeeOnlyTheirOwnSecrets(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if consentgateService(s) == "" {
			continue
		}
		var needs []string
		for k, v := range s.Environment {
			if v != nil && strings.HasSuffix(k, "_FILE") && strings.HasPrefix(*v, "/run/secrets/") {
				needs = append(needs, filepath.Base(*v))
			}
		}
		sort.Strings(needs)
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeVolume || v.Source != "secrets" {
				continue
			}
			if v.Volume == nil || v.Volume.Subpath == "" {
				t.Errorf("%s mounts the whole secrets volume at %s: it can read every secret of the stack "+
					"(pseudonymisation.key, intake.tokens, console.tokens) but needs only %v; mount each file it needs "+
					"(volume: {subpath: <file>}) or give each secret a volume of its own", name, v.Target, needs)
			} else if !slices.Contains(needs, filepath.Base(v.Volume.Subpath)) {
				t.Errorf("%s mounts the secret %s, which none of its settings names", name, v.Volume.Subpath)
			}
		}
	}
}

// Redis holds the consent state (keyed by subject id: personal data) and is
// published on the host without a password. Any process on the host can read
// every customer's choices, and write a GRANT straight into the state the
// enforcers decide on: consent that no record in consent.changes, no intake
// token and no ledger entry accounts for.
func TestReviewComposeConsentStateIsNotOpenOnTheHost(t *testing.T) {
	p := loadCompose(t)
	r := p.Services["redis"]
	cmd := strings.Join(r.Command, " ")
	auth := strings.Contains(cmd, "--requirepass") || strings.Contains(cmd, "--aclfile") || strings.Contains(cmd, "--user ")
	if len(r.Ports) > 0 && !auth {
		t.Errorf("redis publishes %v on the host with no password or ACL (command %q): anyone on the host can read "+
			"and rewrite the consent state; do not publish it (docker compose exec redis redis-cli reaches it) or require AUTH",
			r.Ports, cmd)
	}
}

// The demo producer says (DEMO_SEED, and its README row: "the same mix" as
// make run) that it first gives every customer an initial choice per
// purpose. It writes one initial change per purpose of the policy for each
// customer, but each of them about a purpose drawn at random: most customers
// get two choices about one purpose and none about another, so the traffic
// the enforcers see is not the seeded population the demo describes.
func TestReviewDemoProducerSeedsEveryPurposeOfEverySubject(t *testing.T) {
	bin := binary(t, "demo-producer")
	b := brokertest.Start(t, brokertest.Options{Topics: []string{"customer.events", "consent.changes"}})
	policyFile := filepath.Join(repoRoot(t), "deploy", "policy.yaml")
	pol, err := policy.Load(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	const subjects = 10
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "KAFKA_BROKERS=" + b.Addr, "POLICY_FILE=" + policyFile,
		fmt.Sprintf("DEMO_SUBJECTS=%d", subjects), "DEMO_EVENTS_PER_SEC=0", "DEMO_CHANGES_PER_SEC=0", "DEMO_DURATION=1s"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("demo-producer: %v\n%s", err, out)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	changes := b.ReadAll(t, "consent.changes", 500*time.Millisecond, 20*time.Second)
	if len(changes) != subjects*len(pol.Purposes) {
		t.Fatalf("%d seed changes, want %d (%d subjects x %d purposes)", len(changes), subjects*len(pol.Purposes), subjects, len(pol.Purposes))
	}
	seen := map[string]map[string]int{}
	for _, m := range changes {
		rec, err := codec.Decode(context.Background(), m.Value)
		if err != nil {
			t.Fatal(err)
		}
		subject := rec.Value["subject_id"].(string)
		purpose := "<none>"
		if u, ok := rec.Value["purpose"].(map[string]any); ok {
			purpose, _ = u["string"].(string)
		} else if s, ok := rec.Value["purpose"].(string); ok {
			purpose = s
		}
		if seen[subject] == nil {
			seen[subject] = map[string]int{}
		}
		seen[subject][purpose]++
	}
	var ids []string
	for _, p := range pol.Purposes {
		ids = append(ids, p.ID)
	}
	bad, shown := 0, 0
	for _, subject := range slices.Sorted(maps.Keys(seen)) {
		by := seen[subject]
		ok := true
		for _, id := range ids {
			if by[id] != 1 {
				bad++
				ok = false
			}
		}
		if !ok && shown < 3 {
			shown++
			t.Errorf("subject %s: seeded choices per purpose %v, want exactly one about each of %v", subject, by, ids)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d (subject, purpose) pairs have no single initial choice: the seed picks each change's purpose at random "+
			"(deploy/cmd/demo-producer run: `for range p.purposes { p.change(subject, true) }`)", bad, subjects*len(ids))
	}
}

// ------------------------------------------------------------------- chart

// With autoscaling off the chart sets enforcer.replicas without looking at
// topics.inputPartitions ("the most enforcers that get work", values.yaml):
// 8 enforcers on 6 partitions render, and two of them sit idle. The bound
// the chart enforces for KEDA it forgets for a fixed count.
func TestReviewChartRefusesEnforcerReplicasAbovePartitions(t *testing.T) {
	v := with(minimal(), "enforcer", map[string]any{"replicas": 8})
	v = with(v, "topics", map[string]any{"inputPartitions": 6})
	refuses(t, "enforcer.replicas 8 on 6 input partitions", v, "topics.inputPartitions")
}

// values.yaml says topics.inputPartitions is the input topics' partitions
// "summed over all of them: the most enforcers that get work", and the chart
// lets enforcer.autoscaling.maxReplicaCount reach it. The enforcers' group
// is assigned by kafka-go's default balancers, range first (pkg/stream sets
// none), and range assigns each topic on its own: two topics of 3
// partitions and 6 enforcers leave 3 of them without a partition, while
// KEDA (which also sums) scales to 6 on lag.
func TestReviewChartPartitionBoundHoldsForSeveralInputTopics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const topics, total = 2, 6
	perTopic := total // the bound read as the largest input topic's partitions
	if strings.Contains(string(b), "summed over all of them") {
		perTopic = total / topics
	}
	v := everything()
	v["topics"] = map[string]any{"input": []any{"orders.events", "clicks.events"}, "inputPartitions": total}
	v["enforcer"] = map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicaCount": 2, "maxReplicaCount": total}}
	if _, err := render(t, v); err != nil {
		return // refused: nothing idles
	}
	var members []kafka.GroupMember
	for i := range total {
		members = append(members, kafka.GroupMember{ID: fmt.Sprintf("enforcer-%d", i), Topics: []string{"orders.events", "clicks.events"}})
	}
	var parts []kafka.Partition
	for _, tp := range []string{"orders.events", "clicks.events"} {
		for p := range perTopic {
			parts = append(parts, kafka.Partition{Topic: tp, ID: p})
		}
	}
	working := 0
	for _, byTopic := range (kafka.RangeGroupBalancer{}).AssignGroups(members, parts) {
		n := 0
		for _, ps := range byTopic {
			n += len(ps)
		}
		if n > 0 {
			working++
		}
	}
	if working < total {
		t.Errorf("the chart accepts maxReplicaCount %d for two input topics with topics.inputPartitions %d (%d partitions each, as values.yaml "+
			"defines it), and the range assignment of the enforcers' group gives work to %d of them: say the bound is the largest input "+
			"topic's partitions (or have the reader balance round-robin)", total, total, perTopic, working)
	}
}

// maxUnavailable 0 blocks every node drain for good; maxUnavailable equal to
// (or above) the replicas, or one replica with the default budget, lets a
// drain take every enforcer (nothing decides) or every consent-sync (the
// intake refuses withdrawals). The chart renders each.
func TestReviewChartPDBNeitherBlocksDrainsNorAllowsAllDown(t *testing.T) {
	refuses(t, "enforcer.pdb.maxUnavailable 0",
		with(minimal(), "enforcer", map[string]any{"pdb": map[string]any{"enabled": true, "maxUnavailable": 0}}), "maxUnavailable")
	refuses(t, "consentSync.pdb.maxUnavailable 2 with 2 replicas",
		with(minimal(), "consentSync", map[string]any{"intake": map[string]any{"tokensSecret": "cg-intake-tokens"},
			"pdb": map[string]any{"enabled": true, "maxUnavailable": 2}}), "maxUnavailable")
	refuses(t, "enforcer.replicas 1 with its PodDisruptionBudget",
		with(minimal(), "enforcer", map[string]any{"replicas": 1}), "replicas")
}

// A TLS Secret, a client certificate or a server name given while
// kafka.tls.enabled (or redis.tls.enabled) is false renders a plaintext
// client: the operator who named the CA believes the traffic is encrypted.
func TestReviewChartRefusesTLSSettingsWithTLSOff(t *testing.T) {
	for what, tls := range map[string]map[string]any{
		"existingSecret": {"existingSecret": "kafka-tls"},
		"clientCert":     {"clientCert": true},
		"serverName":     {"serverName": "kafka.internal"},
	} {
		v := minimal()
		v["kafka"] = map[string]any{"brokers": "kafka:9093", "tls": tls}
		refuses(t, "kafka.tls."+what+" with kafka.tls.enabled false", v, "kafka.tls.enabled")
	}
	v := minimal()
	v["redis"] = map[string]any{"addr": "redis:6380", "tls": map[string]any{"existingSecret": "redis-tls", "clientCert": true}}
	refuses(t, "redis.tls.existingSecret with redis.tls.enabled false", v, "redis.tls.enabled")
}

// SASL PLAIN sends the password itself; without TLS it crosses the network
// in clear text, for every pod of every component. The chart renders it. So
// it does a SASL Secret without a mechanism: the pods connect without SASL.
func TestReviewChartRefusesSASLPlainWithoutTLS(t *testing.T) {
	v := minimal()
	v["kafka"] = map[string]any{"brokers": "kafka:9092", "sasl": map[string]any{"mechanism": "PLAIN", "existingSecret": "kafka-user"}}
	refuses(t, "kafka.sasl.mechanism PLAIN with kafka.tls.enabled false", v, "kafka.tls.enabled")
	// The SASL Secret named without a mechanism: no SASL at all, silently.
	v = minimal()
	v["kafka"] = map[string]any{"brokers": "kafka:9093", "sasl": map[string]any{"existingSecret": "kafka-user"}}
	refuses(t, "kafka.sasl.existingSecret without kafka.sasl.mechanism", v, "kafka.sasl.mechanism")
}

// <component>.env is copied into the pods as plain values: a password, the
// pseudonymisation key or a DSN with credentials lands inline in the
// Deployment (etcd, `kubectl get -o yaml`, the Helm release Secret), and a
// name the chart sets itself is set twice (ENFORCER_TELEMETRY_ADDR on
// 127.0.0.1 moves the service off the port its probes and the
// NetworkPolicy use). The chart should refuse both, without echoing a value.
func TestReviewChartRefusesSecretsAndOverridesInComponentEnv(t *testing.T) {
	const secret = "s3cret-in-values-7f1e"
	cases := []struct {
		component, name, value string
	}{
		{"enforcer", "REDIS_PASSWORD", secret},
		{"enforcer", "PSEUDONYMISATION_KEY", secret + secret},
		{"consentSync", "REDIS_URL", "rediss://consentgate:" + secret + "@redis:6380"},
		{"ledger", "LEDGER_DSN", "postgres://ledger:" + secret + "@pg:5432/ledger"},
		{"enforcer", "ENFORCER_TELEMETRY_ADDR", "127.0.0.1:9464"},
	}
	for _, c := range cases {
		v := minimal()
		kv := map[string]any{"env": map[string]any{c.name: c.value}}
		if c.component == "consentSync" {
			kv["intake"] = map[string]any{"tokensSecret": "cg-intake-tokens"}
		}
		if c.component == "ledger" {
			kv["enabled"] = true
		}
		v = with(v, c.component, kv)
		r, err := render(t, v)
		if err == nil {
			leaked := ""
			for _, text := range r.files {
				if strings.Contains(text, secret) {
					leaked = " (the secret is inline in the rendered Deployment)"
				}
			}
			t.Errorf("%s.env.%s renders%s; want the chart to refuse it", c.component, c.name, leaked)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s.env.%s: the refusal shows the secret: %v", c.component, c.name, err)
		}
		if !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s.env.%s: refusal %q does not name the variable", c.component, c.name, err)
		}
	}
}

// The ledger reads the dead letters from LEDGER_DEAD_LETTER_TOPICS, whose
// default is customer.events.dlq,consent.changes.dlq: the chart never sets
// it, so with topics.input or topics.dlqSuffix changed the ledger records
// no dead letter at all. And it reads one consent topic (the first of
// topics.consent): changes on any other never reach the compliance ledger.
func TestReviewChartLedgerReadsEveryDeadLetterAndConsentTopic(t *testing.T) {
	v := with(minimal(), "ledger", map[string]any{"enabled": true})
	v = with(v, "topics", map[string]any{"input": []any{"orders.events", "clicks.events"}, "dlqSuffix": ".dead"})
	r := mustRender(t, v)
	l := containerEnv(map[string]corev1.EnvVar{}, deployments(t, r)["ledger"].Spec.Template.Spec.Containers[0])
	want := "orders.events.dead,clicks.events.dead,consent.changes.dead"
	if got := l["LEDGER_DEAD_LETTER_TOPICS"].Value; got != want {
		t.Errorf("ledger LEDGER_DEAD_LETTER_TOPICS %q (unset: the service's default customer.events.dlq,consent.changes.dlq); want %q, "+
			"the dead-letter topics of topics.input and topics.consent with topics.dlqSuffix", got, want)
	}
	two := with(minimal(), "ledger", map[string]any{"enabled": true})
	two = with(two, "topics", map[string]any{"consent": []any{"consent.changes", "consent.changes.eu"}})
	if r, err := render(t, two); err == nil {
		l := containerEnv(map[string]corev1.EnvVar{}, deployments(t, r)["ledger"].Spec.Template.Spec.Containers[0])
		t.Errorf("two consent topics with the ledger render, and the ledger reads LEDGER_CHANGES_TOPIC=%q only: "+
			"changes on consent.changes.eu never reach it; refuse (naming topics.consent) until the ledger reads several",
			l["LEDGER_CHANGES_TOPIC"].Value)
	} else if !strings.Contains(err.Error(), "topics.consent") {
		t.Errorf("two consent topics with the ledger: %v, want a refusal naming topics.consent", err)
	}
}

func networkPolicy(t *testing.T, r rendered, component string) networkingv1.NetworkPolicy {
	t.Helper()
	var np networkingv1.NetworkPolicy
	r.decode(t, "NetworkPolicy", "cg-consentgate-"+component, &np)
	return np
}

func egressPorts(np networkingv1.NetworkPolicy) map[int]bool {
	out := map[int]bool{}
	for _, e := range np.Spec.Egress {
		for _, p := range e.Ports {
			if p.Port != nil {
				out[p.Port.IntValue()] = true
			}
		}
	}
	return out
}

// Every component gets the same egress list: the ledger (the one with a
// console for people) may open connections to Redis, where the consent
// state is (unauthenticated unless redis.existingSecret), and the enforcer
// and consent-sync to PostgreSQL, which neither uses. Least privilege is per
// component.
func TestReviewChartNetworkPolicyEgressIsPerComponent(t *testing.T) {
	r := mustRender(t, everything())
	if egressPorts(networkPolicy(t, r, "ledger"))[6379] {
		t.Error("the ledger's NetworkPolicy lets it reach Redis (6379), which it never uses: the consent state is one hop from the console")
	}
	for _, c := range []string{"enforcer", "consent-sync"} {
		if egressPorts(networkPolicy(t, r, c))[5432] {
			t.Errorf("the %s NetworkPolicy lets it reach PostgreSQL (5432), which it never uses", c)
		}
	}
}

// The egress rule opens a fixed list of ports (networkPolicy.egressPorts);
// nothing compares it with the addresses the values name. Brokers on 9096,
// a registry on https (443) or an OTLP collector on another port render, and
// the pods cannot reach them: the enforcers pause (fail closed) and nobody
// is told why. The chart should open those ports or refuse, naming
// networkPolicy.egressPorts.
func TestReviewChartNetworkPolicyLetsThePodsReachWhatTheValuesName(t *testing.T) {
	v := minimal()
	v["kafka"] = map[string]any{"brokers": "kafka-0.kafka:9096,kafka-1.kafka:9096"}
	v["schemaRegistry"] = map[string]any{"url": "https://registry.example.com"}
	v["telemetry"] = map[string]any{"otlpEndpoint": "http://collector.observability:14318"}
	r, err := render(t, v)
	if err != nil {
		if !strings.Contains(err.Error(), "networkPolicy.egressPorts") {
			t.Errorf("render: %v, want it to open the ports or name networkPolicy.egressPorts", err)
		}
		return
	}
	for _, c := range []string{"enforcer", "consent-sync"} {
		open := egressPorts(networkPolicy(t, r, c))
		for what, port := range map[string]int{"kafka.brokers": 9096, "schemaRegistry.url": 443, "telemetry.otlpEndpoint": 14318} {
			if !open[port] {
				t.Errorf("%s NetworkPolicy: %s is on port %d, which its egress does not allow", c, what, port)
			}
		}
	}
}

// With the default values the intake and the console rules have no `from`:
// every pod of every namespace may call them (values.yaml: "empty: anyone").
// A NetworkPolicy that admits anyone by default is no policy; the default
// should be the release's namespace, widened on purpose.
func TestReviewChartNetworkPolicyAdmitsOnlyWhomItIsTold(t *testing.T) {
	v := everything()
	delete(v, "networkPolicy")
	r := mustRender(t, v)
	for component, port := range map[string]string{"consent-sync": "intake", "ledger": "console"} {
		for _, in := range networkPolicy(t, r, component).Spec.Ingress {
			for _, p := range in.Ports {
				if p.Port.String() == port && len(in.From) == 0 {
					t.Errorf("%s NetworkPolicy: the %s port admits every pod of every namespace by default", component, port)
				}
			}
		}
	}
}

// The chart pulls consentgate/<service>:<appVersion> (0.1.0) by default;
// `make images`, which the README has the user run, tags
// consentgate/<service>:dev. Followed as written, the README's helm install
// ends in ImagePullBackOff.
func TestReviewChartDefaultImageIsWhatMakeImagesBuilds(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\s*\?=\s*(\S+)\s*$`).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("no %s ?= in the Makefile", name)
		}
		return m[1]
	}
	want := get("IMAGE_PREFIX") + "enforcer:" + get("IMAGE_TAG")
	c := deployments(t, mustRender(t, minimal()))["enforcer"].Spec.Template.Spec.Containers[0]
	if c.Image != want {
		t.Errorf("the chart's default enforcer image is %q, `make images` builds %q", c.Image, want)
	}
}

// consentSync.intake.service.type LoadBalancer (or NodePort) without
// consentSync.intake.tlsSecret renders: the intake's bearer tokens and every
// consent change (subject ids) then cross networks outside the cluster in
// clear text.
func TestReviewChartRefusesAnIntakeExposedWithoutTLS(t *testing.T) {
	for _, typ := range []string{"LoadBalancer", "NodePort"} {
		v := with(minimal(), "consentSync", map[string]any{"intake": map[string]any{"tokensSecret": "cg-intake-tokens",
			"service": map[string]any{"type": typ, "port": 8080}}})
		refuses(t, "intake Service "+typ+" without TLS", v, "tlsSecret")
	}
}

// readmeSection returns the README's text from the heading to the next
// heading of the same level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q", heading)
	}
	rest := text[i+len(heading)+2:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// The README's install command passes
// --set kafka.brokers=kafka-0.kafka:9092,kafka-1.kafka:9092, but helm --set
// splits on commas: helm refuses the command (`key "kafka:9092" has no
// value`). A user who copies it gets no install; one who drops the
// second broker gets a single bootstrap broker. The comma must be escaped
// (\,) or the value given in a values file.
func TestReviewReadmeHelmInstallCommandWorks(t *testing.T) {
	sec := readmeSection(t, "## Kubernetes (Helm)")
	start := strings.Index(sec, "```sh\n")
	end := strings.Index(sec[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no sh block in the README's Kubernetes (Helm) section")
	}
	cmd := sec[start+6 : start+6+end]
	// The arguments helm gets are what the shell makes of the block (quotes
	// and backslashes removed): run it in sh, with helm a function that
	// prints them.
	sh := exec.Command("sh", "-c", "helm() { printf '%s\\0' \"$@\"; }\n"+cmd)
	sh.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("sh on the README's install command: %v\n%s", err, cmd)
	}
	fields := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	vals := map[string]any{}
	var sets []string
	for i, f := range fields {
		if f == "--set" && i+1 < len(fields) {
			sets = append(sets, fields[i+1])
			if err := strvals.ParseInto(fields[i+1], vals); err != nil {
				t.Errorf("README: helm refuses --set %s: %v", fields[i+1], err)
			}
		}
	}
	if len(sets) == 0 {
		t.Fatalf("no --set in the README's install command:\n%s", cmd)
	}
	r, err := render(t, vals)
	if err != nil {
		t.Fatalf("the README's install values %v do not render: %v", sets, err)
	}
	env := containerEnv(map[string]corev1.EnvVar{}, deployments(t, r)["enforcer"].Spec.Template.Spec.Containers[0])
	if got := env["KAFKA_BROKERS"].Value; strings.Count(got, ",") != 1 {
		t.Errorf("the README's install gives KAFKA_BROKERS=%q, want the two brokers it names", got)
	}
}

// consent-sync re-reads the intake's bearer tokens (and TLS certificate)
// only on SIGHUP. In Kubernetes nobody sends it: revoking a leaked token in
// its Secret changes the mounted file, and the old token keeps granting
// consent until the pods happen to restart. The chart has nothing to roll
// them and the README's Kubernetes section does not say to.
func TestReviewReadmeSaysHowARotatedSecretTakesEffectInKubernetes(t *testing.T) {
	sec := readmeSection(t, "## Kubernetes (Helm)")
	if !strings.Contains(sec, "rollout restart") {
		t.Error("README, Kubernetes (Helm): nothing says that a changed Secret (a revoked intake token, a new certificate) " +
			"takes effect only once the pods restart (kubectl rollout restart deployment/<release>-consentgate-consent-sync), " +
			"and the chart has no checksum or reloader annotation to do it")
	}
}

// --------------------------------------------------- the checks themselves

// environmentColumn is the ENVIRONMENT column of service's --help and
// nothing else.
func environmentColumn(t *testing.T, service string) map[string]bool {
	t.Helper()
	cmd := exec.Command(binary(t, service), "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", service, err, out)
	}
	set := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && strings.HasPrefix(f[0], "--") {
			set[f[1]] = true
		}
	}
	return set
}

// helpEnv, which every "environment name exists in --help" check uses,
// takes any capitalised word of the help text for a variable: PLAIN, SCRAM,
// PEM, YAML, HTTP, GRANT... A compose file or chart setting `PLAIN=1` passes
// the check. Only the ENVIRONMENT column (and the OpenTelemetry variables
// the help names) should count.
func TestReviewHelpEnvIsTheEnvironmentColumn(t *testing.T) {
	for _, svc := range []string{"enforcer", "consent-sync", "ledger", "demo-producer"} {
		col := environmentColumn(t, svc)
		var extra []string
		for n := range helpEnv(t, svc) {
			if !col[n] && !strings.HasPrefix(n, "OTEL_") {
				extra = append(extra, n)
			}
		}
		sort.Strings(extra)
		if len(extra) > 0 {
			t.Errorf("helpEnv(%s) accepts %d names that are no setting of it: %v", svc, len(extra), extra)
		}
	}
}

// The chart sets REDIS_TLS, REDIS_TLS_*_FILE, REDIS_USERNAME and
// REDIS_PASSWORD_FILE, which no service reads yet (pendingSecurityEnv lets
// them pass the --help check). With redis.tls.enabled the services talk to
// Redis in clear text, and with redis.existingSecret without the password:
// the chart must not offer settings the images ignore.
func TestReviewChartEnvIsKnownWithoutPendingAllowance(t *testing.T) {
	r := mustRender(t, everything())
	for component, d := range deployments(t, r) {
		c := d.Spec.Template.Spec.Containers[0]
		col := environmentColumn(t, c.Name)
		var unknown []string
		for _, e := range c.Env {
			if !col[e.Name] && !strings.HasPrefix(e.Name, "OTEL_") {
				unknown = append(unknown, e.Name)
			}
		}
		if len(unknown) > 0 {
			t.Errorf("chart %s sets %v, which `%s --help` does not list: the service ignores them", component, unknown, c.Name)
		}
	}
	// The compose file against the same strict list.
	p := loadCompose(t)
	for name, s := range p.Services {
		svc := consentgateService(s)
		if svc == "" {
			continue
		}
		col := environmentColumn(t, svc)
		for k := range s.Environment {
			if !col[k] && !strings.HasPrefix(k, "OTEL_") {
				t.Errorf("docker-compose.yml %s sets %s, which `%s --help` does not list", name, k, svc)
			}
		}
	}
}

// Guard (sound today, unchecked by the other tests): no Secret the chart
// mounts is readable by other users of the node's pods, whatever the
// component; with fsGroup 65532 the owner group is the service's.
func TestReviewChartSecretFilesAreNotWorldReadable(t *testing.T) {
	for label, v := range map[string]map[string]any{"minimal": minimal(), "everything": everything()} {
		for component, d := range deployments(t, mustRender(t, v)) {
			for _, vol := range d.Spec.Template.Spec.Volumes {
				if vol.Secret == nil {
					continue
				}
				mode := int32(0o644) // Kubernetes' default
				if vol.Secret.DefaultMode != nil {
					mode = *vol.Secret.DefaultMode
				}
				for _, it := range vol.Secret.Items {
					if it.Mode != nil {
						mode |= *it.Mode
					}
				}
				if mode&0o007 != 0 {
					t.Errorf("%s %s: Secret %s mounted with mode %#o: readable by others", label, component, vol.Secret.SecretName, mode)
				}
			}
		}
	}
}

// ------------------------------------------------------------- Dockerfile

// dockerignored reports whether Docker leaves path (slash-separated,
// relative to the context) out of the build context under patterns, as
// github.com/moby/patternmatcher does: last match wins, `!` re-includes, a
// pattern matching a parent directory covers what is below it, `**` spans
// directories.
func dockerignored(patterns []string, path string) bool {
	excluded := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch ch := p[i]; {
			case ch == '*' && i+1 < len(p) && p[i+1] == '*':
				i++
				if i+1 < len(p) && p[i+1] == '/' {
					i++
					re.WriteString("(.*/)?")
				} else {
					re.WriteString(".*")
				}
			case ch == '*':
				re.WriteString("[^/]*")
			case ch == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(ch)))
			}
		}
		re.WriteString("$")
		rx := regexp.MustCompile(re.String())
		match := false
		parts := strings.Split(path, "/")
		for i := 1; i <= len(parts) && !match; i++ {
			match = rx.MatchString(strings.Join(parts[:i], "/"))
		}
		if match {
			excluded = !neg
		}
	}
	return excluded
}

func dockerignorePatterns(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// `COPY . .` sends the whole checkout into the build stage (its layer, the
// BuildKit cache, a pushed cache, `--target build`). The README has the user
// make the audit seal key in the project folder (`consentctl keygen --out
// audit-seal.key`) and export the audit there (`audit-export --out
// audit.jsonl`: subject ids); the ledger's default DSN is sqlite:ledger.db in
// the working directory; compose reads .env and
// docker-compose.override.yml from there. .dockerignore leaves none of them
// out. An allow-list (`*`, then `!go.work`, `!go.work.sum`, `!pkg`, ...) is
// the safe form.
func TestReviewDockerignoreLeavesOutKeysAndPersonalData(t *testing.T) {
	patterns := dockerignorePatterns(t)
	for _, p := range []string{"audit-seal.key", "audit.jsonl", "ledger.db", "ledger.db-wal", "ledger.db-shm",
		"services/ledger/ledger.db", ".env", "docker-compose.override.yml", "kafka-client.key"} {
		if !dockerignored(patterns, p) {
			t.Errorf(".dockerignore lets %s into the build context (and the build stage's layer)", p)
		}
	}
	// What the build reads must stay in, whatever the fix.
	for _, p := range []string{"go.work", "go.work.sum", "pkg/go.mod", "pkg/policy/policy.go", "schemas/customer_event.avsc",
		"services/enforcer/main.go", "services/ledger/internal/console/templates/index.html", "pkg/ledger/migrations/0001.sql",
		"deploy/go.mod", "deploy/cmd/healthprobe/main.go", "deploy/cmd/demo-producer/main.go", "e2e/go.mod",
		"services/devbroker/go.mod", "services/devstack/go.mod", "services/consentctl/go.mod"} {
		if dockerignored(patterns, p) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", p)
		}
	}
}

func TestReviewDockerignoreMatcher(t *testing.T) {
	pats := []string{"*", "!pkg", "**/*.md", "deploy/helm", "!deploy/helm/keep"}
	for path, want := range map[string]bool{
		"audit.key": true, "pkg/x.go": false, "pkg/README.md": true, "deploy/helm/a.yaml": true,
		"deploy/helm/keep": false, "README.md": true, "pkg/a/b/c.md": true,
	} {
		if got := dockerignored(pats, path); got != want {
			t.Errorf("dockerignored(%q) = %v, want %v", path, got, want)
		}
	}
}
