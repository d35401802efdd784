package e2e

// Adversarial review of services/provision (issue 13 part 6), on the
// devbroker with SCRAM and ACLs, through the provision binary.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// rvPolicy has stream topics whose names are prefixes of one another
// (compliant.market, compliant.marketing-eu), as prefixed ACLs would
// confuse them.
const rvPolicy = `purposes:
  - id: market
    description: Market research
    legal_bases: [CONSENT]
  - id: marketing
    description: Email campaigns in the EU
    legal_bases: [CONSENT]
streams:
  - topic: compliant.market
    purposes: [market]
  - topic: compliant.marketing-eu
    purposes: [marketing]
`

type rvCluster struct {
	b       *brokertest.Broker
	bin     string
	env     []string // provision's environment, as admin
	adminKC stream.Config
}

// rvProvisioned starts a devbroker with SCRAM-SHA-512 and ACLs, the users
// admin (superuser), market and marketing-eu, and applies rvPolicy's plan
// with the shop.* names of TestProvisionLeastPrivilege.
func rvProvisioned(t *testing.T) *rvCluster {
	t.Helper()
	const mech = kafkaconn.ScramSHA512
	var users []brokertest.User
	for i, n := range []string{"admin", "market", "marketing-eu"} {
		users = append(users, brokertest.User{Mechanism: mech, Name: n, Password: fmt.Sprintf("rv-%s-pw-%d", n, i), Superuser: n == "admin"})
	}
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Users: users, ACLs: true})
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(rvPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := b.SecurityAs(mech, "admin")
	c := &rvCluster{b: b, bin: proctest.Build(t, "services/provision"),
		env: append([]string{"KAFKA_BROKERS=" + b.Addr, "KAFKA_SASL_MECHANISM=" + mech, "KAFKA_SASL_USERNAME=admin", "KAFKA_SASL_PASSWORD_FILE=" + admin.SASLPasswordFile,
			"POLICY_FILE=" + policyFile, "PROVISION_PARTITIONS=1", "PROVISION_SMALL_PARTITIONS=1", "PROVISION_REPLICATION_FACTOR=1", "PROVISION_MIN_INSYNC_REPLICAS=1"}, provTopics...)}
	c.adminKC = stream.DefaultConfig()
	c.adminKC.Brokers, c.adminKC.ClientID, c.adminKC.Security = []string{b.Addr}, "e2e-rv-admin", admin
	if code, out := c.run(t, "rv-provision-apply", "apply"); code != 0 || !strings.Contains(out, "done: 12 topic(s) created") {
		t.Fatalf("provision apply: exit %d\n%s", code, out)
	}
	return c
}

// run runs provision with c.env (and extra) and returns its exit code and
// output.
func (c *rvCluster) run(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	return c.runWith(t, name, nil, args...)
}

func (c *rvCluster) runWith(t *testing.T, name string, extra []string, args ...string) (int, string) {
	t.Helper()
	p := proctest.Start(t, name, c.bin, append(append([]string{}, c.env...), extra...), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := p.Wait(ctx)
	var ee interface{ ExitCode() int }
	switch {
	case err == nil:
		return 0, p.Output()
	case errors.As(err, &ee):
		return ee.ExitCode(), p.Output()
	}
	t.Fatalf("%s: %v\n%s", name, err, p.Output())
	return -1, ""
}

// TestReviewProvisionLookAlikeNames: the plan's literal topic ACLs and
// prefixed group ACLs keep streams whose names are prefixes of each other
// apart (market / marketing-eu), each principal is refused the other's
// topic and groups and the groups without its dot, and a policy whose
// group prefixes would overlap (compliant.market, compliant.market.eu) is
// refused before anything is applied. This is what was checked and found
// sound; it passes.
func TestReviewProvisionLookAlikeNames(t *testing.T) {
	t.Parallel()
	c := rvProvisioned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	market, eu := c.b.SecurityAs(kafkaconn.ScramSHA512, "market"), c.b.SecurityAs(kafkaconn.ScramSHA512, "marketing-eu")
	if err := fetchAs(ctx, market, c.b.Addr, "compliant.market"); err != nil {
		t.Errorf("market fetching compliant.market: %v", err)
	}
	if err := fetchAs(ctx, eu, c.b.Addr, "compliant.marketing-eu"); err != nil {
		t.Errorf("marketing-eu fetching compliant.marketing-eu: %v", err)
	}
	for _, tt := range []struct {
		who   kafkaconn.Config
		name  string
		topic string
	}{{market, "market", "compliant.marketing-eu"}, {eu, "marketing-eu", "compliant.market"}, {market, "market", "shop.audit"}, {market, "market", "shop.consent"}, {market, "market", "shop.revocations"}, {market, "market", "consent.keys"}} {
		if err := fetchAs(ctx, tt.who, c.b.Addr, tt.topic); !errors.Is(err, kafka.TopicAuthorizationFailed) {
			t.Errorf("%s fetching %s: %v, want %v", tt.name, tt.topic, err, kafka.TopicAuthorizationFailed)
		}
	}
	for _, tt := range []struct {
		who   kafkaconn.Config
		name  string
		group string
		ok    bool
	}{
		{market, "market", "market.research", true}, {market, "market", "marketing-eu.newsletter", false}, {market, "market", "marketing", false},
		{market, "market", "market", false}, {market, "market", "market-research", false},
		{eu, "marketing-eu", "marketing-eu.newsletter", true}, {eu, "marketing-eu", "market.research", false},
	} {
		err := coordinatorAs(ctx, tt.who, c.b.Addr, tt.group)
		if tt.ok && err != nil || !tt.ok && !errors.Is(err, kafka.GroupAuthorizationFailed) {
			t.Errorf("%s finding the coordinator of group %s: %v (want allowed: %v)", tt.name, tt.group, err, tt.ok)
		}
	}

	overlap := filepath.Join(t.TempDir(), "overlap.yaml")
	if err := os.WriteFile(overlap, []byte("purposes:\n  - id: market\nstreams:\n  - topic: compliant.market\n    purposes: [market]\n  - topic: compliant.market.eu\n    purposes: [market]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := c.runWith(t, "rv-provision-overlap", []string{"POLICY_FILE=" + overlap}, "apply")
	if code != 1 || !strings.Contains(out, "overlap") || strings.Contains(out, "created topic") {
		t.Errorf("apply of streams compliant.market and compliant.market.eu: exit %d, want 1 naming the overlapping group prefixes, nothing created\n%s", code, out)
	}
}

// TestReviewProvisionWildcardGrantGoesUnreported: after the plan is
// applied, one more rule, "User:* allow READ TOPIC shop.audit", lets each
// purpose consumer read the audit (every subject's decisions on every
// stream). provision apply, the proof of least privilege, looks for rules
// beyond the plan only under the plan's exact principal names: it exits 0
// saying the cluster matches the plan and never names User:*. It fails
// until apply reports (and fails on) wildcard-principal rules that reach
// the plan's principals.
func TestReviewProvisionWildcardGrantGoesUnreported(t *testing.T) {
	t.Parallel()
	c := rvProvisioned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	market := c.b.SecurityAs(kafkaconn.ScramSHA512, "market")
	if err := fetchAs(ctx, market, c.b.Addr, "shop.audit"); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Fatalf("market fetching shop.audit under the plan: %v, want %v", err, kafka.TopicAuthorizationFailed)
	}
	resp, err := c.adminKC.Client().CreateACLs(ctx, &kafka.CreateACLsRequest{ACLs: []kafka.ACLEntry{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: "shop.audit", ResourcePatternType: kafka.PatternTypeLiteral,
		Principal: "User:*", Host: "*", Operation: kafka.ACLOperationTypeRead, PermissionType: kafka.ACLPermissionTypeAllow}}})
	if err != nil || resp.Errors[0] != nil {
		t.Fatalf("create the User:* rule: %v %v", err, resp)
	}
	if err := fetchAs(ctx, market, c.b.Addr, "shop.audit"); err != nil {
		t.Fatalf("market fetching shop.audit under User:*: %v", err)
	}
	code, out := c.run(t, "rv-provision-after-wildcard", "apply")
	if code == 0 || strings.Contains(out, "already matches the plan") || !strings.Contains(out, "User:*") {
		t.Errorf("provision apply with User:* allowed to read shop.audit (the market principal reads the audit): exit %d; want 1, naming User:*, and no claim that the cluster matches the plan\n%s", code, out)
	}
}
