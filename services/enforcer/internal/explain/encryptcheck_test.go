package explain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

func TestCheckEncrypt(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	cases := []struct {
		name     string
		policy   string
		errors   []string // every error, in order, each a prefix of the printed one
		warnings []string // nil: none
	}{
		{
			name: "strings and bytes, also in unions and records of them, on a drop stream: no finding",
			policy: checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchase]
    treatments:
      - category: user.contact.email
        action: encrypt
        encryption: deterministic
      - field: shipping_address
        action: encrypt
      - category: user.id
        action: encrypt
`,
		},
		{
			name: "numbers, enums, logical types: an error naming line, schema, field and type",
			policy: checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchase]
    on_missing_consent: redact
    treatments:
      - field: occurred_at
        action: encrypt
      - category: user.financial
        action: encrypt
      - category: user.behavior.purchase
        action: keep
`,
			errors: []string{
				"p.yaml:10:16: stream compliant.marketing: the encrypt rule (line 10) matches field occurred_at of consentgate.events.Purchase version 1, of type long (timestamp-millis), which cannot hold a ciphertext",
				// payment is a record of annotated fields, each judged by its own rule: its enum is the error.
				"p.yaml:12:19: stream compliant.marketing: the encrypt rule (line 12) matches field payment.method of consentgate.events.Purchase version 1, of type enum consentgate.events.PaymentMethod",
			},
		},
		{
			name: "a record field of its own category that cannot hold it",
			policy: checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchase]
    treatments:
      - category: user.financial.card
        action: keep
      - category: user.financial
        action: encrypt
`,
			errors: []string{
				"p.yaml:11:19: stream compliant.marketing: the encrypt rule (line 11) matches field payment.method of consentgate.events.Purchase version 1, of type enum consentgate.events.PaymentMethod",
			},
			warnings: []string{"p.yaml:9:19: warning: stream compliant.marketing: on_missing_consent is drop, so the stream never redacts and the category rule user.financial.card never applies"},
		},
		{
			name: "an earlier rule takes the field: no error; an array of records with numbers: error",
			policy: checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchase]
    treatments:
      - field: total_minor
        action: remove
      - category: user.behavior.purchase
        action: encrypt
`,
			errors: []string{
				// total_minor is the earlier rule's; items, an array of records of annotated fields, is fine as such.
				"p.yaml:11:19: stream compliant.marketing: the encrypt rule (line 11) matches field items[].quantity of consentgate.events.Purchase version 1, of type int, which cannot hold a ciphertext",
				"p.yaml:11:19: stream compliant.marketing: the encrypt rule (line 11) matches field items[].price_minor of consentgate.events.Purchase version 1, of type long, which cannot hold a ciphertext",
			},
			// The first matching rule decides, and remove applies only when redacting.
			warnings: []string{"p.yaml:9:16: warning: stream compliant.marketing: on_missing_consent is drop, so the stream never redacts and the rule for total_minor never applies (a field rule takes effect on a drop stream only for an unannotated field with unannotated_fields: remove)"},
		},
		{
			name: "a record: every value in it is encrypted, also annotated ones, unless their own rule removes them",
			policy: checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchase]
    on_missing_consent: redact
    treatments:
      - field: payment
        action: encrypt
  - topic: compliant.analytics
    purposes: [analytics]
    schemas: [consentgate.events.Purchase]
    on_missing_consent: redact
    treatments:
      - field: payment.method
        action: remove
      - field: payment
        action: encrypt
`,
			errors: []string{"p.yaml:10:16: stream compliant.marketing: the encrypt rule (line 10) matches field payment of consentgate.events.Purchase version 1, of type record consentgate.events.Payment (its field payment.method is enum consentgate.events.PaymentMethod), which cannot hold a ciphertext"},
		},
		{
			name: "a field of several versions is reported once",
			policy: checkBase + `  - topic: compliant.analytics
    purposes: [analytics]
    schemas: [consentgate.events.PageView]
    treatments:
      - field: duration_ms
        action: encrypt
`,
			errors: []string{"p.yaml:9:16: stream compliant.analytics: the encrypt rule (line 9) matches field duration_ms of consentgate.events.PageView version "},
		},
		{
			name: "the never-redacts warning stays for the other rules and the default",
			policy: checkBase + `  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.Purchase]
    treatments:
      - category: user.contact.phone
        action: encrypt
      - category: user.contact.email
        action: mask
    default_treatment: encrypt
`,
			warnings: []string{
				"p.yaml:11:19: warning: stream compliant.marketing: on_missing_consent is drop, so the stream never redacts and the category rule user.contact.email never applies",
				"p.yaml:13:5: warning: stream compliant.marketing: on_missing_consent is drop, so the stream never redacts and default_treatment never applies",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Check([]byte(tc.policy), "p.yaml", cat, true)
			var errs, warns []string
			for _, e := range res.Errors {
				errs = append(errs, e.Error())
			}
			for _, w := range res.Warnings {
				warns = append(warns, w.Error())
			}
			if len(errs) != len(tc.errors) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(tc.errors, "\n"))
			}
			for i, w := range tc.errors {
				if !strings.HasPrefix(errs[i], w) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, errs[i], w)
				}
			}
			if strings.Join(warns, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(tc.warnings, "\n"))
			}
			if res.OK() != (len(tc.errors) == 0) {
				t.Errorf("OK = %v with %d errors", res.OK(), len(errs))
			}
		})
	}
}

// TestCannotHold checks the type rule on the redact package's kitchen
// schema, which has every Avro type the redactor handles: a field can be
// encrypted exactly where package redact encrypts rather than removes.
func TestCannotHold(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(os.DirFS(filepath.Join("..", "..", "..", "..", "pkg", "redact", "testdata")))
	if err != nil {
		t.Fatal(err)
	}
	k, ok := cat.SchemaByName("consentgate.test.Kitchen")
	if !ok {
		t.Fatal("no kitchen schema")
	}
	want := map[string]bool{
		"event_id": true, "subject_id": true, "tags": true, "attrs": true, "mixed": true, "blob": true,
		"contacts":    true,  // a map of records of strings
		"occurred_at": false, // timestamp-millis
		"profile":     false, // age is an unannotated int
		"either":      false, // union of string and long
		"hash":        false, "score": false, "ratio": false, "born": false, "seen_at": false, "clock": false, "level": false, "flag": false,
		"nested": false, // list is an array of int
	}
	want["nested.deep"] = false // y is ["null", "long"]
	got := map[string]bool{}
	walkFields(k.Root(), "", map[*avrocodec.Type]bool{}, func(path, _ string, ft *avrocodec.Type) {
		_, _, ok := cannotHold(ft, path, func(string, string) bool { return false }, map[*avrocodec.Type]bool{})
		got[path] = ok
	})
	for path, w := range want {
		if g, ok := got[path]; !ok || g != w {
			t.Errorf("%s: can hold a ciphertext = %v (listed %v), want %v", path, g, ok, w)
		}
	}
}
