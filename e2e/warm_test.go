package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
)

// TestEmptyRedisRestartPausesUntilRebuilt: Redis is a cache of the consent
// topic. When it restarts empty, the enforcer must not read "no consent
// stored" as "never asked": it pauses (the warm marker is gone) until
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
	if !strings.Contains(p.sync.Output(), "consent state rebuilt from the topic and marked warm") {
		t.Error("consent-sync did not report rebuilding the state")
	}
	if !strings.Contains(p.enforce.Output(), "consent state is not warm") {
		t.Error("the enforcer did not report pausing on the cold state")
	}
}
