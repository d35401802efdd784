package signals

import (
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
)

// FuzzChanges feeds arbitrary signals through Decode, Evaluate and
// Changes: nothing panics, a submission that decodes gives only valid
// consent changes, each for a policy purpose, at most one per purpose, and
// a submission that does not decode gives none.
func FuzzChanges(f *testing.F) {
	for _, s := range []struct{ typ, value, j string }{
		{TypeTCF, "CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA.IAoAAgABgAAEAQAAEAAA.d4AACEAAAAAA", "DE"},
		{TypeTCF, "CPSG_8APSG_8AAAAAAENAAFgAAAAAAAAAAAAAAAAAAAA.IAAA.YAAAAAAAAAAA", ""},
		{TypeGPP, "DBABLA~BVVqAAAAAV.YA", "US-CA"},
		{TypeGPP, "DBABTA~1YNN", "US"},
		{TypeUSP, "1YYN", ""},
		{TypeGPC, "1", "US"},
		{TypeConsentMode, "", "FR"},
	} {
		f.Add(s.typ, s.value, s.j, "granted", "denied")
	}
	pol := mustPolicy(f, testPolicy)
	f.Fuzz(func(t *testing.T, typ, value, jurisdiction, s1, s2 string) {
		sig := Signal{Type: typ, Value: value}
		if typ == TypeConsentMode {
			sig.States = map[string]string{"ad_user_data": s1, "analytics_storage": s2}
		}
		sub := Submission{SubjectID: "fuzz-subject", CapturedAt: time.UnixMilli(1_764_583_200_000), Jurisdiction: jurisdiction, Signals: []Signal{sig}}
		cs, err := Changes(pol, sub)
		if err != nil {
			if cs != nil {
				t.Fatalf("changes %v with error %v", cs, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, c := range cs {
			if err := c.Validate(); err != nil {
				t.Fatalf("invalid change %+v: %v", c, err)
			}
			if _, ok := pol.Purpose(c.Purpose); !ok || seen[c.Purpose] {
				t.Fatalf("change for purpose %q (unknown or twice)", c.Purpose)
			}
			seen[c.Purpose] = true
			if c.Action == consent.ActionErase {
				t.Fatal("a signal erased a subject")
			}
		}
	})
}
