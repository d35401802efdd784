package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// encrypting is twoStreams with an encrypt rule on one stream.
const encrypting = `purposes:
  - id: marketing
  - id: analytics
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    treatments:
      - category: user.contact.email
        action: encrypt
        encryption: deterministic
  - topic: compliant.analytics
    purposes: [analytics]
`

// keysLines are principal's ACL lines on topic.
func keysLines(p *Plan, principal, topic string) []string {
	var out []string
	for _, l := range aclLines(p, principal) {
		if strings.HasSuffix(l, " TOPIC "+topic) {
			out = append(out, l)
		}
	}
	return out
}

// TestKeysTopicACLs: who may do what on the keys topic. The enforcer reads
// and writes it only when the policy encrypts (it creates data keys only
// then); consent-sync always (an erasure marks and tombstones); the ledger
// reads it; each PROVISION_KEY_READER_PRINCIPALS reads it and nothing else;
// no one else has any rule on it.
func TestKeysTopicACLs(t *testing.T) {
	t.Parallel()
	rw := sorted("READ TOPIC consent.keys", "WRITE TOPIC consent.keys")
	tests := []struct {
		name    string
		policy  string
		readers []string
		want    map[string][]string
	}{
		{"a policy that encrypts", encrypting, nil, map[string][]string{
			"User:enforcer": rw, "User:consent-sync": rw, "User:ledger": {"READ TOPIC consent.keys"}}},
		{"a policy that does not encrypt", twoStreams, nil, map[string][]string{
			"User:enforcer": nil, "User:consent-sync": rw, "User:ledger": {"READ TOPIC consent.keys"}}},
		{"key readers", encrypting, []string{"User:crm-decrypter", "User:lake"}, map[string][]string{
			"User:enforcer": rw, "User:consent-sync": rw, "User:ledger": {"READ TOPIC consent.keys"},
			"User:crm-decrypter": {"READ TOPIC consent.keys"}, "User:lake": {"READ TOPIC consent.keys"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			c.KeyReaderPrincipals = tt.readers
			p := derive(t, tt.policy, c)
			for principal, want := range tt.want {
				if got := keysLines(p, principal, "consent.keys"); !slices.Equal(got, want) {
					t.Errorf("%s on consent.keys: %q, want %q", principal, got, want)
				}
			}
			for _, a := range p.ACLs {
				if _, listed := tt.want[a.Principal]; a.ResourceName == "consent.keys" && !listed {
					t.Errorf("%s has a rule on the keys topic: %s", a.Principal, a)
				}
			}
			for _, r := range tt.readers {
				if got := aclLines(p, r); !slices.Equal(got, []string{"READ TOPIC consent.keys"}) {
					t.Errorf("key reader %s may %q, want only READ on the keys topic", r, got)
				}
				if !slices.Contains(p.Principals, Principal{r, "key reader"}) {
					t.Errorf("key reader %s not among the plan's principals %v", r, p.Principals)
				}
			}
			kt, ok := p.topic("consent.keys")
			if !ok || kt.Partitions != c.SmallPartitions || !kt.FixedPartitions || configString(kt.Configs) != "cleanup.policy=compact max.compaction.lag.ms=86400000 min.insync.replicas=2 retention.bytes=-1 retention.ms=-1 segment.ms=3600000 unclean.leader.election.enable=false" {
				t.Errorf("keys topic %+v (planned %v)", kt, ok)
			}
		})
	}
}

// TestNoKeysTopic: KEYS_TOPIC set to empty plans no keys topic and no rule
// on one, even for a policy that encrypts; key readers are then refused
// (they would be given nothing to read).
func TestNoKeysTopic(t *testing.T) {
	t.Parallel()
	pf := writePolicy(t, encrypting)
	code, out, errOut := runProvision(t, map[string]string{"POLICY_FILE": pf, "KEYS_TOPIC": ""}, "plan", "--json")
	if code != 0 {
		t.Fatalf("plan with KEYS_TOPIC empty: exit %d\n%s", code, errOut)
	}
	var p Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	with := derive(t, encrypting, DefaultConfig())
	for _, tp := range p.Topics {
		if tp.Name == "consent.keys" || tp.FixedPartitions || strings.Contains(tp.Configs["cleanup.policy"], "compact") {
			t.Errorf("KEYS_TOPIC empty, yet topic %+v", tp)
		}
	}
	for _, a := range p.ACLs {
		if a.ResourceName == "consent.keys" {
			t.Errorf("KEYS_TOPIC empty, yet %s", a)
		}
	}
	// Exactly the keys topic and its five rules are gone.
	if len(p.Topics) != len(with.Topics)-1 || len(p.ACLs) != len(with.ACLs)-5 {
		t.Errorf("KEYS_TOPIC empty: %d topics, %d ACLs; with it %d, %d: want one topic and 5 rules fewer", len(p.Topics), len(p.ACLs), len(with.Topics), len(with.ACLs))
	}
	// The flag wins over the empty variable.
	code, out, _ = runProvision(t, map[string]string{"POLICY_FILE": pf, "KEYS_TOPIC": ""}, "plan", "--keys-topic=tenant.keys")
	if code != 0 || !strings.Contains(out, "tenant.keys") {
		t.Errorf("--keys-topic=tenant.keys with KEYS_TOPIC empty: exit %d\n%s", code, out)
	}
	code, out, errOut = runProvision(t, map[string]string{"POLICY_FILE": pf, "KEYS_TOPIC": "", "PROVISION_KEY_READER_PRINCIPALS": "User:crm"}, "plan")
	if code != 1 || out != "" || !strings.Contains(errOut, "PROVISION_KEY_READER_PRINCIPALS is set but KEYS_TOPIC is empty") {
		t.Errorf("key readers without a keys topic: exit %d, stdout %q\n%s", code, out, errOut)
	}
}

// TestApplyRefusesADifferentKeysTopic: a keys topic that exists with
// cleanup.policy=delete (its tombstones would not erase; its keys would
// expire), or with another partition count, is reported as differing and
// fails the apply; apply never changes its partitions, and says to fix
// the setting, not the topic.
func TestApplyRefusesADifferentKeysTopic(t *testing.T) {
	t.Parallel()
	compact := map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1", "retention.ms": "-1", "retention.bytes": "-1", "unclean.leader.election.enable": "false"}
	deleted := map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "1", "retention.ms": "-1", "retention.bytes": "-1", "unclean.leader.election.enable": "false"}
	tests := []struct {
		name       string
		partitions int
		config     map[string]string
		want       []string
		notWant    string
	}{
		{"deleted, not compacted", 1, deleted, []string{"topic consent.keys DIFFERS from the plan: cleanup.policy=delete, the plan has compact"}, "partitions"},
		{"another partition count", 2, compact, []string{"topic consent.keys DIFFERS from the plan: 2 partitions, the plan has 1: this topic's partition count must never change",
			"do not alter the topic, set PROVISION_SMALL_PARTITIONS=2"}, "cleanup.policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, brokertest.Options{})
			b.CreateTopicsWithConfig(t, tt.partitions, tt.config, "consent.keys")
			env := provisionEnv(b, writePolicy(t, encrypting), "KAFKA_SASL_MECHANISM=", "KAFKA_SASL_USERNAME=", "KAFKA_SASL_PASSWORD_FILE=", "PROVISION_ACLS=false")
			for range 2 { // and again: still refused, still unchanged
				code, out, errOut := runProvision(t, env, "apply")
				if code != 1 || strings.Contains(out, "topic consent.keys exists as planned") || !strings.Contains(errOut, "consent.keys") {
					t.Fatalf("apply over a differing keys topic: exit %d, want 1 naming it\n%s\n%s", code, out, errOut)
				}
				line := ""
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, "topic consent.keys ") {
						line = l
					}
				}
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("apply does not say %q:\n%s", w, out)
					}
				}
				if strings.Contains(line, tt.notWant) {
					t.Errorf("apply reports a %s difference that is not there: %s", tt.notWant, line)
				}
			}
			kc := stream.DefaultConfig()
			kc.Brokers = []string{b.Addr}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			have, err := metadata(ctx, kc.Client(), []string{"consent.keys"})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(have["consent.keys"].Partitions); n != tt.partitions {
				t.Errorf("the keys topic has %d partitions after apply, it had %d: apply must never change them", n, tt.partitions)
			}
		})
	}
}
