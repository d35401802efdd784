package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
)

func chartDir(t *testing.T) string {
	return filepath.Join(repoRoot(t), "deploy", "helm", "consentgate")
}

// rendered is one render of the chart: its objects by kind and name.
type rendered struct {
	objects map[string]map[string][]byte // kind -> name -> YAML
	files   map[string]string
}

func (r rendered) names(kind string) []string {
	return slices.Sorted(maps.Keys(r.objects[kind]))
}

func (r rendered) decode(t *testing.T, kind, name string, into any) {
	t.Helper()
	b, ok := r.objects[kind][name]
	if !ok {
		t.Fatalf("no %s %s rendered (have %v)", kind, name, r.names(kind))
	}
	unmarshal := yaml.UnmarshalStrict
	if kind == "ServiceMonitor" || kind == "ScaledObject" || kind == "TriggerAuthentication" {
		unmarshal = yaml.Unmarshal // no Go types here: partial structs
	}
	if err := unmarshal(b, into); err != nil {
		t.Fatalf("%s %s: %v\n%s", kind, name, err, b)
	}
}

// render renders the chart as `helm template` does, with vals over the
// chart's values.yaml, through Helm's own packages (helm.sh/helm/v4).
func render(t *testing.T, vals map[string]any) (rendered, error) {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "cg", Namespace: "consent", IsInstall: true, Revision: 1}, nil)
	if err != nil {
		return rendered{}, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, rv)
	if err != nil {
		return rendered{}, err
	}
	r := rendered{objects: map[string]map[string][]byte{}, files: files}
	for file, text := range files {
		if !strings.HasSuffix(file, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
				continue
			}
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s does not parse: %v\n%s", file, err, doc)
			}
			if meta.Kind == "" {
				continue
			}
			if r.objects[meta.Kind] == nil {
				r.objects[meta.Kind] = map[string][]byte{}
			}
			if _, dup := r.objects[meta.Kind][meta.Metadata.Name]; dup {
				t.Fatalf("%s %s rendered twice", meta.Kind, meta.Metadata.Name)
			}
			r.objects[meta.Kind][meta.Metadata.Name] = []byte(doc)
		}
	}
	return r, nil
}

func mustRender(t *testing.T, vals map[string]any) rendered {
	t.Helper()
	r, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

// minimal is what an install must give: brokers, Redis, the key's Secret
// and the intake's tokens.
func minimal() map[string]any {
	return map[string]any{
		"kafka":            map[string]any{"brokers": "kafka-0.kafka:9092,kafka-1.kafka:9092"},
		"redis":            map[string]any{"addr": "redis:6379"},
		"pseudonymisation": map[string]any{"existingSecret": "cg-pseudonymisation"},
		"consentSync":      map[string]any{"intake": map[string]any{"tokensSecret": "cg-intake-tokens"}},
	}
}

// everything turns on every option: the ledger with console, seal and
// SQLite, Kafka TLS and SASL, Redis TLS and auth, the ServiceMonitor, KEDA.
func everything() map[string]any {
	v := minimal()
	v["kafka"] = map[string]any{"brokers": "kafka:9093",
		"tls":  map[string]any{"enabled": true, "existingSecret": "kafka-tls", "clientCert": true, "serverName": "kafka.internal"},
		"sasl": map[string]any{"mechanism": "SCRAM-SHA-512", "existingSecret": "kafka-user"}}
	v["redis"] = map[string]any{"addr": "redis:6380", "keyPrefix": "prod:",
		"tls":            map[string]any{"enabled": true, "existingSecret": "redis-tls", "clientCert": true, "serverName": "redis.internal"},
		"existingSecret": "redis-auth", "usernameKey": "username"}
	v["schemaRegistry"] = map[string]any{"url": "https://registry:8081"}
	v["telemetry"] = map[string]any{"otlpEndpoint": "http://otel-collector:4318"}
	v["consentSync"] = map[string]any{"intake": map[string]any{"tokensSecret": "cg-intake-tokens", "tlsSecret": "intake-cert", "clientCASecret": "intake-ca"}}
	v["ledger"] = map[string]any{"enabled": true, "sealSecret": "ledger-seal",
		"console": map[string]any{"enabled": true, "tokensSecret": "console-tokens"}}
	v["serviceMonitor"] = map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}
	v["enforcer"] = map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicaCount": 2, "maxReplicaCount": 6}}
	v["networkPolicy"] = map[string]any{"metricsFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}}}}
	return v
}

func TestChartPolicyIsTheDevStacksPolicy(t *testing.T) {
	a, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(chartDir(t), "files", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatal("deploy/helm/consentgate/files/policy.yaml differs from deploy/policy.yaml: copy it over")
	}
}

func TestChartLints(t *testing.T) {
	for name, vals := range map[string]map[string]any{"minimal": minimal(), "everything": everything()} {
		l := lint.RunAll(chartDir(t), vals, "consent")
		for _, m := range l.Messages {
			if m.Severity > 1 { // support.InfoSev is 1: warnings and errors fail
				t.Errorf("helm lint (%s): %v", name, m)
			}
		}
	}
}

func TestChartRequiresWhatItCannotGuess(t *testing.T) {
	steps := []struct {
		set  func(map[string]any)
		want string
	}{
		{func(v map[string]any) {}, "set kafka.brokers"},
		{func(v map[string]any) { v["kafka"] = map[string]any{"brokers": "k:9092"} }, "set redis.addr"},
		{func(v map[string]any) { v["redis"] = map[string]any{"addr": "r:6379"} }, "set pseudonymisation.existingSecret"},
		{func(v map[string]any) { v["pseudonymisation"] = map[string]any{"existingSecret": "k"} }, "the intake needs consentSync.intake.tokensSecret"},
	}
	vals := map[string]any{}
	for _, s := range steps {
		s.set(vals)
		_, err := render(t, vals)
		if err == nil || !strings.Contains(err.Error(), s.want) {
			t.Fatalf("render with %v: %v, want an error saying %q", vals, err, s.want)
		}
	}
	bad := minimal()
	bad["kafka"] = map[string]any{"brokers": "k:9092", "sasl": map[string]any{"mechanism": "GSSAPI", "existingSecret": "x"}}
	if _, err := render(t, bad); err == nil || !strings.Contains(err.Error(), "kafka.sasl.mechanism") {
		t.Errorf("an unknown SASL mechanism rendered: %v", err)
	}
	bad = minimal()
	bad["kafka"] = map[string]any{"brokers": "k:9092", "tls": map[string]any{"enabled": true}}
	if _, err := render(t, bad); err == nil || !strings.Contains(err.Error(), "kafka.tls.existingSecret") {
		t.Errorf("Kafka TLS without a Secret rendered: %v", err)
	}
}

// deployments returns the rendered Deployments by component.
func deployments(t *testing.T, r rendered) map[string]appsv1.Deployment {
	t.Helper()
	out := map[string]appsv1.Deployment{}
	for _, name := range r.names("Deployment") {
		var d appsv1.Deployment
		r.decode(t, "Deployment", name, &d)
		out[d.Spec.Template.Labels["app.kubernetes.io/component"]] = d
	}
	return out
}

var telemetrySetting = map[string]string{"enforcer": "ENFORCER_TELEMETRY_ADDR", "consent-sync": "CONSENT_SYNC_TELEMETRY_ADDR", "ledger": "LEDGER_TELEMETRY_ADDR"}

// secretish reports whether a variable holds a secret that must never be
// inline (a file name, *_FILE, is fine; so is an SQLite DSN, which names a
// file and holds no password).
func secretish(e corev1.EnvVar) bool {
	n := e.Name
	if strings.HasSuffix(n, "_FILE") || n == "LEDGER_DSN" && strings.HasPrefix(e.Value, "sqlite:") {
		return false
	}
	return strings.HasSuffix(n, "_KEY") || strings.HasSuffix(n, "_PASSWORD") || strings.HasSuffix(n, "_TOKEN") ||
		strings.HasSuffix(n, "_TOKENS") || strings.HasSuffix(n, "_DSN") || n == "REDIS_URL"
}

// checkPods asserts what every pod of every render must have.
func checkPods(t *testing.T, label string, r rendered) {
	t.Helper()
	if n := r.names("Secret"); len(n) > 0 {
		t.Errorf("%s: the chart renders Secrets %v: secrets are referenced, never created", label, n)
	}
	for component, d := range deployments(t, r) {
		where := label + " " + component
		pod := d.Spec.Template.Spec
		psc := pod.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", where, psc)
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("%s: the service account token is mounted; no component talks to the API server", where)
		}
		if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
			t.Fatalf("%s: %d containers", where, len(pod.Containers))
		}
		c := pod.Containers[0]
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: no container securityContext", where)
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot,
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem,
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation,
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0,
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("%s: container securityContext %+v", where, sc)
		}
		if !strings.HasPrefix(c.Image, "consentgate/"+c.Name+":") || !pinned(c.Image) {
			t.Errorf("%s: image %q", where, c.Image)
		}
		env := map[string]corev1.EnvVar{}
		var names []string
		for _, e := range c.Env {
			if _, dup := env[e.Name]; dup {
				t.Errorf("%s: %s set twice", where, e.Name)
			}
			env[e.Name] = e
			names = append(names, e.Name)
		}
		checkEnvKnown(t, "chart "+where, c.Name, names)
		// Probes on the port the service listens on.
		_, port, err := net.SplitHostPort(env[telemetrySetting[component]].Value)
		if err != nil {
			t.Errorf("%s: %s=%q", where, telemetrySetting[component], env[telemetrySetting[component]].Value)
		}
		var telemetryPort int32
		for _, p := range c.Ports {
			if p.Name == "telemetry" {
				telemetryPort = p.ContainerPort
			}
		}
		if fmt.Sprint(telemetryPort) != port {
			t.Errorf("%s: telemetry port %d, the service listens on %s", where, telemetryPort, port)
		}
		for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "telemetry" {
				t.Errorf("%s: probe %+v, want GET %s on telemetry", where, probe, want)
			}
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: resources %+v: want cpu and memory requests and a memory limit", where, c.Resources)
		}
		// Writable paths are volumes; secrets come from Secrets.
		mounts := map[string]corev1.VolumeMount{}
		for _, m := range c.VolumeMounts {
			mounts[m.MountPath] = m
		}
		if _, ok := mounts["/tmp"]; !ok {
			t.Errorf("%s: no /tmp volume on a read-only root filesystem", where)
		}
		vols := map[string]corev1.Volume{}
		for _, v := range pod.Volumes {
			vols[v.Name] = v
		}
		for _, m := range c.VolumeMounts {
			v, ok := vols[m.Name]
			if !ok {
				t.Errorf("%s: mount of the undeclared volume %s", where, m.Name)
			}
			if v.Secret != nil && !m.ReadOnly {
				t.Errorf("%s: Secret %s mounted writable", where, v.Secret.SecretName)
			}
		}
		for _, e := range c.Env {
			if strings.HasPrefix(e.Value, "/") || strings.HasPrefix(e.Value, "sqlite:/") {
				path := strings.TrimPrefix(e.Value, "sqlite:")
				var vol *corev1.Volume
				for _, m := range c.VolumeMounts {
					if strings.HasPrefix(path, m.MountPath+"/") {
						v := vols[m.Name]
						vol = &v
					}
				}
				if vol == nil {
					t.Errorf("%s: %s=%s is on no mounted volume", where, e.Name, e.Value)
				} else if strings.HasSuffix(e.Name, "_FILE") && strings.Contains(e.Value, "/secrets/") && vol.Secret == nil {
					t.Errorf("%s: %s is not read from a Secret", where, e.Name)
				}
			}
			if secretish(e) && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.Value != "") {
				t.Errorf("%s: %s is inline; a secret must come from a Secret", where, e.Name)
			}
		}
		// The policy is mounted from the ConfigMap with its checksum.
		if component != "ledger" {
			if env["POLICY_FILE"].Value != "/etc/consentgate/policy.yaml" {
				t.Errorf("%s: POLICY_FILE %q", where, env["POLICY_FILE"].Value)
			}
			if d.Spec.Template.Annotations["checksum/policy"] == "" {
				t.Errorf("%s: no checksum/policy annotation", where)
			}
		}
	}
}

func policyOf(t *testing.T, r rendered) string {
	var cm corev1.ConfigMap
	r.decode(t, "ConfigMap", "cg-consentgate-policy", &cm)
	return cm.Data["policy.yaml"]
}

func TestChartDefaultRender(t *testing.T) {
	r := mustRender(t, minimal())
	checkPods(t, "default", r)
	d := deployments(t, r)
	if got := slices.Sorted(maps.Keys(d)); !slices.Equal(got, []string{"consent-sync", "enforcer"}) {
		t.Fatalf("components %v, want consent-sync and enforcer (the ledger is off by default)", got)
	}
	for _, c := range []string{"enforcer", "consent-sync"} {
		if d[c].Spec.Replicas == nil || *d[c].Spec.Replicas != 2 {
			t.Errorf("%s replicas %v, want 2", c, d[c].Spec.Replicas)
		}
	}
	pol, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(policyOf(t, r)) != strings.TrimSpace(string(pol)) {
		t.Error("the policy ConfigMap does not hold deploy/policy.yaml")
	}
	for _, kind := range []string{"ServiceMonitor", "ScaledObject", "TriggerAuthentication", "PersistentVolumeClaim"} {
		if n := r.names(kind); len(n) > 0 {
			t.Errorf("default render has %s %v", kind, n)
		}
	}
	// Intake Service on the intake port of consent-sync.
	var svc corev1.Service
	r.decode(t, "Service", "cg-consentgate-intake", &svc)
	if svc.Spec.Selector["app.kubernetes.io/component"] != "consent-sync" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "intake" {
		t.Errorf("intake Service %+v", svc.Spec)
	}
	cs := d["consent-sync"].Spec.Template.Spec.Containers[0]
	var intakePort int32
	for _, p := range cs.Ports {
		if p.Name == "intake" {
			intakePort = p.ContainerPort
		}
	}
	env := map[string]string{}
	for _, e := range cs.Env {
		env[e.Name] = e.Value
	}
	if env["CONSENT_INTAKE_ADDR"] != fmt.Sprintf("0.0.0.0:%d", intakePort) || env["CONSENT_INTAKE_TOKENS_FILE"] == "" {
		t.Errorf("intake listens on %q with port %d named intake, tokens %q", env["CONSENT_INTAKE_ADDR"], intakePort, env["CONSENT_INTAKE_TOKENS_FILE"])
	}
	// Disruption budgets and network policies for both.
	for _, c := range []string{"enforcer", "consent-sync"} {
		var pdb policyv1.PodDisruptionBudget
		r.decode(t, "PodDisruptionBudget", "cg-consentgate-"+c, &pdb)
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != c {
			t.Errorf("PDB of %s: %+v", c, pdb.Spec)
		}
		var np networkingv1.NetworkPolicy
		r.decode(t, "NetworkPolicy", "cg-consentgate-"+c, &np)
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) || np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"] != c {
			t.Errorf("NetworkPolicy of %s: %+v", c, np.Spec)
		}
		ports := map[string]bool{}
		for _, in := range np.Spec.Ingress {
			for _, p := range in.Ports {
				ports[p.Port.String()] = true
			}
		}
		want := map[string]bool{"telemetry": true}
		if c == "consent-sync" {
			want["intake"] = true
		}
		if !maps.Equal(ports, want) {
			t.Errorf("NetworkPolicy of %s admits ports %v, want %v", c, ports, want)
		}
	}
	off := minimal()
	off["networkPolicy"] = map[string]any{"enabled": false}
	if n := mustRender(t, off).names("NetworkPolicy"); len(n) > 0 {
		t.Errorf("networkPolicy.enabled=false still renders %v", n)
	}
}

func TestChartPolicyChangeRollsThePods(t *testing.T) {
	checksums := func(r rendered) map[string]string {
		out := map[string]string{}
		for c, d := range deployments(t, r) {
			out[c] = d.Spec.Template.Annotations["checksum/policy"]
		}
		return out
	}
	a := mustRender(t, minimal())
	b := mustRender(t, minimal())
	if !maps.Equal(checksums(a), checksums(b)) {
		t.Fatal("two renders of the same values differ in their checksums")
	}
	changed := minimal()
	changed["policy"] = policyOf(t, a) + "# changed: the pods must roll\n"
	c := mustRender(t, changed)
	if policyOf(t, c) == policyOf(t, a) {
		t.Fatal("the policy value did not reach the ConfigMap")
	}
	for comp, sum := range checksums(c) {
		if sum == checksums(a)[comp] {
			t.Errorf("%s: the policy changed and its checksum/policy did not: the pods would not roll", comp)
		}
		want := sha256.Sum256([]byte(changed["policy"].(string)))
		if sum != hex.EncodeToString(want[:]) {
			t.Errorf("%s: checksum %s is not the policy's sha256", comp, sum)
		}
	}
}

func TestChartEverythingOn(t *testing.T) {
	r := mustRender(t, everything())
	checkPods(t, "everything", r)
	d := deployments(t, r)
	if got := slices.Sorted(maps.Keys(d)); !slices.Equal(got, []string{"consent-sync", "enforcer", "ledger"}) {
		t.Fatalf("components %v", got)
	}
	if d["enforcer"].Spec.Replicas != nil {
		t.Errorf("enforcer replicas %d set while KEDA scales it", *d["enforcer"].Spec.Replicas)
	}
	if d["ledger"].Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *d["ledger"].Spec.Replicas != 1 {
		t.Errorf("ledger: strategy %q replicas %d: one ledger writes the database", d["ledger"].Spec.Strategy.Type, *d["ledger"].Spec.Replicas)
	}
	envOf := func(component string) map[string]corev1.EnvVar {
		out := map[string]corev1.EnvVar{}
		for _, e := range d[component].Spec.Template.Spec.Containers[0].Env {
			out[e.Name] = e
		}
		return out
	}
	for _, c := range []string{"enforcer", "consent-sync", "ledger"} {
		e := envOf(c)
		for _, n := range []string{"KAFKA_TLS", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE", "KAFKA_TLS_SERVER_NAME", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD_FILE", "SCHEMA_REGISTRY_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
			if _, ok := e[n]; !ok {
				t.Errorf("%s lacks %s", c, n)
			}
		}
		if e["KAFKA_SASL_USERNAME"].ValueFrom == nil || e["KAFKA_SASL_USERNAME"].ValueFrom.SecretKeyRef.Name != "kafka-user" {
			t.Errorf("%s: KAFKA_SASL_USERNAME not from the Secret kafka-user", c)
		}
		_, redis := e["REDIS_ADDR"]
		if redis != (c != "ledger") {
			t.Errorf("%s: REDIS_ADDR set %v", c, redis)
		}
		if redis {
			for _, n := range []string{"REDIS_TLS", "REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE", "REDIS_TLS_SERVER_NAME", "REDIS_USERNAME", "REDIS_PASSWORD_FILE", "CONSENT_KEY_PREFIX"} {
				if _, ok := e[n]; !ok {
					t.Errorf("%s lacks %s", c, n)
				}
			}
		}
	}
	cs := envOf("consent-sync")
	for _, n := range []string{"CONSENT_INTAKE_TLS_CERT_FILE", "CONSENT_INTAKE_TLS_KEY_FILE", "CONSENT_INTAKE_TLS_CLIENT_CA_FILE"} {
		if cs[n].Value == "" {
			t.Errorf("consent-sync lacks %s", n)
		}
	}
	l := envOf("ledger")
	if l["LEDGER_DSN"].Value != "sqlite:/var/lib/consentgate/ledger.db" || l["LEDGER_SEAL_KEY_FILE"].Value == "" || l["LEDGER_CONSOLE_TOKENS_FILE"].Value == "" {
		t.Errorf("ledger env %v", l)
	}
	var pvc corev1.PersistentVolumeClaim
	r.decode(t, "PersistentVolumeClaim", "cg-consentgate-ledger", &pvc)

	// A PostgreSQL DSN comes from a Secret, and then there is no volume.
	pg := everything()
	pg["ledger"].(map[string]any)["dsnSecret"] = "ledger-dsn"
	rp := mustRender(t, pg)
	checkPods(t, "postgres", rp)
	if n := rp.names("PersistentVolumeClaim"); len(n) > 0 {
		t.Errorf("a PVC %v with a PostgreSQL DSN", n)
	}
	dsn := deployments(t, rp)["ledger"].Spec.Template.Spec.Containers[0].Env
	for _, e := range dsn {
		if e.Name == "LEDGER_DSN" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != "ledger-dsn" || e.Value != "") {
			t.Errorf("LEDGER_DSN %+v, want it from the Secret ledger-dsn", e)
		}
	}

	// ServiceMonitor over the metrics Services.
	var sm struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port, Path, Interval string
			} `json:"endpoints"`
		} `json:"spec"`
	}
	r.decode(t, "ServiceMonitor", "cg-consentgate", &sm)
	if sm.Metadata.Labels["release"] != "prometheus" || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "telemetry" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor %+v", sm)
	}
	selected := 0
	for _, name := range r.names("Service") {
		var svc corev1.Service
		r.decode(t, "Service", name, &svc)
		match := true
		for k, v := range sm.Spec.Selector.MatchLabels {
			match = match && svc.Labels[k] == v
		}
		if match {
			selected++
			if svc.Spec.Ports[0].Name != "telemetry" {
				t.Errorf("ServiceMonitor selects %s without a telemetry port", name)
			}
		}
	}
	if selected != 3 {
		t.Errorf("the ServiceMonitor selects %d Services, want the 3 components' metrics Services", selected)
	}

	// KEDA on the enforcers' consumer group.
	var so struct {
		Spec struct {
			ScaleTargetRef  struct{ Name string } `json:"scaleTargetRef"`
			MinReplicaCount int                   `json:"minReplicaCount"`
			MaxReplicaCount int                   `json:"maxReplicaCount"`
			Triggers        []struct {
				Type              string                `json:"type"`
				Metadata          map[string]string     `json:"metadata"`
				AuthenticationRef struct{ Name string } `json:"authenticationRef"`
			} `json:"triggers"`
		} `json:"spec"`
	}
	r.decode(t, "ScaledObject", "cg-consentgate-enforcer", &so)
	enf := envOf("enforcer")
	if so.Spec.ScaleTargetRef.Name != d["enforcer"].Name || so.Spec.MaxReplicaCount != 6 || so.Spec.MinReplicaCount != 2 || len(so.Spec.Triggers) != 1 {
		t.Fatalf("ScaledObject %+v", so.Spec)
	}
	tr := so.Spec.Triggers[0]
	if tr.Type != "kafka" || tr.Metadata["consumerGroup"] != enf["ENFORCER_GROUP_ID"].Value || tr.Metadata["topic"] != enf["ENFORCER_TOPICS"].Value ||
		tr.Metadata["bootstrapServers"] != enf["KAFKA_BROKERS"].Value || tr.Metadata["sasl"] != "scram_sha512" || tr.Metadata["tls"] != "enable" {
		t.Errorf("kafka trigger %+v does not follow the enforcer's group, topic and brokers", tr)
	}
	var ta struct {
		Spec struct {
			SecretTargetRef []struct{ Parameter, Name, Key string } `json:"secretTargetRef"`
		} `json:"spec"`
	}
	r.decode(t, "TriggerAuthentication", tr.AuthenticationRef.Name, &ta)
	var params []string
	for _, s := range ta.Spec.SecretTargetRef {
		params = append(params, s.Parameter+"="+s.Name+"/"+s.Key)
	}
	sort.Strings(params)
	want := []string{"ca=kafka-tls/ca.crt", "cert=kafka-tls/tls.crt", "key=kafka-tls/tls.key", "password=kafka-user/password", "username=kafka-user/username"}
	if !slices.Equal(params, want) {
		t.Errorf("TriggerAuthentication %v, want %v", params, want)
	}
}

func TestChartRefusesMoreReplicasThanPartitions(t *testing.T) {
	v := everything()
	v["topics"] = map[string]any{"inputPartitions": 4}
	v["enforcer"] = map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicaCount": 1, "maxReplicaCount": 5}}
	_, err := render(t, v)
	if err == nil || !strings.Contains(err.Error(), "enforcer.autoscaling.maxReplicaCount 5 is above topics.inputPartitions 4") {
		t.Fatalf("render with 5 replicas for 4 partitions: %v, want the chart to refuse", err)
	}
	v["enforcer"] = map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicaCount": 2, "maxReplicaCount": 4}}
	r := mustRender(t, v)
	if n := r.names("ScaledObject"); len(n) != 1 {
		t.Fatalf("ScaledObjects %v", n)
	}
	v["enforcer"] = map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicaCount": 0, "maxReplicaCount": 4}}
	if _, err := render(t, v); err == nil || !strings.Contains(err.Error(), "minReplicaCount must be at least 1") {
		t.Fatalf("scale to zero rendered: %v", err)
	}
}
