package explain

import (
	"strings"
	"testing"
)

// default_treatment: encrypt is an encrypt treatment too (it encrypts every
// annotated field without a rule when the stream redacts), and package
// redact removes a field it cannot encrypt (an enum, a number, a logical
// type). enforcer check says nothing about it: payment.method (an enum of
// category user.financial...) is silently removed from every redacted
// event, the very silent removal the encrypt-rule check exists to refuse.
func TestReviewShredDefaultEncryptOnFieldsThatCannotHoldIt(t *testing.T) {
	t.Parallel()
	pol := checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchase]
    on_missing_consent: redact
    default_treatment: encrypt
`
	res := Check([]byte(pol), "p.yaml", testCatalog(t), true)
	var all []string
	for _, e := range res.Errors {
		all = append(all, e.Error())
	}
	for _, w := range res.Warnings {
		all = append(all, w.Error())
	}
	for _, m := range all {
		if strings.Contains(m, "payment.method") {
			return
		}
	}
	t.Fatalf("default_treatment: encrypt on a redacting stream whose schema has an annotated enum (payment.method): "+
		"check reports nothing about it (OK=%v):\n%s", res.OK(), strings.Join(all, "\n"))
}
