package shred

import (
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// 4b3affd orders a marker without erasure_captured_at (written before the
// field) by its created_at, "no earlier than the erasure was captured".
// It is also later than every erasure captured between the ERASE and the
// moment consent-sync marked it (consent-sync lagging, a customer erased
// twice). Such a second ERASE e2, older than the legacy marker's stand-in
// order, is then never marked (Ring.Erase: the ring holds a "newer" one),
// and an enforcer whose state knows e2 (the store's newest erasure) and a
// grant given after it gets ErrStaleErasure for good: no consent change
// but a new ERASE will ever make the state know an erasure as new as the
// legacy marker's created_at. (Encoded here with today's schema and a null
// erasure_captured_at, which the schema allows, since records of the old
// schema are skipped altogether: TestReview3ShredKeysWrittenBeforeTheSchemaChangeAreLost.)
func TestReview3ShredLegacyMarkerOrderedByWriteTimeStallsALaterErasure(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	const subject = "subject-legacy-marker-1"
	// e1 captured at erasureEpoch, marked (by the old build) 10 minutes later.
	markedAt := erasureEpoch.Add(10 * time.Minute)
	boot := openRing(t, ringConfig(b, nil))
	val, err := boot.codec.encode(event{kind: KindSubjectErased, subject: subject, createdAt: markedAt, changeID: "e1"})
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: keysTopic, Balancer: Balancer{}, RequiredAcks: kafka.RequireAll,
		Transport: b.Security.Transport("review3")}
	defer w.Close()
	if err := w.WriteMessages(tctx(t), kafka.Message{Key: erasedKafkaKey(subject), Value: val}); err != nil {
		t.Fatal(err)
	}

	// e2, captured 5 minutes after e1 (before e1 was marked), consumed by
	// the new consent-sync; then the subject grants again.
	e2 := Erasure{At: erasureEpoch.Add(5 * time.Minute), ChangeID: "e2"}
	syncer := openRing(t, ringConfig(b, nil))
	if err := syncer.Erase(tctx(t), subject, e2); err != nil {
		t.Fatal(err)
	}
	enforcer := openRing(t, ringConfig(b, kek))
	_, err = enforcer.KeysKnowing(tctx(t), map[string]Erasure{subject: e2})
	if errors.Is(err, ErrStaleErasure) {
		t.Fatalf("a state knowing the store's newest erasure e2 gets ErrStaleErasure for good: the legacy marker of the older "+
			"e1 is ordered by when it was written (%s), after e2 (%s)", markedAt.Format(time.RFC3339), e2.At.Format(time.RFC3339))
	}
	if err != nil {
		t.Fatal(err)
	}
}
