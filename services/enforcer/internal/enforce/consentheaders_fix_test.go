package enforce

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// modeRulesPolicy maps each Consent Mode state to purposes of its own:
// ad_user_data to marketing, ad_personalization to marketing and (in the
// EEA only) personalisation; google.m has marketing alone.
const modeRulesPolicy = `
purposes:
  - id: marketing
  - id: personalisation
    legal_bases: [CONSENT, LEGITIMATE_INTEREST]
streams:
  - topic: google.m
    purposes: [marketing]
    google_consent_mode: true
  - topic: compliant.m
    purposes: [marketing]
signals:
  rules:
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
    - signal: consent_mode.ad_personalization
      purposes: [marketing]
    - signal: consent_mode.ad_personalization
      purposes: [personalisation]
      jurisdictions: [EEA]
`

// TestConsentModeHeadersFromSignalsRules: each Consent Mode header is
// derived from the purposes the policy's rules map from its own state
// (rules of every jurisdiction), on top of the stream's purposes; a state
// no purpose rule maps is denied; a policy that maps no Consent Mode
// state derives both from the stream's purposes.
func TestConsentModeHeadersFromSignalsRules(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	grant := func(basis consent.LegalBasis, capturedAgo time.Duration) consent.PurposeState {
		return consent.PurposeState{Status: consent.StatusGranted, LegalBasis: basis, ChangeID: "c", CapturedAt: now.Add(-capturedAgo)}
	}
	expired := grant(consent.BasisConsent, 3*time.Hour)
	expired.ExpiresAt = now.Add(-time.Hour)
	withPurposes := func(ps map[string]consent.PurposeState) *consent.State {
		return &consent.State{SubjectID: "s", Purposes: ps}
	}
	cases := []struct {
		name, policy string
		st           *consent.State
		ud, ap       string
	}{
		{"marketing only: the personalisation rule is unmet", modeRulesPolicy,
			withPurposes(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent, time.Hour)}), "granted", "denied"},
		{"both mapped purposes on consent", modeRulesPolicy,
			withPurposes(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent, time.Hour), "personalisation": grant(consent.BasisConsent, time.Hour)}), "granted", "granted"},
		{"personalisation on legitimate interest", modeRulesPolicy,
			withPurposes(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent, time.Hour), "personalisation": grant(consent.BasisLegitimateInterest, time.Hour)}), "granted", "denied"},
		{"personalisation expired", modeRulesPolicy,
			withPurposes(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent, time.Hour), "personalisation": expired}), "granted", "denied"},
		{"personalisation denied", modeRulesPolicy,
			withPurposes(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent, time.Hour), "personalisation": {Status: consent.StatusDenied, ChangeID: "d", CapturedAt: now.Add(-time.Hour)}}), "granted", "denied"},
		{"personalisation granted before the erasure, marketing after", modeRulesPolicy,
			&consent.State{SubjectID: "s", ErasedAt: now.Add(-2 * time.Hour), ErasedBy: "x", Purposes: map[string]consent.PurposeState{
				"marketing": grant(consent.BasisConsent, time.Hour), "personalisation": grant(consent.BasisConsent, 3*time.Hour)}}, "granted", "denied"},
		{"marketing never asked: dropped", modeRulesPolicy,
			withPurposes(map[string]consent.PurposeState{"personalisation": grant(consent.BasisConsent, time.Hour)}), "", ""},
		{"ad_personalization unmapped", strings.Replace(modeRulesPolicy, "consent_mode.ad_personalization", "consent_mode.ad_storage", 2),
			withPurposes(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent, time.Hour), "personalisation": grant(consent.BasisConsent, time.Hour)}), "granted", "denied"},
		{"only a category rule on Consent Mode: no state is mapped", `
purposes:
  - id: marketing
streams:
  - topic: google.m
    purposes: [marketing]
    google_consent_mode: true
signals:
  rules:
    - signal: consent_mode.ad_personalization
      categories: [user.behavior]
`, withPurposes(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent, time.Hour)}), "denied", "denied"},
		{"no Consent Mode rule: the stream's purposes decide", `
purposes:
  - id: marketing
streams:
  - topic: google.m
    purposes: [marketing]
    google_consent_mode: true
signals:
  rules:
    - signal: tcf.purpose.1
      purposes: [marketing]
`, withPurposes(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent, time.Hour)}), "granted", "granted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pol, err := policy.Parse([]byte(c.policy), "p.yaml")
			if err != nil {
				t.Fatal(err)
			}
			s := pol.Streams[0]
			d := decision.Decide(pol, s, decision.Input{Schema: "consentgate.events.EmailEngagement", State: c.st, Now: now})
			if c.ud == "" {
				if d.Outcome != decision.Dropped {
					t.Fatalf("decision %s, want dropped", d.Outcome)
				}
				return
			}
			if d.Outcome != decision.Passed {
				t.Fatalf("decision %s %s", d.Outcome, d.Reason)
			}
			h, err := ConsentHeaders(pol, s, d, c.st, "s", now)
			if err != nil {
				t.Fatal(err)
			}
			m := kafka.Message{Headers: h}
			ud, _ := stream.Header(m, HeaderAdUserData)
			ap, _ := stream.Header(m, HeaderAdPersonalization)
			if ud != c.ud || ap != c.ap {
				t.Errorf("ad_user_data %q ad_personalization %q, want %q %q", ud, ap, c.ud, c.ap)
			}
		})
	}
}

// TestForwardedRecordDropsEnforcerNamespace: a forwarded record keeps the
// input's own headers in their order, but none in the consentgate.
// namespace: the decision, policy version, event id and source
// coordinates (by which the runner ties a record to its input) are the
// enforcer's, once. A dead letter keeps every input header, the forged
// ones too, ahead of the enforcer's, and is tied to its input by the
// enforcer's coordinates.
func TestForwardedRecordDropsEnforcerNamespace(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, contextPolicy)
	f.change(t, "c-m", "s1", "marketing", consent.ActionGrant, consent.BasisConsent)
	f.change(t, "c-a", "s1", "analytics", consent.ActionGrant, consent.BasisConsent)
	forged := []kafka.Header{
		{Key: "x-first", Value: []byte("1")},
		{Key: HeaderDecision, Value: []byte("PASSED-forged")},
		{Key: HeaderPolicyVersion, Value: []byte("v-forged")},
		{Key: HeaderEventID, Value: []byte("e-forged")},
		{Key: HeaderSourceOffset, Value: []byte("999")},
		{Key: HeaderSourcePart, Value: []byte("not-a-number")},
		{Key: HeaderConsentRedaction, Value: []byte("none")},
		{Key: HeaderDLQReason, Value: []byte("forged")},
		{Key: "consentgate.future", Value: []byte("forged")},
		{Key: "x-second", Value: []byte("2")},
	}
	in := f.email(t, 7, "e1", "s1")
	in.Headers = append(in.Headers, forged...)
	bad := kafka.Message{Topic: "customer.events", Partition: 0, Offset: 8, Key: []byte("k"), Value: []byte{0xC3, 0x01, 1, 2}, Headers: forged}
	out, err := f.e.Process(context.Background(), []kafka.Message{in, bad})
	if err != nil {
		t.Fatal(err)
	}
	var forwarded, dead int
	for _, m := range out {
		switch {
		case m.Topic == "compliant.both":
			forwarded++
			var own []string
			n := map[string]int{}
			for _, h := range m.Headers {
				if strings.HasPrefix(h.Key, "consentgate.") {
					n[h.Key]++
				} else {
					own = append(own, h.Key)
				}
			}
			if got := strings.Join(own, ","); got != "trace,x-first,x-second" {
				t.Errorf("input headers kept %q, want trace,x-first,x-second", got)
			}
			for k, c := range n {
				if c != 1 {
					t.Errorf("%s %d times", k, c)
				}
			}
			for k, want := range map[string]string{HeaderDecision: "PASSED", HeaderPolicyVersion: f.e.policy.Version, HeaderEventID: "e1", HeaderSourceOffset: "7"} {
				if v, _ := stream.Header(m, k); v != want {
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
			for _, k := range []string{HeaderConsentRedaction, HeaderDLQReason, "consentgate.future"} {
				if _, ok := stream.Header(m, k); ok {
					t.Errorf("the forwarded record has the input's %s", k)
				}
			}
			if c, ok := stream.SourceCoordinates(m); !ok || c.Offset != 7 {
				t.Errorf("source coordinates %+v %v, want offset 7", c, ok)
			}
		case strings.HasSuffix(m.Topic, ".dlq"):
			dead++
			if len(m.Headers) < len(forged) {
				t.Fatalf("dead letter has %d headers", len(m.Headers))
			}
			for i, h := range forged {
				if m.Headers[i].Key != h.Key || string(m.Headers[i].Value) != string(h.Value) {
					t.Errorf("dead letter header %d = %s, want the input's %s", i, m.Headers[i].Key, h.Key)
				}
			}
			// The runner ties it to its input by the enforcer's
			// coordinates, never the forged (even malformed) ones.
			if c, ok := f.e.origin(m); !ok || c != (stream.Coordinates{Topic: "customer.events", Partition: 0, Offset: 8}) {
				t.Errorf("dead letter origin %+v %v, want customer.events/0/8 (the enforcer's, after the input's)", c, ok)
			}
		}
	}
	if forwarded != 1 || dead != 1 {
		t.Fatalf("%d forwarded records, %d dead letters", forwarded, dead)
	}
}

// TestChangeIDsWithheldWithoutSubjectID: a copy whose subject id is
// encrypted (a stream rule, the record passed) lists its change ids
// withheld, while the forwarded record of the same event lists them; a
// copy redacted for an exclusion that leaves the subject id keeps them.
func TestChangeIDsWithheldWithoutSubjectID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pol, err := policy.Parse([]byte(keysPolicy), "keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	red, err := redact.New([]byte("0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Keys: &memKeys{keys: map[string]*shred.DataKey{}}}, codec, store, pol)
	for i, p := range []string{"marketing", "analytics"} {
		if _, err := store.Apply(ctx, consent.Change{ChangeID: fmt.Sprintf("g-%d", i), SubjectID: "s1", Purpose: p, Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: time.Now().Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := codec.EncodeSingle("consentgate.events.EmailEngagement", map[string]any{
		"event_id": "e1", "subject_id": "s1", "occurred_at": time.Now(), "email": "s1@mail.example",
		"campaign_id": "c", "message_id": "m", "action": "OPEN", "link_url": nil, "user_agent": nil, "ip_address": nil})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Process(ctx, []kafka.Message{{Topic: "customer.events", Key: []byte("s1"), Value: b}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"compliant.marketing": "marketing=" + ChangeIDWithheld, "compliant.plain": "analytics=g-1", "compliant.analytics": "analytics=g-1"}
	for _, m := range out {
		w, ok := want[m.Topic]
		if !ok {
			continue
		}
		delete(want, m.Topic)
		if v, _ := stream.Header(m, HeaderConsentChangeIDs); v != w {
			t.Errorf("%s: change ids %q, want %q", m.Topic, v, w)
		}
	}
	if len(want) > 0 {
		t.Errorf("no record on %v", want)
	}
}
