package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/proctest"
)

// GPP strings of the e2e test: a US national v1 section whose opt-outs
// are all 2 (did not opt out), and the same with a GPC subsection saying 1.
const (
	gppUsnatOK  = "DBABLA~BVVqAAAAAV"
	gppUsnatGPC = "DBABLA~BVVqAAAAAV.YA"
)

// tcString encodes a TCF v2.3 TC string (policy version 5, service
// specific, no vendors, an empty disclosed-vendors segment) with the given
// purpose consents and special feature opt-ins, last updated at lastUpdated:
// the engine dates what a TC string decides by its LastUpdated.
func tcString(lastUpdated time.Time, purposes, features []int) string {
	var bits strings.Builder
	put := func(v int64, n int) { bits.WriteString(fmt.Sprintf("%0*b", n, v)) }
	set := func(ids []int, n int) {
		for i := 1; i <= n; i++ {
			b := int64(0)
			for _, id := range ids {
				if id == i {
					b = 1
				}
			}
			put(b, 1)
		}
	}
	ds := lastUpdated.UnixMilli() / 100
	put(2, 6)         // Version
	put(ds, 36)       // Created
	put(ds, 36)       // LastUpdated
	put(10, 12)       // CmpId
	put(1, 12)        // CmpVersion
	put(1, 6)         // ConsentScreen
	put(4, 6)         // ConsentLanguage "EN"
	put(13, 6)        //
	put(100, 12)      // VendorListVersion
	put(5, 6)         // TcfPolicyVersion
	put(1, 1)         // IsServiceSpecific
	put(0, 1)         // UseNonStandardTexts
	set(features, 12) // SpecialFeatureOptIns
	set(purposes, 24) // PurposesConsent
	set(nil, 24)      // PurposesLITransparency
	put(0, 1)         // PurposeOneTreatment
	put(3, 6)         // PublisherCC "DE"
	put(4, 6)         //
	put(0, 16)        // vendor consents: MaxVendorId 0
	put(0, 1)         //   bit field
	put(0, 16)        // vendor LI: MaxVendorId 0
	put(0, 1)         //   bit field
	put(0, 12)        // NumPubRestrictions
	core := b64(bits.String())
	bits.Reset()
	put(1, 3)  // SegmentType: disclosed vendors
	put(0, 16) // MaxVendorId 0
	put(0, 1)  // bit field
	return core + "." + b64(bits.String())
}

// b64 packs bits into base64url characters, zero padded.
func b64(bits string) string {
	const al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for len(bits)%6 != 0 {
		bits += "0"
	}
	var b strings.Builder
	for i := 0; i < len(bits); i += 6 {
		v := 0
		for _, c := range bits[i : i+6] {
			v = v*2 + int(c-'0')
		}
		b.WriteByte(al[v])
	}
	return b.String()
}

// TestSignalsThroughIntakeDecideStreams sends TC strings, Consent Mode
// states, GPP and USP strings and GPC through consent-sync's signals
// intake and sees, on the running pipeline, each customer's events pass,
// be redacted or be dropped on each stream as the policy's signals rules
// say; then signals that take consent away withdraw what was granted, with
// a revocation notice each, and later events are held back. A malformed
// signal is refused with its reason and produces nothing; a resend makes
// the same changes and no second notice.
func TestSignalsThroughIntakeDecideStreams(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "intake-tokens")
	if err := os.WriteFile(tokens, []byte(csIntakeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t))
	outputs := []string{"compliant.marketing", "compliant.analytics", "compliant.partners"}
	p := startPipelineWith(t, "testdata/signals_policy.yaml", outputs, "CONSENT_INTAKE_ADDR="+addr, "CONSENT_INTAKE_TOKENS_FILE="+tokens)
	if err := p.sync.WaitFor(`"msg":"intake listening"`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	intakeURL := "http://" + addr + "/v1/consent-signals"
	at := time.Now().Add(-time.Minute).UTC()
	post := func(subject, jurisdiction string, captured time.Time, signals string) map[string]string {
		t.Helper()
		j := ""
		if jurisdiction != "" {
			j = `"jurisdiction":"` + jurisdiction + `",`
		}
		code, ans := csPost(t, intakeURL, "application/json", `{"subject_id":"`+subject+`",`+j+`"captured_at":"`+captured.Format(time.RFC3339Nano)+`","signals":[`+signals+`]}`)
		if code != 202 {
			t.Fatalf("%s: status %d (%v), want 202", subject, code, ans)
		}
		out := map[string]string{}
		for _, c := range ans["changes"].([]any) {
			m := c.(map[string]any)
			out[m["purpose"].(string)] = m["action"].(string) + " " + m["change_id"].(string)
		}
		return out
	}
	action := func(s string) string { a, _, _ := strings.Cut(s, " "); return a }

	// A malformed signal: 400 naming it, nothing produced.
	code, ans := csPost(t, intakeURL, "application/json", `{"subject_id":"sig-bad","captured_at":"`+at.Format(time.RFC3339)+`","signals":[{"type":"gpc","value":"1"},{"type":"tcf","value":"CPxx-not-a-tc-string"}]}`)
	if code != 400 || fmt.Sprint(csErrorFields(ans)) != "[signals[1]]" {
		t.Fatalf("malformed TC string: %d %v, want 400 naming signals[1]", code, ans)
	}

	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	tcfGrant := post("sig-tcf", "DE", at, `{"type":"tcf","value":"`+tcString(at, all, []int{1, 2})+`"}`)
	cmGrant := post("sig-cm", "", at, `{"type":"consent_mode","states":{"ad_user_data":"granted","analytics_storage":"denied"}}`)
	// "Did not opt out" is no consent: the GPP string decides nothing (200),
	// the preference centre's grant of sale stands until an objection.
	if code, ans := csPost(t, intakeURL, "application/json", `{"subject_id":"sig-us","jurisdiction":"US-CA","captured_at":"`+at.Format(time.RFC3339Nano)+`","signals":[{"type":"gpp","value":"`+gppUsnatOK+`"}]}`); code != 200 || len(ans["changes"].([]any)) != 0 {
		t.Fatalf("GPP without an objection: %d %v, want 200 with no change", code, ans)
	}
	p.produce(t, p.change(t, consent.Change{ChangeID: "pc-sale-us", SubjectID: "sig-us", Purpose: "sale", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "1", CapturedAt: at}))
	gpcOut := post("sig-gpc", "US", at, `{"type":"usp","value":"1YNN"},{"type":"gpc","value":"1"}`)
	for name, c := range map[string]struct {
		got  map[string]string
		want map[string]string
	}{
		"tcf": {tcfGrant, map[string]string{"marketing": "GRANT", "analytics": "GRANT"}},
		"cm":  {cmGrant, map[string]string{"marketing": "GRANT", "analytics": "DENY"}},
		"gpc": {gpcOut, map[string]string{"sale": "WITHDRAW"}},
	} {
		if len(c.got) != len(c.want) {
			t.Fatalf("%s: changes %v, want %v", name, c.got, c.want)
		}
		for purpose, a := range c.want {
			if action(c.got[purpose]) != a {
				t.Fatalf("%s: %s %q, want %s", name, purpose, c.got[purpose], a)
			}
		}
	}
	p.waitConsent(t, "sig-tcf", "analytics", consent.StatusGranted)
	p.waitConsent(t, "sig-cm", "analytics", consent.StatusDenied)
	p.waitConsent(t, "sig-us", "sale", consent.StatusGranted)
	p.waitConsent(t, "sig-gpc", "sale", consent.StatusWithdrawn)

	p.produce(t, p.email(t, "e-tcf-1", "sig-tcf"), p.email(t, "e-cm-1", "sig-cm"), p.email(t, "e-us-1", "sig-us"), p.email(t, "e-gpc-1", "sig-gpc"))
	want := map[string]string{
		"e-tcf-1/compliant.marketing": "PASSED", "e-tcf-1/compliant.analytics": "PASSED", "e-tcf-1/compliant.partners": "PASSED",
		"e-cm-1/compliant.marketing": "PASSED", "e-cm-1/compliant.analytics": "REDACTED", "e-cm-1/compliant.partners": "PASSED",
		"e-us-1/compliant.marketing": "DROPPED", "e-us-1/compliant.analytics": "REDACTED", "e-us-1/compliant.partners": "PASSED",
		"e-gpc-1/compliant.marketing": "DROPPED", "e-gpc-1/compliant.analytics": "REDACTED", "e-gpc-1/compliant.partners": "DROPPED",
	}
	checkDecisions(t, p, want)

	// The outputs say under which consent they were published: purposes,
	// legal basis and deciding change ids; the Google stream also the
	// Consent Mode values; a redaction says it is one.
	heads := outputHeaders(t, p, "compliant.marketing")
	_, tcfMarketingID, _ := strings.Cut(tcfGrant["marketing"], " ")
	for k, v := range map[string]string{
		"consentgate.consent.purposes": "marketing", "consentgate.consent.legal_basis": "marketing=CONSENT",
		"consentgate.consent.change_ids": "marketing=" + url.QueryEscape(tcfMarketingID),
		// ad_user_data follows the marketing grant its rule maps; no rule
		// maps ad_personalization, so it is denied (fail closed).
		"consentgate.consent_mode.ad_user_data": "granted", "consentgate.consent_mode.ad_personalization": "denied",
	} {
		if got := heads["e-tcf-1"][k]; got != v {
			t.Errorf("e-tcf-1 on compliant.marketing: %s = %q, want %q", k, got, v)
		}
	}
	an := outputHeaders(t, p, "compliant.analytics")
	if got := an["e-cm-1"]["consentgate.consent.redaction"]; got != "missing_consent" {
		t.Errorf("e-cm-1 on compliant.analytics (redacted): redaction header %q, want missing_consent", got)
	}
	if _, ok := an["e-cm-1"]["consentgate.consent_mode.ad_user_data"]; ok {
		t.Error("compliant.analytics is no Google stream but carries Consent Mode headers")
	}

	// Signals that take consent away: a TC string with no consent and a GPP
	// string whose GPC subsection is set. Each withdraws what was granted,
	// with a revocation notice; a resend changes nothing.
	later := at.Add(30 * time.Second)
	tcfOff := post("sig-tcf", "DE", later, `{"type":"tcf","value":"`+tcString(later, nil, nil)+`"}`)
	if action(tcfOff["marketing"]) != "DENY" || action(tcfOff["analytics"]) != "DENY" {
		t.Fatalf("tcf without consent: %v, want DENY for marketing and analytics", tcfOff)
	}
	usOff := post("sig-us", "US-CA", later, `{"type":"gpp","value":"`+gppUsnatGPC+`"}`)
	if action(usOff["sale"]) != "WITHDRAW" {
		t.Fatalf("GPP with GPC: %v, want WITHDRAW of sale", usOff)
	}
	if again := post("sig-us", "US-CA", later, `{"type":"gpp","value":"`+gppUsnatGPC+`"}`); again["sale"] != usOff["sale"] {
		t.Fatalf("resend: %v, first %v: a resend must make the same change", again, usOff)
	}
	p.waitConsent(t, "sig-tcf", "marketing", consent.StatusDenied)
	p.waitConsent(t, "sig-us", "sale", consent.StatusWithdrawn)

	notices := map[string]string{} // change id -> subject/purposes
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && len(notices) < 3 {
		for _, m := range p.broker.ReadAll(t, "consent.revocations", 300*time.Millisecond, 5*time.Second) {
			rec, err := p.codec.Decode(context.Background(), m.Value)
			if err != nil {
				t.Fatal(err)
			}
			v := rec.Value
			notices[fmt.Sprint(v["change_id"])] = fmt.Sprint(v["subject_id"], v["purposes"], " ", v["reason"])
		}
	}
	for purpose, ch := range map[string]string{"marketing": tcfOff["marketing"], "analytics": tcfOff["analytics"], "sale": usOff["sale"]} {
		_, id, _ := strings.Cut(ch, " ")
		if _, ok := notices[id]; !ok {
			t.Errorf("no revocation notice for the %s withdrawal (change %s); notices: %v", purpose, id, notices)
		}
	}
	// Any other notice is a precautionary one (a change applied while the
	// state was being rebuilt at start-up, or late): sent when in doubt.
	// The resend made no second notice: the ids above are each once.
	for id, n := range notices {
		if id == mustID(tcfOff["marketing"]) || id == mustID(tcfOff["analytics"]) || id == mustID(usOff["sale"]) {
			continue
		}
		if !strings.Contains(n, "(state_incomplete") && !strings.Contains(n, "(late_change") {
			t.Errorf("notice %s (%s) for a change that replaced no grant, and not a precautionary one", id, n)
		}
	}

	p.produce(t, p.email(t, "e-tcf-2", "sig-tcf"), p.email(t, "e-us-2", "sig-us"))
	want["e-tcf-2/compliant.marketing"], want["e-tcf-2/compliant.analytics"], want["e-tcf-2/compliant.partners"] = "DROPPED", "REDACTED", "PASSED"
	want["e-us-2/compliant.marketing"], want["e-us-2/compliant.analytics"], want["e-us-2/compliant.partners"] = "DROPPED", "REDACTED", "DROPPED"
	checkDecisions(t, p, want)

	for _, proc := range []*proctest.Proc{p.enforce, p.sync} {
		if err := proc.Stop(30 * time.Second); err != nil {
			t.Errorf("%s did not stop cleanly: %v", proc.Name, err)
		}
		for _, secret := range []string{"sig-tcf", "sig-cm", "sig-us", "sig-gpc", "BVVqAAAAAV"} {
			if strings.Contains(proc.Output(), secret) {
				t.Errorf("%s logged a subject id or a signal (%q)", proc.Name, secret)
			}
		}
	}
}

// mustID returns the change id of an answer entry "ACTION id".
func mustID(s string) string { _, id, _ := strings.Cut(s, " "); return id }

// checkDecisions waits for the audit to hold every wanted decision
// ("event/stream" -> PASSED | REDACTED | DROPPED) and compares them.
func checkDecisions(t *testing.T, p *pipeline, want map[string]string) {
	t.Helper()
	rows := p.audit(t, len(want))
	got := map[string]string{}
	for _, r := range rows {
		got[r.eventID+"/"+r.stream] = r.decision
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %s", k, got[k], w)
		}
	}
}

// outputHeaders reads a purpose stream and returns each record's headers
// by event id.
func outputHeaders(t *testing.T, p *pipeline, topic string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, m := range p.broker.ReadAll(t, topic, 500*time.Millisecond, 10*time.Second) {
		h := map[string]string{}
		for _, kv := range m.Headers {
			h[kv.Key] = string(kv.Value)
		}
		out[h["consentgate.event_id"]] = h
	}
	return out
}
