package signals

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/signals/tcf"
)

// TestReview2SignalsEpochLastUpdatedVoidsWholeSubmission shows that a TC
// string whose LastUpdated field is 0 (it decodes: tcf.Parse and
// signals.Decode check nothing of the timestamps) makes a DENY dated at the
// Unix epoch, which consent.Change.Validate refuses ("captured_at is not
// after the Unix epoch"). Both intakes validate every change before they
// produce any: POST /v1/consent-signals answers 500 "nothing was recorded"
// and the topic consumer dead-letters the whole record as invalid_change.
// The Sec-GPC objection sent with it (a WITHDRAW of sale, not read from the
// TC string at all) is lost with it: one bad timestamp in one signal costs
// every objection of the submission. A zero (or absurd) LastUpdated must
// either refuse the signal as malformed with a reason (400 / malformed
// signal) or not date the refusal; it must never produce an invalid change.
func TestReview2SignalsEpochLastUpdatedVoidsWholeSubmission(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	s := tc(nil, nil, nil)
	s.IsServiceSpecific = true
	s.Created, s.LastUpdated = time.UnixMilli(0).UTC(), time.UnixMilli(0).UTC() // both fields 0 in the string
	sub := Submission{SubjectID: "customer-epoch", CapturedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Jurisdiction: "DE",
		Signals: []Signal{{Type: TypeTCF, Value: "cookie"}, {Type: TypeGPC, Value: "1"}}}
	cs := ChangesFrom(pol, sub, &Decoded{TCF: []*tcf.TCString{s}, GPC: true})
	if len(cs) == 0 {
		t.Fatal("setup: no changes")
	}
	for _, c := range cs {
		if err := c.Validate(); err != nil {
			t.Errorf("the %s of %s (captured_at %s) is refused by Validate: %v; the intake then records none of the submission's %d changes",
				c.Action, c.Purpose, c.CapturedAt.Format(time.RFC3339), err, len(cs))
		}
	}
}
