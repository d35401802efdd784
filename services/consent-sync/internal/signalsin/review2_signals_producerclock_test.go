package signalsin

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReview2SignalsProducerClockDefeatsClockRule shows that the clock rule
// on the consent.signals topic bounds a change by the record's timestamp,
// which is the producer's own clock (CreateTime: kafka-go and every other
// client stamp time.Now() of the producing host; provision plans the topic
// without message.timestamp.type=LogAppendTime, and the consumer has no
// clock of its own). The rule exists for a wrong clock ("a GRANT dated that
// far ahead is refused; check the clock of whatever captured it"), but a
// producer whose host clock runs a year ahead stamps both captured_at and
// the record a year ahead, so the GRANT passes unbounded and is written to
// the consent topic with that timestamp, where consent-sync's consumer
// bounds it against the same number. The grant then beats every withdrawal
// the customer makes through the HTTP intake (dated by a correct clock) for
// a year. POST /v1/consent-signals refuses the same submission (its receive
// time is consent-sync's clock). A grant from the topic must not be dated
// after the time consent-sync received it plus the skew.
func TestReview2SignalsProducerClockDefeatsClockRule(t *testing.T) {
	t.Parallel()
	codec := newCodec(t)
	c := newConsumer(t, codec)
	ahead := time.Now().Add(365 * 24 * time.Hour).Truncate(time.Millisecond).UTC() // the producer's clock
	sub := signals.Submission{SubjectID: "sig-clock-1", CapturedAt: ahead, Signals: []signals.Signal{{Type: "consent_mode",
		States: map[string]string{"ad_user_data": "granted", "ad_personalization": "granted"}}}}
	out, err := c.Process(context.Background(), []kafka.Message{record(7, "sig-clock-1", encode(t, codec, sub), ahead)})
	if err != nil {
		t.Fatal(err)
	}
	limit := time.Now().Add(consent.DefaultMaxClockSkew)
	for _, m := range out {
		if m.Topic != changesTopic {
			continue
		}
		ch := decodeChange(t, codec, m)
		if ch.Action == consent.ActionGrant && ch.CapturedAt.After(limit) {
			t.Errorf("a %s GRANT from a producer whose clock is a year ahead is produced dated %s (record timestamp %s), past now+skew %s: it outranks every withdrawal for a year",
				ch.Purpose, ch.CapturedAt.Format(time.RFC3339), m.Time.Format(time.RFC3339), limit.Format(time.RFC3339))
		}
	}
}
