package intake

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestReviewSignalsFutureDateKeepsWithdrawal shows that a signal
// submission dated far ahead of its receipt loses its WITHDRAW because it
// also makes a GRANT. The clock rule (pkg/consent doc.go) is that "a DENY,
// WITHDRAW or ERASE is never rejected for its date": it is bounded to
// receipt + skew and recorded, only a GRANT dated that far ahead is
// refused. The signals intake runs the rule per change but answers 400 for
// the whole submission as soon as one GRANT fails it, so the GPC opt-out
// of sale in the same submission is never produced and the sale grant
// recorded before stays in force. Against a real broker: after the POST
// the topic must hold the sale WITHDRAW (the grant may well be refused).
func TestReviewSignalsFutureDateKeepsWithdrawal(t *testing.T) {
	t.Parallel()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	const topic = "intake.signals.review.clock"
	broker.CreateTopics(t, 1, topic)
	codec := newCodec(t)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	pol := devPolicy(t)
	known := map[string]bool{}
	for _, p := range pol.Purposes {
		known[p.ID] = true
	}
	now := time.Date(2026, 12, 1, 10, 0, 5, 0, time.UTC)
	h := New(Options{Topic: topic, ProduceTimeout: 10 * time.Second, Purposes: known, Policy: pol, Now: func() time.Time { return now }}, codec, kc)
	defer h.Close()
	srv := httptest.NewServer(h.Signals())
	defer srv.Close()

	// A year ahead: GPC withdraws sale, Consent Mode grants marketing.
	const body = `{"subject_id":"sig-clock-1","captured_at":"2027-12-01T10:00:00.000Z","jurisdiction":"US-CA",
		"signals":[{"type":"gpc","value":"1"},{"type":"consent_mode","states":{"ad_user_data":"granted","ad_personalization":"granted"}}]}`
	a := post(t, srv.URL, http.MethodPost, "application/json", body)

	withdrawn := false
	for _, m := range broker.ReadAll(t, topic, 500*time.Millisecond, 20*time.Second) {
		rec, err := codec.Decode(context.Background(), m.Value)
		if err != nil {
			t.Fatal(err)
		}
		c, err := consent.ChangeFromNative(rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		withdrawn = withdrawn || (c.Purpose == "sale" && c.Action == consent.ActionWithdraw)
	}
	if !withdrawn {
		t.Errorf("answer %d %v; the topic holds no WITHDRAW of sale: the GPC opt-out was dropped with the future-dated grant", a.code, a.body)
	}
}
