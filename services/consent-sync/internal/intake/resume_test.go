package intake

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRemovedClientCAEndsResumedSessions: the operator replaces the client
// CA bundle (a CA is withdrawn: its certificates must no longer get in) and
// reloads (SIGHUP). A client that connected before keeps a TLS session
// ticket; a new connection that resumes it must not get in with the
// withdrawn CA's certificate any more than a full handshake would. Go's
// server resumes a session without verifying the client's chain again, so
// the current pool has to be checked on every connection, resumed or not.
func TestRemovedClientCAEndsResumedSessions(t *testing.T) {
	t.Parallel()
	p, other := newPKI(t), newPKI(t)
	auth, err := NewAuth(Config{TLSCertFile: p.certFile, TLSKeyFile: p.keyFile, TLSClientCAFile: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	gate := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auth.authorized(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []Problem{{Reason: "not authenticated"}}})
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"resumed": r.TLS.DidResume})
	})
	srv, err := Start("127.0.0.1:0", gate, auth.TLSConfig(), 10*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	url := "https://" + srv.Addr().String() + Path

	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, // every request a new connection
		TLSClientConfig: &tls.Config{RootCAs: p.roots, Certificates: []tls.Certificate{p.client},
			MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(8)},
	}}
	for i := range 2 { // the second one resumes: resumption works
		code, _, ans := do(t, client, url, "", validGrant)
		if code != http.StatusAccepted {
			t.Fatalf("request %d before the CA was withdrawn: %d (%v)", i, code, ans)
		}
		if i == 1 && ans["resumed"] != true {
			t.Fatalf("second connection did not resume (%v): the test needs resumption", ans)
		}
	}

	ca, err := os.ReadFile(other.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := auth.Reload(); err != nil {
		t.Fatal(err)
	}

	fresh := p.httpClient(p.client)
	if resp, err := fresh.Post(url, "application/json", strings.NewReader(validGrant)); err == nil {
		resp.Body.Close()
		t.Fatalf("full handshake with the withdrawn CA's certificate answered %d, want refused", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(validGrant))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			t.Fatalf("resumed session with the withdrawn CA's certificate answered %d: the removed CA still gets in", resp.StatusCode)
		}
	}
}
