package explain

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
)

// Valid signals from the decoders' test vectors (pkg/signals/tcf,
// pkg/signals/gpp). TCF strings of TCF policy version 4 or later and
// service-specific: signals.Decode refuses the others.
const (
	// iabgpp-es "encode with vendors [11, 28, 29] and CmpId 10": policy
	// version 5, purposes with consent 1, 3, 4, 5, 6, LI 2, no special
	// feature.
	tcfP13456 = "CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA.IAoAAgABgAAEAQAAEAAA.d4AACEAAAAAA"
	// iabtcf-es v2.3: purposes 1-11 with consent, special features 1, 2.
	tcfAll = "CQd924AQd924AASACCENCNFsAP_gAEIAACiQL6QBAAGAAOANmAcAF9IAIADgAA.IL6AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.YIAAAAAAAAAA"
	// The TCF v2.3 specification's example: TCF policy version 2.
	tcfPolicy2 = "CQSbk4AQSbk4ANwAAAENAwCgAAAAAAAAAAYgACPAAAAA.IDKQA4AAgAKAGQAygAAA.YAAAAAAAAAAA"
	// GPP with a usnat v1 section: sale, sharing and targeted advertising
	// "did not opt out" (2), sensitive data not applicable (0).
	gppNoOptOut = "DBABLA~BVQqAAAAAgA.QA"
	// GPP with a usnat v2 section, every field set: sale, sharing and
	// targeted advertising opted out (1).
	gppOptedOut = "DBABLA~CVVVkkkkkpFY.YA"
)

var examplePolicy = filepath.Join("..", "..", "..", "..", "pkg", "policy", "testdata", "example.yaml")

func runExplain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = RunExplain(args, func(string) string { return "" }, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// wantChangeIDs computes, with package signals as consent-sync calls it,
// the change ids of a submission by subject c-1001 at goldenNow (the
// event's subject and the cases' decision time), by purpose.
func wantChangeIDs(t *testing.T, jurisdiction string, sigs ...signals.Signal) map[string]string {
	t.Helper()
	pol, err := policy.Parse(repoFile(t, "pkg/policy/testdata/example.yaml"), "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := signals.Changes(pol, signals.Submission{SubjectID: "c-1001", CapturedAt: goldenNow, Jurisdiction: jurisdiction, Signals: sigs})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, c := range changes {
		ids[c.Purpose] = c.ChangeID
	}
	return ids
}

func TestExplainSignalsCLI(t *testing.T) {
	t.Parallel()
	base := []string{"--policy", examplePolicy, "--event", filepath.Join("testdata", "events", "purchase.json"), "--now", "2026-06-01T12:00:00Z"}
	tcfDE := wantChangeIDs(t, "DE", signals.Signal{Type: signals.TypeTCF, Value: tcfP13456},
		signals.Signal{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "granted", "ad_personalization": "denied"}})
	tcfAllDE := wantChangeIDs(t, "DE", signals.Signal{Type: signals.TypeTCF, Value: tcfAll})
	gppUS := wantChangeIDs(t, "US-CA", signals.Signal{Type: signals.TypeGPP, Value: gppNoOptOut})
	optedOut := wantChangeIDs(t, "US", signals.Signal{Type: signals.TypeGPP, Value: gppOptedOut}, signals.Signal{Type: signals.TypeGPC, Value: "1"})
	usp := wantChangeIDs(t, "", signals.Signal{Type: signals.TypeUSP, Value: "1YYN"})
	cmDenied := wantChangeIDs(t, "", signals.Signal{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "denied"}})
	twice := wantChangeIDs(t, "", signals.Signal{Type: signals.TypeUSP, Value: "1YNN"}, signals.Signal{Type: signals.TypeUSP, Value: "1YYN"},
		signals.Signal{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "granted"}},
		signals.Signal{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "denied"}})
	for _, ids := range []map[string]string{tcfDE, tcfAllDE, optedOut, usp, cmDenied, twice} {
		if len(ids) == 0 {
			t.Fatal("a reference submission decides nothing")
		}
	}
	if len(gppUS) != 0 {
		t.Fatalf("reference: a GPP string without objection decides %v", gppUS)
	}
	cases := []struct {
		name     string
		args     []string
		wantCode int
		stdout   []string // in this order
		stderr   []string
		absent   []string // in neither
	}{
		{
			name: "tcf and consent mode in the EEA",
			args: []string{"--jurisdiction", "DE", "--tcf", tcfP13456, "--consent-mode", "ad_user_data=granted, ad_personalization=denied"},
			stdout: []string{
				"consent from signals: tcf, consent_mode (jurisdiction DE; captured 2026-06-01T12:00:00.000Z)",
				"  marketing: DENY\n    decided by: consent_mode (consent_mode.ad_personalization=refuse)\n    change:     " + tcfDE["marketing"] + ", captured 2026-06-01T12:00:00.000Z\n",
				"  analytics: DENY\n    decided by: tcf (tcf.purpose.8=refuse)\n    change:     " + tcfDE["analytics"],
				"  personalisation: GRANT, legal basis CONSENT, excluded categories user.location.precise\n    decided by: tcf (tcf.purpose.1=allow, tcf.purpose.5=allow, tcf.purpose.6=allow)\n    change:     " + tcfDE["personalisation"],
				"  sale: no signal decides it: consent unchanged, opt-out purpose: allowed until the customer objects\n",
				"compliant.marketing (purposes: marketing; on_missing_consent: drop)\n  decision:       DROPPED\n  reason:         denied: the customer denied marketing",
				"  consent change: " + tcfDE["marketing"] + " (purpose marketing",
				"compliant.analytics (purposes: analytics; on_missing_consent: redact)\n  decision:       REDACTED\n  reason:         denied: the customer denied analytics",
				"compliant.personalisation (purposes: personalisation; on_missing_consent: drop)\n  decision:       PASSED\n  reason:         granted: the customer granted personalisation\n  consent change: " + tcfDE["personalisation"],
				"compliant.partners (purposes: sale, marketing; on_missing_consent: drop)\n  decision:       DROPPED\n  reason:         denied: the customer denied marketing",
			},
		},
		{
			name: "every tcf purpose granted",
			args: []string{"--jurisdiction", "DE", "--tcf", tcfAll},
			stdout: []string{
				"  marketing: GRANT, legal basis CONSENT, no excluded categories\n    decided by: tcf (tcf.purpose.1=allow, tcf.purpose.3=allow, tcf.purpose.4=allow)\n    change:     " + tcfAllDE["marketing"],
				"  analytics: GRANT, legal basis CONSENT, no excluded categories\n    decided by: tcf (tcf.purpose.8=allow)",
				"  personalisation: GRANT",
				"compliant.marketing (purposes: marketing; on_missing_consent: drop)\n  decision:       PASSED\n  reason:         granted: the customer granted marketing\n  consent change: " + tcfAllDE["marketing"],
				"compliant.analytics (purposes: analytics; on_missing_consent: redact)\n  decision:       PASSED",
				// sale is opt-out and never asked: allowed; marketing granted.
				"compliant.partners (purposes: sale, marketing; on_missing_consent: drop)\n  decision:       PASSED",
			},
		},
		{
			name: "tcf with the jurisdiction not known: rules limited to the EEA take away, never grant",
			args: []string{"--tcf", tcfP13456},
			stdout: []string{
				"consent from signals: tcf (jurisdiction not known: rules limited to jurisdictions only take consent away; captured",
				"  marketing: no signal decides it: consent unchanged, deny by default\n",
				"  analytics: DENY\n    decided by: tcf (tcf.purpose.8=refuse)",
				"  personalisation: no signal decides it: consent unchanged, deny by default\n",
				"compliant.marketing (purposes: marketing; on_missing_consent: drop)\n  decision:       DROPPED\n  reason:         never_asked",
			},
		},
		{
			// "Did not opt out" is no consent: it decides nothing, and sale,
			// opt-out and never asked, is allowed anyway.
			name: "gpp usnat without opt-outs in California decides nothing",
			args: []string{"--gpp", gppNoOptOut, "--jurisdiction", "US-CA"},
			stdout: []string{
				"consent from signals: gpp (jurisdiction US-CA; captured 2026-06-01T12:00:00.000Z)\n  note: the signals decide no purpose: consent-sync records nothing (200)\n",
				"  marketing: no signal decides it: consent unchanged, deny by default\n",
				"  sale: no signal decides it: consent unchanged, opt-out purpose: allowed until the customer objects\n",
				"compliant.partners (purposes: sale, marketing; on_missing_consent: drop)\n  decision:       DROPPED\n  reason:         unknown_subject",
			},
			absent: []string{"GRANT", "change:     "},
		},
		{
			name: "gpp opt-outs and gpc withdraw",
			args: []string{"--gpp", gppOptedOut, "--gpc", "--jurisdiction", "US"},
			stdout: []string{
				"consent from signals: gpp, gpc (jurisdiction US;",
				"  marketing: WITHDRAW\n    decided by: gpp.usnat (gpp.usnat.targeted_advertising_opt_out=refuse)\n    change:     " + optedOut["marketing"],
				"  sale: WITHDRAW\n    decided by: gpc, gpp.usnat (gpc=refuse, gpp.usnat.sale_opt_out=refuse, gpp.usnat.sharing_opt_out=refuse)\n    change:     " + optedOut["sale"],
				"compliant.partners (purposes: sale, marketing; on_missing_consent: drop)\n  decision:       DROPPED\n  reason:         withdrawn: the customer withdrew consent for sale",
			},
		},
		{
			name: "usp opt-out of sale",
			args: []string{"--usp", "1YYN"},
			stdout: []string{
				"  sale: WITHDRAW\n    decided by: gpp.uspv1 (gpp.uspv1.sale_opt_out=refuse)\n    change:     " + usp["sale"],
				"  consent change: " + usp["sale"] + " (purpose sale",
			},
		},
		{
			name: "signals on top of a consent file: the newer signal wins",
			args: []string{"--consent", filepath.Join("testdata", "consent", "marketing_granted.json"), "--consent-mode", "ad_user_data=denied"},
			stdout: []string{
				"  marketing: DENY\n    decided by: consent_mode (consent_mode.ad_user_data=refuse)\n    change:     " + cmDenied["marketing"] + ", captured 2026-06-01T12:00:00.000Z\n  analytics:",
				"compliant.marketing (purposes: marketing; on_missing_consent: drop)\n  decision:       DROPPED\n  reason:         denied: the customer denied marketing; on_missing_consent is drop, so the event is left off the stream\n  consent change: " + cmDenied["marketing"],
			},
		},
		{
			name: "signals on top of a consent file: an older signal loses",
			args: []string{"--consent", filepath.Join("testdata", "consent", "marketing_granted.json"), "--consent-mode", "ad_user_data=denied", "--captured-at", "2026-01-01T00:00:00Z"},
			stdout: []string{
				"  marketing: DENY\n    decided by: consent_mode (consent_mode.ad_user_data=refuse)\n    change:     ~sig-",
				", captured 2026-01-01T00:00:00.000Z\n    note:       not applied: the consent file's change chg-1 (granted, captured 2026-01-10T09:00:00.000Z) is newer and stays\n",
				"compliant.marketing (purposes: marketing; on_missing_consent: drop)\n  decision:       PASSED\n  reason:         granted: the customer granted marketing\n  consent change: chg-1",
			},
		},
		{
			name:   "a purpose the signals leave keeps the consent file's state",
			args:   []string{"--consent", filepath.Join("testdata", "consent", "marketing_granted.json"), "--usp", "1YYN"},
			stdout: []string{"  marketing: no signal decides it: consent unchanged (granted by the consent file's change chg-1)\n", "  sale: WITHDRAW"},
		},
		{
			name:   "a grant dated too far ahead is refused as consent-sync refuses it",
			args:   []string{"--consent-mode", "ad_user_data=granted,ad_personalization=granted", "--captured-at", "2026-06-01T13:00:00Z"},
			stdout: nil, wantCode: ExitFail,
			stderr: []string{"enforcer explain: signals: consent-sync refuses the submission (400), its clock rule refuses every change: the marketing grant: captured_at lies more than 15m0s after the change reached the pipeline"},
		},
		{
			name: "the clock rule per change: the grant dated too far ahead is refused, the withdrawal with it recorded",
			args: []string{"--usp", "1YYN", "--consent-mode", "ad_user_data=granted,ad_personalization=granted", "--captured-at", "2026-06-01T13:00:00Z"},
			stdout: []string{"  marketing: GRANT", ", captured 2026-06-01T13:00:00.000Z\n    note:       not applied: consent-sync's clock rule refuses this change (captured_at lies more than 15m0s after",
				"  sale: WITHDRAW", ", captured 2026-06-01T12:15:00.000Z\n    note:       captured_at lies after the decision time",
				"compliant.marketing (purposes: marketing; on_missing_consent: drop)\n  decision:       DROPPED\n  reason:         never_asked",
				"compliant.partners (purposes: sale, marketing; on_missing_consent: drop)\n  decision:       DROPPED\n  reason:         withdrawn: the customer withdrew consent for sale"},
		},
		{
			name: "a restrictive change dated ahead is moved back by the clock rule",
			args: []string{"--consent-mode", "ad_user_data=denied", "--captured-at", "2026-06-01T13:00:00Z"},
			stdout: []string{"  marketing: DENY", ", captured 2026-06-01T12:15:00.000Z\n    note:       captured_at lies after the decision time: consent-sync's clock rule moves it to 2026-06-01T12:15:00.000Z\n",
				"consent change: ~sig-"},
		},
		{
			name: "signal flags given twice make several signals of the submission, as consent-sync reads them",
			args: []string{"--consent-mode", "ad_user_data=granted", "--usp", "1YNN", "--consent-mode", "ad_user_data=denied", "--usp", "1YYN"},
			stdout: []string{"consent from signals: usp, usp, consent_mode, consent_mode (",
				"  marketing: DENY\n    decided by: consent_mode (consent_mode.ad_user_data=refuse)\n    change:     " + twice["marketing"],
				"  sale: WITHDRAW\n    decided by: gpp.uspv1 (gpp.uspv1.sale_opt_out=refuse)\n    change:     " + twice["sale"]},
		},
		{
			name:     "an empty tc string is refused, not left out",
			args:     []string{"--tcf", "", "--usp", "1YYN"},
			wantCode: ExitUsage, stderr: []string{`invalid value "" for flag -tcf: empty: give a TC string, or leave the flag out`},
			absent: []string{"consent from signals", "compliant."},
		},
		{
			name:     "an empty repeated signal flag is refused",
			args:     []string{"--gpp", gppOptedOut, "--gpp", ""},
			wantCode: ExitUsage, stderr: []string{`invalid value "" for flag -gpp: empty: give a GPP string`},
		},
		{
			name:     "empty consent mode states are refused",
			args:     []string{"--usp", "1YYN", "--consent-mode", ""},
			wantCode: ExitUsage, stderr: []string{`invalid value "" for flag -consent-mode: empty`},
		},
		{
			name:     "malformed tc string",
			args:     []string{"--tcf", "CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA.IAoA!"},
			wantCode: ExitFail, stderr: []string{"enforcer explain: signals[0] (tcf): tcf: "},
			absent: []string{"IAoA", "compliant."},
		},
		{
			name:     "tc string of TCF policy version 2",
			args:     []string{"--tcf", tcfPolicy2},
			wantCode: ExitFail, stderr: []string{"enforcer explain: signals[0] (tcf): tcf: TCF policy version 2: strings before version 4 (TCF v2.2) carry no valid consent"},
			absent: []string{"CQSbk4", "compliant."},
		},
		{
			name:     "malformed gpp string, after a valid tc string",
			args:     []string{"--tcf", tcfAll, "--gpp", "DBAB"},
			wantCode: ExitFail, stderr: []string{"enforcer explain: signals[1] (gpp): gpp: "},
			absent: []string{"compliant.", "consent from signals"},
		},
		{
			name:     "malformed usp string",
			args:     []string{"--usp", "2YNN"},
			wantCode: ExitFail, stderr: []string{"enforcer explain: signals[0] (usp): "},
			absent: []string{"2YNN"},
		},
		{
			name:     "unknown consent mode state",
			args:     []string{"--consent-mode", "ad_storage=granted,ad_clicks=granted"},
			wantCode: ExitFail, stderr: []string{"enforcer explain: signals[0] (consent_mode): unknown Consent Mode state (the states are ad_storage, analytics_storage, ad_user_data, ad_personalization)"},
		},
		{
			name:     "consent mode value neither granted nor denied",
			args:     []string{"--consent-mode", "ad_user_data=yes"},
			wantCode: ExitFail, stderr: []string{"enforcer explain: signals[0] (consent_mode): Consent Mode state ad_user_data is neither granted nor denied"},
		},
		{
			name:     "consent mode without a value",
			args:     []string{"--consent-mode", "ad_user_data"},
			wantCode: ExitUsage, stderr: []string{"enforcer explain: bad signal: consent mode: part 1: want state=granted or state=denied"},
		},
		{
			name:     "consent mode state given twice",
			args:     []string{"--consent-mode", "ad_user_data=granted,ad_user_data=denied"},
			wantCode: ExitUsage, stderr: []string{"enforcer explain: bad signal: consent mode: state ad_user_data given twice"},
		},
		{
			name:     "jurisdiction that is not a code",
			args:     []string{"--gpc", "--jurisdiction", "Germany"},
			wantCode: ExitUsage, stderr: []string{"enforcer explain: bad signal: jurisdiction is not an assigned ISO 3166-1 alpha-2 country code"},
			absent: []string{"Germany"},
		},
		{
			name:     "jurisdiction without a signal",
			args:     []string{"--jurisdiction", "DE"},
			wantCode: ExitUsage, stderr: []string{"enforcer explain: --jurisdiction and --captured-at describe signals"},
		},
		{
			name:     "bad captured-at",
			args:     []string{"--gpc", "--captured-at", "yesterday"},
			wantCode: ExitUsage, stderr: []string{"enforcer explain: bad --captured-at: want an RFC 3339 time"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errs := runExplain(t, append(append([]string{}, base...), tc.args...)...)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			rest := out
			for _, w := range tc.stdout {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("stdout lacks (in order) %q", w)
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out+errs, a) {
					t.Errorf("output has %q", a)
				}
			}
			if tc.wantCode != ExitOK && out != "" {
				t.Errorf("output on failure: %q", out)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, errs)
			}
		})
	}
}

// The JSON output carries the signals report, and a policy without a
// signals section says that signals change nothing.
func TestExplainSignalsJSONAndNoSection(t *testing.T) {
	t.Parallel()
	code, out, errs := runExplain(t, "--policy", examplePolicy, "--event", filepath.Join("testdata", "events", "purchase.json"),
		"--now", "2026-06-01T12:00:00Z", "--json", "--jurisdiction", "DE", "--tcf", tcfP13456)
	if code != ExitOK {
		t.Fatalf("exit code %d: %s", code, errs)
	}
	var ex struct {
		Signals SignalsReport `json:"signals"`
		Streams []Stream      `json:"streams"`
	}
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatal(err)
	}
	s := ex.Signals
	if s.Jurisdiction != "DE" || !s.CapturedAt.Equal(goldenNow) || len(s.Types) != 1 || s.Types[0] != "tcf" || len(s.Purposes) != 4 {
		t.Fatalf("signals report %+v", s)
	}
	p := s.Purposes[2]
	if p.Purpose != "personalisation" || !p.Decided || !p.Applied || p.Action != consent.ActionGrant || p.LegalBasis != "CONSENT" ||
		strings.Join(p.Excluded, ",") != "user.location.precise" || strings.Join(p.Sources, ",") != "tcf" ||
		strings.Join(p.Fields, ",") != "tcf.purpose.1=allow,tcf.purpose.5=allow,tcf.purpose.6=allow" || !strings.HasPrefix(p.ChangeID, "+sig-") {
		t.Errorf("personalisation %+v", p)
	}
	if p := s.Purposes[3]; p.Purpose != "sale" || p.Decided || p.Applied || p.ChangeID != "" || !strings.Contains(p.Note, "no signal decides it") {
		t.Errorf("sale %+v", p)
	}
	if len(ex.Streams) != 4 || ex.Streams[2].ChangeID != p.ChangeID || ex.Streams[2].Decision != "PASSED" {
		t.Errorf("streams %+v", ex.Streams)
	}

	code, out, errs = runExplain(t, "--policy", filepath.Join("testdata", "policy.yaml"), "--event", filepath.Join("testdata", "events", "purchase.json"),
		"--now", "2026-06-01T12:00:00Z", "--gpc")
	if code != ExitOK {
		t.Fatalf("exit code %d: %s", code, errs)
	}
	for _, w := range []string{"note: the policy has no signals section: signals change no consent", "consent from signals: gpc", "  marketing: no signal decides it: consent unchanged, deny by default", "reason:         unknown_subject"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// EvaluateSignals applies the changes to a copy: the consent file's state
// is not modified, and an erasure newer than the signals keeps them out.
func TestEvaluateSignalsState(t *testing.T) {
	t.Parallel()
	pol, err := policy.Parse(repoFile(t, "pkg/policy/testdata/example.yaml"), "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	at := goldenNow
	granted := consent.PurposeState{Status: consent.StatusGranted, ChangeID: "chg-1", CapturedAt: at.Add(-time.Hour), LegalBasis: consent.BasisConsent}
	base := &consent.State{SubjectID: "c-1", Purposes: map[string]consent.PurposeState{"marketing": granted}}
	sub := signals.Submission{SubjectID: "c-1", CapturedAt: at, Signals: []signals.Signal{{Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "denied"}}}}
	rep, st, err := EvaluateSignals(pol, sub, base, at)
	if err != nil {
		t.Fatal(err)
	}
	if base.Purposes["marketing"].ChangeID != "chg-1" || len(base.Purposes) != 1 {
		t.Errorf("base state modified: %+v", base)
	}
	if got := st.Purposes["marketing"]; got.Status != consent.StatusDenied || got.ChangeID != rep.Purposes[0].ChangeID || got.Source != "signal:consent_mode" {
		t.Errorf("marketing after the signals: %+v", got)
	}
	if v := st.Check("marketing", at); v.Allowed || v.Reason != consent.ReasonDenied {
		t.Errorf("verdict %+v", v)
	}

	erased := &consent.State{SubjectID: "c-1", Purposes: map[string]consent.PurposeState{}, ErasedAt: at.Add(time.Minute), ErasedBy: "erase-1"}
	rep, st, err = EvaluateSignals(pol, sub, erased, at)
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Purposes[0]; p.Applied || !strings.Contains(p.Note, "not applied: the erasure erase-1") {
		t.Errorf("marketing after an erasure: %+v", p)
	}
	if v := st.Check("marketing", at); v.Reason != consent.ReasonErased {
		t.Errorf("verdict after an erasure %+v", v)
	}

	// Nothing decided and nothing stored: still an unknown subject.
	sub.Signals = []signals.Signal{{Type: signals.TypeGPC, Value: "0"}}
	rep, st, err = EvaluateSignals(pol, sub, nil, at)
	if err != nil || st != nil || len(rep.Purposes) != 4 || rep.Purposes[0].Decided {
		t.Errorf("nothing decided: state %+v, report %+v, err %v", st, rep, err)
	}
}

func TestParseConsentModeFlag(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want, err string
	}{
		{in: "ad_user_data=granted", want: "ad_user_data=granted"},
		{in: " ad_user_data = granted , analytics_storage=denied", want: "analytics_storage=denied,ad_user_data=granted"},
		{in: "ad_user_data=granted,", err: "consent mode: part 2: want state=granted"},
		{in: "=granted", err: "consent mode: part 1"},
		{in: "ad_user_data=", err: "consent mode: part 1"},
		{in: "x=1,x=2", err: "consent mode: part 2: a state given twice"},
	}
	for _, tc := range cases {
		got, err := ParseConsentModeFlag(tc.in)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) || got != nil {
				t.Errorf("%q: %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		var parts []string
		for _, k := range []string{"ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"} {
			if v, ok := got[k]; ok {
				parts = append(parts, k+"="+v)
			}
		}
		if err != nil || strings.Join(parts, ",") != tc.want || len(got) != len(parts) {
			t.Errorf("%q: %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseConsentModeFlag: never panics; what it accepts has no empty
// state or value, and written back as state=value pairs reads the same.
func FuzzParseConsentModeFlag(f *testing.F) {
	for _, s := range []string{"ad_user_data=granted", "ad_user_data=granted,ad_personalization=denied", " a = b ,c=d", "a=b,a=c", "=", ",", "a==b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseConsentModeFlag(s)
		if err != nil {
			if got != nil {
				t.Fatalf("%q: a result with the error %v", s, err)
			}
			return
		}
		var parts []string
		for k, v := range got {
			if k == "" || v == "" || strings.ContainsAny(k, ",=") || strings.Contains(v, ",") {
				t.Fatalf("%q: state %q value %q", s, k, v)
			}
			parts = append(parts, k+"="+v)
		}
		again, err := ParseConsentModeFlag(strings.Join(parts, ","))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("%q: %v reads back as %v, %v", s, got, again, err)
		}
	})
}

// SignalFlags.Submission lists every value of a repeated flag after the
// field's own, refuses an empty one (an empty field means "not given") and
// a type that is not a repeatable flag's.
func TestSignalFlagsRepeated(t *testing.T) {
	t.Parallel()
	f := SignalFlags{TCF: tcfAll, USP: "1YNN", GPC: true, Repeated: map[string][]string{
		signals.TypeTCF: {tcfP13456}, signals.TypeConsentMode: {"ad_user_data=denied"}}}
	sub, err := f.Submission("c-1", goldenNow)
	if err != nil {
		t.Fatal(err)
	}
	want := []signals.Signal{{Type: signals.TypeTCF, Value: tcfAll}, {Type: signals.TypeTCF, Value: tcfP13456}, {Type: signals.TypeUSP, Value: "1YNN"},
		{Type: signals.TypeGPC, Value: "1"}, {Type: signals.TypeConsentMode, States: map[string]string{"ad_user_data": "denied"}}}
	if !reflect.DeepEqual(sub.Signals, want) {
		t.Errorf("signals %+v, want %+v", sub.Signals, want)
	}
	if !(SignalFlags{Repeated: map[string][]string{signals.TypeGPP: {gppOptedOut}}}).Any() {
		t.Error("a repeated value alone is no signal")
	}
	for _, bad := range []SignalFlags{
		{Repeated: map[string][]string{signals.TypeUSP: {""}}},
		{TCF: tcfAll, Repeated: map[string][]string{signals.TypeTCF: {""}}},
		{Repeated: map[string][]string{signals.TypeGPC: {"1"}}},
		{Repeated: map[string][]string{signals.TypeConsentMode: {"ad_user_data"}}},
	} {
		if sub, err := bad.Submission("c-1", goldenNow); err == nil {
			t.Errorf("%+v: submission %+v, want an error", bad.Repeated, sub.Signals)
		}
	}
}

// The change ids explain shows are the intake's for the same signals sent
// in any order (signals.SubmissionDigest sorts them): every order of five
// signals, two of them of one type, against explain's fixed order.
func TestExplainChangeIDsAnyOrder(t *testing.T) {
	t.Parallel()
	pol := mustExample(t)
	flags := SignalFlags{TCF: tcfP13456, USP: "1YNN", GPC: true, ConsentMode: "ad_user_data=granted,ad_personalization=granted",
		Jurisdiction: "DE", Repeated: map[string][]string{signals.TypeUSP: {"1YYN"}}}
	sub, err := flags.Submission("c-1001", goldenNow)
	if err != nil {
		t.Fatal(err)
	}
	rep, _, err := EvaluateSignals(pol, sub, nil, goldenNow)
	if err != nil {
		t.Fatal(err)
	}
	explained := map[string]string{}
	for _, p := range rep.Purposes {
		if p.Decided {
			explained[p.Purpose] = p.ChangeID
		}
	}
	if len(explained) < 3 {
		t.Fatalf("only %v decided: not a useful case", explained)
	}
	var permute func(k int)
	orders := 0
	sigs := slices.Clone(sub.Signals)
	permute = func(k int) {
		if k == len(sigs) {
			orders++
			body := sub
			body.Signals = slices.Clone(sigs)
			changes, err := signals.Changes(pol, body)
			if err != nil {
				t.Fatal(err)
			}
			if len(changes) != len(explained) {
				t.Fatalf("order %v: %d changes, explain decides %d purposes", body.Signals, len(changes), len(explained))
			}
			for _, c := range changes {
				if explained[c.Purpose] != c.ChangeID {
					t.Fatalf("order %v: %s is %s at the intake, %s in explain", body.Signals, c.Purpose, c.ChangeID, explained[c.Purpose])
				}
			}
			return
		}
		for i := k; i < len(sigs); i++ {
			sigs[k], sigs[i] = sigs[i], sigs[k]
			permute(k + 1)
			sigs[k], sigs[i] = sigs[i], sigs[k]
		}
	}
	permute(0)
	if orders != 120 {
		t.Fatalf("%d orders", orders)
	}
}
