package decision

import (
	"reflect"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
)

const testPolicy = `
purposes:
  - id: marketing
    legal_bases: [CONSENT]
  - id: analytics
    legal_bases: [CONSENT, LEGITIMATE_INTEREST]
  - id: sale
    opt_out: true
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.EmailEngagement]
  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
  - topic: compliant.partners
    purposes: [sale, marketing]
  - topic: compliant.sale
    purposes: [sale]
  - topic: compliant.excl
    purposes: [analytics]
    excluded_categories: drop
`

func TestDecide(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse([]byte(testPolicy), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_800_000_000_000)
	at := now.Add(-time.Hour)
	grant := func(basis consent.LegalBasis, excluded ...string) consent.PurposeState {
		return consent.PurposeState{Status: consent.StatusGranted, ChangeID: "g1", CapturedAt: at, LegalBasis: basis, ExcludedCategories: excluded}
	}
	state := func(p map[string]consent.PurposeState) *consent.State {
		return &consent.State{SubjectID: "s", Purposes: p}
	}
	emailCats := map[string]string{"subject_id": "user.id", "email": "user.contact.email"}
	purchaseCats := map[string]string{"subject_id": "user.id", "items[].health_category": "user.health"}
	tests := []struct {
		name       string
		stream     string
		schema     string
		cats       map[string]string
		state      *consent.State
		want       Outcome
		reason     string
		changeID   string
		wantPurpos string
	}{
		{"granted", "compliant.marketing", "consentgate.events.EmailEngagement", emailCats,
			state(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent)}), Passed, "granted", "g1", "marketing"},
		{"unknown subject", "compliant.marketing", "consentgate.events.EmailEngagement", emailCats, nil, Dropped, "unknown_subject", "", "marketing"},
		{"never asked", "compliant.marketing", "consentgate.events.EmailEngagement", emailCats,
			state(map[string]consent.PurposeState{"analytics": grant(consent.BasisConsent)}), Dropped, "never_asked", "", "marketing"},
		{"denied", "compliant.marketing", "consentgate.events.EmailEngagement", emailCats,
			state(map[string]consent.PurposeState{"marketing": {Status: consent.StatusDenied, ChangeID: "d1", CapturedAt: at}}), Dropped, "denied", "d1", "marketing"},
		{"withdrawn", "compliant.marketing", "consentgate.events.EmailEngagement", emailCats,
			state(map[string]consent.PurposeState{"marketing": {Status: consent.StatusWithdrawn, ChangeID: "w1", CapturedAt: at}}), Dropped, "withdrawn", "w1", "marketing"},
		{"expired", "compliant.marketing", "consentgate.events.EmailEngagement", emailCats,
			state(map[string]consent.PurposeState{"marketing": {Status: consent.StatusGranted, ChangeID: "g2", CapturedAt: at, ExpiresAt: now, LegalBasis: consent.BasisConsent}}), Dropped, "expired", "g2", "marketing"},
		{"schema not accepted", "compliant.marketing", "consentgate.events.Purchase", purchaseCats,
			state(map[string]consent.PurposeState{"marketing": grant(consent.BasisConsent)}), Dropped, ReasonSchemaNotAccepted, "", "marketing"},
		{"legitimate interest not enough for marketing", "compliant.marketing", "consentgate.events.EmailEngagement", emailCats,
			state(map[string]consent.PurposeState{"marketing": grant(consent.BasisLegitimateInterest)}), Dropped, ReasonLegalBasisNotAccepted, "g1", "marketing"},
		{"legitimate interest enough for analytics", "compliant.analytics", "consentgate.events.Purchase", purchaseCats,
			state(map[string]consent.PurposeState{"analytics": grant(consent.BasisLegitimateInterest)}), Passed, "granted", "g1", "analytics"},
		{"redact stream without consent redacts", "compliant.analytics", "consentgate.events.Purchase", purchaseCats,
			nil, Redacted, "unknown_subject", "", "analytics"},
		{"excluded category present: remove", "compliant.analytics", "consentgate.events.Purchase", purchaseCats,
			state(map[string]consent.PurposeState{"analytics": grant(consent.BasisConsent, "user.health")}), Redacted, ReasonGrantedWithExclusions, "g1", "analytics"},
		{"excluded category present: drop", "compliant.excl", "consentgate.events.Purchase", purchaseCats,
			state(map[string]consent.PurposeState{"analytics": grant(consent.BasisConsent, "user")}), Dropped, ReasonExcludedCategory, "g1", "analytics"},
		{"excluded wildcard covers its own category", "compliant.analytics", "consentgate.events.Purchase", purchaseCats,
			state(map[string]consent.PurposeState{"analytics": grant(consent.BasisConsent, "user.health.*")}), Redacted, ReasonGrantedWithExclusions, "g1", "analytics"},
		{"excluded sub-category covers a parent-annotated field", "compliant.excl", "consentgate.events.Purchase",
			map[string]string{"subject_id": "user.id", "shipping_address": "user.contact.address"},
			state(map[string]consent.PurposeState{"analytics": grant(consent.BasisConsent, "user.contact.address.city")}), Dropped, ReasonExcludedCategory, "g1", "analytics"},
		{"excluded sibling not covered", "compliant.excl", "consentgate.events.Purchase",
			map[string]string{"subject_id": "user.id", "email": "user.contact.email"},
			state(map[string]consent.PurposeState{"analytics": grant(consent.BasisConsent, "user.contact.address.city")}), Passed, "granted", "g1", "analytics"},
		{"excluded category absent", "compliant.analytics", "consentgate.events.EmailEngagement", emailCats,
			state(map[string]consent.PurposeState{"analytics": grant(consent.BasisConsent, "user.health")}), Passed, "granted", "g1", "analytics"},
		{"opt-out purpose never asked", "compliant.sale", "consentgate.events.Purchase", purchaseCats,
			nil, Passed, ReasonOptOutNotExercised, "", "sale"},
		{"opt-out purpose denied", "compliant.sale", "consentgate.events.Purchase", purchaseCats,
			state(map[string]consent.PurposeState{"sale": {Status: consent.StatusDenied, ChangeID: "d9", CapturedAt: at}}), Dropped, "denied", "d9", "sale"},
		{"two purposes: second missing", "compliant.partners", "consentgate.events.Purchase", purchaseCats,
			state(map[string]consent.PurposeState{"sale": grant(consent.BasisConsent)}), Dropped, "never_asked", "", "marketing"},
		{"two purposes: both granted", "compliant.partners", "consentgate.events.Purchase", purchaseCats,
			state(map[string]consent.PurposeState{"sale": grant(consent.BasisConsent), "marketing": grant(consent.BasisConsent)}), Passed, "granted", "g1", "sale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ok := pol.Stream(tt.stream)
			if !ok {
				t.Fatalf("no stream %s", tt.stream)
			}
			d := Decide(pol, s, Input{Schema: tt.schema, Fields: fieldsOf(tt.cats), State: tt.state, Now: now})
			if d.Outcome != tt.want || d.Reason != tt.reason || d.ChangeID != tt.changeID || d.Purpose != tt.wantPurpos || d.Stream != tt.stream {
				t.Errorf("got %+v, want outcome %s reason %s change %q purpose %s", d, tt.want, tt.reason, tt.changeID, tt.wantPurpos)
			}
			wantTreat := TreatNone
			if tt.want == Redacted {
				wantTreat = TreatRemoveExcluded
				if tt.reason != ReasonGrantedWithExclusions {
					wantTreat = TreatRedact
				}
			}
			if d.Treatment != wantTreat {
				t.Errorf("treatment %d, want %d", d.Treatment, wantTreat)
			}
		})
	}
}

// fieldsOf turns a path -> category map into the fields of a schema that
// is its own reader.
func fieldsOf(cats map[string]string) []Field {
	var out []Field
	for p, c := range cats {
		out = append(out, Field{Path: p, ReaderPath: p, Categories: []string{c}})
	}
	return out
}

// TestDecideConsents: Decision.Consents names, for every purpose of the
// stream whose consent was checked and in the stream's order, the consent
// change its verdict rests on, and the deciding purpose's entry is
// ChangeID/CapturedAt.
func TestDecideConsents(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse([]byte(testPolicy), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_800_000_000_000)
	at1, at2 := now.Add(-time.Hour), now.Add(-2*time.Hour)
	granted := func(id string, at time.Time) consent.PurposeState {
		return consent.PurposeState{Status: consent.StatusGranted, ChangeID: id, CapturedAt: at, LegalBasis: consent.BasisConsent}
	}
	st := func(p map[string]consent.PurposeState) *consent.State {
		return &consent.State{SubjectID: "s", Purposes: p}
	}
	partners, _ := pol.Stream("compliant.partners") // purposes [sale, marketing]; sale is opt-out
	unknown := policy.Stream{Topic: "compliant.unknown", Purposes: []string{"marketing", "nope", "analytics"}}
	tests := []struct {
		name    string
		stream  policy.Stream
		schema  string
		state   *consent.State
		want    []PurposeConsent
		purpose string
	}{
		{"both granted", partners, "consentgate.events.Purchase",
			st(map[string]consent.PurposeState{"sale": granted("s1", at1), "marketing": granted("m1", at2)}),
			[]PurposeConsent{{"sale", "s1", at1}, {"marketing", "m1", at2}}, "sale"},
		{"second denied: both listed, the second decides", partners, "consentgate.events.Purchase",
			st(map[string]consent.PurposeState{"sale": granted("s1", at1), "marketing": {Status: consent.StatusDenied, ChangeID: "m2", CapturedAt: at2}}),
			[]PurposeConsent{{"sale", "s1", at1}, {"marketing", "m2", at2}}, "marketing"},
		{"opt-out not exercised has no change", partners, "consentgate.events.Purchase",
			st(map[string]consent.PurposeState{"marketing": granted("m1", at2)}),
			[]PurposeConsent{{"sale", "", time.Time{}}, {"marketing", "m1", at2}}, "sale"},
		{"first refused, second still checked", partners, "consentgate.events.Purchase",
			st(map[string]consent.PurposeState{"sale": {Status: consent.StatusWithdrawn, ChangeID: "s9", CapturedAt: at1}, "marketing": granted("m1", at2)}),
			[]PurposeConsent{{"sale", "s9", at1}, {"marketing", "m1", at2}}, "sale"},
		{"unknown subject", partners, "consentgate.events.Purchase", nil,
			[]PurposeConsent{{"sale", "", time.Time{}}, {"marketing", "", time.Time{}}}, "marketing"},
		{"schema not accepted: nothing checked", pol.Streams[0], "consentgate.events.Purchase",
			st(map[string]consent.PurposeState{"marketing": granted("m1", at1)}), nil, "marketing"},
		{"unknown purpose ends the check", unknown, "consentgate.events.Purchase",
			st(map[string]consent.PurposeState{"marketing": granted("m1", at1), "analytics": granted("a1", at2)}),
			[]PurposeConsent{{"marketing", "m1", at1}}, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := Decide(pol, tt.stream, Input{Schema: tt.schema, State: tt.state, Now: now})
			if !reflect.DeepEqual(d.Consents, tt.want) && (len(d.Consents) != 0 || len(tt.want) != 0) {
				t.Errorf("Consents = %+v, want %+v (decision %+v)", d.Consents, tt.want, d)
			}
			if d.Purpose != tt.purpose {
				t.Errorf("deciding purpose %s, want %s", d.Purpose, tt.purpose)
			}
			for _, c := range d.Consents {
				if c.Purpose == d.Purpose && (c.ChangeID != d.ChangeID || !c.CapturedAt.Equal(d.CapturedAt)) {
					t.Errorf("deciding purpose %s: Consents has %+v, ChangeID %q CapturedAt %v", d.Purpose, c, d.ChangeID, d.CapturedAt)
				}
			}
		})
	}
}
