package signalsin

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReview4SignalsSlowProducerClockBackdatesObjection shows the other
// side of the second review's producer-clock fix (receive time = the
// earlier of the record timestamp and the consumer's clock): a record
// timestamp that is BEHIND is taken as it is, and the clock rule moves a
// WITHDRAW captured after it (plus the skew) back to that timestamp plus
// the skew. On a topic with CreateTime (one not created by provision, or
// created before it planned LogAppendTime; the consumer does not check
// which) a producer whose host clock runs an hour behind stamps the record
// an hour ago; the customer's browser says, correctly, that they objected
// now. The WITHDRAW of sale is produced dated 45 minutes ago, so a grant
// the customer made 30 minutes ago through the HTTP intake stays newer and
// the objection is lost. The HTTP intake, whose receive time is
// consent-sync's clock, keeps the same WITHDRAW at its captured_at. Moving
// a refusal back must not use a clock that is behind consent-sync's: a
// refusal captured no later than the consumer's own clock plus the skew is
// not moved, or the bound for refusals is the later of the two clocks. How
// serious: only on a topic with CreateTime and a slow producer, but then
// silently, for every objection.
func TestReview4SignalsSlowProducerClockBackdatesObjection(t *testing.T) {
	t.Parallel()
	codec := newCodec(t)
	c := newConsumer(t, codec)
	now := time.Now().Truncate(time.Millisecond).UTC()
	behind := now.Add(-time.Hour) // the producer's clock
	sub := signals.Submission{SubjectID: "sig-slow-1", CapturedAt: now, Jurisdiction: "US-CA",
		Signals: []signals.Signal{{Type: "gpc", Value: "1"}}}
	out, err := c.Process(context.Background(), []kafka.Message{record(8, "sig-slow-1", encode(t, codec, sub), behind)})
	if err != nil {
		t.Fatal(err)
	}
	grantedAt := now.Add(-30 * time.Minute) // a grant of sale through the HTTP intake
	var seen bool
	for _, m := range out {
		if m.Topic != changesTopic {
			continue
		}
		ch := decodeChange(t, codec, m)
		if !ch.Action.Restrictive() {
			continue
		}
		seen = true
		if ch.CapturedAt.Before(grantedAt) {
			t.Errorf("the %s of %s captured %s (not after the consumer's clock) is produced dated %s, by a record timestamp an hour behind: it loses to a grant made at %s",
				ch.Action, ch.Purpose, now.Format(time.RFC3339), ch.CapturedAt.Format(time.RFC3339), grantedAt.Format(time.RFC3339))
		}
	}
	if !seen {
		t.Fatalf("setup: GPC in US-CA produced no objection (%d records)", len(out))
	}
}
