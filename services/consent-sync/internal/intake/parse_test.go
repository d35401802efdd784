package intake

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
)

const validGrant = `{"change_id":"c1","subject_id":"s1","purpose":"marketing","action":"GRANT","legal_basis":"CONSENT",
"excluded_categories":["user.health.*"],"source":"preference-centre","notice_version":"2026-09",
"captured_at":"2026-11-22T09:00:00.1239+01:00","expires_at":"2027-11-22T08:00:00Z"}`

// catalogue is the purpose catalogue of the tests.
var catalogue = map[string]bool{"marketing": true, "ads": true, "p": true}

func TestParseValid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       consent.Change
	}{
		{"grant with every field", validGrant, consent.Change{
			ChangeID: "c1", SubjectID: "s1", Purpose: "marketing", Action: consent.ActionGrant, LegalBasis: consent.BasisConsent,
			ExcludedCategories: []string{"user.health.*"}, Source: "preference-centre", NoticeVersion: "2026-09",
			CapturedAt: time.Date(2026, 11, 22, 8, 0, 0, 123e6, time.UTC), ExpiresAt: time.Date(2027, 11, 22, 8, 0, 0, 0, time.UTC),
		}},
		{"withdrawal with the least", `{"change_id":"c2","subject_id":"s1","purpose":"ads","action":"WITHDRAW","captured_at":"2026-11-22T08:00:00Z"}`,
			consent.Change{ChangeID: "c2", SubjectID: "s1", Purpose: "ads", Action: consent.ActionWithdraw, CapturedAt: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)}},
		{"erasure with null purpose", `{"change_id":"c3","subject_id":"s1","purpose":null,"action":"ERASE","captured_at":"2026-11-22T08:00:00Z","excluded_categories":null,"expires_at":null}`,
			consent.Change{ChangeID: "c3", SubjectID: "s1", Action: consent.ActionErase, CapturedAt: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, problems := Parse([]byte(tc.body), catalogue)
			if problems != nil {
				t.Fatalf("problems %v", problems)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		fields     []string // in order; "" for the body
		reason     string   // part of the first reason
	}{
		{"empty body", ``, []string{""}, "is empty"},
		{"not JSON", `{"change_id": "c1",`, []string{""}, "not valid JSON"},
		{"array", `[1]`, []string{""}, "must be a JSON object"},
		{"two objects", `{} {}`, []string{""}, "more than one JSON value"},
		{"invalid UTF-8", "{\"change_id\":\"\xff\"}", []string{""}, "UTF-8"},
		{"empty object", `{}`, []string{"change_id", "subject_id", "purpose", "action", "captured_at"}, "is missing"},
		{"grant lacking basis, source, notice", `{"change_id":"c","subject_id":"s","purpose":"p","action":"GRANT","captured_at":"2026-11-22T08:00:00Z"}`,
			[]string{"legal_basis", "source", "notice_version"}, "is missing; a GRANT needs one"},
		{"unknown and duplicate fields", `{"change_id":"c","change_id":"d","subject_id":"s","purpose":"p","action":"DENY","captured_at":"2026-11-22T08:00:00Z","zeta":1,"alpha":2}`,
			[]string{"change_id", "alpha", "zeta"}, "appears more than once"},
		{"wrong types", `{"change_id":1,"subject_id":{},"purpose":true,"action":"DENY","captured_at":"2026-11-22T08:00:00Z","excluded_categories":["a",2],"source":null}`,
			[]string{"change_id", "subject_id", "purpose", "excluded_categories", "source"}, "is a number, want a string"},
		{"epoch millis", `{"change_id":"c","subject_id":"s","purpose":"p","action":"DENY","captured_at":1795334400000}`,
			[]string{"captured_at"}, "epoch numbers are not accepted"},
		{"not RFC 3339", `{"change_id":"c","subject_id":"s","purpose":"p","action":"DENY","captured_at":"22/11/2026"}`,
			[]string{"captured_at"}, "is not an RFC 3339"},
		{"before the epoch", `{"change_id":"c","subject_id":"s","purpose":"p","action":"DENY","captured_at":"1969-01-01T00:00:00Z"}`,
			[]string{"captured_at"}, "after the Unix epoch"},
		{"unknown action and basis", `{"change_id":"c","subject_id":"s","purpose":"p","action":"grant","legal_basis":"VIBES","captured_at":"2026-11-22T08:00:00Z"}`,
			[]string{"action", "legal_basis"}, "is not one of"},
		{"erase with a purpose", `{"change_id":"c","subject_id":"s","purpose":"p","action":"ERASE","captured_at":"2026-11-22T08:00:00Z"}`,
			[]string{"purpose"}, "must be null or absent for ERASE"},
		{"reserved purpose", `{"change_id":"c","subject_id":"s","purpose":"!erased","action":"DENY","captured_at":"2026-11-22T08:00:00Z"}`,
			[]string{"purpose"}, "reserved"},
		{"expiry before capture", strings.Replace(validGrant, "2027-11-22", "2025-11-22", 1), []string{"expires_at"}, "is not after captured_at"},
		{"purpose outside the catalogue", strings.Replace(validGrant, `"marketing"`, `"astrology"`, 1), []string{"purpose"}, "is not a purpose of the policy's catalogue"},
		{"withdrawal outside the catalogue", `{"change_id":"c","subject_id":"s","purpose":"astrology","action":"WITHDRAW","captured_at":"2026-11-22T08:00:00Z"}`,
			[]string{"purpose"}, "is not a purpose of the policy's catalogue"},
		{"exclusion outside the taxonomy", strings.Replace(validGrant, `"user.health.*"`, `"health"`, 1), []string{"excluded_categories"}, "item 0 is not a full category path"},
		{"exclusion in another case", strings.Replace(validGrant, `"user.health.*"`, `"user.health","User.Health"`, 1), []string{"excluded_categories"}, "item 1 is not lower case"},
		{"exclusion naming nothing", strings.Replace(validGrant, `"user.health.*"`, `"VIBES"`, 1), []string{"excluded_categories"}, "item 0 names no data category"},
		{"change id over 256 bytes", strings.Replace(validGrant, `"c1"`, `"`+strings.Repeat("c", 257)+`"`, 1), []string{"change_id"}, "is longer than 256 bytes"},
		{"subject id over 256 bytes", strings.Replace(validGrant, `"s1"`, `"s1`+strings.Repeat("x", 255)+`"`, 1), []string{"subject_id"}, "is longer than 256 bytes"},
		{"erasure with over-long ids", `{"change_id":"` + strings.Repeat("c", 300<<10) + `","subject_id":"s1` + strings.Repeat("x", 200<<10) +
			`","action":"ERASE","captured_at":"2026-11-22T08:00:00Z"}`, []string{"change_id", "subject_id"}, "is longer than 256 bytes"},
		{"null for a required string", strings.Replace(validGrant, `"subject_id":"s1"`, `"subject_id":null`, 1), []string{"subject_id"}, "is null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, problems := Parse([]byte(tc.body), catalogue)
			if !reflect.DeepEqual(c, consent.Change{}) {
				t.Errorf("a change with problems was returned: %+v", c)
			}
			var fields []string
			for _, p := range problems {
				fields = append(fields, p.Field)
			}
			if !reflect.DeepEqual(fields, tc.fields) {
				t.Errorf("fields %q, want %q (problems %+v)", fields, tc.fields, problems)
			}
			if len(problems) > 0 && !strings.Contains(problems[0].Reason, tc.reason) {
				t.Errorf("first reason %q does not contain %q", problems[0].Reason, tc.reason)
			}
			for _, p := range problems {
				for _, secret := range []string{"s1", "preference-centre", "22/11/2026", "VIBES", "ccc"} {
					if strings.Contains(p.Reason, secret) {
						t.Errorf("reason %q repeats a value", p.Reason)
					}
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validGrant))
	f.Add([]byte(`{"change_id":"c","subject_id":"s","action":"ERASE","captured_at":"2026-11-22T08:00:00Z"}`))
	f.Add([]byte(`{"a":[1,{"b":null}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, problems := Parse(body, catalogue)
		if len(problems) == 0 {
			if err := c.Validate(); err != nil {
				t.Fatalf("Parse accepted an invalid change: %v", err)
			}
			if c.Purpose != "" && !catalogue[c.Purpose] {
				t.Fatalf("Parse accepted a purpose outside the catalogue")
			}
		}
	})
}
