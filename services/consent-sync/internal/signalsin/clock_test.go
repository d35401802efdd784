package signalsin

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/services/consent-sync/internal/intake"
)

// TestClockRuleUsesBothClocks: a WITHDRAW dated ahead of both the record's
// timestamp and the consumer's clock is moved back to the later of the two
// plus the skew (with the claimed date in its header); a GRANT dated ahead
// of the earlier of the two by more than the skew is refused while the
// other is late enough.
func TestClockRuleUsesBothClocks(t *testing.T) {
	t.Parallel()
	codec := newCodec(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	recordTime, consumerNow := t0.Add(-2*time.Hour), t0.Add(-90*time.Minute)
	c, err := New(Options{ChangesTopic: changesTopic, DLQSuffix: ".dlq", Policy: devPolicy(t), Now: func() time.Time { return consumerNow }}, codec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Process(context.Background(), []kafka.Message{record(0, "sig-subject-3", encode(t, codec, submission(t, gpcJSON)), recordTime)})
	if err != nil || len(out) != 1 {
		t.Fatalf("process: %d records, %v", len(out), err)
	}
	w := decodeChange(t, codec, out[0])
	if w.Action != consent.ActionWithdraw || !w.CapturedAt.Equal(consumerNow.Add(consent.DefaultMaxClockSkew)) {
		t.Errorf("withdrawal %+v, want captured at the consumer's clock + %v", w, consent.DefaultMaxClockSkew)
	}
	if got := header(out[0], intake.HeaderClaimedCapturedAt); got != "2026-12-01T10:00:00.000Z" {
		t.Errorf("claimed header %q", got)
	}

	// A grant dated ahead of the earlier clock by more than the skew is
	// refused: the record is dead-lettered (grant_refused), nothing else
	// to produce.
	out, err = c.Process(context.Background(), []kafka.Message{record(1, "sig-subject-4", encode(t, codec, submission(t, grantJSON)), recordTime)})
	if err != nil || len(out) != 1 || header(out[0], "consentgate.dlq.reason") != ReasonRefusedGrant {
		t.Fatalf("grant dated ahead: %d records %v, want its dead letter (grant_refused)", len(out), err)
	}
}
