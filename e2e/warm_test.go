package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestEmptyRedisRestartPausesUntilRebuilt: Redis is a cache of the consent
// topic. When it restarts empty, the enforcer must not read "no consent
// stored" as "never asked": it pauses (the state watermark is gone) until
// consent-sync has rebuilt the state from the topic, and then decides the
// held event under the customer's real consent.
func TestEmptyRedisRestartPausesUntilRebuilt(t *testing.T) {
	p := startPipeline(t)
	p.produce(t, p.change(t, consent.Change{ChangeID: "w-1", SubjectID: "warm-alice", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: time.Now().Add(-time.Hour)}))
	p.waitConsent(t, "warm-alice", "marketing", consent.StatusGranted)
	p.produce(t, p.email(t, "warm-before", "warm-alice"))
	p.audit(t, 1)

	p.redis.Restart() // empty, as a cache restart would be
	p.produce(t, p.email(t, "warm-after", "warm-alice"))
	rows := p.audit(t, 2)
	for _, r := range rows {
		if r.decision != "PASSED" || r.reason != "granted" {
			t.Errorf("event %s decided %s %s; want PASSED granted (decided before the state was rebuilt?)", r.eventID, r.decision, r.reason)
		}
	}
	if !strings.Contains(p.sync.Output(), "consent state replayed from the topic and the watermark set") {
		t.Error("consent-sync did not report rebuilding the state")
	}
	if !strings.Contains(p.enforce.Output(), "consent state is behind the consent topic") {
		t.Error("the enforcer did not report pausing on the cold state")
	}
}

// TestOlderSnapshotRestorePausesUntilReplayed: Redis comes back from a
// snapshot taken before a withdrawal that consent-sync had already applied
// and committed. The snapshot still holds the grant (and, with the old warm
// marker, looked warm): the enforcer must pause rather than pass the next
// event under the grant, and consent-sync must replay the topic from the
// snapshot's watermark, after which the event is dropped as withdrawn.
func TestOlderSnapshotRestorePausesUntilReplayed(t *testing.T) {
	p := startPipeline(t)
	p.produce(t, p.change(t, consent.Change{ChangeID: "s-1", SubjectID: "snap-bob", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: time.Now().Add(-time.Hour)}))
	p.waitConsent(t, "snap-bob", "marketing", consent.StatusGranted)
	p.produce(t, p.email(t, "snap-before", "snap-bob"))
	p.audit(t, 1)
	p.redis.Snapshot(t)

	p.produce(t, p.change(t, consent.Change{ChangeID: "s-2", SubjectID: "snap-bob", Purpose: "marketing", Action: consent.ActionWithdraw,
		LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: time.Now().Add(-time.Minute)}))
	p.waitConsent(t, "snap-bob", "marketing", consent.StatusWithdrawn)
	p.waitCommitted(t, "consentgate-consent-sync", "consent.changes", 2)

	p.redis.Restart() // back from the snapshot: the grant, not the withdrawal
	p.produce(t, p.email(t, "snap-after", "snap-bob"))
	rows := p.audit(t, 2)
	for _, r := range rows {
		if r.eventID == "snap-after" && r.decision == "PASSED" {
			t.Errorf("event decided %s %s under the restored pre-withdrawal grant; want it held until the replay, then dropped", r.decision, r.reason)
		}
	}
	if !strings.Contains(p.enforce.Output(), "consent state is behind the consent topic") {
		t.Error("the enforcer did not report pausing on the restored state")
	}
	if !strings.Contains(p.sync.Output(), "consent state replayed from the topic and the watermark set") {
		t.Error("consent-sync did not report replaying the state")
	}
}

// waitCommitted waits until group has committed at least n records of topic
// (summed over its partitions).
func (p *pipeline) waitCommitted(t *testing.T, group, topic string, n int64) {
	t.Helper()
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{p.broker.Addr}
	deadline := time.Now().Add(30 * time.Second)
	var sum int64
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := stream.Committed(ctx, cfg, group, []string{topic})
		cancel()
		sum = 0
		for _, off := range c[topic] {
			sum += max(off, 0)
		}
		if err == nil && sum >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s committed %d records of %s within 30s, want %d", group, sum, topic, n)
}
