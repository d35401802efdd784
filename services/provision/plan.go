package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/consentgate/consentgate/pkg/policy"
)

// Plan is what a cluster must hold for consentgate: its topics, with
// partitions, replication factor and configuration, and the ACLs of each
// principal (allow only: a principal may do what is listed, nothing else).
type Plan struct {
	Topics []Topic `json:"topics"`
	ACLs   []ACL   `json:"acls"`
	// Principals lists, for each principal of the plan, what it is (the
	// enforcer, consent-sync, the ledger, or the consumer of a stream).
	Principals []Principal `json:"principals"`
	// Unmanaged are principals outside the plan whose rules on the
	// plan's topics and groups apply leaves alone
	// (PROVISION_UNMANAGED_PRINCIPALS).
	Unmanaged []string `json:"unmanaged_principals"`
	// ACLsApplied is false when the plan's ACLs are not applied
	// (PROVISION_ACLS=false): printed, not created.
	ACLsApplied bool `json:"acls_applied"`
}

// The keys topic's compaction settings (see Derive): a destroyed data
// key's record leaves the brokers within about keysCompactionBound of its
// tombstone.
const (
	keysMaxCompactionLagMs = 24 * 60 * 60 * 1000 // max.compaction.lag.ms: 1 day
	keysSegmentMs          = 60 * 60 * 1000      // segment.ms: 1 hour
	keysCompactionBound    = "a day"
	keysCompactionWhy      = "max.compaction.lag.ms 1 day, segment.ms 1 hour"
)

// Topic is one topic of the plan.
type Topic struct {
	Name              string            `json:"name"`
	Partitions        int               `json:"partitions"`
	ReplicationFactor int               `json:"replication_factor"`
	Configs           map[string]string `json:"configs"`
	// Role says what the topic holds, for people.
	Role string `json:"role"`
	// FixedPartitions: the topic's partition count must never change
	// (the keys topic: a subject's records are ordered in the partition
	// its id hashes to); a differing count is fixed in the settings, never
	// on the topic.
	FixedPartitions bool `json:"fixed_partitions,omitempty"`
}

// The resource types, operations and pattern types of the plan's ACLs, in
// Kafka's names (kafka-acls.sh --operation, --topic/--group, and
// --resource-pattern-type).
const (
	ResourceTopic = "TOPIC"
	ResourceGroup = "GROUP"

	OpRead            = "READ"
	OpWrite           = "WRITE"
	OpDescribe        = "DESCRIBE"
	OpDescribeConfigs = "DESCRIBE_CONFIGS"

	PatternLiteral  = "LITERAL"
	PatternPrefixed = "PREFIXED"

	PermissionDeny = "DENY"

	// WildcardPrincipal is Kafka's principal of every user: its rules
	// hold for each principal of the plan.
	WildcardPrincipal = "User:*"
)

// ACL is one allow rule: Principal may do Operation on the resource from
// Host. A rule read from the brokers may be a deny rule (Permission DENY).
type ACL struct {
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    string `json:"operation"`
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  string `json:"pattern_type"`
	// Why says which client call needs it, for people (not compared).
	Why string `json:"why,omitempty"`
	// Permission is empty for an allow rule (every rule of the plan),
	// DENY for a deny rule the brokers hold.
	Permission string `json:"permission,omitempty"`
}

// key is what makes two ACLs the same rule (Why aside).
func (a ACL) key() string {
	return strings.Join([]string{a.Principal, a.Host, a.Operation, a.ResourceType, a.ResourceName, a.PatternType}, "\x00")
}

// String is the rule as one line: "User:enforcer allow READ TOPIC
// customer.events LITERAL from *".
func (a ACL) String() string {
	verb := "allow"
	if a.Permission == PermissionDeny {
		verb = "deny"
	}
	return fmt.Sprintf("%s %s %s %s %s %s from %s", a.Principal, verb, a.Operation, a.ResourceType, a.ResourceName, a.PatternType, a.Host)
}

// Principal is one principal of the plan and what it is.
type Principal struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Derive builds the plan of pol under the settings c (which Validate
// accepted). It fails when two streams would share a consumer principal or
// a consumer group prefix would cover another stream's, saying what to set.
func Derive(pol *policy.Policy, c Config) (*Plan, error) {
	p := &Plan{ACLsApplied: c.ACLs, Unmanaged: append([]string{}, c.UnmanagedPrincipals...)}
	base := map[string]string{"cleanup.policy": "delete", "min.insync.replicas": strconv.Itoa(c.MinInsyncReplicas)}
	// The kept topics (the system of record, the notices, the audit and
	// its checkpoints) never fail over to an out-of-sync replica, which
	// would drop acknowledged records.
	const unclean = "unclean.leader.election.enable"
	kept := map[string]string{"retention.ms": "-1", "retention.bytes": "-1", unclean: "false"}
	topic := func(name string, partitions int, role string, extra ...map[string]string) {
		cfg := map[string]string{}
		for k, v := range base {
			cfg[k] = v
		}
		for _, e := range extra {
			for k, v := range e {
				cfg[k] = v
			}
		}
		p.Topics = append(p.Topics, Topic{Name: name, Partitions: partitions, ReplicationFactor: c.ReplicationFactor, Configs: cfg, Role: role})
	}
	// The audit is kept for its time, never trimmed by size (the brokers'
	// log.retention.bytes).
	audit := map[string]string{"retention.ms": strconv.Itoa(c.AuditRetentionMs), "retention.bytes": "-1", unclean: "false"}

	for _, t := range c.EnforcerTopics {
		topic(t, c.Partitions, "input of the enforcer (customer events)")
		topic(t+c.DLQSuffix, c.SmallPartitions, "dead letters of "+t)
	}
	for _, t := range c.ConsentTopics {
		topic(t, c.Partitions, "consent changes: the system of record (no retention limit, no compaction)", kept)
		topic(t+c.DLQSuffix, c.SmallPartitions, "dead letters of "+t)
	}
	if st := c.signalsTopic(); st != "" {
		// An intake queue: the changes made from its records are the
		// record (on the consent topic); its own records are kept for
		// PROVISION_SIGNALS_RETENTION_MS, never trimmed by size, never
		// lost to an unclean election before consent-sync reads them.
		topic(st, c.Partitions, "consent signal submissions (key: subject id) that consent-sync maps by the policy's signals section to consent changes",
			// LogAppendTime: the clock rule bounds each change by its
			// record's timestamp, which must be the broker's receive time,
			// not a producer's clock that may run ahead.
			map[string]string{"retention.ms": strconv.Itoa(c.SignalsRetentionMs), "retention.bytes": "-1", unclean: "false", "message.timestamp.type": "LogAppendTime"})
		topic(st+c.DLQSuffix, c.SmallPartitions, "dead letters of "+st)
	}
	topic(c.RevocationsTopic, c.SmallPartitions, "revocation notices (kept)", kept)
	topic(c.AuditTopic, c.Partitions, "audit records, one per input event", audit)
	topic(c.CheckpointsTopic, 1, "the ledger's signed audit checkpoints (kept)", kept)
	if c.KeysTopic != "" {
		// One record per data key and per erasure, tombstoned when an
		// erasure destroys a key: compacted, never trimmed by time or
		// size, and its partitions must never change (a subject's keys
		// and erasures are ordered in one partition).
		//
		// Compaction bounds how long a destroyed key's wrapped material
		// stays on the brokers. The cleaner never touches the active
		// segment, and by default a segment rolls after 7 days (or 1 GiB)
		// and is cleaned only past a dirty ratio of 0.5, which a topic of
		// mostly live keys may never reach. So: segment.ms rolls the
		// active segment, holding the tombstone, within an hour (at the
		// next write to the partition: brokers roll only on append), and
		// max.compaction.lag.ms (KIP-354) makes a dirty segment cleaned
		// within a day of its first record whatever the dirty ratio; the
		// cleaning drops every record of a key older than its tombstone.
		// The tombstone itself (no key material) is kept for
		// delete.retention.ms, a day by default, so that a ring reading
		// behind still sees the destruction.
		topic(c.KeysTopic, c.SmallPartitions, "the subjects' data keys (compacted; erasures tombstone them; compaction removes a destroyed key within "+keysCompactionBound+" of its tombstone, once its partition has a later write: "+keysCompactionWhy+")",
			map[string]string{"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1", unclean: "false",
				"max.compaction.lag.ms": strconv.Itoa(keysMaxCompactionLagMs), "segment.ms": strconv.Itoa(keysSegmentMs)})
		p.Topics[len(p.Topics)-1].FixedPartitions = true
	}
	for _, s := range pol.Streams {
		topic(s.Topic, c.Partitions, "purpose stream of "+strings.Join(s.Purposes, ", "))
	}
	seen := map[string]bool{}
	for _, t := range p.Topics {
		if seen[t.Name] {
			return nil, fmt.Errorf("topic %s is planned twice (check ENFORCER_TOPICS, CONSENT_SYNC_TOPICS, CONSENT_SIGNALS_TOPIC, AUDIT_TOPIC, REVOCATIONS_TOPIC, LEDGER_CHECKPOINTS_TOPIC, KEYS_TOPIC, DLQ_SUFFIX and the policy's stream topics): every topic must have one role", t.Name)
		}
		seen[t.Name] = true
	}

	allow := func(principal, op, rtype, name, pattern, why string) {
		p.ACLs = append(p.ACLs, ACL{Principal: principal, Host: c.ACLHost, Operation: op, ResourceType: rtype, ResourceName: name, PatternType: pattern, Why: why})
	}
	lit := PatternLiteral

	// The enforcer: a consumer group reader of the input topics, a writer
	// of the streams, the audit and the dead letters; with
	// ENFORCER_REQUIRE_WARM, a reader of consent-sync's committed offsets.
	e := c.EnforcerPrincipal
	p.Principals = append(p.Principals, Principal{e, "enforcer"})
	for _, t := range c.EnforcerTopics {
		allow(e, OpRead, ResourceTopic, t, lit, "consume the input (Metadata, ListOffsets, Fetch, OffsetCommit; READ implies DESCRIBE)")
	}
	allow(e, OpRead, ResourceGroup, c.EnforcerGroup, lit, "its consumer group (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetFetch, OffsetCommit, LeaveGroup)")
	for _, s := range pol.Streams {
		allow(e, OpWrite, ResourceTopic, s.Topic, lit, "publish the purpose stream (Metadata, Produce)")
	}
	allow(e, OpWrite, ResourceTopic, c.AuditTopic, lit, "publish the audit records")
	for _, t := range c.EnforcerTopics {
		allow(e, OpWrite, ResourceTopic, t+c.DLQSuffix, lit, "publish dead letters")
	}
	if c.KeysTopic != "" && pol.Encrypts() {
		allow(e, OpRead, ResourceTopic, c.KeysTopic, lit, "read the data keys (no consumer group)")
		allow(e, OpWrite, ResourceTopic, c.KeysTopic, lit, "create a subject's data key on first use")
	}
	if c.EnforcerRequireWarm {
		for _, t := range c.ConsentTopics {
			allow(e, OpDescribe, ResourceTopic, t, lit, "ENFORCER_REQUIRE_WARM: the partitions of the consent topic (Metadata, OffsetFetch)")
		}
		allow(e, OpDescribe, ResourceGroup, c.ConsentSyncGroup, lit, "ENFORCER_REQUIRE_WARM: consent-sync's committed offsets (OffsetFetch)")
	}

	// consent-sync: a consumer group reader of the consent topics (which it
	// checks keep every record, and replays), a writer of the notices and
	// dead letters, and with the intake a writer of the consent topic.
	s := c.ConsentSyncPrincipal
	p.Principals = append(p.Principals, Principal{s, "consent-sync"})
	for _, t := range c.ConsentTopics {
		allow(s, OpRead, ResourceTopic, t, lit, "consume and replay the consent changes")
		allow(s, OpDescribeConfigs, ResourceTopic, t, lit, "check at start that the topic keeps every record (DescribeConfigs)")
	}
	allow(s, OpRead, ResourceGroup, c.ConsentSyncGroup, lit, "its consumer group")
	if c.Intake {
		allow(s, OpWrite, ResourceTopic, c.intakeTopic(), lit, "the HTTP intake (and the signals consumer) produce consent changes")
	}
	if st := c.signalsTopic(); st != "" {
		allow(s, OpRead, ResourceTopic, st, lit, "consume the consent signal submissions")
		allow(s, OpRead, ResourceGroup, c.SignalsGroup, lit, "the signals consumer's group")
		if !c.Intake {
			allow(s, OpWrite, ResourceTopic, c.intakeTopic(), lit, "the signals consumer produces consent changes")
		}
		allow(s, OpWrite, ResourceTopic, st+c.DLQSuffix, lit, "publish dead letters of the signals")
	}
	allow(s, OpWrite, ResourceTopic, c.RevocationsTopic, lit, "publish revocation notices")
	for _, t := range c.ConsentTopics {
		allow(s, OpWrite, ResourceTopic, t+c.DLQSuffix, lit, "publish dead letters")
	}
	if c.KeysTopic != "" {
		allow(s, OpRead, ResourceTopic, c.KeysTopic, lit, "read the data keys an erasure destroys (no consumer group)")
		allow(s, OpWrite, ResourceTopic, c.KeysTopic, lit, "an erasure marks the subject erased and tombstones its data keys")
	}

	// The ledger: partition readers (no consumer group) of everything it
	// keeps; the sealer writes the checkpoints.
	l := c.LedgerPrincipal
	p.Principals = append(p.Principals, Principal{l, "ledger"})
	ledgerReads := append(append([]string{}, c.ledgerConsentTopics()...), c.AuditTopic, c.RevocationsTopic, c.CheckpointsTopic)
	for _, t := range c.EnforcerTopics {
		ledgerReads = append(ledgerReads, t+c.DLQSuffix)
	}
	for _, t := range c.ConsentTopics {
		ledgerReads = append(ledgerReads, t+c.DLQSuffix)
	}
	for _, t := range ledgerReads {
		allow(l, OpRead, ResourceTopic, t, lit, "ingest into the ledger (Metadata, ListOffsets, Fetch; no consumer group)")
	}
	if c.KeysTopic != "" {
		allow(l, OpRead, ResourceTopic, c.KeysTopic, lit, "record when each data key was created and destroyed (LEDGER_KEYS_TOPIC; never the key)")
	}
	if c.LedgerSeals {
		allow(l, OpWrite, ResourceTopic, c.CheckpointsTopic, lit, "the sealer publishes signed checkpoints")
	}
	if c.KeysTopic != "" {
		for _, r := range c.KeyReaderPrincipals {
			p.Principals = append(p.Principals, Principal{r, "key reader"})
			allow(r, OpRead, ResourceTopic, c.KeysTopic, lit, "decrypt encrypted fields (no consumer group; needs the key-encryption key too)")
		}
	}

	// One consumer principal per stream: its topic, its groups, nothing else.
	service := map[string]string{e: "the enforcer", s: "consent-sync", l: "the ledger"}
	if len(service) < 3 {
		return nil, errors.New("the enforcer, consent-sync and the ledger must have different principals: set PROVISION_ENFORCER_PRINCIPAL, PROVISION_CONSENT_SYNC_PRINCIPAL and PROVISION_LEDGER_PRINCIPAL apart")
	}
	// The principal provision runs as (with SASL) is a superuser: a
	// principal of the plan that is it holds everything.
	if u := c.Kafka.Security.SASLUsername; u != "" {
		runner := "User:" + u
		if what, ok := service[runner]; ok {
			return nil, fmt.Errorf("%s's principal %s is the principal provision runs as (KAFKA_SASL_USERNAME), which may do anything: give %s a principal of its own", what, runner, what)
		}
		for _, st := range pol.Streams {
			if who, _ := c.consumerOf(st.Topic); who == runner {
				return nil, fmt.Errorf("%s:%d: the consumer principal of stream %s is %s, the principal provision runs as (KAFKA_SASL_USERNAME), which may do anything: give the stream's consumers a principal of their own (PROVISION_CONSUMER_PRINCIPAL, PROVISION_CONSUMER_PRINCIPALS)", c.Policy, st.Line, st.Topic, runner)
			}
		}
	}
	streams := map[string]bool{}
	for _, st := range pol.Streams {
		streams[st.Topic] = true
	}
	for _, kv := range c.ConsumerPrincipals {
		if t, _, _ := strings.Cut(kv, "="); !streams[t] {
			return nil, fmt.Errorf("PROVISION_CONSUMER_PRINCIPALS names %s, which is no stream topic of the policy %s: fix the topic (a typo would leave the stream it meant to the pattern's principal), or remove the item", t, c.Policy)
		}
	}
	for _, u := range c.UnmanagedPrincipals {
		for _, pr := range p.Principals {
			if pr.Name == u {
				return nil, fmt.Errorf("PROVISION_UNMANAGED_PRINCIPALS names %s, which is %s's principal in the plan: remove it", u, pr.Role)
			}
		}
	}
	byPrincipal := map[string]string{}
	type prefix struct{ prefix, topic string }
	var prefixes []prefix
	for _, st := range pol.Streams {
		who, group := c.consumerOf(st.Topic)
		if err := c.checkConsumer(st.Topic, who, group); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", c.Policy, st.Line, err)
		}
		if slices.Contains(c.UnmanagedPrincipals, who) {
			return nil, fmt.Errorf("%s:%d: the consumer principal of stream %s is %s, which PROVISION_UNMANAGED_PRINCIPALS names: remove it there", c.Policy, st.Line, st.Topic, who)
		}
		if what, ok := service[who]; ok {
			return nil, fmt.Errorf("%s:%d: the consumer principal of stream %s is %s, which is %s's: give the stream's consumers a principal of their own (PROVISION_CONSUMER_PRINCIPAL, PROVISION_CONSUMER_PRINCIPALS)", c.Policy, st.Line, st.Topic, who, what)
		}
		if other, ok := byPrincipal[who]; ok {
			return nil, fmt.Errorf("streams %s and %s have the same consumer principal %s, which could then read both: give each stream its own (PROVISION_CONSUMER_PRINCIPALS=%s=User:...)", other, st.Topic, who, st.Topic)
		}
		byPrincipal[who] = st.Topic
		for _, o := range prefixes {
			if strings.HasPrefix(group, o.prefix) || strings.HasPrefix(o.prefix, group) {
				return nil, fmt.Errorf("the consumer group prefixes %q (stream %s) and %q (stream %s) overlap, so one stream's consumers could join the other's groups: set PROVISION_CONSUMER_GROUP_PREFIX to a pattern that keeps them apart (such as {stream}.)", o.prefix, o.topic, group, st.Topic)
			}
		}
		groups := []string{c.EnforcerGroup, c.ConsentSyncGroup}
		if c.signalsTopic() != "" {
			groups = append(groups, c.SignalsGroup)
		}
		for _, g := range groups {
			if strings.HasPrefix(g, group) {
				return nil, fmt.Errorf("the consumer group prefix %q of stream %s covers the service group %s: set PROVISION_CONSUMER_GROUP_PREFIX so that it does not", group, st.Topic, g)
			}
		}
		prefixes = append(prefixes, prefix{group, st.Topic})
		p.Principals = append(p.Principals, Principal{who, "consumer of " + st.Topic})
		allow(who, OpRead, ResourceTopic, st.Topic, lit, "consume its purpose stream, and nothing else")
		allow(who, OpRead, ResourceGroup, group, PatternPrefixed, "its consumer groups (any group id starting so)")
	}
	return p, nil
}

// PrintText writes the plan as readable text.
func (p *Plan) PrintText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Topics (%d):\n", len(p.Topics))
	fmt.Fprintln(tw, "  TOPIC\tPARTITIONS\tREPLICATION\tCONFIGS\tHOLDS")
	for _, t := range p.Topics {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", t.Name, t.Partitions, t.ReplicationFactor, configString(t.Configs), t.Role)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	note := ""
	if !p.ACLsApplied {
		note = " (PROVISION_ACLS=false: printed, not applied)"
	}
	fmt.Fprintf(w, "\nACLs (%d, allow only; everything not listed is denied)%s:\n", len(p.ACLs), note)
	for _, pr := range p.Principals {
		fmt.Fprintf(w, "  %s (%s)\n", pr.Name, pr.Role)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, a := range p.ACLs {
			if a.Principal == pr.Name {
				fmt.Fprintf(tw, "    allow %s\t%s %s\t%s\tfrom %s\t%s\n", a.Operation, a.ResourceType, a.ResourceName, a.PatternType, a.Host, a.Why)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(p.Unmanaged) > 0 {
		fmt.Fprintf(w, "\nNot consentgate's (PROVISION_UNMANAGED_PRINCIPALS: their rules on these topics and groups are left alone): %s\n", strings.Join(p.Unmanaged, ", "))
	}
	return nil
}

// PrintJSON writes the plan as indented JSON.
func (p *Plan) PrintJSON(w io.Writer) error { return printJSON(w, p) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// configString renders configs sorted by name: "a=1 b=2".
func configString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

// aclsOf returns the plan's ACLs of principal.
func (p *Plan) aclsOf(principal string) []ACL {
	var out []ACL
	for _, a := range p.ACLs {
		if a.Principal == principal {
			out = append(out, a)
		}
	}
	return out
}

// topic returns the plan's topic name.
func (p *Plan) topic(name string) (Topic, bool) {
	i := slices.IndexFunc(p.Topics, func(t Topic) bool { return t.Name == name })
	if i < 0 {
		return Topic{}, false
	}
	return p.Topics[i], true
}
