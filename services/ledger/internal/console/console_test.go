package console

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/seal"
	"github.com/consentgate/consentgate/pkg/topicread"
	"github.com/consentgate/consentgate/schemas"
)

const token = "console-test-token-0123456789"

var t0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

// xssSubject is a subject id that would run a script if it were not
// escaped.
const xssSubject = `<script>alert("x")</script>`

// fixture is a ledger filled through Store.Ingest with hand-built batches:
// alice granted then withdrew marketing; two events of hers audited
// (PASSED and REDACTED, then DROPPED); a revocation notice; bob with one
// event; an id that looks like a script; and a checkpoint per audit
// partition computed from the stored leaf hashes.
type fixture struct {
	store *ledger.Store
	leafs []ledger.AuditEntry
}

func pageView(subject, eventID string, off int64, at time.Time, decs ...audit.StreamDecision) audit.Record {
	return audit.Record{Version: 2, EventID: eventID, SubjectID: subject, Outcome: audit.Decided, EventSchema: "consentgate.events.PageView",
		PolicyVersion: "policy-7", SourceTopic: "customer.events", SourcePartition: 0, SourceOffset: off, ProcessedAt: at, Decisions: decs}
}

func dec(stream string, o decision.Outcome, reason string, treated ...string) audit.StreamDecision {
	return audit.StreamDecision{Stream: stream, Purposes: []string{"marketing"}, Decision: o, Reason: reason, DecidingPurpose: "marketing",
		TreatedFields: treated, Consents: []decision.PurposeConsent{{Purpose: "marketing", ChangeID: "c-grant", CapturedAt: t0}}}
}

func newFixture(t *testing.T, tamper bool) *fixture {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "l.db"), ledger.WithCatalog(cat),
		ledger.WithClock(func() time.Time { return t0.Add(24 * time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	b := &ledger.Batch{}
	co := func(topic string, off int64) ledger.Coord {
		return ledger.Coord{Topic: topic, Partition: 0, Offset: off, Time: t0}
	}
	b.Changes = []ledger.ConsentChange{
		{Coord: co("consent.changes", 0), ChangeID: "c-grant", SubjectID: "alice", Purpose: "marketing", Action: "GRANT", LegalBasis: "CONSENT",
			Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: t0.Add(time.Hour)},
		{Coord: co("consent.changes", 1), ChangeID: "c-withdraw", SubjectID: "alice", Purpose: "marketing", Action: "WITHDRAW",
			Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: t0.Add(2 * time.Hour)},
		{Coord: co("consent.changes", 2), ChangeID: "c-xss", SubjectID: xssSubject, Purpose: "<b>purpose</b>", Action: "GRANT",
			LegalBasis: "CONSENT", Source: "web", CapturedAt: t0.Add(time.Hour)},
	}
	// Change records are timestamped when they were captured (the
	// intake's receive time), as the clock rule expects.
	for i := range b.Changes {
		b.Changes[i].Time = b.Changes[i].CapturedAt
	}
	recs := []audit.Record{
		pageView("alice", "ev-1", 0, t0.Add(90*time.Minute), dec("compliant.marketing", decision.Passed, "granted"),
			dec("compliant.analytics", decision.Redacted, "granted_with_exclusions", "ip_address")),
		pageView("alice", "ev-2", 1, t0.Add(3*time.Hour), dec("compliant.marketing", decision.Dropped, "withdrawn"),
			dec("compliant.analytics", decision.Redacted, "granted_with_exclusions", "ip_address")),
		pageView("bob", "ev-3", 2, t0.Add(3*time.Hour), dec("compliant.marketing", decision.Passed, "granted"),
			dec("compliant.analytics", decision.Passed, "granted")),
		pageView(xssSubject, "ev-<i>4</i>", 3, t0.Add(3*time.Hour), dec("compliant.marketing", decision.Passed, "granted", "<img src=x>")),
	}
	f := &fixture{store: s}
	tree := seal.NewTree("consent.audit", 0, 0)
	for i, r := range recs {
		c := co("consent.audit", int64(i))
		h := seal.LeafHash(c.Topic, c.Partition, c.Offset, []byte(r.SubjectID), []byte(fmt.Sprint("record ", i)))
		if err := tree.AppendLeafHash(c.Offset, h); err != nil {
			t.Fatal(err)
		}
		b.Audits = append(b.Audits, ledger.AuditEntry{Coord: c, Record: r, LeafHash: h})
	}
	for i, size := range []int64{2, 4} {
		root, err := tree.RootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		if tamper && size == 4 {
			root[0] ^= 1
		}
		b.Checkpoints = append(b.Checkpoints, ledger.Checkpoint{AuditTopic: "consent.audit", Partition: 0, Base: 0, Size: size, Root: root,
			Note: []byte("note"), PublishedAt: t0.Add(time.Duration(4+i) * time.Hour), Coord: co("consent.audit.checkpoints", int64(i))})
	}
	b.Notices = []ledger.Notice{{Coord: co("consent.revocations", 0), NoticeID: "n-1", SubjectID: "alice", Purposes: []string{"marketing"},
		Action: "WITHDRAW", Since: t0.Add(2 * time.Hour), ChangeID: "c-withdraw", Reason: "consent_withdrawn", IssuedAt: t0.Add(2*time.Hour + time.Second)}}
	b.DataKeys = []ledger.DataKeyEvent{
		{Coord: ledger.Coord{Topic: "consent.keys", Offset: 0, Time: t0.Add(time.Hour)}, SubjectID: "alice", KeyID: strings.Repeat("ab", 16)},
		{Coord: ledger.Coord{Topic: "consent.keys", Offset: 2, Time: t0.Add(5 * time.Hour)}, SubjectID: "alice", KeyID: strings.Repeat("ab", 16), Destroyed: true},
		{Coord: ledger.Coord{Topic: "consent.keys", Offset: 3, Time: t0.Add(5 * time.Hour)}, SubjectID: "alice", KeyID: strings.Repeat("cd", 16), Destroyed: true},
	}
	b.KeyErasures = []ledger.KeyErasure{{Coord: ledger.Coord{Topic: "consent.keys", Offset: 1, Time: t0.Add(4 * time.Hour)}, SubjectID: "alice"}}
	b.Positions = []ledger.Position{{Topic: "consent.changes", Partition: 0, Next: 3}, {Topic: "consent.audit", Partition: 0, Next: 4},
		{Topic: "consent.revocations", Partition: 0, Next: 1}, {Topic: "consent.audit.checkpoints", Partition: 0, Next: 2},
		{Topic: "consent.keys", Partition: 0, Next: 4}}
	if err := s.Ingest(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return f
}

// logBuffer is a log sink safe for the server's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type sealProblems map[int32]string

func (p sealProblems) Problems() map[int32]string { return p }

type env struct {
	t    *testing.T
	con  *Console
	h    http.Handler
	logs *logBuffer
}

func newEnv(t *testing.T, f *fixture, mod func(*Config)) *env {
	t.Helper()
	logs := &logBuffer{}
	cfg := Config{Store: f.store, Auth: NewAuthForTokens(token), Log: slog.New(slog.NewJSONHandler(logs, nil)),
		Sealer: sealProblems{}, LastIngest: func() time.Time { return t0.Add(5 * time.Hour) }}
	if mod != nil {
		mod(&cfg)
	}
	con, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, con: con, h: con.Handler(), logs: logs}
}

// do serves one request; headers are "Name: value" strings.
func (e *env) do(method, target string, form url.Values, headers ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		r.Header.Add(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

const authz = "Authorization: Bearer " + token
const origin = "Origin: http://example.com"

// text is the response body with tags removed and white space collapsed,
// entities decoded: what a reader sees.
func text(w *httptest.ResponseRecorder) string {
	s := regexp.MustCompile(`</?(span|strong|code|a|time|em)\b[^>]*>`).ReplaceAllString(w.Body.String(), "")
	s = regexp.MustCompile(`(?s)<[^>]*>`).ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " ")
}

func wantText(t *testing.T, w *httptest.ResponseRecorder, wants ...string) {
	t.Helper()
	got := text(w)
	for _, s := range wants {
		if !strings.Contains(got, s) {
			t.Errorf("page does not show %q:\n%s", s, got)
		}
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	for _, c := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"wrong token", []string{"Authorization: Bearer not-the-token-0123456789"}, http.StatusUnauthorized},
		{"not bearer", []string{"Authorization: Basic " + token}, http.StatusUnauthorized},
		{"bearer", []string{authz}, http.StatusOK},
	} {
		for _, path := range []string{"/", "/subject", "/breach", "/completeness", "/verification", "/policies", "/nope"} {
			w := e.do("GET", path, nil, c.headers...)
			want := c.want
			if path == "/nope" && want == http.StatusOK {
				want = http.StatusNotFound
			}
			if w.Code != want {
				t.Errorf("%s: GET %s = %d, want %d", c.name, path, w.Code, want)
			}
			if w.Code == http.StatusUnauthorized {
				if !strings.Contains(w.Body.String(), `action="/login"`) || w.Header().Get("Location") != "" {
					t.Errorf("%s: GET %s: 401 without the login form, or a redirect", c.name, path)
				}
				if strings.Contains(w.Body.String(), "alice") {
					t.Errorf("%s: GET %s: 401 page shows ledger data", c.name, path)
				}
			}
		}
	}
	if w := e.do("POST", "/subject", url.Values{"subject": {"alice"}}, origin); w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "ev-1") {
		t.Errorf("POST /subject without a token = %d", w.Code)
	}
	if w := e.do("GET", "/healthz", nil); w.Code != http.StatusOK {
		t.Errorf("GET /healthz without a token = %d, want 200", w.Code)
	}
	if w := e.do("GET", "/login", nil); w.Code != http.StatusOK {
		t.Errorf("GET /login = %d, want 200", w.Code)
	}
	if w := e.do("GET", "/static/console.css", nil); w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
		t.Errorf("GET /static/console.css = %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}

func sessionCookie(t *testing.T, w *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	t.Fatalf("no %s cookie set (status %d)", cookieName, w.Code)
	return nil
}

func TestLoginCookieLogout(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	if w := e.do("POST", "/login", url.Values{"token": {"wrong-token-0123456789"}}, origin); w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Errorf("login with a wrong token = %d, cookies %v", w.Code, w.Result().Cookies())
	}
	if w := e.do("POST", "/login", url.Values{"token": {token}}, "Origin: https://evil.example"); w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
		t.Errorf("login posted from another origin = %d, cookies %v", w.Code, w.Result().Cookies())
	}
	// What Chromium sends with the console's own form under
	// Referrer-Policy: no-referrer.
	w := e.do("POST", "/login", url.Values{"token": {token}}, "Origin: null", "Sec-Fetch-Site: same-origin")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("login = %d to %q, want 303 to /", w.Code, w.Header().Get("Location"))
	}
	ck := sessionCookie(t, w)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || strings.Contains(ck.Value, token) {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, no token", ck)
	}
	cookie := "Cookie: " + cookieName + "=" + ck.Value
	if w := e.do("GET", "/", nil, cookie); w.Code != http.StatusOK {
		t.Fatalf("GET / with the session cookie = %d", w.Code)
	}
	// A second login gets another session.
	if ck2 := sessionCookie(t, e.do("POST", "/login", url.Values{"token": {token}}, origin)); ck2.Value == ck.Value {
		t.Error("two logins got the same session value")
	}
	// A cookie of another console process (another Auth) is refused.
	other := newEnv(t, f, nil)
	if w := other.do("GET", "/", nil, cookie); w.Code != http.StatusUnauthorized {
		t.Errorf("another process accepted the session cookie: %d", w.Code)
	}
	if w := e.do("GET", "/", nil, "Cookie: "+cookieName+"="+strings.Repeat("0", 64)); w.Code != http.StatusUnauthorized {
		t.Errorf("a made-up session = %d", w.Code)
	}
	// Logout from a foreign page is refused; from the console it ends
	// the session, and the cookie no longer opens a page even if replayed.
	if w := e.do("POST", "/logout", url.Values{}, cookie, "Origin: https://evil.example"); w.Code != http.StatusForbidden {
		t.Errorf("logout from another origin = %d, want 403", w.Code)
	}
	w = e.do("POST", "/logout", url.Values{}, cookie, origin)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("logout = %d", w.Code)
	}
	if cl := sessionCookie(t, w); cl.MaxAge >= 0 || cl.Value != "" {
		t.Errorf("logout cookie %+v does not clear the session", cl)
	}
	if w := e.do("GET", "/", nil, cookie); w.Code != http.StatusUnauthorized {
		t.Errorf("the session cookie still works after logout: %d", w.Code)
	}
}

func TestSessionExpires(t *testing.T) {
	a := NewAuthForTokens(token)
	now := t0
	a.now = func() time.Time { return now }
	ck, ok := a.login(token, false)
	if !ok || !a.validSession(ck.Value) {
		t.Fatal("fresh session refused")
	}
	now = now.Add(SessionTTL)
	if a.validSession(ck.Value) {
		t.Error("session valid after its TTL")
	}
}

func TestForeignOriginPostRefused(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	ck := sessionCookie(t, e.do("POST", "/login", url.Values{"token": {token}}, origin))
	cookie := "Cookie: " + cookieName + "=" + ck.Value
	form := url.Values{"subject": {"alice"}}
	for _, c := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"cookie, foreign Origin", []string{cookie, "Origin: https://evil.example"}, http.StatusForbidden},
		{"cookie, null Origin", []string{cookie, "Origin: null"}, http.StatusForbidden},
		{"cookie, foreign Referer", []string{cookie, "Referer: https://evil.example/page"}, http.StatusForbidden},
		{"cookie, no Origin nor Referer", []string{cookie}, http.StatusForbidden},
		{"bearer, foreign Origin", []string{authz, "Origin: https://evil.example"}, http.StatusForbidden},
		{"cookie, cross-site fetch", []string{cookie, "Sec-Fetch-Site: cross-site", origin}, http.StatusForbidden},
		{"cookie, same-site fetch", []string{cookie, "Sec-Fetch-Site: same-site"}, http.StatusForbidden},
		{"cookie, same-origin fetch under no-referrer", []string{cookie, "Sec-Fetch-Site: same-origin", "Origin: null"}, http.StatusOK},
		{"cookie, own Origin", []string{cookie, origin}, http.StatusOK},
		{"cookie, own Referer", []string{cookie, "Referer: http://example.com/subject"}, http.StatusOK},
		{"bearer, no Origin (a script)", []string{authz}, http.StatusOK},
	} {
		for _, path := range []string{"/subject", "/breach"} {
			f := form
			if path == "/breach" {
				f = url.Values{"from": {"2026-11-20T00:00"}, "to": {"2026-11-21T00:00"}}
			}
			w := e.do("POST", path, f, c.headers...)
			if w.Code != c.want {
				t.Errorf("%s: POST %s = %d, want %d", c.name, path, w.Code, c.want)
			}
			if c.want == http.StatusForbidden && strings.Contains(w.Body.String(), "ev-1") {
				t.Errorf("%s: refused POST %s still shows the history", c.name, path)
			}
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	for _, w := range []*httptest.ResponseRecorder{
		e.do("GET", "/", nil), e.do("GET", "/", nil, authz), e.do("GET", "/login", nil), e.do("GET", "/healthz", nil),
		e.do("GET", "/static/console.css", nil), e.do("POST", "/subject", url.Values{"subject": {"alice"}}, authz),
	} {
		h := w.Header()
		for k, v := range map[string]string{
			"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           "no-store",
			"X-Content-Type-Options":  "nosniff",
		} {
			if got := h.Get(k); got != v {
				t.Errorf("status %d: %s = %q, want %q", w.Code, k, got, v)
			}
		}
	}
	// The pages hold no script and no inline style.
	for _, path := range []string{"/", "/subject", "/breach", "/completeness", "/verification", "/policies", "/login"} {
		b := e.do("GET", path, nil, authz).Body.String()
		if strings.Contains(b, "<script") || strings.Contains(b, "style=") || strings.Contains(b, "<style") {
			t.Errorf("%s has a script or an inline style", path)
		}
	}
}

func TestOverview(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, func(c *Config) { c.Sealer = sealProblems{1: "offset 9 missing"} })
	w := e.do("GET", "/", nil, authz)
	if w.Code != http.StatusOK {
		t.Fatalf("GET / = %d", w.Code)
	}
	wantText(t, w, "Backend sqlite", "consent_changes 3", "audit_records 4", "audit_outputs 6", "revocation_notices 1",
		"audit_checkpoints 2", "consent.audit/0 4", "consent.changes/0 3", "Last ingest: 2026-11-20 14:00:00.000Z",
		"customer.events complete 1 0 0", "0 2 4", "sealing", "not sealed: offset 9 missing", "policy-7: 4 audit records")
}

func TestSubjectPage(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	if w := e.do("GET", "/subject", nil, authz); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `method="post" action="/subject"`) {
		t.Fatalf("GET /subject = %d without the POST form", w.Code)
	}
	w := e.do("POST", "/subject", url.Values{"subject": {"alice"}}, authz, origin)
	if w.Code != http.StatusOK {
		t.Fatalf("POST /subject = %d: %s", w.Code, text(w))
	}
	wantText(t, w, "History of alice",
		"marketing withdrawn c-withdraw",                                    // consent now
		"GRANT marketing c-grant preference-centre 2026-09 lost: ",          // the grant lost…
		"WITHDRAW marketing c-withdraw preference-centre 2026-09 won",       // …to the withdrawal
		"event ev-1 (consentgate.events.PageView), policy policy-7",         // audit record
		"compliant.marketing PASSED granted marketing — marketing: c-grant", // per stream
		"compliant.analytics REDACTED granted_with_exclusions marketing ip_address",
		"compliant.marketing DROPPED withdrawn",
		"WITHDRAW marketing n-1", "consent_withdrawn", // notice
		"consent_change c-grant", "notice n-1", "audit ev-2", // timeline
		strings.Repeat("ab", 16)+" 2026", "consent.keys/0 key @0, tombstone @2", // a data key created and destroyed
		strings.Repeat("cd", 16)+" not read (compacted before the ledger read it)", ", tombstone @3",
		"Erasure markers on the keys topic", "(consent.keys/0@1)",
		"keys_erased consent.keys/0@1", "data_key_destroyed "+strings.Repeat("ab", 16))
	if strings.Contains(text(w), "ev-3") {
		t.Error("alice's history shows bob's event")
	}
	// The losing change names why.
	h, _ := f.store.Subject(context.Background(), "alice")
	if h.Changes[0].Why == "" || !strings.Contains(text(w), h.Changes[0].Why) {
		t.Errorf("the grant's reason for losing (%q) is not shown", h.Changes[0].Why)
	}
	w = e.do("POST", "/subject", url.Values{"subject": {"nobody"}}, authz)
	wantText(t, w, "History of nobody", "No consent recorded", "The ledger holds nothing about this subject.")
	if w := e.do("POST", "/subject", url.Values{"subject": {"  "}}, authz); w.Code != http.StatusBadRequest {
		t.Errorf("empty subject = %d, want 400", w.Code)
	}
	if w := e.do("POST", "/subject", url.Values{"subject": {strings.Repeat("x", maxSubjectID+1)}}, authz); w.Code != http.StatusBadRequest {
		t.Errorf("overlong subject = %d, want 400", w.Code)
	}
}

func TestNoSubjectIDInLogs(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	secret := "subject-7f3a9c-secret"
	e.do("POST", "/subject", url.Values{"subject": {secret}}, authz, origin)
	e.do("POST", "/subject", url.Values{"subject": {"alice"}}, authz, origin)
	e.do("GET", "/subject?subject="+secret, nil, authz) // a stray query string
	e.do("GET", "/"+secret, nil, authz)                 // a mistyped URL
	e.do("POST", "/breach", url.Values{"from": {"2026-11-20T00:00"}, "to": {"2026-11-21T00:00"}}, authz)
	e.do("POST", "/login", url.Values{"token": {token}}, origin)
	logs := e.logs.String()
	if !strings.Contains(logs, `"path":"/subject"`) || !strings.Contains(logs, `"method":"POST"`) || !strings.Contains(logs, `"status":200`) {
		t.Fatalf("the request log lacks method, path or status:\n%s", logs)
	}
	for _, s := range []string{secret, "alice", "bob", token, "Bearer", "2026-11-20T00:00"} {
		if strings.Contains(logs, s) {
			t.Errorf("the console logged %q:\n%s", s, logs)
		}
	}
}

func TestEscaping(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	w := e.do("POST", "/subject", url.Values{"subject": {xssSubject}}, authz)
	body := w.Body.String()
	for _, raw := range []string{"<script>", "<b>purpose</b>", "<i>4</i>", "<img src=x>"} {
		if strings.Contains(body, raw) {
			t.Errorf("the subject page holds %q unescaped", raw)
		}
	}
	for _, esc := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "&lt;b&gt;purpose&lt;/b&gt;", "ev-&lt;i&gt;4&lt;/i&gt;", "&lt;img src=x&gt;"} {
		if !strings.Contains(body, esc) {
			t.Errorf("the subject page does not hold %q", esc)
		}
	}
	w = e.do("POST", "/breach", url.Values{"from": {"2026-11-20T00:00"}, "to": {"2026-11-21T00:00"}}, authz)
	if strings.Contains(w.Body.String(), "<script>") || !strings.Contains(w.Body.String(), "&lt;script&gt;") {
		t.Error("the breach page does not escape the subject id")
	}
}

func TestBreachPage(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	w := e.do("GET", "/breach", nil, authz)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /breach = %d", w.Code)
	}
	for _, s := range []string{`name="stream" value="compliant.analytics"`, `name="stream" value="compliant.marketing"`, `name="from"`, `name="to"`, `name="topic"`} {
		if !strings.Contains(w.Body.String(), s) {
			t.Errorf("breach form lacks %s", s)
		}
	}
	w = e.do("POST", "/breach", url.Values{"stream": {"compliant.marketing"}, "topic": {"customer.events"},
		"from": {"2026-11-20T00:00"}, "to": {"2026-11-21T00:00"}}, authz)
	if w.Code != http.StatusOK {
		t.Fatalf("POST /breach = %d: %s", w.Code, text(w))
	}
	// compliant.marketing published ev-1 (alice), ev-3 (bob), ev-4 (xss).
	wantText(t, w, "subjects 3", "events 3", "outputs 3", "compliant.marketing 3", "PASSED 3",
		"user.behavior.browsing 3 0", "alice compliant.marketing 1")
	if !strings.Contains(w.Body.String(), `value="compliant.marketing" checked`) || strings.Contains(w.Body.String(), `value="compliant.analytics" checked`) {
		t.Error("the form does not keep the streams ticked")
	}
	if strings.Contains(text(w), "compliant.analytics 3") {
		t.Error("an unticked stream is counted")
	}
	// Every stream; capped list.
	e2 := newEnv(t, f, func(c *Config) { c.BreachSubjects = 1 })
	w = e2.do("POST", "/breach", url.Values{"from": {"2026-11-20T00:00"}, "to": {"2026-11-21T00:00"}}, authz)
	wantText(t, w, "subjects 3", "events 4", "outputs 6", "compliant.analytics 3", "compliant.marketing 3", "PASSED 4", "REDACTED 2",
		"user.device.ip_address 4 1", "… and 2 more subjects")
	if strings.Contains(text(w), "bob compliant") {
		t.Error("the capped list shows more than one subject")
	}
	// A window before everything.
	w = e.do("POST", "/breach", url.Values{"from": {"2026-11-19T00:00"}, "to": {"2026-11-19T01:00"}}, authz)
	wantText(t, w, "subjects 0", "No output in this window.")
	for _, bad := range []url.Values{{"from": {"yesterday"}, "to": {"2026-11-21T00:00"}}, {"from": {"2026-11-21T00:00"}, "to": {"2026-11-20T00:00"}}} {
		if w := e.do("POST", "/breach", bad, authz); w.Code != http.StatusBadRequest || !strings.Contains(text(w), "Check the form") {
			t.Errorf("bad window %v = %d", bad, w.Code)
		}
	}
}

func TestCompletenessPage(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	w := e.do("GET", "/completeness?topic=customer.events", nil, authz)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /completeness = %d", w.Code)
	}
	wantText(t, w, "customer.events must have exactly one audit record: complete", "No broker consulted", "0 complete 4 4 0..4 — none none 0")
	// With the brokers' ranges: the topic holds offsets 0..6 and a
	// partition 1 the audit never saw.
	e = newEnv(t, f, func(c *Config) {
		c.Offsets = offsetsOf{"customer.events": {0: {First: 0, End: 6}, 1: {First: 0, End: 2}}}
	})
	w = e.do("GET", "/completeness?topic=customer.events", nil, authz)
	wantText(t, w, ": incomplete", "Expected ranges: the topic's offsets on the brokers now.",
		"0 incomplete 4 4 0..4 0..6 2 offsets without an audit record: 4..6", "1 incomplete 0 0 0..0 0..2 2 offsets without an audit record: 0..2")
	if w := e.do("GET", "/completeness?topic=%3Cscript%3E", nil, authz); w.Code != http.StatusBadRequest {
		t.Errorf("bad topic = %d, want 400", w.Code)
	}
	w = e.do("GET", "/", nil, authz)
	wantText(t, w, "customer.events incomplete 2 4 0")
}

type offsetsOf map[string]map[int32]topicread.Range

func (o offsetsOf) Offsets(_ context.Context, topic string) (map[int32]topicread.Range, error) {
	r, ok := o[topic]
	if !ok {
		return nil, topicread.ErrNoTopic
	}
	return r, nil
}

func TestVerificationPage(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	w := e.do("GET", "/verification", nil, authz)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /verification = %d", w.Code)
	}
	wantText(t, w, "ledger-side check", "consentctl verify is the topic-side check", "Audit of consent.audit: verified",
		"Partition 0: verified", "4 records in the ledger from offset 0; 2 checkpoints, the latest of size 4", "2 0", "verified")
	if n := strings.Count(w.Body.String(), `<span class="ok">verified</span>`); n != 2 {
		t.Errorf("%d checkpoints shown verified, want 2", n)
	}
	// A checkpoint whose root the ledger's leaves do not reproduce.
	f = newFixture(t, true)
	e = newEnv(t, f, nil)
	w = e.do("GET", "/verification", nil, authz)
	wantText(t, w, "Audit of consent.audit: not verified", "Partition 0: not verified", "root differs")
	// The sealer's problems make it unverified too.
	f = newFixture(t, false)
	e = newEnv(t, f, func(c *Config) { c.Sealer = sealProblems{0: "offset 3 changed"} })
	wantText(t, e.do("GET", "/verification", nil, authz), "not verified", "The sealer stopped sealing this partition: offset 3 changed")
}

func TestVerificationWithoutCheckpoints(t *testing.T) {
	s, err := ledger.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	e := newEnv(t, &fixture{store: s}, func(c *Config) { c.Sealer = nil })
	wantText(t, e.do("GET", "/verification", nil, authz), "No audit record in the ledger yet.")
	wantText(t, e.do("GET", "/", nil, authz), "This ledger does not seal the audit")
	b := &ledger.Batch{Audits: []ledger.AuditEntry{{Coord: ledger.Coord{Topic: "consent.audit", Offset: 0, Time: t0},
		Record: pageView("alice", "ev-1", 0, t0, dec("compliant.marketing", decision.Passed, "granted"))}}}
	if err := s.Ingest(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	wantText(t, e.do("GET", "/verification", nil, authz), "not verified", "No checkpoint in the ledger for this partition.", "1 newer records are not sealed yet.")
}

func TestPoliciesPage(t *testing.T) {
	f := newFixture(t, false)
	e := newEnv(t, f, nil)
	w := e.do("GET", "/policies", nil, authz)
	wantText(t, w, "policy-7 2026-11-20 10:30:00.000Z 2026-11-20 12:00:00.000Z 4 compliant.analytics, compliant.marketing")
}

func TestErrorHidesDSN(t *testing.T) {
	dir := t.TempDir()
	s, err := ledger.Open(context.Background(), "sqlite:"+filepath.Join(dir, "secret-name.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, &fixture{store: s}, nil)
	s.Close() // every query now fails
	for _, path := range []string{"/", "/policies", "/verification", "/completeness"} {
		w := e.do("GET", path, nil, authz)
		if w.Code != http.StatusInternalServerError {
			t.Errorf("GET %s on a closed store = %d, want 500", path, w.Code)
		}
		if strings.Contains(w.Body.String(), "secret-name") || strings.Contains(w.Body.String(), dir) || strings.Contains(w.Body.String(), "sql") {
			t.Errorf("GET %s shows the database's details: %s", path, text(w))
		}
		wantText(t, w, "The ledger could not answer")
	}
}

func TestVerificationGapAndShortLedger(t *testing.T) {
	s, err := ledger.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	tree := seal.NewTree("consent.audit", 0, 0)
	b := &ledger.Batch{}
	for off := int64(0); off < 4; off++ {
		h := seal.LeafHash("consent.audit", 0, off, nil, []byte(fmt.Sprint(off)))
		if err := tree.AppendLeafHash(off, h); err != nil {
			t.Fatal(err)
		}
		if off == 2 {
			continue // the ledger lacks offset 2
		}
		b.Audits = append(b.Audits, ledger.AuditEntry{Coord: ledger.Coord{Topic: "consent.audit", Offset: off, Time: t0}, LeafHash: h,
			Record: pageView("alice", fmt.Sprint("ev-", off), off, t0, dec("compliant.marketing", decision.Passed, "granted"))})
	}
	for i, size := range []int64{2, 4} {
		root, _ := tree.RootAt(size)
		b.Checkpoints = append(b.Checkpoints, ledger.Checkpoint{AuditTopic: "consent.audit", Size: size, Root: root, Note: []byte("n"),
			PublishedAt: t0.Add(time.Duration(i) * time.Hour), Coord: ledger.Coord{Topic: "consent.audit.checkpoints", Offset: int64(i), Time: t0}})
	}
	if err := s.Ingest(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, &fixture{store: s}, nil)
	w := e.do("GET", "/verification", nil, authz)
	wantText(t, w, "Audit of consent.audit: not verified", "the ledger's audit records skip offsets 2..2",
		"2 records in the ledger from offset 0", "ledger lacks records")
	if n := strings.Count(w.Body.String(), `<span class="ok">verified</span>`); n != 1 {
		t.Errorf("%d checkpoints verified, want 1 (the one of size 2)", n)
	}
}

func TestPublishedAtFallsBackToRecordTime(t *testing.T) {
	rec := t0.Add(time.Minute)
	if got := publishedAt(ledger.Checkpoint{Coord: ledger.Coord{Time: rec}}); !got.Equal(rec) {
		t.Errorf("publishedAt without PublishedAt = %v, want the record time %v", got, rec)
	}
	if got := publishedAt(ledger.Checkpoint{PublishedAt: t0, Coord: ledger.Coord{Time: rec}}); !got.Equal(t0) {
		t.Errorf("publishedAt = %v, want %v", got, t0)
	}
}
