package signals

import (
	"testing"
	"time"
)

// BenchmarkChanges is the intake's work per submission: decode a TC
// string, a GPP string and Consent Mode states, evaluate the policy and
// make the changes. BenchmarkDigestOnly is the floor: hashing the
// submission alone.
func BenchmarkChanges(b *testing.B) {
	pol := mustPolicy(b, testPolicy)
	sub := Submission{SubjectID: "bench-subject", CapturedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Jurisdiction: "DE", Signals: []Signal{
		{Type: TypeTCF, Value: "CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA.IAoAAgABgAAEAQAAEAAA.d4AACEAAAAAA"},
		{Type: TypeGPP, Value: "DBABLA~BVVqAAAAAV.YA"},
		{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted, "analytics_storage": Denied}},
	}}
	b.ReportAllocs()
	for b.Loop() {
		cs, err := Changes(pol, sub)
		if err != nil || len(cs) == 0 {
			b.Fatal(cs, err)
		}
	}
}

func BenchmarkDigestOnly(b *testing.B) {
	sub := Submission{SubjectID: "bench-subject", CapturedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Jurisdiction: "DE", Signals: []Signal{
		{Type: TypeTCF, Value: "CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA.IAoAAgABgAAEAQAAEAAA.d4AACEAAAAAA"},
		{Type: TypeGPP, Value: "DBABLA~BVVqAAAAAV.YA"},
		{Type: TypeConsentMode, States: map[string]string{"ad_user_data": Granted, "analytics_storage": Denied}},
	}}
	b.ReportAllocs()
	for b.Loop() {
		_ = SubmissionDigest(sub)
	}
}
