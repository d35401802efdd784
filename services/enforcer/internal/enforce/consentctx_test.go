package enforce

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
)

// contextPolicy has a stream of two purposes that redacts without consent
// and removes excluded categories, an opt-out stream, and two Google
// streams (one with an opt-out purpose).
const contextPolicy = `
purposes:
  - id: marketing
  - id: analytics
    legal_bases: [CONSENT, LEGITIMATE_INTEREST]
  - id: sale
    opt_out: true
streams:
  - topic: compliant.both
    purposes: [marketing, analytics]
    on_missing_consent: redact
    excluded_categories: remove
  - topic: compliant.sale
    purposes: [sale]
  - topic: google.ads
    purposes: [marketing, sale]
    on_missing_consent: redact
    google_consent_mode: true
  - topic: google.analytics
    purposes: [analytics]
    google_consent_mode: true
`

// change applies a change for subject with the given id.
func (f *fixture) change(t *testing.T, id, subject, purpose string, action consent.Action, basis consent.LegalBasis, excluded ...string) {
	t.Helper()
	_, err := f.store.Apply(context.Background(), consent.Change{
		ChangeID: id, SubjectID: subject, Purpose: purpose, Action: action,
		LegalBasis: basis, Source: "test", NoticeVersion: "1", CapturedAt: time.Now().Add(-time.Minute),
		ExcludedCategories: excluded,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// consentView is a record's consent context: the value of each consent
// header, "<absent>" when it has none.
type consentView struct {
	decision, purposes, basis, ids, redaction, adUserData, adPersonalization string
}

const absent = "<absent>"

func viewOf(m kafka.Message) consentView {
	get := func(k string) string {
		if v, ok := stream.Header(m, k); ok {
			return v
		}
		return absent
	}
	return consentView{decision: get(HeaderDecision), purposes: get(HeaderConsentPurposes), basis: get(HeaderConsentLegalBasis),
		ids: get(HeaderConsentChangeIDs), redaction: get(HeaderConsentRedaction), adUserData: get(HeaderAdUserData),
		adPersonalization: get(HeaderAdPersonalization)}
}

// TestConsentContextHeaders: every passed or redacted output says under
// which consent it was published, for each kind of output: passed (on
// consent and on legitimate interest), redacted without consent (no
// purpose listed, even one that was granted), redacted with the excluded
// categories removed, allowed because an opt-out was never exercised, and
// the Consent Mode headers of the Google streams (granted only for a
// passed record whose every purpose has a CONSENT grant).
func TestConsentContextHeaders(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, contextPolicy)
	// s-all: everything granted; analytics on legitimate interest, under
	// an id that needs escaping.
	f.change(t, "c-m-1", "s-all", "marketing", consent.ActionGrant, consent.BasisConsent)
	f.change(t, "an=1,x é%", "s-all", "analytics", consent.ActionGrant, consent.BasisLegitimateInterest)
	f.change(t, "c-s-1", "s-all", "sale", consent.ActionGrant, consent.BasisConsent)
	// s-consent: marketing and analytics on consent, sale never asked.
	f.change(t, "c-m-2", "s-consent", "marketing", consent.ActionGrant, consent.BasisConsent)
	f.change(t, "c-a-2", "s-consent", "analytics", consent.ActionGrant, consent.BasisConsent)
	// s-partial: marketing granted, analytics denied, sale objected to.
	f.change(t, "c-m-3", "s-partial", "marketing", consent.ActionGrant, consent.BasisConsent)
	f.change(t, "c-a-3", "s-partial", "analytics", consent.ActionDeny, "")
	f.change(t, "c-s-3", "s-partial", "sale", consent.ActionWithdraw, "")
	// s-excl: everything granted, but marketing not with contact data
	// (the event's email field).
	f.change(t, "c-m-4", "s-excl", "marketing", consent.ActionGrant, consent.BasisConsent, "user.contact")
	f.change(t, "c-a-4", "s-excl", "analytics", consent.ActionGrant, consent.BasisConsent)

	batch := []kafka.Message{
		f.email(t, 1, "e-all", "s-all"), f.email(t, 2, "e-consent", "s-consent"), f.email(t, 3, "e-partial", "s-partial"),
		f.email(t, 4, "e-excl", "s-excl"), f.email(t, 5, "e-unknown", "s-unknown"),
		{Topic: "customer.events", Partition: 1, Offset: 6, Key: []byte("k"), Value: []byte{0xC3, 0x01, 1, 2}},
	}
	out, err := f.e.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]consentView{}
	for _, m := range out {
		id, _ := stream.Header(m, HeaderEventID)
		got[[2]string{id, m.Topic}] = viewOf(m)
	}
	missing := consentView{decision: "REDACTED", purposes: "", basis: "", ids: "", redaction: RedactionMissingConsent, adUserData: absent, adPersonalization: absent}
	want := map[[2]string]consentView{
		{"e-all", "compliant.both"}: {"PASSED", "marketing,analytics", "marketing=CONSENT,analytics=LEGITIMATE_INTEREST",
			"marketing=c-m-1,analytics=an%3D1%2Cx%20%C3%A9%25", absent, absent, absent},
		{"e-all", "compliant.sale"}:   {"PASSED", "sale", "sale=CONSENT", "sale=c-s-1", absent, absent, absent},
		{"e-all", "google.ads"}:       {"PASSED", "marketing,sale", "marketing=CONSENT,sale=CONSENT", "marketing=c-m-1,sale=c-s-1", absent, "granted", "granted"},
		{"e-all", "google.analytics"}: {"PASSED", "analytics", "analytics=LEGITIMATE_INTEREST", "analytics=an%3D1%2Cx%20%C3%A9%25", absent, "denied", "denied"},

		{"e-consent", "compliant.both"}: {"PASSED", "marketing,analytics", "marketing=CONSENT,analytics=CONSENT", "marketing=c-m-2,analytics=c-a-2", absent, absent, absent},
		// Sale was never asked: allowed as an opt-out, with no change.
		{"e-consent", "compliant.sale"}: {"PASSED", "sale", "sale=" + LegalBasisOptOutNotObjected, "", absent, absent, absent},
		// ... which Consent Mode does not count as consent.
		{"e-consent", "google.ads"}:       {"PASSED", "marketing,sale", "marketing=CONSENT,sale=OPT_OUT_NOT_OBJECTED", "marketing=c-m-2", absent, "denied", "denied"},
		{"e-consent", "google.analytics"}: {"PASSED", "analytics", "analytics=CONSENT", "analytics=c-a-2", absent, "granted", "granted"},

		// Marketing was granted, but the record is redacted without
		// analytics: it lists no purpose.
		{"e-partial", "compliant.both"}: missing,
		{"e-partial", "google.ads"}:     {"REDACTED", "", "", "", RedactionMissingConsent, "denied", "denied"},

		{"e-excl", "compliant.both"}: {"REDACTED", "marketing,analytics", "marketing=CONSENT,analytics=CONSENT", "marketing=c-m-4,analytics=c-a-4",
			RedactionExcludedCategories, absent, absent},
		{"e-excl", "compliant.sale"}:   {"PASSED", "sale", "sale=OPT_OUT_NOT_OBJECTED", "", absent, absent, absent},
		{"e-excl", "google.ads"}:       {"REDACTED", "marketing,sale", "marketing=CONSENT,sale=OPT_OUT_NOT_OBJECTED", "marketing=c-m-4", RedactionExcludedCategories, "denied", "denied"},
		{"e-excl", "google.analytics"}: {"PASSED", "analytics", "analytics=CONSENT", "analytics=c-a-4", absent, "granted", "granted"},

		{"e-unknown", "compliant.both"}: missing,
		{"e-unknown", "compliant.sale"}: {"PASSED", "sale", "sale=OPT_OUT_NOT_OBJECTED", "", absent, absent, absent},
		{"e-unknown", "google.ads"}:     {"REDACTED", "", "", "", RedactionMissingConsent, "denied", "denied"},
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s on %s: no record", k[0], k[1])
			continue
		}
		if g != w {
			t.Errorf("%s on %s:\n got %+v\nwant %+v", k[0], k[1], g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !strings.HasPrefix(k[1], "consent.audit") && !strings.HasSuffix(k[1], ".dlq") {
			t.Errorf("%s on %s: a record the test does not expect", k[0], k[1])
		}
	}
	// Neither the audit records nor the dead letter carry a consent
	// header; every output carries each of its consent headers once.
	for _, m := range out {
		n := map[string]int{}
		for _, h := range m.Headers {
			if strings.HasPrefix(h.Key, "consentgate.consent") {
				n[h.Key]++
				if h.Value == nil {
					t.Errorf("%s: header %s is null, not empty", m.Topic, h.Key)
				}
			}
		}
		switch {
		case m.Topic == "consent.audit" || m.Topic == "customer.events.dlq":
			if len(n) > 0 {
				t.Errorf("%s record carries consent headers %v", m.Topic, n)
			}
		default:
			for k, c := range n {
				if c != 1 {
					t.Errorf("%s: header %s %d times", m.Topic, k, c)
				}
			}
		}
	}
	if n := len(byTopic(out)["customer.events.dlq"]); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

// TestConsentContextKeepsHeaders: the consent headers come after the
// headers the enforcer wrote before them, which are unchanged: a
// forwarded record keeps the input's headers first, then the event id,
// the source coordinates, the policy version and the decision; a
// re-encoded copy starts with the event id.
func TestConsentContextKeepsHeaders(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, contextPolicy)
	f.change(t, "c-m", "s1", "marketing", consent.ActionGrant, consent.BasisConsent)
	f.change(t, "c-a", "s1", "analytics", consent.ActionGrant, consent.BasisConsent)
	out, err := f.e.Process(context.Background(), []kafka.Message{f.email(t, 7, "e1", "s1"), f.email(t, 8, "e2", "s2")})
	if err != nil {
		t.Fatal(err)
	}
	keys := func(m kafka.Message) []string {
		var ks []string
		for _, h := range m.Headers {
			ks = append(ks, h.Key)
		}
		return ks
	}
	base := []string{HeaderEventID, HeaderSourceTopic, HeaderSourcePart, HeaderSourceOffset, HeaderPolicyVersion, HeaderDecision,
		HeaderConsentPurposes, HeaderConsentLegalBasis, HeaderConsentChangeIDs}
	want := map[[2]string][]string{
		{"e1", "compliant.both"}:   append([]string{"trace"}, base...),
		{"e1", "google.analytics"}: append(append([]string{"trace"}, base...), HeaderAdUserData, HeaderAdPersonalization),
		{"e2", "compliant.both"}:   append(slices.Clone(base), HeaderConsentRedaction),
		{"e2", "google.ads"}:       append(slices.Clone(base), HeaderConsentRedaction, HeaderAdUserData, HeaderAdPersonalization),
	}
	for _, m := range out {
		id, _ := stream.Header(m, HeaderEventID)
		if w, ok := want[[2]string{id, m.Topic}]; ok {
			if g := keys(m); !slices.Equal(g, w) {
				t.Errorf("%s on %s: headers %q, want %q", id, m.Topic, g, w)
			}
			delete(want, [2]string{id, m.Topic})
		}
		if id == "e1" && m.Topic == "compliant.both" {
			if v, _ := stream.Header(m, "trace"); v != "abc" {
				t.Errorf("forwarded record's input header trace = %q", v)
			}
		}
	}
	for k := range want {
		t.Errorf("%s on %s: no record", k[0], k[1])
	}
}

// TestConsentContextChangeIDs: a change id holding the subject id is
// withheld; one too long to write escaped is written as its digest; a
// stored grant whose id is longer than MaxIDBytes allows nothing, so no
// header names it.
func TestConsentContextChangeIDs(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, contextPolicy)
	f.change(t, "grant-u-42-marketing", "u-42", "marketing", consent.ActionGrant, consent.BasisConsent)
	long := strings.Repeat("é", consent.MaxGrantIDBytes/2) // 180 bytes, 540 escaped
	f.change(t, long, "u-42", "analytics", consent.ActionGrant, consent.BasisConsent)
	out, err := f.e.Process(context.Background(), []kafka.Message{f.email(t, 1, "e1", "u-42")})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(long))
	var both kafka.Message
	for _, m := range out {
		if m.Topic == "compliant.both" {
			both = m
		}
		for _, h := range m.Headers {
			if strings.HasPrefix(h.Key, "consentgate.consent") && bytes.Contains(h.Value, []byte("u-42")) {
				t.Errorf("%s: header %s holds the subject id: %q", m.Topic, h.Key, h.Value)
			}
		}
	}
	if v, _ := stream.Header(both, HeaderConsentChangeIDs); v != "marketing="+ChangeIDWithheld+",analytics=~sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("change ids %q", v)
	}

	// A grant stored with an over-long id (before ids were bounded):
	// Check denies it, naming no change.
	pol := f.e.policy
	st := &consent.State{Purposes: map[string]consent.PurposeState{
		"marketing": {Status: consent.StatusGranted, ChangeID: strings.Repeat("x", MaxIDBytes+1), LegalBasis: consent.BasisConsent, CapturedAt: time.Now()},
		"analytics": {Status: consent.StatusGranted, ChangeID: "c-a", LegalBasis: consent.BasisConsent, CapturedAt: time.Now()},
	}}
	s, _ := pol.Stream("compliant.both")
	d := decision.Decide(pol, s, decision.Input{Schema: "consentgate.events.EmailEngagement", State: st, Now: time.Now()})
	if d.Outcome != decision.Redacted || d.Reason != string(consent.ReasonChangeIDTooLong) {
		t.Fatalf("decision %s %s", d.Outcome, d.Reason)
	}
	h, err := ConsentHeaders(pol, s, d, st, "u-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range h {
		if bytes.Contains(x.Value, []byte("xxx")) || (x.Key != HeaderConsentRedaction && len(x.Value) != 0) {
			t.Errorf("header %s = %q", x.Key, x.Value)
		}
	}
}

// TestAppendChangeID: escaping, the digest bound and withholding.
func TestAppendChangeID(t *testing.T) {
	t.Parallel()
	digest := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "~sha256:" + hex.EncodeToString(sum[:])
	}
	at256 := strings.Repeat("a", 250) + "%%" // 250 + 2×3 = 256 escaped
	at257 := strings.Repeat("a", 251) + "%%"
	for _, tc := range []struct{ id, subject, want string }{
		{"c-17", "s1", "c-17"},
		{"sig-0123456789abcdef0123456789abcdef", "s1", "sig-0123456789abcdef0123456789abcdef"},
		{"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "s1", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"},
		{"A.b_C", "s1", "A.b_C"},
		{"a,b=c", "s1", "a%2Cb%3Dc"},
		{"~sha256:x", "s1", "%7Esha256:x"},
		{"é ü/%\x00\xff", "s1", "%C3%A9%20%C3%BC%2F%25%00%FF"},
		{"x-s1-y", "s1", ChangeIDWithheld},
		{"s1", "s1", ChangeIDWithheld},
		{"c-17", "", "c-17"},
		{at256, "s1", strings.Repeat("a", 250) + "%25%25"},
		{at257, "s1", digest(at257)},
		{strings.Repeat("é", 90), "s1", digest(strings.Repeat("é", 90))},
	} {
		got := string(appendChangeID([]byte("p="), tc.id, tc.subject))
		if got != "p="+tc.want {
			t.Errorf("appendChangeID(%q, %q) = %q, want %q", tc.id, tc.subject, got, "p="+tc.want)
		}
		if len(got)-2 > maxChangeIDHeader {
			t.Errorf("appendChangeID(%q) is %d bytes", tc.id, len(got)-2)
		}
		// Unescaping gives the id back (when it is written escaped).
		if !strings.HasPrefix(tc.want, "~") {
			if back, err := url.PathUnescape(got[2:]); err != nil || back != tc.id {
				t.Errorf("%q unescapes to %q (%v), want %q", got[2:], back, err, tc.id)
			}
		}
	}
}

// TestConsentHeadersRefuseDisagreement: a decision that says passed for
// a purpose the state does not allow gets no consent context but an
// error (the enforcer drops such a record instead of publishing it).
func TestConsentHeadersRefuseDisagreement(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse([]byte(contextPolicy), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := pol.Stream("compliant.both")
	st := &consent.State{Purposes: map[string]consent.PurposeState{
		"marketing": {Status: consent.StatusGranted, ChangeID: "c-m", LegalBasis: consent.BasisConsent, CapturedAt: time.Now()},
		"analytics": {Status: consent.StatusDenied, ChangeID: "c-a", CapturedAt: time.Now()},
	}}
	if _, err := ConsentHeaders(pol, s, decision.Decision{Stream: s.Topic, Outcome: decision.Passed}, st, "s", time.Now()); err == nil {
		t.Fatal("a passed decision the state contradicts got consent headers")
	}
	// A marketing grant on legitimate interest, which marketing does not
	// accept, is no grant either.
	st.Purposes["analytics"] = consent.PurposeState{Status: consent.StatusGranted, ChangeID: "c-a", LegalBasis: consent.BasisConsent, CapturedAt: time.Now()}
	st.Purposes["marketing"] = consent.PurposeState{Status: consent.StatusGranted, ChangeID: "c-m", LegalBasis: consent.BasisLegitimateInterest, CapturedAt: time.Now()}
	if _, err := ConsentHeaders(pol, s, decision.Decision{Stream: s.Topic, Outcome: decision.Passed}, st, "s", time.Now()); err == nil {
		t.Fatal("a grant on a legal basis the purpose does not accept allowed it")
	}
	if h, err := ConsentHeaders(pol, s, decision.Decision{Stream: s.Topic, Outcome: decision.Dropped}, st, "s", time.Now()); err != nil || h != nil {
		t.Fatalf("a dropped decision: %v, %v", h, err)
	}
}

// contextSignalsRules maps both Consent Mode states of contextPolicy's
// purposes (appended to it).
const contextSignalsRules = `signals:
  rules:
    - signal: consent_mode.ad_user_data
      purposes: [marketing]
    - signal: consent_mode.ad_personalization
      purposes: [marketing, analytics]
`

// TestConsentContextAllocations: once the worker's arenas are warm, the
// consent context of a record costs no allocation of its own: with or
// without Consent Mode rules, with the change ids listed or withheld.
func TestConsentContextAllocations(t *testing.T) {
	for _, text := range []string{contextPolicy, contextPolicy + contextSignalsRules} {
		pol, err := policy.Parse([]byte(text), "p.yaml")
		if err != nil {
			t.Fatal(err)
		}
		e := &Enforcer{policy: pol, streamCtx: newStreamContexts(pol), consentB: newConsentValues()}
		now := time.Now()
		st := &consent.State{Purposes: map[string]consent.PurposeState{
			"marketing": {Status: consent.StatusGranted, ChangeID: "c-m-0001", LegalBasis: consent.BasisConsent, CapturedAt: now.Add(-time.Hour)},
			"analytics": {Status: consent.StatusGranted, ChangeID: "sig-0123456789abcdef0123456789abcdef", LegalBasis: consent.BasisConsent, CapturedAt: now.Add(-time.Hour)},
		}}
		var w worker
		for si, s := range pol.Streams {
			d := decision.Decide(pol, s, decision.Input{Schema: "consentgate.events.EmailEngagement", State: st, Now: now})
			if d.Outcome == decision.Dropped {
				continue
			}
			sc := &e.streamCtx[si]
			for _, carried := range []bool{true, false} {
				n := testing.AllocsPerRun(1000, func() {
					h := w.hdr.take(consentHeaderCount(sc, &d))
					if _, err := e.appendConsent(&w, h, sc, s, &d, st, "subject-1", carried, now); err != nil {
						panic(fmt.Sprint(err))
					}
				})
				if n != 0 {
					t.Errorf("%s (%s, subject carried %v): %v allocations per record", s.Topic, d.Outcome, carried, n)
				}
			}
		}
	}
}

// BenchmarkConsentContext is the cost of one record's consent context on
// a stream of two purposes granted on consent, with the Consent Mode
// headers: two verdicts, two values carved from the arena.
func BenchmarkConsentContext(b *testing.B) {
	benchmarkConsentContext(b, "")
}

// BenchmarkConsentContextSignalsRules is BenchmarkConsentContext on a
// policy whose signals rules map both Consent Mode states (three more
// verdicts).
func BenchmarkConsentContextSignalsRules(b *testing.B) {
	benchmarkConsentContext(b, contextSignalsRules)
}

func benchmarkConsentContext(b *testing.B, rules string) {
	pol, err := policy.Parse([]byte(contextPolicy+`  - topic: google.both
    purposes: [marketing, analytics]
    google_consent_mode: true
`+rules), "p.yaml")
	if err != nil {
		b.Fatal(err)
	}
	e := &Enforcer{policy: pol, streamCtx: newStreamContexts(pol), consentB: newConsentValues()}
	now := time.Now()
	st := &consent.State{Purposes: map[string]consent.PurposeState{
		"marketing": {Status: consent.StatusGranted, ChangeID: "c-m-0001", LegalBasis: consent.BasisConsent, CapturedAt: now.Add(-time.Hour)},
		"analytics": {Status: consent.StatusGranted, ChangeID: "sig-0123456789abcdef0123456789abcdef", LegalBasis: consent.BasisConsent, CapturedAt: now.Add(-time.Hour)},
	}}
	si := len(pol.Streams) - 1
	s := pol.Streams[si]
	d := decision.Decide(pol, s, decision.Input{Schema: "consentgate.events.EmailEngagement", State: st, Now: now})
	sc := &e.streamCtx[si]
	var w worker
	b.ReportAllocs()
	for b.Loop() {
		h := w.hdr.take(consentHeaderCount(sc, &d))
		if _, err := e.appendConsent(&w, h, sc, s, &d, st, "subject-1", true, now); err != nil {
			b.Fatal(err)
		}
	}
}
