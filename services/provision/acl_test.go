package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

func TestOverlaps(t *testing.T) {
	t.Parallel()
	topic := func(name, pattern string) resource { return resource{ResourceTopic, name, pattern} }
	for _, tt := range []struct {
		a, b resource
		want bool
	}{
		{topic("t.audit", PatternLiteral), topic("t.audit", PatternLiteral), true},
		{topic("t.audit", PatternLiteral), topic("t.audits", PatternLiteral), false},
		{topic("t.audit", PatternLiteral), topic("t.", PatternPrefixed), true},
		{topic("t.", PatternPrefixed), topic("t.audit", PatternLiteral), true},
		{topic("u.", PatternPrefixed), topic("t.audit", PatternLiteral), false},
		{topic("*", PatternLiteral), topic("t.audit", PatternLiteral), true},
		{topic("t.audit", PatternLiteral), topic("*", PatternLiteral), true},
		{topic("market", PatternPrefixed), topic("marketing.", PatternPrefixed), true},
		{topic("marketing.", PatternPrefixed), topic("market.", PatternPrefixed), false},
		{resource{ResourceGroup, "t.audit", PatternLiteral}, topic("t.audit", PatternLiteral), false},
	} {
		if got := overlaps(tt.a, tt.b); got != tt.want {
			t.Errorf("overlaps(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// rvPlan is the plan of twoStreams with provisionEnv's names.
func rvPlan(t *testing.T, edit ...func(*Config)) *Plan {
	t.Helper()
	c := testConfig(map[string]string{"ENFORCER_TOPICS": "t.events", "CONSENT_SYNC_TOPICS": "t.consent", "AUDIT_TOPIC": "t.audit",
		"REVOCATIONS_TOPIC": "t.revocations", "LEDGER_CHECKPOINTS_TOPIC": "t.checkpoints", "PROVISION_REPLICATION_FACTOR": "1", "PROVISION_MIN_INSYNC_REPLICAS": "1"})
	for _, e := range edit {
		e(&c)
	}
	return derive(t, twoStreams, c)
}

func rule(principal, op, rtype, name, pattern string) ACL {
	return ACL{Principal: principal, Host: "*", Operation: op, ResourceType: rtype, ResourceName: name, PatternType: pattern}
}

func TestDeniedByRules(t *testing.T) {
	t.Parallel()
	p := rvPlan(t)
	deny := func(a ACL) ACL { a.Permission = PermissionDeny; return a }
	for _, tt := range []struct {
		name string
		rule ACL
		want bool
	}{
		{"the enforcer denied its audit writes", deny(rule("User:enforcer", OpWrite, ResourceTopic, "t.audit", PatternLiteral)), true},
		{"everyone denied reading t.*", deny(rule(WildcardPrincipal, OpRead, ResourceTopic, "t.", PatternPrefixed)), true},
		{"the marketing consumer denied ALL on any group", deny(rule("User:marketing", "ALL", ResourceGroup, "*", PatternLiteral)), true},
		{"the marketing consumer denied DESCRIBE on its stream (READ needs it)", deny(rule("User:marketing", OpDescribe, ResourceTopic, "compliant.marketing", PatternLiteral)), true},
		{"from one host", func() ACL {
			a := deny(rule("User:ledger", OpRead, ResourceTopic, "t.audit", PatternLiteral))
			a.Host = "10.0.0.7"
			return a
		}(), true},
		{"the marketing consumer denied writing its stream (the plan gives no write)", deny(rule("User:marketing", OpWrite, ResourceTopic, "compliant.marketing", PatternLiteral)), false},
		{"another principal denied", deny(rule("User:shop", OpWrite, ResourceTopic, "t.events", PatternLiteral)), false},
		{"the enforcer denied a topic outside the plan", deny(rule("User:enforcer", OpWrite, ResourceTopic, "other", PatternLiteral)), false},
	} {
		if got := len(deniedByRules(p, []ACL{tt.rule})) == 1; got != tt.want {
			t.Errorf("%s: %s takes a planned allow away: %v, want %v", tt.name, tt.rule, got, tt.want)
		}
	}
}

func TestBeyondPlan(t *testing.T) {
	t.Parallel()
	p := rvPlan(t, func(c *Config) { c.UnmanagedPrincipals = []string{"User:shop"} })
	held := &heldACLs{allow: map[string]ACL{}}
	for _, a := range p.ACLs {
		held.allow[a.key()] = a
	}
	beyond := []ACL{
		rule("User:marketing", OpRead, ResourceTopic, "t.audit", PatternLiteral),             // a plan principal, beyond
		rule("User:enforcer", "ALL", "CLUSTER", "kafka-cluster", PatternLiteral),             // a plan principal on the cluster
		rule(WildcardPrincipal, OpRead, ResourceTopic, "elsewhere", PatternLiteral),          // User:* holds for every principal
		rule("User:bi", OpRead, ResourceTopic, "compliant.analytics", PatternLiteral),        // another principal on a plan topic
		rule("User:bi", OpRead, ResourceGroup, "analytics.x", PatternLiteral),                // in a plan group prefix
		rule("User:bi", OpRead, ResourceTopic, "t.", PatternPrefixed),                        // a prefix over plan topics
		rule("User:enforcer", OpWrite, ResourceTopic, "compliant.retired", PatternLiteral),   // a retired stream's writes...
		rule("User:retired", OpRead, ResourceTopic, "compliant.retired", PatternLiteral),     // ...and its reader
		rule("User:marketing", OpWrite, ResourceTopic, "marketing.enriched", PatternLiteral), // a consumer's own output...
	}
	left := []ACL{rule("User:shop", OpWrite, ResourceTopic, "t.events", PatternLiteral)}
	other := []ACL{
		rule("User:crm", OpRead, ResourceTopic, "marketing.enriched", PatternLiteral), // ...whose readers are not judged
		rule("User:orders", OpRead, ResourceTopic, "orders", PatternLiteral),
		rule("User:orders", OpRead, ResourceGroup, "orders.", PatternPrefixed),
		rule("User:ops", "ALL", "CLUSTER", "kafka-cluster", PatternLiteral),
	}
	for _, a := range slices.Concat(beyond, left, other) {
		held.allow[a.key()] = a
	}
	gotBeyond, gotLeft := beyondPlan(p, held)
	keys := func(l []ACL) []string {
		var out []string
		for _, a := range l {
			out = append(out, a.String())
		}
		slices.Sort(out)
		return out
	}
	if g, w := keys(gotBeyond), keys(beyond); !slices.Equal(g, w) {
		t.Errorf("beyond the plan:\n  %s\nwant\n  %s", strings.Join(g, "\n  "), strings.Join(w, "\n  "))
	}
	if g, w := keys(gotLeft), keys(left); !slices.Equal(g, w) {
		t.Errorf("left alone: %v, want %v", g, w)
	}
}

// TestApplyPruneDeletesExactlyTheRulesBeyond: on a provisioned broker,
// rules beyond the plan (a consumer reading the audit, a retired
// consumer's group), a producer's rule named in
// PROVISION_UNMANAGED_PRINCIPALS and another application's rules: apply
// --prune deletes the first two only, lists the producer's as left
// alone, and then the cluster matches the plan.
func TestApplyPruneDeletesExactlyTheRulesBeyond(t *testing.T) {
	t.Parallel()
	b, env := rvBroker(t)
	env["PROVISION_UNMANAGED_PRINCIPALS"] = "User:shop"
	allow := func(principal string, op kafka.ACLOperationType, rt kafka.ResourceType, name string, pt kafka.PatternType) kafka.ACLEntry {
		return kafka.ACLEntry{ResourceType: rt, ResourceName: name, ResourcePatternType: pt, Principal: principal, Host: "*", Operation: op, PermissionType: kafka.ACLPermissionTypeAllow}
	}
	rvAdd(t, b,
		allow("User:marketing", kafka.ACLOperationTypeRead, kafka.ResourceTypeTopic, "t.audit", kafka.PatternTypeLiteral),
		allow("User:old", kafka.ACLOperationTypeRead, kafka.ResourceTypeGroup, "marketing.", kafka.PatternTypePrefixed),
		allow("User:shop", kafka.ACLOperationTypeWrite, kafka.ResourceTypeTopic, "t.events", kafka.PatternTypeLiteral),
		allow("User:orders", kafka.ACLOperationTypeRead, kafka.ResourceTypeTopic, "orders", kafka.PatternTypeLiteral),
	)
	code, out, errOut := runProvision(t, env, "apply")
	if code != 1 || !strings.Contains(out, "the cluster holds 2 ACL rules beyond the plan") || !strings.Contains(out, "left alone (PROVISION_UNMANAGED_PRINCIPALS): User:shop allow WRITE TOPIC t.events LITERAL from *") {
		t.Fatalf("apply: exit %d, want 1 with 2 rules beyond the plan and User:shop's left alone\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runProvision(t, env, "apply", "--prune")
	for _, want := range []string{
		"removed ACL User:marketing allow READ TOPIC t.audit LITERAL from * (beyond the plan)",
		"removed ACL User:old allow READ GROUP marketing. PREFIXED from * (beyond the plan)",
		"done: 0 topic(s) created, 0 ACL(s) added, 2 removed",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("apply --prune: exit %d, does not say %q\n%s\n%s", code, want, out, errOut)
		}
	}
	kc := stream.DefaultConfig()
	kc.Brokers, kc.Security = []string{b.Addr}, b.Security
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	have, err := describeACLs(ctx, kc.Client())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []ACL{rule("User:shop", OpWrite, ResourceTopic, "t.events", PatternLiteral), rule("User:orders", OpRead, ResourceTopic, "orders", PatternLiteral)} {
		if _, ok := have.allow[a.key()]; !ok {
			t.Errorf("--prune deleted %s, which is not beyond the plan", a)
		}
	}
	if n := len(have.allow); n != 31+2 {
		t.Errorf("after --prune the brokers hold %d allow rules, want the plan's 31 and the 2 not judged", n)
	}
	if code, out, errOut := runProvision(t, env, "apply"); code != 0 || !strings.Contains(out, "nothing to do: the cluster already matches the plan") {
		t.Errorf("apply after --prune: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestApplyWithTooFewBrokersSaysSoOnce: replication 3 on a one-broker
// cluster fails every topic; the hint is given once, naming them all.
func TestApplyWithTooFewBrokersSaysSoOnce(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	env := provisionEnv(b, writePolicy(t, twoStreams), "KAFKA_SASL_MECHANISM=", "KAFKA_SASL_USERNAME=", "KAFKA_SASL_PASSWORD_FILE=", "PROVISION_ACLS=false",
		"PROVISION_REPLICATION_FACTOR=3", "PROVISION_MIN_INSYNC_REPLICAS=2")
	code, out, errOut := runProvision(t, env, "apply")
	if code != 1 || strings.Count(errOut, "set PROVISION_REPLICATION_FACTOR") != 1 || !strings.Contains(errOut, "t.consent") || !strings.Contains(errOut, "compliant.marketing") {
		t.Errorf("apply with replication 3 on one broker: exit %d, want 1 and the hint once, naming the topics\n%s\n%s", code, out, errOut)
	}
}

// TestApplyNamesTheDenyRule: a deny rule against a planned allow fails
// apply, which names it (output and error); --prune does not remove it.
func TestApplyNamesTheDenyRule(t *testing.T) {
	t.Parallel()
	b, env := rvBroker(t)
	rvAdd(t, b, kafka.ACLEntry{ResourceType: kafka.ResourceTypeTopic, ResourceName: "t.", ResourcePatternType: kafka.PatternTypePrefixed,
		Principal: WildcardPrincipal, Host: "*", Operation: kafka.ACLOperationTypeRead, PermissionType: kafka.ACLPermissionTypeDeny})
	const want = "User:* deny READ TOPIC t. PREFIXED from *"
	for _, args := range [][]string{{"apply"}, {"apply", "--prune"}} {
		code, out, errOut := runProvision(t, env, args...)
		if code != 1 || !strings.Contains(out, "DENY rule takes away what the plan allows: "+want) || !strings.Contains(errOut, "1 deny rule(s) that take away what the plan allows") ||
			!strings.Contains(errOut, want) || strings.Contains(out, "removed ACL") || strings.Contains(out, "matches the plan") {
			t.Errorf("%v with %s: exit %d, want 1 naming it, nothing removed\n%s\n%s", args, want, code, out, errOut)
		}
	}
}
