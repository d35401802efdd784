package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
)

const twoStreams = `purposes:
  - id: marketing
    description: Email campaigns
  - id: analytics
    description: Product analytics
streams:
  - topic: compliant.marketing
    purposes: [marketing]
  - topic: compliant.analytics
    purposes: [analytics]
`

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// testConfig is the configuration env gives (no validation errors allowed).
func testConfig(env map[string]string) Config {
	c := DefaultConfig()
	if err := c.flags("plan").Parse(nil, func(k string) string { return env[k] }); err != nil {
		panic(err)
	}
	return c
}

func derive(t *testing.T, text string, c Config) *Plan {
	t.Helper()
	pol, err := policy.Parse([]byte(text), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Policy = "policy.yaml"
	if err := c.Validate(true); err != nil {
		t.Fatalf("config: %v", err)
	}
	p, err := Derive(pol, c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// acl is an ACL line as the tests write it: "PRINCIPAL OP TYPE NAME [PATTERN]".
func aclLines(p *Plan, principal string) []string {
	var out []string
	for _, a := range p.aclsOf(principal) {
		line := a.Operation + " " + a.ResourceType + " " + a.ResourceName
		if a.PatternType != PatternLiteral {
			line += " " + a.PatternType
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func TestDeriveACLsPerPrincipal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy string
		edit   func(*Config)
		want   map[string][]string // principal → its ACL lines, exactly
	}{
		{"defaults, two streams", twoStreams, func(*Config) {}, map[string][]string{
			"User:enforcer": sorted("READ TOPIC customer.events", "READ GROUP consentgate-enforcer",
				"WRITE TOPIC compliant.marketing", "WRITE TOPIC compliant.analytics", "WRITE TOPIC consent.audit", "WRITE TOPIC customer.events.dlq",
				"DESCRIBE TOPIC consent.changes", "DESCRIBE GROUP consentgate-consent-sync"),
			"User:consent-sync": sorted("READ TOPIC consent.changes", "DESCRIBE_CONFIGS TOPIC consent.changes", "READ GROUP consentgate-consent-sync",
				"WRITE TOPIC consent.changes", "WRITE TOPIC consent.revocations", "WRITE TOPIC consent.changes.dlq",
				"READ TOPIC consent.keys", "WRITE TOPIC consent.keys",
				"READ TOPIC consent.signals", "READ GROUP consentgate-consent-sync-signals", "WRITE TOPIC consent.signals.dlq"),
			"User:ledger": sorted("READ TOPIC consent.changes", "READ TOPIC consent.audit", "READ TOPIC consent.revocations", "READ TOPIC consent.audit.checkpoints",
				"READ TOPIC customer.events.dlq", "READ TOPIC consent.changes.dlq", "WRITE TOPIC consent.audit.checkpoints", "READ TOPIC consent.keys"),
			"User:marketing": sorted("READ TOPIC compliant.marketing", "READ GROUP marketing. PREFIXED"),
			"User:analytics": sorted("READ TOPIC compliant.analytics", "READ GROUP analytics. PREFIXED"),
		}},
		{"no warm check, no intake, no sealing", twoStreams, func(c *Config) {
			c.EnforcerRequireWarm, c.Intake, c.LedgerSeals = false, false, false
		}, map[string][]string{
			"User:enforcer": sorted("READ TOPIC customer.events", "READ GROUP consentgate-enforcer",
				"WRITE TOPIC compliant.marketing", "WRITE TOPIC compliant.analytics", "WRITE TOPIC consent.audit", "WRITE TOPIC customer.events.dlq"),
			"User:consent-sync": sorted("READ TOPIC consent.changes", "DESCRIBE_CONFIGS TOPIC consent.changes", "READ GROUP consentgate-consent-sync",
				"WRITE TOPIC consent.revocations", "WRITE TOPIC consent.changes.dlq", "READ TOPIC consent.keys", "WRITE TOPIC consent.keys",
				// Without the HTTP intake the signals consumer still produces
				// consent changes.
				"READ TOPIC consent.signals", "READ GROUP consentgate-consent-sync-signals", "WRITE TOPIC consent.signals.dlq", "WRITE TOPIC consent.changes"),
			"User:ledger": sorted("READ TOPIC consent.changes", "READ TOPIC consent.audit", "READ TOPIC consent.revocations", "READ TOPIC consent.audit.checkpoints",
				"READ TOPIC customer.events.dlq", "READ TOPIC consent.changes.dlq", "READ TOPIC consent.keys"),
		}},
		{"two input topics, named principals and groups, a stream of two purposes with its own topic", `purposes:
  - id: marketing
  - id: profiling
streams:
  - topic: crm.feed
    purposes: [marketing, profiling]
`, func(c *Config) {
			c.EnforcerTopics = []string{"web.events", "app.events"}
			c.EnforcerGroup, c.EnforcerPrincipal = "gate", "User:CN=gate"
			c.ConsumerPrincipals = []string{"crm.feed=User:crm"}
			c.ConsumerGroupPrefix = "cg-{topic}-"
		}, map[string][]string{
			"User:CN=gate": sorted("READ TOPIC web.events", "READ TOPIC app.events", "READ GROUP gate", "WRITE TOPIC crm.feed", "WRITE TOPIC consent.audit",
				"WRITE TOPIC web.events.dlq", "WRITE TOPIC app.events.dlq", "DESCRIBE TOPIC consent.changes", "DESCRIBE GROUP consentgate-consent-sync"),
			"User:crm":    sorted("READ TOPIC crm.feed", "READ GROUP cg-crm.feed- PREFIXED"),
			"User:ledger": sorted("READ TOPIC consent.changes", "READ TOPIC consent.audit", "READ TOPIC consent.revocations", "READ TOPIC consent.audit.checkpoints", "READ TOPIC web.events.dlq", "READ TOPIC app.events.dlq", "READ TOPIC consent.changes.dlq", "WRITE TOPIC consent.audit.checkpoints", "READ TOPIC consent.keys"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tt.edit(&c)
			p := derive(t, tt.policy, c)
			for principal, want := range tt.want {
				if got := aclLines(p, principal); !slices.Equal(got, want) {
					t.Errorf("%s:\n got  %q\n want %q", principal, got, want)
				}
			}
			// Every ACL is an allow from the configured host for a
			// principal of the plan; no wildcard principal, no prefixed
			// topic.
			names := map[string]bool{}
			for _, pr := range p.Principals {
				names[pr.Name] = true
			}
			for _, a := range p.ACLs {
				if !names[a.Principal] || a.Host != "*" || strings.Contains(a.Principal, "*") || (a.ResourceType == ResourceTopic && a.PatternType != PatternLiteral) {
					t.Errorf("ACL out of the plan's shape: %s", a)
				}
			}
		})
	}
}

// TestConsumerPrincipalReadsOnlyItsStream: for every stream, its consumer
// principal may read that topic and no other topic of the plan, and write
// none.
func TestConsumerPrincipalReadsOnlyItsStream(t *testing.T) {
	t.Parallel()
	p := derive(t, `purposes:
  - id: marketing
  - id: analytics
  - id: partners
streams:
  - topic: compliant.marketing
    purposes: [marketing]
  - topic: compliant.analytics
    purposes: [analytics]
  - topic: compliant.partners
    purposes: [partners, marketing]
`, DefaultConfig())
	for _, who := range []struct{ principal, topic string }{{"User:marketing", "compliant.marketing"}, {"User:analytics", "compliant.analytics"}, {"User:partners", "compliant.partners"}} {
		for _, a := range p.aclsOf(who.principal) {
			if a.Operation != OpRead {
				t.Errorf("%s may %s", who.principal, a)
			}
			if a.ResourceType == ResourceTopic && a.ResourceName != who.topic {
				t.Errorf("%s may read %s, not its own stream %s", who.principal, a.ResourceName, who.topic)
			}
		}
		if len(p.aclsOf(who.principal)) != 2 {
			t.Errorf("%s has %d ACLs, want 2 (its topic and its group prefix)", who.principal, len(p.aclsOf(who.principal)))
		}
	}
}

func TestDeriveTopics(t *testing.T) {
	t.Parallel()
	kept := map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": "-1", "retention.bytes": "-1", "unclean.leader.election.enable": "false"}
	plain := map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "2"}
	// The signals topic: an intake queue, kept a week, never trimmed by
	// size, no unclean election.
	signalsCfg := map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": "604800000", "retention.bytes": "-1", "unclean.leader.election.enable": "false", "message.timestamp.type": "LogAppendTime"}
	compacted := map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "2", "retention.ms": "-1", "retention.bytes": "-1", "unclean.leader.election.enable": "false", "max.compaction.lag.ms": "86400000", "segment.ms": "3600000"}
	tests := []struct {
		name string
		edit func(*Config)
		want []Topic // name, partitions, replication, configs
	}{
		{"production defaults", func(*Config) {}, []Topic{
			{Name: "customer.events", Partitions: 6, ReplicationFactor: 3, Configs: plain},
			{Name: "customer.events.dlq", Partitions: 3, ReplicationFactor: 3, Configs: plain},
			{Name: "consent.changes", Partitions: 6, ReplicationFactor: 3, Configs: kept},
			{Name: "consent.changes.dlq", Partitions: 3, ReplicationFactor: 3, Configs: plain},
			{Name: "consent.signals", Partitions: 6, ReplicationFactor: 3, Configs: signalsCfg},
			{Name: "consent.signals.dlq", Partitions: 3, ReplicationFactor: 3, Configs: plain},
			{Name: "consent.revocations", Partitions: 3, ReplicationFactor: 3, Configs: kept},
			{Name: "consent.audit", Partitions: 6, ReplicationFactor: 3, Configs: kept},
			{Name: "consent.audit.checkpoints", Partitions: 1, ReplicationFactor: 3, Configs: kept},
			{Name: "consent.keys", Partitions: 3, ReplicationFactor: 3, Configs: compacted},
			{Name: "compliant.marketing", Partitions: 6, ReplicationFactor: 3, Configs: plain},
			{Name: "compliant.analytics", Partitions: 6, ReplicationFactor: 3, Configs: plain},
		}},
		{"dev broker, audit kept 30 days, other names", func(c *Config) {
			c.ReplicationFactor, c.MinInsyncReplicas, c.Partitions, c.SmallPartitions = 1, 1, 2, 1
			c.AuditRetentionMs = 30 * 24 * 3600 * 1000
			c.AuditTopic, c.DLQSuffix, c.ConsentTopics = "audit", "-dead", []string{"consents"}
			c.KeysTopic = "tenant.keys"
			c.SignalsTopic, c.SignalsRetentionMs = "shop.signals", -1
		}, []Topic{
			{Name: "customer.events", Partitions: 2, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"}},
			{Name: "customer.events-dead", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"}},
			{Name: "consents", Partitions: 2, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1", "retention.ms": "-1", "retention.bytes": "-1", "unclean.leader.election.enable": "false"}},
			{Name: "consents-dead", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"}},
			{Name: "shop.signals", Partitions: 2, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1", "retention.ms": "-1", "retention.bytes": "-1", "unclean.leader.election.enable": "false", "message.timestamp.type": "LogAppendTime"}},
			{Name: "shop.signals-dead", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"}},
			{Name: "consent.revocations", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1", "retention.ms": "-1", "retention.bytes": "-1", "unclean.leader.election.enable": "false"}},
			{Name: "audit", Partitions: 2, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1", "retention.ms": "2592000000", "retention.bytes": "-1", "unclean.leader.election.enable": "false"}},
			{Name: "consent.audit.checkpoints", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1", "retention.ms": "-1", "retention.bytes": "-1", "unclean.leader.election.enable": "false"}},
			{Name: "tenant.keys", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1", "retention.ms": "-1", "retention.bytes": "-1", "unclean.leader.election.enable": "false", "max.compaction.lag.ms": "86400000", "segment.ms": "3600000"}},
			{Name: "compliant.marketing", Partitions: 2, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"}},
			{Name: "compliant.analytics", Partitions: 2, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tt.edit(&c)
			p := derive(t, twoStreams, c)
			if len(p.Topics) != len(tt.want) {
				t.Fatalf("%d topics, want %d: %+v", len(p.Topics), len(tt.want), p.Topics)
			}
			for i, w := range tt.want {
				g := p.Topics[i]
				if g.Name != w.Name || g.Partitions != w.Partitions || g.ReplicationFactor != w.ReplicationFactor || configString(g.Configs) != configString(w.Configs) {
					t.Errorf("topic %d: %s %d %d %s, want %s %d %d %s", i, g.Name, g.Partitions, g.ReplicationFactor, configString(g.Configs), w.Name, w.Partitions, w.ReplicationFactor, configString(w.Configs))
				}
				// Only the keys topic is compacted (its tombstones are
				// the erasure); every other topic keeps its records.
				if isKeys := g.Name == c.KeysTopic; strings.Contains(g.Configs["cleanup.policy"], "compact") != isKeys || g.FixedPartitions != isKeys {
					t.Errorf("%s: cleanup.policy=%s, fixed partitions %v; only the keys topic %s is compacted, with fixed partitions", g.Name, g.Configs["cleanup.policy"], g.FixedPartitions, c.KeysTopic)
				}
			}
		})
	}
}

func TestDeriveRefusesSharedOrOverlappingConsumers(t *testing.T) {
	t.Parallel()
	passwordFile := writePolicy(t, "a-password") // any file: Validate reads it
	tests := []struct {
		name, policy string
		edit         func(*Config)
		want         string
	}{
		{"two streams, one principal", twoStreams, func(c *Config) {
			c.ConsumerPrincipals = []string{"compliant.marketing=User:bi", "compliant.analytics=User:bi"}
		}, "have the same consumer principal User:bi"},
		{"a stream consumed as the enforcer", twoStreams, func(c *Config) {
			c.ConsumerPrincipals = []string{"compliant.marketing=User:enforcer"}
		}, "policy.yaml:7: the consumer principal of stream compliant.marketing is User:enforcer, which is the enforcer's"},
		{"group prefixes that overlap", `purposes:
  - id: marketing
streams:
  - topic: compliant.marketing
    purposes: [marketing]
  - topic: compliant.marketing.eu
    purposes: [marketing]
`, func(c *Config) { c.ConsumerGroupPrefix = "{stream}" }, `the consumer group prefixes "marketing" (stream compliant.marketing) and "marketing.eu" (stream compliant.marketing.eu) overlap`},
		{"a group prefix covering the enforcer's group", twoStreams, func(c *Config) {
			c.ConsumerGroupPrefix = "consentgate-{stream}"
			c.EnforcerGroup = "consentgate-marketing-enforcer"
		}, "covers the service group consentgate-marketing-enforcer"},
		{"a topic planned twice", twoStreams, func(c *Config) { c.AuditTopic = "compliant.marketing" }, "topic compliant.marketing is planned twice"},
		{"services sharing a principal", twoStreams, func(c *Config) { c.LedgerPrincipal = "User:enforcer" }, "must have different principals"},
		{"a stream consumed as the superuser running provision", twoStreams, func(c *Config) {
			c.Kafka.Security.SASLMechanism, c.Kafka.Security.SASLUsername, c.Kafka.Security.SASLPasswordFile = "SCRAM-SHA-512", "marketing", passwordFile
		}, "policy.yaml:7: the consumer principal of stream compliant.marketing is User:marketing, the principal provision runs as (KAFKA_SASL_USERNAME)"},
		{"a service as the superuser running provision", twoStreams, func(c *Config) {
			c.Kafka.Security.SASLMechanism, c.Kafka.Security.SASLUsername, c.Kafka.Security.SASLPasswordFile = "SCRAM-SHA-512", "ledger", passwordFile
		}, "the ledger's principal User:ledger is the principal provision runs as"},
		{"an unmanaged principal of the plan", twoStreams, func(c *Config) { c.UnmanagedPrincipals = []string{"User:shop", "User:analytics"} },
			"the consumer principal of stream compliant.analytics is User:analytics, which PROVISION_UNMANAGED_PRINCIPALS names"},
		{"an unmanaged service principal", twoStreams, func(c *Config) { c.UnmanagedPrincipals = []string{"User:consent-sync"} },
			"PROVISION_UNMANAGED_PRINCIPALS names User:consent-sync, which is consent-sync's principal"},
		{"an empty {stream} in the group prefix only", "purposes:\n  - id: m\nstreams:\n  - topic: compliant.\n    purposes: [m]\n", func(c *Config) {
			c.ConsumerPrincipals = []string{"compliant.=User:m"}
		}, "stream compliant. has an empty {stream}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pol, err := policy.Parse([]byte(tt.policy), "policy.yaml")
			if err != nil {
				t.Fatal(err)
			}
			c := DefaultConfig()
			c.Policy = "policy.yaml"
			tt.edit(&c)
			if err := c.Validate(true); err != nil {
				t.Fatalf("config: %v", err)
			}
			_, err = Derive(pol, c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Derive: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestBadSettingsStopStartUp(t *testing.T) {
	t.Parallel()
	pf := writePolicy(t, twoStreams)
	tests := []struct {
		env   map[string]string
		wants []string
		cmd   string // plan when empty
	}{
		{map[string]string{}, []string{"set POLICY_FILE"}, ""},
		{map[string]string{"POLICY_FILE": pf, "PROVISION_REPLICATION_FACTOR": "1"}, []string{"PROVISION_MIN_INSYNC_REPLICAS is 2 with replication factor 1"}, ""},
		{map[string]string{"POLICY_FILE": pf, "PROVISION_PARTITIONS": "0", "PROVISION_AUDIT_RETENTION_MS": "0", "PROVISION_ENFORCER_PRINCIPAL": "enforcer",
			"PROVISION_CONSUMER_PRINCIPAL": "User:consumers", "PROVISION_CONSUMER_GROUP_PREFIX": "shared", "AUDIT_TOPIC": "a b", "PROVISION_CONSUMER_PRINCIPALS": "x"},
			[]string{"PROVISION_PARTITIONS is 0", "PROVISION_AUDIT_RETENTION_MS is 0", "set PROVISION_ENFORCER_PRINCIPAL to TYPE:NAME", "PROVISION_CONSUMER_PRINCIPAL \"User:consumers\" names no {stream}",
				"PROVISION_CONSUMER_GROUP_PREFIX \"shared\" names no {stream}", "fix AUDIT_TOPIC", "PROVISION_CONSUMER_PRINCIPALS item 1"}, ""},
		{map[string]string{"POLICY_FILE": pf, "PROVISION_CONSUMER_PRINCIPALS": "compliant.marketing=User:*"}, []string{"PROVISION_CONSUMER_PRINCIPALS item 1"}, ""},
		{map[string]string{"POLICY_FILE": pf, "CONSENT_INTAKE_TOPIC": "elsewhere"}, []string{"CONSENT_INTAKE_TOPIC elsewhere is not one of CONSENT_SYNC_TOPICS"}, ""},
		{map[string]string{"POLICY_FILE": pf, "PROVISION_REPLICATION_FACTOR": "three"}, []string{"PROVISION_REPLICATION_FACTOR"}, ""},
		{map[string]string{"POLICY_FILE": pf, "PROVISION_MIN_INSYNC_REPLICAS": "1"}, []string{"PROVISION_MIN_INSYNC_REPLICAS is 1 with replication factor 3", "set it to 2"}, ""},
		{map[string]string{"POLICY_FILE": pf, "PROVISION_ACL_HOST": "10.0.0.0/8"}, []string{"PROVISION_ACL_HOST \"10.0.0.0/8\" is neither * nor an IP address"}, ""},
		{map[string]string{"POLICY_FILE": pf, "PROVISION_UNMANAGED_PRINCIPALS": "User:*"}, []string{"PROVISION_UNMANAGED_PRINCIPALS item 1"}, ""},
		{map[string]string{"POLICY_FILE": pf, "LEDGER_AUDIT_TOPIC": "shop.audit"}, []string{"LEDGER_AUDIT_TOPIC shop.audit is not AUDIT_TOPIC consent.audit"}, ""},
		{map[string]string{"POLICY_FILE": pf, "LEDGER_KEYS_TOPIC": "shop.keys"}, []string{"LEDGER_KEYS_TOPIC shop.keys is not KEYS_TOPIC \"consent.keys\""}, ""},
		{map[string]string{"POLICY_FILE": pf, "KEYS_TOPIC": "", "LEDGER_KEYS_TOPIC": "consent.keys"}, []string{"LEDGER_KEYS_TOPIC consent.keys is not KEYS_TOPIC \"\""}, ""},
		{map[string]string{"POLICY_FILE": pf, "KEYS_TOPIC": "", "PROVISION_KEY_READER_PRINCIPALS": "User:crm"}, []string{"PROVISION_KEY_READER_PRINCIPALS is set but KEYS_TOPIC is empty"}, ""},
		{map[string]string{"POLICY_FILE": pf, "PROVISION_KEY_READER_PRINCIPALS": "User:*"}, []string{"PROVISION_KEY_READER_PRINCIPALS item 1"}, ""},
		{map[string]string{"POLICY_FILE": pf, "KEYS_TOPIC": "bad keys"}, []string{"fix KEYS_TOPIC"}, ""},
		{map[string]string{"POLICY_FILE": pf, "LEDGER_CHANGES_TOPIC": "shop.consent"}, []string{"LEDGER_CHANGES_TOPIC shop.consent is not one of CONSENT_SYNC_TOPICS"}, ""},
		{map[string]string{"POLICY_FILE": pf, "PROVISION_CONSENT_SYNC_INTAKE": "false", "CONSENT_INTAKE_ADDR": ":8080"}, []string{"PROVISION_CONSENT_SYNC_INTAKE is false, but CONSENT_INTAKE_ADDR is set"}, ""},
		{map[string]string{"POLICY_FILE": pf, "KAFKA_SASL_PASSWORD": "plan-secret-9d2c"}, []string{"KAFKA_SASL_PASSWORD is set, but the password is read only from a file"}, ""},
		{map[string]string{"POLICY_FILE": pf, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "admin"}, []string{"KAFKA_SASL_PASSWORD_FILE is empty"}, "apply"},
		{map[string]string{"POLICY_FILE": pf, "KAFKA_BROKERS": "nohost"}, []string{"fix KAFKA_BROKERS"}, "apply"},
	}
	// plan needs no cluster: Kafka settings it does not use do not stop it.
	if code, _, errOut := runProvision(t, map[string]string{"POLICY_FILE": pf, "KAFKA_BROKERS": "nohost"}, "plan"); code != 0 {
		t.Errorf("plan with a bad KAFKA_BROKERS: exit %d\n%s", code, errOut)
	}
	for _, tt := range tests {
		cmd := "plan"
		if tt.cmd != "" {
			cmd = tt.cmd
		}
		code, out, errOut := runProvision(t, tt.env, cmd)
		if code != 1 || out != "" {
			t.Errorf("plan with %v: exit %d, output %q", tt.env, code, out)
		}
		if strings.Contains(out+errOut, "plan-secret-9d2c") {
			t.Errorf("plan with %v showed the password:\n%s", tt.env, errOut)
		}
		for _, w := range tt.wants {
			if !strings.Contains(errOut, w) {
				t.Errorf("plan with %v: the error does not say %q:\n%s", tt.env, w, errOut)
			}
		}
	}
}

// TestBadPolicyNamesTheLine: a policy pkg/policy refuses stops provision
// with its file:line message.
func TestBadPolicyNamesTheLine(t *testing.T) {
	t.Parallel()
	pf := writePolicy(t, "purposes:\n  - id: marketing\nstreams:\n  - topic: compliant.marketing\n    purposes: [marketting]\n")
	code, out, errOut := runProvision(t, map[string]string{"POLICY_FILE": pf}, "plan")
	if code != 1 || out != "" || !strings.Contains(errOut, pf+":5:") {
		t.Errorf("plan of a bad policy: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

func TestPlanOutput(t *testing.T) {
	t.Parallel()
	pf := writePolicy(t, twoStreams)
	code, out, errOut := runProvision(t, map[string]string{"POLICY_FILE": pf}, "plan")
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"consent.changes            6           3            cleanup.policy=delete min.insync.replicas=2 retention.bytes=-1 retention.ms=-1",
		"User:marketing (consumer of compliant.marketing)",
		"allow READ  TOPIC compliant.marketing  LITERAL   from *",
		"allow READ  GROUP marketing.           PREFIXED  from *",
		"consent.keys               3           3            cleanup.policy=compact max.compaction.lag.ms=86400000 min.insync.replicas=2 retention.bytes=-1 retention.ms=-1 segment.ms=3600000 unclean.leader.election.enable=false",
		"ACLs (31, allow only; everything not listed is denied):",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan does not print %q:\n%s", want, out)
		}
	}
	code, out, _ = runProvision(t, map[string]string{"POLICY_FILE": pf}, "plan", "--json")
	var p Plan
	if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil {
		t.Fatalf("plan --json: exit %d, %v\n%s", code, err, out)
	}
	if want := derive(t, twoStreams, DefaultConfig()); len(p.Topics) != len(want.Topics) || len(p.ACLs) != len(want.ACLs) || !p.ACLsApplied {
		t.Errorf("plan --json: %d topics, %d ACLs, applied %v; want %d, %d, true", len(p.Topics), len(p.ACLs), p.ACLsApplied, len(want.Topics), len(want.ACLs))
	}
	var help bytes.Buffer
	if code := run(t.Context(), []string{"--help"}, func(string) (string, bool) { return "", false }, &help, &help); code != 0 || !strings.Contains(help.String(), "ENVIRONMENT") || !strings.Contains(help.String(), "PROVISION_REPLICATION_FACTOR") {
		t.Errorf("--help: exit %d\n%s", code, help.String())
	}
}

// TestLedgerReadsItsOwnChangesTopic: with two consent topics and
// LEDGER_CHANGES_TOPIC naming one, the ledger reads only that one of them
// (and each one's dead letters, which LEDGER_DEAD_LETTER_TOPICS lists).
func TestLedgerReadsItsOwnChangesTopic(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.ConsentTopics = []string{"consent.changes", "consent.changes.eu"}
	c.LedgerChangesTopic, c.LedgerAuditTopic = "consent.changes.eu", "consent.audit"
	p := derive(t, twoStreams, c)
	var reads []string
	for _, a := range p.aclsOf("User:ledger") {
		if a.Operation == OpRead && strings.HasPrefix(a.ResourceName, "consent.changes") {
			reads = append(reads, a.ResourceName)
		}
	}
	if want := sorted("consent.changes.eu", "consent.changes.dlq", "consent.changes.eu.dlq"); !slices.Equal(sorted(reads...), want) {
		t.Errorf("the ledger reads %v of the consent topics, want %v", sorted(reads...), want)
	}
}

// The signals topic: off plans neither it nor its ACLs; on, consent-sync
// reads it with its own group, dead-letters next to it, and produces
// consent changes even without the HTTP intake; clashes and bad settings
// are refused, saying what to set.
func TestSignalsTopicPlan(t *testing.T) {
	t.Parallel()
	off := DefaultConfig()
	off.SignalsTopic = "off"
	p := derive(t, twoStreams, off)
	for _, tp := range p.Topics {
		if strings.Contains(tp.Name, "signals") {
			t.Errorf("signals off plans topic %s", tp.Name)
		}
	}
	for _, a := range p.ACLs {
		if strings.Contains(a.ResourceName, "signals") {
			t.Errorf("signals off plans %s", a)
		}
	}
	if on := derive(t, twoStreams, DefaultConfig()); len(on.ACLs) != len(p.ACLs)+3 || len(on.Topics) != len(p.Topics)+2 {
		t.Errorf("signals on: %d ACLs %d topics, off: %d %d; want 3 ACLs and 2 topics more", len(on.ACLs), len(on.Topics), len(p.ACLs), len(p.Topics))
	}
	env := map[string]string{"CONSENT_SIGNALS_TOPIC": "off"}
	if c := testConfig(env); c.signalsTopic() != "" {
		t.Errorf("CONSENT_SIGNALS_TOPIC=off gives topic %q", c.signalsTopic())
	}

	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"bad name", func(c *Config) { c.SignalsTopic = "a b" }, "fix CONSENT_SIGNALS_TOPIC"},
		{"consent-sync's group", func(c *Config) { c.SignalsGroup = c.ConsentSyncGroup }, "set CONSENT_SIGNALS_GROUP_ID to a group of its own"},
		{"no group", func(c *Config) { c.SignalsGroup = "" }, "set CONSENT_SIGNALS_GROUP_ID"},
		{"bad retention", func(c *Config) { c.SignalsRetentionMs = 0 }, "PROVISION_SIGNALS_RETENTION_MS is 0"},
	} {
		c := DefaultConfig()
		c.Policy = "p.yaml"
		tc.edit(&c)
		if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	pol, err := policy.Parse([]byte(twoStreams), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	same := DefaultConfig()
	same.SignalsTopic = "consent.changes"
	if _, err := Derive(pol, same); err == nil || !strings.Contains(err.Error(), "topic consent.changes is planned twice") || !strings.Contains(err.Error(), "CONSENT_SIGNALS_TOPIC") {
		t.Errorf("signals topic = consent topic: %v", err)
	}
	prefix := DefaultConfig()
	prefix.ConsumerGroupPrefix = "consentgate-consent-sync-{stream}"
	prefix.SignalsGroup = "consentgate-consent-sync-marketing-x"
	if _, err := Derive(pol, prefix); err == nil || !strings.Contains(err.Error(), "covers the service group consentgate-consent-sync-marketing-x") {
		t.Errorf("a stream's group prefix covering the signals group: %v", err)
	}
}
