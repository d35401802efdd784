package main

// Adversarial review of provision (issue 13 part 6: least privilege,
// proven). Each test here states a way the plan or apply falls short; they
// fail until it is fixed.

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestReviewProvisionAuditRetentionKeepsSize: with a time retention on the
// audit (PROVISION_AUDIT_RETENTION_MS), the plan sets retention.ms only,
// so the audit topic falls back to the brokers' log.retention.bytes: a
// cluster with a size limit deletes audit records long before the
// retention the operator asked for, and apply never notices (it compares
// only planned configs). The plan must pin retention.bytes=-1 on the
// audit whatever its retention.ms.
func TestReviewProvisionAuditRetentionKeepsSize(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.AuditRetentionMs = 30 * 24 * 3600 * 1000
	p := derive(t, twoStreams, c)
	audit, ok := p.topic("consent.audit")
	if !ok {
		t.Fatal("no consent.audit in the plan")
	}
	if got := audit.Configs["retention.bytes"]; got != "-1" {
		t.Errorf("consent.audit with retention.ms=%d: retention.bytes %q (the brokers' default), want \"-1\": the audit is kept for its time, not trimmed by size; configs %s",
			c.AuditRetentionMs, got, configString(audit.Configs))
	}
}

// TestReviewProvisionApplyAcceptsSizeTrimmedAudit: the same on a cluster:
// an existing audit topic with retention.bytes=1024 (a few records) and
// the planned retention.ms is reported "as planned" and apply succeeds.
func TestReviewProvisionApplyAcceptsSizeTrimmedAudit(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	const ms = "2592000000"
	b.CreateTopicsWithConfig(t, 2, map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1", "retention.ms": ms, "retention.bytes": "1024"}, "t.audit")
	env := provisionEnv(b, writePolicy(t, twoStreams), "KAFKA_SASL_MECHANISM=", "KAFKA_SASL_USERNAME=", "KAFKA_SASL_PASSWORD_FILE=",
		"PROVISION_ACLS=false", "PROVISION_AUDIT_RETENTION_MS="+ms)
	code, out, errOut := runProvision(t, env, "apply")
	if code == 0 || strings.Contains(out, "topic t.audit exists as planned") {
		t.Errorf("apply over an audit topic that keeps 1024 bytes: exit %d, want 1 with t.audit reported as differing (retention.bytes=1024)\n%s\n%s", code, out, errOut)
	}
}

// TestReviewProvisionRefusesUnknownConsumerException: an exception of
// PROVISION_CONSUMER_PRINCIPALS for a topic that is no stream of the
// policy (a typo) is silently ignored, so the stream it meant falls back
// to the pattern's principal (User:marketing), which may be another
// team's; and of two exceptions for one topic the last silently wins. A
// bad setting must stop provision saying what to set.
func TestReviewProvisionRefusesUnknownConsumerException(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		exceptions []string
	}{
		{"a typo in the topic", []string{"compliant.marketng=User:braze"}},
		{"two principals for one topic", []string{"compliant.marketing=User:braze", "compliant.marketing=User:mailchimp"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pol, err := policy.Parse([]byte(twoStreams), "policy.yaml")
			if err != nil {
				t.Fatal(err)
			}
			c := DefaultConfig()
			c.Policy = "policy.yaml"
			c.ConsumerPrincipals = tt.exceptions
			verr := c.Validate(false)
			var p *Plan
			if verr == nil {
				p, err = Derive(pol, c)
			}
			if verr == nil && err == nil {
				var who []string
				for _, pr := range p.Principals {
					who = append(who, pr.Name+" ("+pr.Role+")")
				}
				t.Errorf("PROVISION_CONSUMER_PRINCIPALS=%s accepted; the plan's principals: %s; want an error naming PROVISION_CONSUMER_PRINCIPALS",
					strings.Join(tt.exceptions, ","), strings.Join(who, ", "))
			}
		})
	}
}

// TestReviewProvisionRefusesEmptyStreamPrincipal: pkg/policy accepts the
// stream topic "compliant." (a valid Kafka name), whose {stream} is empty:
// the plan gives its consumers the principal "User:" (no name) and the
// group prefix ".". Validate checks the pattern only with "compliant.x";
// Derive must check every principal it makes.
func TestReviewProvisionRefusesEmptyStreamPrincipal(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse([]byte("purposes:\n  - id: marketing\nstreams:\n  - topic: compliant.\n    purposes: [marketing]\n"), "policy.yaml")
	if err != nil {
		t.Skipf("pkg/policy refuses the topic compliant. (%v): nothing to check", err)
	}
	c := DefaultConfig()
	c.Policy = "policy.yaml"
	if err := c.Validate(false); err != nil {
		t.Fatal(err)
	}
	p, err := Derive(pol, c)
	if err == nil {
		for _, a := range p.ACLs {
			if !validPrincipal(a.Principal) {
				t.Errorf("the plan holds an ACL of the malformed principal %q: %s", a.Principal, a)
			}
		}
	}
}

// rvBroker is a devbroker with ACLs and the users admin (superuser, first:
// brokertest's own calls run as it), enforcer and marketing, provisioned
// by one apply of twoStreams.
func rvBroker(t *testing.T) (*brokertest.Broker, map[string]string) {
	t.Helper()
	const mech = kafkaconn.ScramSHA256
	b := brokertest.Start(t, brokertest.Options{ACLs: true, Partitions: 1, Users: []brokertest.User{
		{Mechanism: mech, Name: "admin", Password: adminPassword, Superuser: true},
		{Mechanism: mech, Name: "enforcer", Password: "rv-enforcer-pw-2"},
		{Mechanism: mech, Name: "marketing", Password: "rv-marketing-pw-3"},
	}})
	env := provisionEnv(b, writePolicy(t, twoStreams))
	if code, out, errOut := runProvision(t, env, "apply"); code != 0 {
		t.Fatalf("first apply: exit %d\n%s\n%s", code, out, errOut)
	}
	return b, env
}

// rvAdd creates ACLs as the superuser.
func rvAdd(t *testing.T, b *brokertest.Broker, acls ...kafka.ACLEntry) {
	t.Helper()
	kc := stream.DefaultConfig()
	kc.Brokers, kc.Security = []string{b.Addr}, b.Security
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := kc.Client().CreateACLs(ctx, &kafka.CreateACLsRequest{ACLs: acls})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.Errors {
		if e != nil {
			t.Fatal(e)
		}
	}
}

// rvConn dials partition 0 of topic as user (a one-broker cluster leads
// every partition).
func rvConn(t *testing.T, b *brokertest.Broker, user, topic string) *kafka.Conn {
	t.Helper()
	host, port, _ := net.SplitHostPort(b.Addr)
	n, _ := strconv.Atoi(port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := b.SecurityAs(kafkaconn.ScramSHA256, user).Dialer("rv").DialPartition(ctx, "tcp", b.Addr, kafka.Partition{Topic: topic, ID: 0, Leader: kafka.Broker{Host: host, Port: n}})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

func rvProduce(t *testing.T, b *brokertest.Broker, user, topic string) error {
	conn := rvConn(t, b, user, topic)
	defer conn.Close()
	_, err := conn.WriteMessages(kafka.Message{Key: []byte("rv"), Value: []byte("rv")})
	return err
}

func rvFetch(t *testing.T, b *brokertest.Broker, user, topic string) error {
	conn := rvConn(t, b, user, topic)
	defer conn.Close()
	return conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond}).Close()
}

// TestReviewProvisionApplyIgnoresDenyACL: a DENY rule overrides every
// allow in Kafka. describeACLs asks the brokers for allow rules only, so
// with "User:enforcer deny WRITE TOPIC t.audit" in place the enforcer can
// no longer audit (it pauses, fail closed, in production), yet apply
// exits 0 saying the cluster matches the plan.
func TestReviewProvisionApplyIgnoresDenyACL(t *testing.T) {
	t.Parallel()
	b, env := rvBroker(t)
	if err := rvProduce(t, b, "enforcer", "t.audit"); err != nil {
		t.Fatalf("the enforcer writing t.audit under the plan: %v", err)
	}
	rvAdd(t, b, kafka.ACLEntry{ResourceType: kafka.ResourceTypeTopic, ResourceName: "t.audit", ResourcePatternType: kafka.PatternTypeLiteral,
		Principal: "User:enforcer", Host: "*", Operation: kafka.ACLOperationTypeWrite, PermissionType: kafka.ACLPermissionTypeDeny})
	if err := rvProduce(t, b, "enforcer", "t.audit"); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Fatalf("the enforcer writing t.audit under the deny rule: %v, want %v (the devbroker honours deny)", err, kafka.TopicAuthorizationFailed)
	}
	code, out, errOut := runProvision(t, env, "apply")
	if code == 0 || strings.Contains(out, "already matches the plan") {
		t.Errorf("apply with a deny rule that takes the enforcer's audit away: exit %d, want 1 naming the deny rule\n%s\n%s", code, out, errOut)
	}
}

// TestReviewProvisionApplyIgnoresWildcardPrincipal: an allow rule for
// User:* gives every principal of the plan (each purpose consumer
// included) what it grants. apply reports ACLs beyond the plan only for
// the plan's exact principal names, so "User:* allow READ TOPIC t.audit"
// lets the marketing principal read the audit and apply says nothing of
// it: least privilege is not proven.
func TestReviewProvisionApplyIgnoresWildcardPrincipal(t *testing.T) {
	t.Parallel()
	b, env := rvBroker(t)
	if err := rvFetch(t, b, "marketing", "t.audit"); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Fatalf("the marketing principal fetching t.audit under the plan: %v, want %v", err, kafka.TopicAuthorizationFailed)
	}
	rvAdd(t, b, kafka.ACLEntry{ResourceType: kafka.ResourceTypeTopic, ResourceName: "t.audit", ResourcePatternType: kafka.PatternTypeLiteral,
		Principal: "User:*", Host: "*", Operation: kafka.ACLOperationTypeRead, PermissionType: kafka.ACLPermissionTypeAllow})
	if err := rvFetch(t, b, "marketing", "t.audit"); err != nil {
		t.Fatalf("the marketing principal fetching t.audit under User:*: %v (the devbroker honours User:*)", err)
	}
	code, out, errOut := runProvision(t, env, "apply")
	if !strings.Contains(out, "User:*") {
		t.Errorf("apply with User:* allowed to read the audit: exit %d and no word of User:*; want it reported as beyond the plan for every principal\n%s\n%s", code, out, errOut)
	}
}

// TestReviewProvisionApplyBeyondIsNotAMatch: with an ACL beyond the plan
// for a purpose consumer (User:marketing may read every topic starting
// "t.": the input, the consent changes, the audit, ...), apply prints a
// warning and then "nothing to do: the cluster already matches the plan",
// and exits 0. A run that is meant to prove least privilege must not
// conclude that the cluster matches, nor succeed.
func TestReviewProvisionApplyBeyondIsNotAMatch(t *testing.T) {
	t.Parallel()
	b, env := rvBroker(t)
	rvAdd(t, b, kafka.ACLEntry{ResourceType: kafka.ResourceTypeTopic, ResourceName: "t.", ResourcePatternType: kafka.PatternTypePrefixed,
		Principal: "User:marketing", Host: "*", Operation: kafka.ACLOperationTypeRead, PermissionType: kafka.ACLPermissionTypeAllow})
	if err := rvFetch(t, b, "marketing", "t.consent"); err != nil {
		t.Fatalf("the marketing principal fetching t.consent under the prefixed rule: %v", err)
	}
	code, out, errOut := runProvision(t, env, "apply")
	if code == 0 || strings.Contains(out, "already matches the plan") {
		t.Errorf("apply with User:marketing allowed to read t.* : exit %d, want 1 and no claim that the cluster matches the plan\n%s\n%s", code, out, errOut)
	}
}

// TestReviewProvisionRefusesACLHostsKafkaNeverMatches: Kafka matches an
// ACL's host against the client's IP address literally ("*" for any; CIDR
// blocks only from KIP-1276 on); a host name, a glob or a list never
// matches, so every service would be refused everything while apply
// reports the ACLs added. Validate accepts any non-empty
// PROVISION_ACL_HOST; it must want "*" or an IP address (or a CIDR block,
// saying that it needs a broker with KIP-1276).
func TestReviewProvisionRefusesACLHostsKafkaNeverMatches(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"enforcer.internal", "10.0.0.*", "10.0.0.1,10.0.0.2"} {
		c := DefaultConfig()
		c.Policy = "policy.yaml"
		c.ACLHost = host
		if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), "PROVISION_ACL_HOST") {
			t.Errorf("PROVISION_ACL_HOST=%s: Validate says %v, want an error asking for * or an IP address", host, err)
		}
	}
}

// TestReviewProvisionKeptTopicsPinUncleanElection: the plan sets
// min.insync.replicas so that acks=all means something, but leaves
// unclean.leader.election.enable to the brokers: on a cluster that turns
// it on, a failover to an out-of-sync replica silently drops acknowledged
// consent changes, revocations and audit records (the system of record).
// The kept topics must pin it to false (and apply compare it). Hardening:
// the devbroker (kfake) does not know this config yet, so the fix needs
// it to accept or ignore it.
func TestReviewProvisionKeptTopicsPinUncleanElection(t *testing.T) {
	t.Parallel()
	p := derive(t, twoStreams, DefaultConfig())
	for _, name := range []string{"consent.changes", "consent.revocations", "consent.audit", "consent.audit.checkpoints"} {
		tp, ok := p.topic(name)
		if !ok {
			t.Fatalf("no %s in the plan", name)
		}
		if got := tp.Configs["unclean.leader.election.enable"]; got != "false" {
			t.Errorf("%s: unclean.leader.election.enable %q (the brokers' default), want \"false\"; configs %s", name, got, configString(tp.Configs))
		}
	}
}

// TestReviewProvisionRacedTopicIsCheckedWhole: a planned topic that
// Metadata did not list but CreateTopics finds existing (TopicAlreadyExists:
// created meanwhile, e.g. auto-created by a service or producer that
// started first, with the brokers' defaults) is compared by Apply with the
// metadata read before it existed: compare then skips its partitions and
// replication factor, and a one-partition topic whose configs happen to
// match is reported "as planned". This calls compare as Apply's
// TopicAlreadyExists branch does (the topic absent from the metadata it
// passes), on a real broker.
func TestReviewProvisionRacedTopicIsCheckedWhole(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	b.CreateTopicsWithConfig(t, 1, map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"}, "t.raced")
	kc := stream.DefaultConfig()
	kc.Brokers = []string{b.Addr}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	planned := Topic{Name: "t.raced", Partitions: 6, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1"}}
	r := &Report{}
	if err := compare(ctx, kc.Client(), []Topic{planned}, map[string]kafka.Topic{}, r); err != nil {
		t.Fatal(err)
	}
	if len(r.Differs) != 1 {
		t.Errorf("a topic created meanwhile with 1 partition, planned with 6: as planned %v, differs %v; want it reported as differing (1 partitions, the plan has 6)", r.AsPlanned, r.Differs)
	}
}

// TestReviewProvisionRetiredConsumerKeepsItsRead: the policy drops the
// analytics stream (or PROVISION_CONSUMER_PRINCIPALS hands it to another
// principal). Apply looks for rules beyond the plan only among the
// principals the new plan names, so User:analytics keeps READ on
// compliant.analytics and its groups, still reading every event the
// stream ever got, and apply says nothing of it: it warns about the
// enforcer's left-over WRITE only. The rules on the plan's topics and
// groups held by any principal the plan does not give them are beyond
// least privilege and must be reported.
func TestReviewProvisionRetiredConsumerKeepsItsRead(t *testing.T) {
	t.Parallel()
	const mech = kafkaconn.ScramSHA256
	b := brokertest.Start(t, brokertest.Options{ACLs: true, Partitions: 1, Users: []brokertest.User{
		{Mechanism: mech, Name: "admin", Password: adminPassword, Superuser: true},
		{Mechanism: mech, Name: "analytics", Password: "rv-analytics-pw-4"},
	}})
	if code, out, errOut := runProvision(t, provisionEnv(b, writePolicy(t, twoStreams)), "apply"); code != 0 {
		t.Fatalf("apply of two streams: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
	}{
		{"the stream dropped from the policy", provisionEnv(b, writePolicy(t, "purposes:\n  - id: marketing\n  - id: analytics\nstreams:\n  - topic: compliant.marketing\n    purposes: [marketing]\n"))},
		{"the stream handed to another principal", provisionEnv(b, writePolicy(t, twoStreams), "PROVISION_CONSUMER_PRINCIPALS=compliant.analytics=User:bi")},
	} {
		code, out, errOut := runProvision(t, tt.env, "apply")
		if err := rvFetch(t, b, "analytics", "compliant.analytics"); err != nil {
			t.Fatalf("%s: User:analytics fetching compliant.analytics: %v (it should still be able to, to show the rule is live)", tt.name, err)
		}
		if !strings.Contains(out, "User:analytics") {
			t.Errorf("%s: User:analytics still reads compliant.analytics, and apply (exit %d) does not name it\n%s\n%s", tt.name, code, out, errOut)
		}
	}
}
