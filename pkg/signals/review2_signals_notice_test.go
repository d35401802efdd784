package signals

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/signals/gpp"
)

// TestReview2SignalsOptOutWithoutNoticeGrants shows that a US section
// saying "did not opt out" of sale (sale_opt_out = 2) while also saying the
// sale opt-out notice was NOT provided (sale_opt_out_notice = 2) grants
// sale. The customer was never told they could opt out, so not opting out
// is no choice at all; the IAB reference implementations (iabgpp-es,
// iabgpp-java: "Invalid usnat sale notice / opt out combination") refuse
// the string outright, as they refuse notice 0 with an opt-out other than
// 0. Our gpp decoder keeps the notice fields aside (Section.Notices, "not
// mappable") and checks no combination, and the engine never reads them,
// so absence of a notice becomes a grant. Such a section must be refused as
// malformed, or its opt-out read as absent (or as opted out).
func TestReview2SignalsOptOutWithoutNoticeGrants(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	sec := usnat(map[string]int{"sale_opt_out": 2})
	sec.Notices = map[string]int{"sale_opt_out_notice": 2, "mspa_covered_transaction": 1}
	got := Evaluate(pol, &Decoded{GPP: []gpp.Section{sec}}, "US-CA")
	for _, o := range got {
		if o.Purpose == "sale" && o.Action == consent.ActionGrant {
			t.Errorf("usnat sale_opt_out=2 with sale_opt_out_notice=2 (notice not provided): %v: a grant from a choice never offered", brief(got))
		}
	}
}
