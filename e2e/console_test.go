package e2e

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/browsertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/seal"
)

// TestConsoleInBrowser is issue 12's browser test: the real pipeline
// (consent-sync, the enforcer) fills a ledger process (consuming and
// sealing), and a headless Chromium logs in to the ledger's console through
// its form, reads a subject's timeline (a grant that lost to a later
// withdrawal, the decisions per stream), scopes a breach over the window
// (counts equal to those computed from the audit topic itself), and finds
// the audit complete and the checkpoints verified. Every page is kept as a
// screenshot; a request without a token gets 401, and the ledger's log
// holds no subject id.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	if _, err := browsertest.FindChromium(); err != nil && os.Getenv("CI") == "" {
		t.Skipf("no Chromium: %v", err)
	}
	p := startPipelineWith(t, "testdata/policy_full.yaml", fullStreams, "PSEUDONYMISATION_KEY=e2e-test-key-0123456789")

	// The sealer publishes to the checkpoints topic; its writer does not
	// create topics.
	p.broker.CreateTopics(t, 1, "consent.audit.checkpoints")
	dir := t.TempDir()
	skey, _, err := seal.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, tokensFile := filepath.Join(dir, "seal.key"), filepath.Join(dir, "tokens")
	token := fmt.Sprintf("console-e2e-%x", time.Now().UnixNano())
	if err := os.WriteFile(keyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokensFile, []byte("# console tokens\n"+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	consoleAddr := fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t))
	base := "http://" + consoleAddr
	ledgerProc := proctest.Start(t, "ledger", proctest.Build(t, "services/ledger"), []string{
		"KAFKA_BROKERS=" + p.broker.Addr,
		"LEDGER_DSN=sqlite:" + filepath.Join(dir, "ledger.db"),
		"LEDGER_SEAL_KEY_FILE=" + keyFile,
		"LEDGER_SEAL_INTERVAL=500ms",
		"LEDGER_LINGER=20ms",
		"LEDGER_REFRESH=500ms",
		fmt.Sprintf("LEDGER_TELEMETRY_ADDR=127.0.0.1:%d", brokertest.FreePort(t)),
		"LEDGER_CONSOLE_ADDR=" + consoleAddr,
		"LEDGER_CONSOLE_TOKENS_FILE=" + tokensFile,
	})
	if err := ledgerProc.WaitFor(`"msg":"console listening"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	// A grant then a withdrawal for carla; grants for erik; events.
	now := time.Now().UTC()
	p.produce(t,
		p.change(t, consent.Change{ChangeID: "carla-grant", SubjectID: "carla", Purpose: "marketing", Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: now.Add(-2 * time.Hour)}),
		p.change(t, consent.Change{ChangeID: "carla-withdraw", SubjectID: "carla", Purpose: "marketing", Action: consent.ActionWithdraw,
			Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: now.Add(-time.Hour)}),
		p.change(t, consent.Change{ChangeID: "erik-m", SubjectID: "erik", Purpose: "marketing", Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: now.Add(-time.Hour)}),
		p.change(t, consent.Change{ChangeID: "erik-a", SubjectID: "erik", Purpose: "analytics", Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: now.Add(-time.Hour)}),
	)
	p.waitConsent(t, "carla", "marketing", consent.StatusWithdrawn)
	p.waitConsent(t, "erik", "analytics", consent.StatusGranted)
	p.produce(t, p.email(t, "ev-carla-1", "carla"), p.email(t, "ev-erik-1", "erik"), p.purchaseEvent(t, "ev-erik-2", "erik"))
	recs := p.waitAudit(t, 3, 60*time.Second)
	if len(recs) != 3 {
		t.Fatalf("%d audit records, want 3", len(recs))
	}

	// A request without a token gets 401 (and no redirect).
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, auth bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/", "/verification", "/policies"} {
		if code, body := get(path, false); code != http.StatusUnauthorized || strings.Contains(body, "carla") {
			t.Errorf("GET %s without a token = %d, want 401 with nothing of the ledger", path, code)
		}
	}

	// Wait until the ledger holds the three audit records and a verified
	// checkpoint covering them.
	deadline := time.Now().Add(45 * time.Second)
	for {
		_, over := get("/", true)
		code, ver := get("/verification", true)
		if code == http.StatusOK && strings.Contains(over, `data-table="audit_records">3<`) && strings.Contains(over, `data-table="consent_changes">4<`) &&
			strings.Contains(ver, `id="state" class="ok"`) && !strings.Contains(ver, "not sealed yet") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger did not hold the records, sealed and verified, within 45s; overview:\n%s\nverification:\n%s", over, ver)
		}
		time.Sleep(300 * time.Millisecond)
	}

	b := browsertest.New(t)
	if code := b.Open(base+"/", nil); code != http.StatusUnauthorized {
		t.Errorf("the browser without a session got %d, want 401", code)
	}
	b.SetValue("#token", token)
	if code := b.Submit("#token"); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	if got := b.Text("h1"); got != "Overview" {
		t.Fatalf("after login the page is %q, want the overview", got)
	}
	if got := b.Text("#completeness-summary tbody tr"); !strings.Contains(got, "customer.events") || !strings.Contains(got, "complete") || strings.Contains(got, "incomplete") {
		t.Errorf("overview completeness: %q", got)
	}
	for _, row := range b.Texts("#sealing tbody tr") {
		if !strings.Contains(row, "sealing") || strings.Contains(row, "—") {
			t.Errorf("overview sealing row %q: want a published checkpoint and the sealer sealing", row)
		}
	}
	b.Screenshot("overview")

	// The subject's timeline.
	b.Open(base+"/subject", nil)
	b.SetValue("#subject", "carla")
	if code := b.Submit("#subject"); code != http.StatusOK {
		t.Fatalf("subject search: %d", code)
	}
	if loc := b.Location(); strings.Contains(loc, "carla") {
		t.Errorf("the subject id is in the URL %s", loc)
	}
	if got := b.Text("#subject-id"); got != "carla" {
		t.Errorf("history of %q", got)
	}
	if got := b.Text(`#purposes tr[data-purpose="marketing"] .status`); got != "withdrawn" {
		t.Errorf("marketing now %q, want withdrawn", got)
	}
	grant := b.Text(`#changes tr[data-change="carla-grant"] .outcome`)
	if !strings.HasPrefix(grant, "lost") || !strings.Contains(grant, "carla-withdraw") {
		t.Errorf("the grant's outcome is %q, want lost to carla-withdraw", grant)
	}
	if got := b.Text(`#changes tr[data-change="carla-withdraw"] .outcome`); got != "won" {
		t.Errorf("the withdrawal's outcome is %q, want won", got)
	}
	var carla fsAuditRec
	for _, a := range recs {
		if a.EventID == "ev-carla-1" {
			carla = a
		}
	}
	if len(carla.Decisions) != len(fullStreams) {
		t.Fatalf("carla's audit record has %d decisions", len(carla.Decisions))
	}
	for _, d := range carla.Decisions {
		row := fmt.Sprintf(`article[data-event="ev-carla-1"] tr[data-stream=%q]`, d.Stream)
		if got := b.Text(row + " .decision"); got != d.Decision {
			t.Errorf("%s: decision %q, the audit says %q", d.Stream, got, d.Decision)
		}
		if got := b.Text(row + " .reason"); got != d.Reason {
			t.Errorf("%s: reason %q, the audit says %q", d.Stream, got, d.Reason)
		}
	}
	if got := b.Text(`article[data-event="ev-carla-1"] tr[data-stream="compliant.marketing"] .decision`); got != "DROPPED" {
		t.Errorf("carla's email reached compliant.marketing after her withdrawal: %q", got)
	}
	b.Screenshot("subject")

	// Breach scope over the window, every stream: the counts must be those
	// of the audit topic.
	subjects, events := map[string]bool{}, map[string]bool{}
	perStream := map[string]int{}
	outputs := 0
	for _, a := range recs {
		for _, d := range a.Decisions {
			if d.Decision == "PASSED" || d.Decision == "REDACTED" {
				subjects[a.Subject], events[a.EventID] = true, true
				perStream[d.Stream]++
				outputs++
			}
		}
	}
	b.Open(base+"/breach", nil)
	b.SetValue("#from", now.Add(-time.Hour).Format("2006-01-02T15:04"))
	b.SetValue("#to", now.Add(time.Hour).Format("2006-01-02T15:04"))
	b.SetValue("#topic", "customer.events")
	if code := b.Submit("#from"); code != http.StatusOK {
		t.Fatalf("breach scope: %d", code)
	}
	for id, want := range map[string]int{"#n-subjects": len(subjects), "#n-events": len(events), "#n-outputs": outputs} {
		if got := b.Text(id); got != fmt.Sprint(want) {
			t.Errorf("breach %s = %s, want %d", id, got, want)
		}
	}
	for st, n := range perStream {
		if got := b.Text(fmt.Sprintf(`#per-stream tr[data-stream=%q] .num`, st)); got != fmt.Sprint(n) {
			t.Errorf("breach outputs on %s = %s, want %d", st, got, n)
		}
	}
	listed := b.Texts("#subjects td.subject")
	sort.Strings(listed)
	if len(subjects) > 0 && (len(listed) == 0 || !subjects[listed[0]]) {
		t.Errorf("breach subjects listed %v, want those of %v", listed, subjects)
	}
	b.Screenshot("breach")

	b.Open(base+"/completeness?topic=customer.events", nil)
	if got := b.Text("#state"); got != "complete" {
		t.Errorf("completeness: %q", got)
	}
	if !strings.Contains(b.Text(".note"), "brokers") {
		t.Error("completeness did not use the brokers' ranges")
	}
	b.Screenshot("completeness")

	b.Open(base+"/verification", nil)
	if got := b.Text("#state"); got != "verified" {
		t.Errorf("verification: %q", got)
	}
	for _, s := range b.Texts(".partition .pstate") {
		if s != "verified" {
			t.Errorf("a partition is %q", s)
		}
	}
	b.Screenshot("verification")

	b.Open(base+"/policies", nil)
	if got := b.Texts("#policies td.policy"); len(got) == 0 || got[0] == "" {
		t.Errorf("policies: %v", got)
	}
	b.Screenshot("policies")

	// Logout ends the session.
	if code := b.ClickAndWait("#logout"); code != http.StatusOK {
		t.Errorf("logout: %d", code)
	}
	if code := b.Open(base+"/", nil); code != http.StatusUnauthorized {
		t.Errorf("after logout: %d, want 401", code)
	}

	if err := ledgerProc.Stop(30 * time.Second); err != nil {
		t.Errorf("the ledger did not stop cleanly: %v", err)
	}
	logs := ledgerProc.Output()
	if !regexp.MustCompile(`"msg":"console request".*"method":"POST".*"path":"/subject".*"status":200`).MatchString(logs) {
		t.Error("the ledger did not log the subject search by method, path and status")
	}
	for _, s := range []string{"carla", "erik", token} {
		if strings.Contains(logs, s) {
			t.Errorf("the ledger logged %q", s)
		}
	}
}
