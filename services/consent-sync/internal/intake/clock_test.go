package intake

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/services/consent-sync/internal/apply"
)

// TestFastClockWithdrawalIsApplied posts a GRANT and then a WITHDRAW from a
// client whose clock runs five minutes fast, with a strict one-minute skew
// bound, and feeds what the intake produced through the real apply.Syncer
// and Store on a real Redis: the withdrawal must be applied (not
// dead-lettered) and win over the grant.
func TestFastClockWithdrawalIsApplied(t *testing.T) {
	t.Parallel()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	const topic = "intake.clock"
	broker.CreateTopics(t, 1, topic)
	codec := newCodec(t)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	const skew = time.Minute
	h := New(Options{Topic: topic, ProduceTimeout: 10 * time.Second, MaxClockSkew: skew, Purposes: catalogue}, codec, kc)
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	now := time.Now().UTC().Truncate(time.Millisecond)
	grant := `{"change_id":"g1","subject_id":"s-clock","purpose":"marketing","action":"GRANT","legal_basis":"CONSENT",
"source":"preference-centre","notice_version":"1","captured_at":"` + now.Add(-time.Hour).Format(time.RFC3339Nano) + `"}`
	withdraw := `{"change_id":"w1","subject_id":"s-clock","purpose":"marketing","action":"WITHDRAW",
"captured_at":"` + now.Add(5*time.Minute).Format(time.RFC3339Nano) + `"}`
	if a := post(t, srv.URL, http.MethodPost, "application/json", grant); a.code != http.StatusAccepted || a.body["captured_at_adjusted"] != nil {
		t.Fatalf("grant: status %d, want 202 unadjusted (%v)", a.code, a.body)
	}
	before := time.Now().Truncate(time.Millisecond)
	a := post(t, srv.URL, http.MethodPost, "application/json", withdraw)
	after := time.Now()
	if a.code != http.StatusAccepted || a.body["captured_at_adjusted"] != true {
		t.Fatalf("fast withdrawal: status %d, want 202 adjusted (%v)", a.code, a.body)
	}
	// A GRANT from the same fast clock is refused: it would give consent.
	fastGrant := strings.Replace(strings.Replace(grant, `"g1"`, `"g2"`, 1), now.Add(-time.Hour).Format(time.RFC3339Nano), now.Add(5*time.Minute).Format(time.RFC3339Nano), 1)
	if a := post(t, srv.URL, http.MethodPost, "application/json", fastGrant); a.code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(a.body), "captured_at") {
		t.Fatalf("fast grant: status %d, want 400 on captured_at (%v)", a.code, a.body)
	}
	msgs := broker.ReadAll(t, topic, 500*time.Millisecond, 20*time.Second)
	if len(msgs) != 2 {
		t.Fatalf("topic holds %d records, want 2", len(msgs))
	}
	// The withdrawal was produced at the bound, stamped with its receive
	// time, the date sent kept in a header.
	w := msgs[1]
	if w.Time.Before(before) || w.Time.After(after) {
		t.Errorf("record time %v not the receive time (in %v..%v)", w.Time, before, after)
	}
	if claimed, _ := stream.Header(w, HeaderClaimedCapturedAt); claimed != now.Add(5*time.Minute).Format(rfc3339Milli) {
		t.Errorf("claimed captured_at header %q", claimed)
	}

	rs := redistest.Start(t)
	store := consent.NewStore(rs.Client(t), redistest.PrefixFor(t))
	s := apply.New(apply.Options{RevocationsTopic: "consent.revocations", DLQSuffix: ".dlq", MaxClockSkew: skew}, codec, store)
	out, err := s.Process(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out {
		if m.Topic == topic+".dlq" {
			r, _ := stream.Header(m, apply.HeaderDLQReason)
			e, _ := stream.Header(m, apply.HeaderDLQError)
			t.Errorf("the intake answered 202 but consent-sync dead-lettered the change: %s: %s", r, e)
		}
	}
	states, err := store.Lookup(context.Background(), []string{"s-clock"})
	if err != nil {
		t.Fatal(err)
	}
	st := states["s-clock"]
	if st == nil {
		t.Fatal("nothing stored")
	}
	ps := st.Purposes["marketing"]
	if ps.Status != consent.StatusWithdrawn || ps.ChangeID != "w1" {
		t.Fatalf("stored %s by %s, want withdrawn by w1", ps.Status, ps.ChangeID)
	}
	if want := w.Time.Truncate(time.Millisecond).Add(skew); !ps.CapturedAt.Equal(want) {
		t.Errorf("stored captured_at %v, want the bound %v", ps.CapturedAt, want)
	}
	if v := st.Check("marketing", time.Now()); v.Allowed {
		t.Errorf("marketing still allowed after the withdrawal: %+v", v)
	}
}
