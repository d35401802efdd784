package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/proctest"
)

// Signals of the e2e test. The TC strings are published test strings of
// the IAB reference implementations (TCF policy version 5, service
// specific): tcfAll consents to every purpose and special feature, tcfNone
// to nothing. The GPP strings carry a US national v1 section whose opt-outs
// are all 2 (did not opt out), and the same with a GPC subsection saying 1.
const (
	tcfAll      = "CQd924AQd924AASACCENCNFsAP_gAEIAACiQL6QBAAGAAOANmAcAF9IAIADgAA.IL6AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.YIAAAAAAAAAA"
	tcfNone     = "CPSG_8APSG_8AAAAAAENAAFgAAAAAAAAAAAAAAAAAAAA.IAAA.YAAAAAAAAAAA"
	gppUsnatOK  = "DBABLA~BVVqAAAAAV"
	gppUsnatGPC = "DBABLA~BVVqAAAAAV.YA"
)

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
	url := "http://" + addr + "/v1/consent-signals"
	at := time.Now().Add(-time.Minute).UTC()
	post := func(subject, jurisdiction string, captured time.Time, signals string) map[string]string {
		t.Helper()
		j := ""
		if jurisdiction != "" {
			j = `"jurisdiction":"` + jurisdiction + `",`
		}
		code, ans := csPost(t, url, "application/json", `{"subject_id":"`+subject+`",`+j+`"captured_at":"`+captured.Format(time.RFC3339Nano)+`","signals":[`+signals+`]}`)
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
	code, ans := csPost(t, url, "application/json", `{"subject_id":"sig-bad","captured_at":"`+at.Format(time.RFC3339)+`","signals":[{"type":"gpc","value":"1"},{"type":"tcf","value":"CPxx-not-a-tc-string"}]}`)
	if code != 400 || fmt.Sprint(csErrorFields(ans)) != "[signals[1]]" {
		t.Fatalf("malformed TC string: %d %v, want 400 naming signals[1]", code, ans)
	}

	tcfGrant := post("sig-tcf", "DE", at, `{"type":"tcf","value":"`+tcfAll+`"}`)
	cmGrant := post("sig-cm", "", at, `{"type":"consent_mode","states":{"ad_user_data":"granted","analytics_storage":"denied"}}`)
	usGrant := post("sig-us", "US-CA", at, `{"type":"gpp","value":"`+gppUsnatOK+`"}`)
	gpcOut := post("sig-gpc", "US", at, `{"type":"usp","value":"1YNN"},{"type":"gpc","value":"1"}`)
	for name, c := range map[string]struct {
		got  map[string]string
		want map[string]string
	}{
		"tcf": {tcfGrant, map[string]string{"marketing": "GRANT", "analytics": "GRANT"}},
		"cm":  {cmGrant, map[string]string{"marketing": "GRANT", "analytics": "DENY"}},
		"us":  {usGrant, map[string]string{"sale": "GRANT"}},
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

	// Signals that take consent away: a TC string with no consent and a GPP
	// string whose GPC subsection is set. Each withdraws what was granted,
	// with a revocation notice; a resend changes nothing.
	later := at.Add(30 * time.Second)
	tcfOff := post("sig-tcf", "DE", later, `{"type":"tcf","value":"`+tcfNone+`"}`)
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
			notices[fmt.Sprint(v["change_id"])] = fmt.Sprint(v["subject_id"], v["purposes"])
		}
	}
	for purpose, ch := range map[string]string{"marketing": tcfOff["marketing"], "analytics": tcfOff["analytics"], "sale": usOff["sale"]} {
		_, id, _ := strings.Cut(ch, " ")
		if _, ok := notices[id]; !ok {
			t.Errorf("no revocation notice for the %s withdrawal (change %s); notices: %v", purpose, id, notices)
		}
	}
	if len(notices) != 3 {
		t.Errorf("%d notices, want 3 (the withdrawals of grants; the resend and the never-granted GPC owe none): %v", len(notices), notices)
	}

	p.produce(t, p.email(t, "e-tcf-2", "sig-tcf"), p.email(t, "e-us-2", "sig-us"))
	want["e-tcf-2/compliant.marketing"], want["e-tcf-2/compliant.analytics"], want["e-tcf-2/compliant.partners"] = "DROPPED", "REDACTED", "PASSED"
	want["e-us-2/compliant.marketing"], want["e-us-2/compliant.analytics"], want["e-us-2/compliant.partners"] = "DROPPED", "REDACTED", "DROPPED"
	checkDecisions(t, p, want)

	for _, proc := range []*proctest.Proc{p.enforce, p.sync} {
		if err := proc.Stop(30 * time.Second); err != nil {
			t.Errorf("%s did not stop cleanly: %v", proc.Name, err)
		}
		for _, secret := range []string{"sig-tcf", "sig-cm", "sig-us", "sig-gpc", "CQd924", "BVVqAAAAAV"} {
			if strings.Contains(proc.Output(), secret) {
				t.Errorf("%s logged a subject id or a signal (%q)", proc.Name, secret)
			}
		}
	}
}

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
