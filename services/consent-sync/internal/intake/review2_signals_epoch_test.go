package intake

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// review2TC encodes a TCF v2.2 TC string (policy version 4, service
// specific, no vendors, no purpose consent, no segments after the core)
// whose Created and LastUpdated fields hold the given deciseconds.
func review2TC(deciseconds int64) string {
	var bits strings.Builder
	put := func(v int64, n int) {
		s := strconv.FormatInt(v, 2)
		bits.WriteString(strings.Repeat("0", n-len(s)) + s)
	}
	put(2, 6)            // Version
	put(deciseconds, 36) // Created
	put(deciseconds, 36) // LastUpdated
	put(7, 12)           // CmpId
	put(1, 12)           // CmpVersion
	put(1, 6)            // ConsentScreen
	put(4, 6)            // ConsentLanguage E
	put(13, 6)           //                 N
	put(50, 12)          // VendorListVersion
	put(4, 6)            // TcfPolicyVersion
	put(1, 1)            // IsServiceSpecific
	put(0, 1)            // UseNonStandardTexts
	put(0, 12+24+24)     // special features, purpose consents, purpose LI: none
	put(0, 1)            // PurposeOneTreatment
	put(3, 6)            // PublisherCC D
	put(4, 6)            //             E
	put(0, 16+1+16+1+12) // vendor consents, vendor LI (MaxVendorId 0, bit field), no restrictions
	const al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	s := bits.String()
	for len(s)%6 != 0 {
		s += "0"
	}
	var out strings.Builder
	for i := 0; i < len(s); i += 6 {
		v, _ := strconv.ParseInt(s[i:i+6], 2, 8)
		out.WriteByte(al[v])
	}
	return out.String()
}

// TestReview2SignalsEpochTCStringLosesTheGPCObjection posts, to the real
// handler against a real broker, a submission whose TC string decodes but
// has Created = LastUpdated = 0 (nothing in tcf.Parse or signals.Decode
// checks the timestamps), sent with Sec-GPC: 1. The TC string's refusals
// become DENYs dated at the Unix epoch, which consent.Change.Validate
// refuses, and the handler answers 500 "nothing was recorded": the GPC
// WITHDRAW of sale, which does not depend on the TC string at all, is lost
// with them, and sending it again fails the same way. A TC string whose
// timestamps make no valid change must be refused as a malformed signal
// (400 naming signals[0]), or not date what it decides; either way the
// submission must not be answered 500 with its objections unrecorded.
func TestReview2SignalsEpochTCStringLosesTheGPCObjection(t *testing.T) {
	t.Parallel()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	const topic = "intake.review2.epoch"
	broker.CreateTopics(t, 1, topic)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	pol := devPolicy(t)
	known := map[string]bool{}
	for _, p := range pol.Purposes {
		known[p.ID] = true
	}
	now := time.Date(2026, 12, 1, 10, 0, 5, 0, time.UTC)
	h := New(Options{Topic: topic, ProduceTimeout: 10 * time.Second, Purposes: known, Policy: pol, Now: func() time.Time { return now }}, newCodec(t), kc)
	defer h.Close()
	mux := http.NewServeMux()
	mux.Handle(SignalsPath, h.Signals())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// Setup: the same string with a real date is a valid signal (202).
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli() / 100
	good := `{"subject_id":"review2-epoch-ok","captured_at":"2026-12-01T10:00:00.000Z","jurisdiction":"DE",
		"signals":[{"type":"tcf","value":"` + review2TC(day) + `"},{"type":"gpc","value":"1"}]}`
	if a := post(t, srv.URL+SignalsPath, http.MethodPost, "application/json", good); a.code != http.StatusAccepted {
		t.Fatalf("setup: the TC string dated %d ds: status %d (%v)", day, a.code, a.body)
	}

	body := `{"subject_id":"review2-epoch","captured_at":"2026-12-01T10:00:00.000Z","jurisdiction":"DE",
		"signals":[{"type":"tcf","value":"` + review2TC(0) + `"},{"type":"gpc","value":"1"}]}`
	a := post(t, srv.URL+SignalsPath, http.MethodPost, "application/json", body)
	switch a.code {
	case http.StatusAccepted:
		for _, c := range a.body["changes"].([]any) {
			if ch := c.(map[string]any); ch["purpose"] == "sale" && ch["action"] == "WITHDRAW" {
				return // the objection is recorded
			}
		}
		t.Errorf("202 without the sale WITHDRAW of Sec-GPC: %v", a.body)
	case http.StatusBadRequest:
		// refused as malformed, with a reason: the sender can tell and fix it
	default:
		t.Errorf("status %d (%v): the Sec-GPC objection sent with a TC string dated 0 is not recorded", a.code, a.body)
	}
}
