package signalsin

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestReview2SignalsProducerClockOnBroker is
// TestReview2SignalsProducerClockDefeatsClockRule through a real broker
// (pkg/brokertest): a producer whose host clock runs a year ahead writes a
// signal record whose timestamp and captured_at are both a year ahead; the
// broker keeps the producer's timestamp, the runner produces the GRANT
// dated a year ahead to the consent topic, with that timestamp, and commits.
// Nothing in the path compares with consent-sync's own clock.
func TestReview2SignalsProducerClockOnBroker(t *testing.T) {
	t.Parallel()
	wd := newWorld(t, brokertest.Options{})
	ahead := time.Now().Add(365 * 24 * time.Hour).Truncate(time.Millisecond).UTC()
	sub := signals.Submission{SubjectID: "sig-clock-b", CapturedAt: ahead, Signals: []signals.Signal{{Type: "consent_mode",
		States: map[string]string{"ad_user_data": "granted", "ad_personalization": "granted"}}}}
	wd.produce(t, record(0, "sig-clock-b", encode(t, wd.codec, sub), ahead))
	const group = "review2-signals-clock"
	r := stream.NewReader(wd.kc, readerConfig(group))
	defer r.Close()
	_, run := wd.run(t, r, wd.w)
	until(t, "the group committed the record", func() bool { return wd.committed(t, group) == 1 })
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	msgs, _ := wd.changes(t)
	limit := time.Now().Add(consent.DefaultMaxClockSkew)
	for _, m := range msgs {
		ch := decodeChange(t, wd.codec, m)
		if ch.Action == consent.ActionGrant && ch.CapturedAt.After(limit) {
			t.Errorf("the consent topic holds a %s GRANT dated %s (record timestamp %s), past consent-sync's now+skew %s",
				ch.Purpose, ch.CapturedAt.Format(time.RFC3339), m.Time.Format(time.RFC3339), limit.Format(time.RFC3339))
		}
	}
}
