package enforce

// The reference model's consent context: what the consentgate.consent.*
// and consentgate.consent_mode.* headers of a published record must say,
// restated from the model's decision (mDecision.allowed), and checked on
// every record the reference-model property test publishes.

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"
)

// modelChangeID is a change id as the header writes it: withheld when it
// holds the subject id, else every byte outside A-Z a-z 0-9 - . _ : as
// %XX, and past 256 bytes escaped the SHA-256 digest instead.
func modelChangeID(id, subject string) string {
	if strings.Contains(id, subject) {
		return "~withheld"
	}
	var b strings.Builder
	for _, c := range []byte(id) {
		if strings.IndexByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > 256 {
		return fmt.Sprintf("~sha256:%x", sha256.Sum256([]byte(id)))
	}
	return b.String()
}

// modelConsentHeaders is every consent header a record of decision d (not
// DROPPED) on stream s carries, by key; carried says whether the record
// carries the subject id as it came in (else every change id is
// withheld: the ids would tie the record back to the subject).
func modelConsentHeaders(s mStream, d mDecision, subject string, carried bool) map[string]string {
	h := map[string]string{}
	mode := "denied"
	if d.redact {
		// Published without the stream's consent: allowed for nothing.
		h[HeaderConsentPurposes], h[HeaderConsentLegalBasis], h[HeaderConsentChangeIDs] = "", "", ""
		h[HeaderConsentRedaction] = "missing_consent"
	} else {
		var purposes, bases, ids []string
		consented := d.outcome == "PASSED"
		for _, a := range d.allowed {
			purposes = append(purposes, a.purpose)
			bases = append(bases, a.purpose+"="+a.basis)
			if a.changeID != "" {
				id := "~withheld"
				if carried {
					id = modelChangeID(a.changeID, subject)
				}
				ids = append(ids, a.purpose+"="+id)
			}
			consented = consented && a.basis == "CONSENT"
		}
		h[HeaderConsentPurposes] = strings.Join(purposes, ",")
		h[HeaderConsentLegalBasis] = strings.Join(bases, ",")
		h[HeaderConsentChangeIDs] = strings.Join(ids, ",")
		if d.outcome == "REDACTED" {
			h[HeaderConsentRedaction] = "excluded_categories"
		}
		if consented {
			mode = "granted"
		}
	}
	if s.google {
		h[HeaderAdUserData], h[HeaderAdPersonalization] = mode, mode
	}
	return h
}

// checkConsentHeaders compares the consent headers of m, the record of ev
// on s, with the model's; the event's audit record carries none. No
// consent header holds the subject id.
func checkConsentHeaders(ev *refEvent, s mStream, d mDecision, m, audit kafka.Message, carried bool, fail func(string, ...any)) {
	if !d.redact && len(d.allowed) != len(s.purposes) {
		fail("model: a %s decision with %d of %d purposes allowed", d.outcome, len(d.allowed), len(s.purposes))
	}
	want := modelConsentHeaders(s, d, ev.subject, carried)
	got := map[string]string{}
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, "consentgate.consent") {
			continue
		}
		if _, dup := got[h.Key]; dup {
			fail("header %s twice", h.Key)
		}
		got[h.Key] = string(h.Value)
		if strings.Contains(string(h.Value), ev.subject) {
			fail("header %s holds the subject id: %q", h.Key, h.Value)
		}
	}
	for k, w := range want {
		if g, ok := got[k]; !ok {
			fail("no header %s (want %q)", k, w)
		} else if g != w {
			fail("header %s = %q, model %q", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			fail("header %s = %q, which the model does not have", k, g)
		}
	}
	for _, h := range audit.Headers {
		if strings.HasPrefix(h.Key, "consentgate.consent") {
			fail("the audit record carries header %s", h.Key)
		}
	}
}
