package explain

import (
	"strings"
	"testing"
)

// TestCheckDefaultEncrypt: default_treatment: encrypt on a redacting
// stream warns (never errs) of each annotated field no rule matches whose
// type cannot hold a ciphertext; a rule of the field's own silences it,
// and a stream that never redacts gets no such warning.
func TestCheckDefaultEncrypt(t *testing.T) {
	t.Parallel()
	stream := func(onMissing, rules string) string {
		return checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchase]
    on_missing_consent: ` + onMissing + `
    default_treatment: encrypt
` + rules
	}
	const cannot = "default_treatment is encrypt, so a redacted event encrypts field "
	for _, tt := range []struct {
		name   string
		policy string
		want   []string // the fields warned of, in order
	}{
		// items and payment are encrypted whole (their fields inherit
		// encrypt): each is named once, with the first field that cannot.
		{"redact", stream("redact", ""), []string{"total_minor", "items", "payment"}},
		{"own rules", stream("redact", "    treatments:\n      - field: payment\n        action: remove\n      - category: user.behavior.purchase\n        action: remove\n"), nil},
		// payment (user.financial) is encrypted whole by the default; a
		// keep rule does not lift its enum out of it.
		{"inner keep", stream("redact", "    treatments:\n      - field: payment.method\n        action: keep\n      - category: user.behavior.purchase\n        action: remove\n"), []string{"payment"}},
		{"drop", stream("drop", ""), nil},
	} {
		res := Check([]byte(tt.policy), "p.yaml", testCatalog(t), true)
		if !res.OK() {
			t.Errorf("%s: errors %v", tt.name, res.Errors)
		}
		var got []string
		for _, w := range res.Warnings {
			m := w.Error()
			if i := strings.Index(m, cannot); i >= 0 {
				if w.Line != 9 || !strings.Contains(m, "which cannot hold a ciphertext") {
					t.Errorf("%s: warning %q", tt.name, m)
				}
				got = append(got, strings.Fields(m[i+len(cannot):])[0])
			}
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: warned of %q, want %q", tt.name, got, tt.want)
		}
	}
}
