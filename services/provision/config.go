package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/stream"
)

// Config is provision's configuration. The topic and group settings have
// the same variables as the services that use them (ENFORCER_TOPICS,
// AUDIT_TOPIC, CONSENT_SYNC_TOPICS, …), so that one environment configures
// both.
type Config struct {
	Kafka  stream.Config
	Policy string

	Partitions, SmallPartitions, ReplicationFactor, MinInsyncReplicas int
	// AuditRetentionMs is the audit topic's retention.ms: -1 keeps every
	// record (the default: the ledger seals and verifies the audit from
	// the topic).
	AuditRetentionMs int

	EnforcerTopics, ConsentTopics                                              []string
	AuditTopic, RevocationsTopic, CheckpointsTopic, DLQSuffix, IntakeTopicName string
	EnforcerGroup, ConsentSyncGroup                                            string

	EnforcerRequireWarm, Intake, LedgerSeals bool

	EnforcerPrincipal, ConsentSyncPrincipal, LedgerPrincipal string
	// ConsumerPrincipal and ConsumerGroupPrefix are patterns: {stream}
	// is the stream's topic without "compliant.", {topic} the topic.
	ConsumerPrincipal, ConsumerGroupPrefix string
	// ConsumerPrincipals are per-topic exceptions, "topic=User:name".
	ConsumerPrincipals []string

	// KeysTopic is the compacted topic of the subjects' data keys
	// (package shred; KEYS_TOPIC); empty: no crypto-shredding.
	KeysTopic string
	// KeyReaderPrincipals may read the keys topic to decrypt the fields
	// that encrypt rules encrypt (consentctl decrypt, a consumer using
	// package shred); they also need the key-encryption key.
	KeyReaderPrincipals []string

	// UnmanagedPrincipals are principals outside the plan (producers of
	// the input topics, operators' tools) whose rules on the plan's topics
	// and groups apply leaves alone: listed, neither counted beyond the
	// plan nor pruned.
	UnmanagedPrincipals []string

	// LedgerAuditTopic and LedgerChangesTopic are the ledger's own
	// settings (LEDGER_AUDIT_TOPIC, LEDGER_CHANGES_TOPIC); empty: unset.
	// Set, they must name the plan's audit topic and one of its consent
	// topics.
	LedgerAuditTopic, LedgerChangesTopic string
	// LedgerKeysTopic is the ledger's LEDGER_KEYS_TOPIC; empty: unset (the
	// ledger's default is consent.keys). Set, it must be KEYS_TOPIC.
	LedgerKeysTopic string
	// SignalsTopic is consent-sync's topic of consent signal submissions
	// (CONSENT_SIGNALS_TOPIC); empty or "off": none. SignalsGroup is its
	// consumer group (CONSENT_SIGNALS_GROUP_ID); SignalsRetentionMs the
	// topic's retention.ms (-1 keeps every record).
	SignalsTopic, SignalsGroup string
	SignalsRetentionMs         int
	// IntakeAddr is consent-sync's CONSENT_INTAKE_ADDR, read only to
	// refuse PROVISION_CONSENT_SYNC_INTAKE=false with the intake on.
	IntakeAddr string

	ACLs    bool
	ACLHost string
	// Prune: apply deletes the rules beyond the plan (PROVISION_PRUNE).
	Prune   bool
	JSON    bool
	Timeout time.Duration
}

// DefaultConfig returns the production defaults: replication 3,
// min.insync.replicas 2.
func DefaultConfig() Config {
	c := Config{
		Kafka:             stream.DefaultConfig(),
		Partitions:        6,
		SmallPartitions:   3,
		ReplicationFactor: 3,
		MinInsyncReplicas: 2,
		AuditRetentionMs:  -1,

		EnforcerTopics:   []string{"customer.events"},
		ConsentTopics:    []string{"consent.changes"},
		AuditTopic:       "consent.audit",
		RevocationsTopic: "consent.revocations",
		CheckpointsTopic: "consent.audit.checkpoints",
		KeysTopic:        "consent.keys",
		DLQSuffix:        ".dlq",
		EnforcerGroup:    "consentgate-enforcer",
		ConsentSyncGroup: "consentgate-consent-sync",

		SignalsTopic:       "consent.signals",
		SignalsGroup:       "consentgate-consent-sync-signals",
		SignalsRetentionMs: 7 * 24 * 60 * 60 * 1000,

		EnforcerRequireWarm: true,
		Intake:              true,
		LedgerSeals:         true,

		EnforcerPrincipal:    "User:enforcer",
		ConsentSyncPrincipal: "User:consent-sync",
		LedgerPrincipal:      "User:ledger",
		ConsumerPrincipal:    "User:{stream}",
		ConsumerGroupPrefix:  "{stream}.",

		ACLs:    true,
		ACLHost: "*",
		Timeout: 30 * time.Second,
	}
	c.Kafka.ClientID = "consentgate-provision"
	return c
}

func (c *Config) flags(cmd string) *envflag.Set {
	s := envflag.New("provision "+cmd, "derives from the policy the Kafka topics (partitions, replication, configuration) and the ACLs of every consentgate principal; "+
		"`provision plan` prints them, `provision apply` creates what is missing (idempotent) and reports what exists but differs.")
	c.Kafka.Flags(s)
	s.String(&c.Policy, "policy", "POLICY_FILE", "policy file (YAML), the one the enforcer reads (required)")
	s.Int(&c.Partitions, "partitions", "PROVISION_PARTITIONS", "partitions of the input, consent, audit and stream topics (the enforcers of one group never outnumber them)")
	s.Int(&c.SmallPartitions, "small-partitions", "PROVISION_SMALL_PARTITIONS", "partitions of the dead-letter and revocation topics")
	s.Int(&c.ReplicationFactor, "replication-factor", "PROVISION_REPLICATION_FACTOR", "replication factor of every topic (1 for a single dev broker)")
	s.Int(&c.MinInsyncReplicas, "min-insync-replicas", "PROVISION_MIN_INSYNC_REPLICAS", "min.insync.replicas of every topic, at most the replication factor (1 for a single dev broker)")
	s.Int(&c.AuditRetentionMs, "audit-retention-ms", "PROVISION_AUDIT_RETENTION_MS", "retention.ms of the audit topic; -1 keeps every record (the ledger seals and verifies the audit from it)")
	s.List(&c.EnforcerTopics, "enforcer-topics", "ENFORCER_TOPICS", "the enforcer's input topics, comma-separated")
	s.String(&c.EnforcerGroup, "enforcer-group-id", "ENFORCER_GROUP_ID", "the enforcer's consumer group")
	s.String(&c.AuditTopic, "audit-topic", "AUDIT_TOPIC", "topic of the audit records")
	s.String(&c.DLQSuffix, "dlq-suffix", "DLQ_SUFFIX", "dead letters of topic T go to T+suffix")
	s.Bool(&c.EnforcerRequireWarm, "enforcer-require-warm", "ENFORCER_REQUIRE_WARM", "the enforcers read consent-sync's committed offsets (Describe on its group and the consent topics)")
	s.List(&c.ConsentTopics, "consent-topics", "CONSENT_SYNC_TOPICS", "the consent topics consent-sync reads, comma-separated")
	s.String(&c.ConsentSyncGroup, "consent-sync-group-id", "CONSENT_SYNC_GROUP_ID", "consent-sync's consumer group")
	s.String(&c.IntakeTopicName, "intake-topic", "CONSENT_INTAKE_TOPIC", "topic consent-sync's HTTP intake produces to; empty: the first consent topic")
	s.Bool(&c.Intake, "consent-sync-intake", "PROVISION_CONSENT_SYNC_INTAKE", "consent-sync runs the HTTP intake (Write on the intake topic); false is refused with CONSENT_INTAKE_ADDR set")
	s.String(&c.IntakeAddr, "consent-intake-addr", "CONSENT_INTAKE_ADDR", "consent-sync's intake address, when this environment is consent-sync's too: set, the intake runs, and PROVISION_CONSENT_SYNC_INTAKE must not be false")
	s.String(&c.SignalsTopic, "signals-topic", "CONSENT_SIGNALS_TOPIC", "consent-sync's topic of consent signal submissions (and its dead letters); off: none")
	s.String(&c.SignalsGroup, "signals-group-id", "CONSENT_SIGNALS_GROUP_ID", "consent-sync's consumer group of the signals topic")
	s.Int(&c.SignalsRetentionMs, "signals-retention-ms", "PROVISION_SIGNALS_RETENTION_MS", "retention.ms of the signals topic (the changes made from its records are kept on the consent topic; a signal not consumed within it is lost); -1 keeps every record")
	s.String(&c.RevocationsTopic, "revocations-topic", "REVOCATIONS_TOPIC", "topic of the revocation notices")
	s.String(&c.CheckpointsTopic, "checkpoints-topic", "LEDGER_CHECKPOINTS_TOPIC", "topic of the ledger's audit checkpoints")
	s.String(&c.KeysTopic, "keys-topic", "KEYS_TOPIC", "compacted topic of the subjects' data keys (encrypt rules, crypto-shredding); empty: none")
	s.List(&c.KeyReaderPrincipals, "key-reader-principals", "PROVISION_KEY_READER_PRINCIPALS", "principals that may read the keys topic to decrypt encrypted fields (with the key-encryption key), comma-separated")
	s.Bool(&c.LedgerSeals, "ledger-seals", "PROVISION_LEDGER_SEALS", "the ledger seals the audit (Write on the checkpoints topic)")
	s.String(&c.EnforcerPrincipal, "enforcer-principal", "PROVISION_ENFORCER_PRINCIPAL", "principal of the enforcers, as the brokers name it (User:<SASL user or certificate name>)")
	s.String(&c.ConsentSyncPrincipal, "consent-sync-principal", "PROVISION_CONSENT_SYNC_PRINCIPAL", "principal of consent-sync")
	s.String(&c.LedgerPrincipal, "ledger-principal", "PROVISION_LEDGER_PRINCIPAL", "principal of the ledger")
	s.String(&c.ConsumerPrincipal, "consumer-principal", "PROVISION_CONSUMER_PRINCIPAL", "principal of each stream's consumers: {stream} is the stream's topic without 'compliant.', {topic} the topic")
	s.List(&c.ConsumerPrincipals, "consumer-principals", "PROVISION_CONSUMER_PRINCIPALS", "exceptions to that pattern, comma-separated topic=principal (compliant.marketing=User:braze)")
	s.String(&c.ConsumerGroupPrefix, "consumer-group-prefix", "PROVISION_CONSUMER_GROUP_PREFIX", "prefix of the consumer groups each stream's consumers may use ({stream}, {topic} as above)")
	s.List(&c.UnmanagedPrincipals, "unmanaged-principals", "PROVISION_UNMANAGED_PRINCIPALS", "principals outside the plan whose rules on the plan's topics and groups apply leaves alone (producers of the input topics, operators' tools), comma-separated; every other principal's rule there is beyond the plan")
	s.String(&c.LedgerAuditTopic, "ledger-audit-topic", "LEDGER_AUDIT_TOPIC", "the ledger's audit topic; set, it must be AUDIT_TOPIC")
	s.String(&c.LedgerKeysTopic, "ledger-keys-topic", "LEDGER_KEYS_TOPIC", "the ledger's keys topic; set, it must be KEYS_TOPIC")
	s.String(&c.LedgerChangesTopic, "ledger-changes-topic", "LEDGER_CHANGES_TOPIC", "the ledger's consent topic; set, it must be one of CONSENT_SYNC_TOPICS, and the ledger reads only that one")
	s.Bool(&c.Prune, "prune", "PROVISION_PRUNE", "apply deletes the ACL rules beyond the plan (on the plan's topics and groups, and of the plan's principals and User:*), printing each; without it apply never deletes")
	s.Bool(&c.ACLs, "acls", "PROVISION_ACLS", "apply the ACLs too; false for a cluster without an authorizer (they are still printed)")
	s.String(&c.ACLHost, "acl-host", "PROVISION_ACL_HOST", "host the ACLs allow connections from: * for any, or one IP address (Kafka matches it literally against the client's address)")
	s.Duration(&c.Timeout, "timeout", "PROVISION_TIMEOUT", "deadline of the whole apply")
	s.Bool(&c.JSON, "json", "", "print the plan (or what apply did) as JSON")
	return s
}

// Validate reports every problem at once, each with what to set. The
// Kafka settings are checked only when connect is set (apply): plan needs
// no cluster.
func (c Config) Validate(connect bool) error {
	var errs []error
	if connect {
		errs = append(errs, c.Kafka.Validate())
	}
	if c.Policy == "" {
		errs = append(errs, errors.New("no policy: set POLICY_FILE (or --policy) to the policy YAML file the enforcer reads"))
	}
	for name, v := range map[string]int{"PROVISION_PARTITIONS": c.Partitions, "PROVISION_SMALL_PARTITIONS": c.SmallPartitions} {
		if v < 1 || v > 10000 {
			errs = append(errs, fmt.Errorf("%s is %d: set it to 1..10000", name, v))
		}
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > 32 {
		errs = append(errs, fmt.Errorf("PROVISION_REPLICATION_FACTOR is %d: set it to 1..32 (3 in production, 1 for a single dev broker)", c.ReplicationFactor))
	}
	if c.MinInsyncReplicas < 1 || c.MinInsyncReplicas > c.ReplicationFactor {
		errs = append(errs, fmt.Errorf("PROVISION_MIN_INSYNC_REPLICAS is %d with replication factor %d: set it to 1..%d (2 with replication 3, so that acks=all survives one broker down)", c.MinInsyncReplicas, c.ReplicationFactor, max(c.ReplicationFactor, 1)))
	} else if c.MinInsyncReplicas == 1 && c.ReplicationFactor >= 3 {
		errs = append(errs, fmt.Errorf("PROVISION_MIN_INSYNC_REPLICAS is 1 with replication factor %d: an acks=all write would be acknowledged by the leader alone and lost with it; set it to 2 (or more)", c.ReplicationFactor))
	}
	if c.AuditRetentionMs != -1 && c.AuditRetentionMs < 1 {
		errs = append(errs, fmt.Errorf("PROVISION_AUDIT_RETENTION_MS is %d: set -1 (keep every record) or a positive number of milliseconds", c.AuditRetentionMs))
	}
	topics := map[string][]string{"ENFORCER_TOPICS": c.EnforcerTopics, "CONSENT_SYNC_TOPICS": c.ConsentTopics,
		"AUDIT_TOPIC": {c.AuditTopic}, "REVOCATIONS_TOPIC": {c.RevocationsTopic}, "LEDGER_CHECKPOINTS_TOPIC": {c.CheckpointsTopic}}
	for _, name := range []string{"ENFORCER_TOPICS", "CONSENT_SYNC_TOPICS", "AUDIT_TOPIC", "REVOCATIONS_TOPIC", "LEDGER_CHECKPOINTS_TOPIC"} {
		if len(topics[name]) == 0 {
			errs = append(errs, fmt.Errorf("no topic: set %s", name))
		}
		for _, t := range topics[name] {
			if !validTopic(t) {
				errs = append(errs, fmt.Errorf("bad topic name %q: fix %s (letters, digits, '.', '_' and '-', at most 249)", t, name))
			}
		}
	}
	if c.KeysTopic != "" && !validTopic(c.KeysTopic) {
		errs = append(errs, fmt.Errorf("bad topic name %q: fix KEYS_TOPIC", c.KeysTopic))
	}
	for i, p := range c.KeyReaderPrincipals {
		if !validPrincipal(p) {
			errs = append(errs, fmt.Errorf("PROVISION_KEY_READER_PRINCIPALS item %d is not TYPE:NAME (User:crm-decrypter; not User:*)", i+1))
		}
	}
	if c.KeysTopic == "" && len(c.KeyReaderPrincipals) > 0 {
		errs = append(errs, errors.New("PROVISION_KEY_READER_PRINCIPALS is set but KEYS_TOPIC is empty: set KEYS_TOPIC (consent.keys)"))
	}
	if st := c.signalsTopic(); st != "" {
		if !validTopic(st) {
			errs = append(errs, fmt.Errorf("bad topic name %q: fix CONSENT_SIGNALS_TOPIC (or set it to off)", st))
		}
		if g := c.SignalsGroup; g == "" || strings.ContainsAny(g, " ,") || g == c.ConsentSyncGroup || g == c.EnforcerGroup {
			errs = append(errs, fmt.Errorf("bad consumer group %q: set CONSENT_SIGNALS_GROUP_ID to a group of its own (not CONSENT_SYNC_GROUP_ID or ENFORCER_GROUP_ID), e.g. consentgate-consent-sync-signals", g))
		}
		if c.SignalsRetentionMs != -1 && c.SignalsRetentionMs < 1 {
			errs = append(errs, fmt.Errorf("PROVISION_SIGNALS_RETENTION_MS is %d: set -1 (keep every record) or a positive number of milliseconds", c.SignalsRetentionMs))
		}
	}
	if c.IntakeTopicName != "" && !validTopic(c.IntakeTopicName) {
		errs = append(errs, fmt.Errorf("bad topic name %q: fix CONSENT_INTAKE_TOPIC", c.IntakeTopicName))
	}
	if c.IntakeTopicName != "" && !contains(c.ConsentTopics, c.IntakeTopicName) {
		errs = append(errs, fmt.Errorf("CONSENT_INTAKE_TOPIC %s is not one of CONSENT_SYNC_TOPICS: the intake's changes would never be applied; set it to a consent topic, or unset it", c.IntakeTopicName))
	}
	if c.DLQSuffix == "" || !validTopic("x"+c.DLQSuffix) {
		errs = append(errs, errors.New("bad dead-letter suffix: set DLQ_SUFFIX, e.g. .dlq"))
	}
	for name, g := range map[string]string{"ENFORCER_GROUP_ID": c.EnforcerGroup, "CONSENT_SYNC_GROUP_ID": c.ConsentSyncGroup} {
		if g == "" || strings.ContainsAny(g, " ,") {
			errs = append(errs, fmt.Errorf("bad consumer group %q: set %s", g, name))
		}
	}
	for name, p := range map[string]string{"PROVISION_ENFORCER_PRINCIPAL": c.EnforcerPrincipal, "PROVISION_CONSENT_SYNC_PRINCIPAL": c.ConsentSyncPrincipal, "PROVISION_LEDGER_PRINCIPAL": c.LedgerPrincipal} {
		if !validPrincipal(p) {
			errs = append(errs, fmt.Errorf("principal %q: set %s to TYPE:NAME, such as User:enforcer (not * : a wildcard would grant everyone)", p, name))
		}
	}
	if !strings.Contains(c.ConsumerPrincipal, "{stream}") && !strings.Contains(c.ConsumerPrincipal, "{topic}") {
		errs = append(errs, fmt.Errorf("PROVISION_CONSUMER_PRINCIPAL %q names no {stream} or {topic}: every stream would share one consumer principal; use a pattern such as User:{stream}", c.ConsumerPrincipal))
	} else if !validPrincipal(expand(c.ConsumerPrincipal, "compliant.x")) {
		errs = append(errs, fmt.Errorf("PROVISION_CONSUMER_PRINCIPAL %q does not make TYPE:NAME principals: use a pattern such as User:{stream}", c.ConsumerPrincipal))
	}
	if !strings.Contains(c.ConsumerGroupPrefix, "{stream}") && !strings.Contains(c.ConsumerGroupPrefix, "{topic}") {
		errs = append(errs, fmt.Errorf("PROVISION_CONSUMER_GROUP_PREFIX %q names no {stream} or {topic}: every stream's consumers would share the groups; use a pattern such as {stream}.", c.ConsumerGroupPrefix))
	}
	excepted := map[string]bool{}
	for i, kv := range c.ConsumerPrincipals {
		t, p, ok := strings.Cut(kv, "=")
		switch {
		case !ok || !validTopic(t) || !validPrincipal(p):
			errs = append(errs, fmt.Errorf("PROVISION_CONSUMER_PRINCIPALS item %d is not topic=TYPE:NAME (compliant.marketing=User:braze)", i+1))
		case excepted[t]:
			errs = append(errs, fmt.Errorf("PROVISION_CONSUMER_PRINCIPALS names topic %s twice: give each stream one principal", t))
		}
		excepted[t] = true
	}
	for i, p := range c.UnmanagedPrincipals {
		if !validPrincipal(p) {
			errs = append(errs, fmt.Errorf("PROVISION_UNMANAGED_PRINCIPALS item %d is not TYPE:NAME (User:shop-producer; not User:*)", i+1))
		}
	}
	switch {
	case c.ACLHost == "":
		errs = append(errs, errors.New("empty ACL host: set PROVISION_ACL_HOST (* for any host)"))
	case c.ACLHost != "*" && net.ParseIP(c.ACLHost) == nil:
		errs = append(errs, fmt.Errorf("PROVISION_ACL_HOST %q is neither * nor an IP address: Kafka matches an ACL's host literally against the client's IP address, so a host name, a pattern or a list never matches and every service would be refused; set * or one IP address", c.ACLHost))
	}
	if !c.Intake && c.IntakeAddr != "" {
		errs = append(errs, errors.New("PROVISION_CONSENT_SYNC_INTAKE is false, but CONSENT_INTAKE_ADDR is set: consent-sync would run its intake and be refused every write; unset CONSENT_INTAKE_ADDR, or set PROVISION_CONSENT_SYNC_INTAKE=true"))
	}
	if c.LedgerAuditTopic != "" && c.LedgerAuditTopic != c.AuditTopic {
		errs = append(errs, fmt.Errorf("LEDGER_AUDIT_TOPIC %s is not AUDIT_TOPIC %s: the ledger would keep a topic the enforcer does not write; set both to the same topic", c.LedgerAuditTopic, c.AuditTopic))
	}
	if c.LedgerKeysTopic != "" && c.LedgerKeysTopic != c.KeysTopic {
		errs = append(errs, fmt.Errorf("LEDGER_KEYS_TOPIC %s is not KEYS_TOPIC %q: the ledger would record the data keys of a topic the services do not use, and lack the right to read it; set both to the same topic", c.LedgerKeysTopic, c.KeysTopic))
	}
	if c.LedgerChangesTopic != "" && !contains(c.ConsentTopics, c.LedgerChangesTopic) {
		errs = append(errs, fmt.Errorf("LEDGER_CHANGES_TOPIC %s is not one of CONSENT_SYNC_TOPICS: the ledger would keep a topic consent-sync does not read; set it to a consent topic, or unset it", c.LedgerChangesTopic))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("PROVISION_TIMEOUT must be positive, e.g. 30s"))
	}
	return errors.Join(errs...)
}

// intakeTopic is the topic consent-sync's intake produces to.
func (c Config) intakeTopic() string {
	if c.IntakeTopicName != "" {
		return c.IntakeTopicName
	}
	return c.ConsentTopics[0]
}

// signalsTopic is consent-sync's signals topic, "" when it has none
// (CONSENT_SIGNALS_TOPIC empty or off).
func (c Config) signalsTopic() string {
	if c.SignalsTopic == "off" {
		return ""
	}
	return c.SignalsTopic
}

// consumerOf returns the consumer principal and consumer group prefix of
// the stream publishing to topic.
func (c Config) consumerOf(topic string) (principal, groupPrefix string) {
	principal = expand(c.ConsumerPrincipal, topic)
	if p, ok := c.exception(topic); ok {
		principal = p
	}
	return principal, expand(c.ConsumerGroupPrefix, topic)
}

// checkConsumer refuses a consumer principal or group prefix that is not
// well made: an empty {stream} (the topic "compliant.") makes "User:" and
// ".".
func (c Config) checkConsumer(topic, principal, group string) error {
	stream := strings.TrimPrefix(topic, "compliant.")
	_, excepted := c.exception(topic)
	if stream == "" && (!excepted && strings.Contains(c.ConsumerPrincipal, "{stream}") || strings.Contains(c.ConsumerGroupPrefix, "{stream}")) {
		return fmt.Errorf("stream %s has an empty {stream}: name the topic compliant.<name> in the policy (or set PROVISION_CONSUMER_PRINCIPAL and PROVISION_CONSUMER_GROUP_PREFIX without {stream})", topic)
	}
	if !validPrincipal(principal) {
		return fmt.Errorf("the consumer principal %q of stream %s is not TYPE:NAME: fix PROVISION_CONSUMER_PRINCIPAL or PROVISION_CONSUMER_PRINCIPALS", principal, topic)
	}
	if group == "" || strings.ContainsAny(group, " ,*") {
		return fmt.Errorf("the consumer group prefix %q of stream %s is not a group name: fix PROVISION_CONSUMER_GROUP_PREFIX", group, topic)
	}
	return nil
}

// exception returns the principal PROVISION_CONSUMER_PRINCIPALS gives
// topic, if any.
func (c Config) exception(topic string) (string, bool) {
	for _, kv := range c.ConsumerPrincipals {
		if t, p, _ := strings.Cut(kv, "="); t == topic {
			return p, true
		}
	}
	return "", false
}

// ledgerConsentTopics are the consent topics the ledger reads:
// LEDGER_CHANGES_TOPIC when set, else every consent topic.
func (c Config) ledgerConsentTopics() []string {
	if c.LedgerChangesTopic != "" {
		return []string{c.LedgerChangesTopic}
	}
	return c.ConsentTopics
}

// expand fills {stream} and {topic} of pattern for topic.
func expand(pattern, topic string) string {
	return strings.NewReplacer("{stream}", strings.TrimPrefix(topic, "compliant."), "{topic}", topic).Replace(pattern)
}

func validTopic(t string) bool {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func validPrincipal(p string) bool {
	typ, name, ok := strings.Cut(p, ":")
	return ok && typ != "" && name != "" && name != "*" && !strings.ContainsAny(p, " ,")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
