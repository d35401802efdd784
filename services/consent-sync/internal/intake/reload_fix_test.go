package intake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverPair writes a self-signed server certificate for 127.0.0.1 valid
// from notBefore to notAfter, and its key, over certFile and keyFile (key
// first, as a careless rotation would). It returns the certificate's DER
// and the key's PEM.
func serverPair(t *testing.T, certFile, keyFile string, notBefore, notAfter time.Time) (der, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "intake"},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return der, keyPEM
}

// showsKey reports whether s quotes a line of the PEM key.
func showsKey(s string, keyPEM []byte) bool {
	for _, line := range strings.Split(string(keyPEM), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(s, line[:16]) {
			return true
		}
	}
	return false
}

// TestCertificateValidity: a certificate chain is refused when one of its
// certificates is outside its validity dates; the error names the setting
// and the date, nothing of the certificate or the key.
func TestCertificateValidity(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	mk := func(from, to time.Time) []byte {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: from, NotAfter: to}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	good := mk(base.Add(-time.Hour), base.Add(time.Hour))
	gone := mk(base.Add(-2*time.Hour), base.Add(-time.Hour))
	later := mk(base.Add(time.Hour), base.Add(2*time.Hour))
	for _, tc := range []struct {
		name  string
		chain [][]byte
		want  string // "" when valid
		until time.Time
	}{
		{"valid", [][]byte{good}, "", base.Add(time.Hour)},
		{"expired", [][]byte{gone}, "CONSENT_INTAKE_TLS_CERT_FILE: the certificate expired on 2026-12-04T11:00:00Z", time.Time{}},
		{"not yet valid", [][]byte{later}, "CONSENT_INTAKE_TLS_CERT_FILE: the certificate is not valid before 2026-12-04T13:00:00Z", time.Time{}},
		{"expired intermediate", [][]byte{good, gone}, "certificate 2 of the chain expired on 2026-12-04T11:00:00Z", time.Time{}},
		{"chain ends first", [][]byte{good, mk(base.Add(-time.Hour), base.Add(30*time.Minute))}, "", base.Add(30 * time.Minute)},
		{"garbage", [][]byte{[]byte("not a certificate")}, "certificate 1 of the chain does not parse", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := checkValidity(tls.Certificate{Certificate: tc.chain}, base)
			if tc.want == "" {
				if err != nil || !s.notAfter.Equal(tc.until) {
					t.Fatalf("valid chain: %v, not after %v, want %v", err, s, tc.until)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStartUpRefusesAnExpiredServerCertificate: before, tls.LoadX509KeyPair
// took an expired certificate (it does not look at the dates) and the
// intake started, ready, with a certificate every client refuses.
func TestStartUpRefusesAnExpiredServerCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	notAfter := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	_, keyPEM := serverPair(t, certFile, keyFile, notAfter.Add(-24*time.Hour), notAfter)
	_, err := NewAuth(Config{TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err == nil {
		t.Fatal("NewAuth took an expired server certificate")
	}
	if !strings.Contains(err.Error(), "CONSENT_INTAKE_TLS_CERT_FILE") || !strings.Contains(err.Error(), notAfter.UTC().Format(time.RFC3339)) {
		t.Errorf("error %q, want the setting and the expiry date", err)
	}
	if showsKey(err.Error(), keyPEM) {
		t.Errorf("the error shows key material: %v", err)
	}
}

// TestReadyFailsOnceTheCertificateInUseExpires: no rotation; the server
// certificate in use runs out. Readiness fails (naming the setting and the
// date) and the watcher logs it, once.
func TestReadyFailsOnceTheCertificateInUseExpires(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	notAfter := time.Now().Add(2 * time.Second).Truncate(time.Second)
	serverPair(t, certFile, keyFile, time.Now().Add(-time.Hour), notAfter)
	auth, err := NewAuth(Config{TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Ready(); err != nil {
		t.Fatalf("ready with a valid certificate: %v", err)
	}
	logs := &syncBuffer{}
	auth.Watch(t.Context(), 50*time.Millisecond, slog.New(slog.NewJSONHandler(logs, nil)))
	waitFor(t, "not ready once the certificate expired", func() bool { return auth.Ready() != nil })
	if err := auth.Ready(); !strings.Contains(err.Error(), "CONSENT_INTAKE_TLS_CERT_FILE") || !strings.Contains(err.Error(), notAfter.UTC().Format(time.RFC3339)) {
		t.Errorf("Ready = %v, want the setting and the expiry date", err)
	}
	time.Sleep(300 * time.Millisecond) // several ticks
	if n := strings.Count(logs.String(), "expired on"); n != 1 {
		t.Errorf("the expiry was logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestWatchRetriesAFailedReReadOfUnchangedFiles: a rotation to a
// certificate that is not valid yet (issued with a start a little ahead)
// is refused; the files do not change again, and once the start has
// passed the next tick takes them. Before, a failed re-read was tried
// again only when the content changed: the intake stayed refused.
func TestWatchRetriesAFailedReReadOfUnchangedFiles(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	auth, err := NewAuth(Config{TLSCertFile: p.certFile, TLSKeyFile: p.keyFile})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	auth.Watch(t.Context(), 50*time.Millisecond, slog.New(slog.NewJSONHandler(logs, nil)))
	notBefore := time.Now().Add(2 * time.Second).Truncate(time.Second)
	der, _ := serverPair(t, p.certFile, p.keyFile, notBefore, notBefore.Add(time.Hour))
	waitFor(t, "the rotation refused as not valid yet", func() bool {
		return auth.Ready() != nil && strings.Contains(logs.String(), "not valid before "+notBefore.UTC().Format(time.RFC3339))
	})
	waitFor(t, "the unchanged files taken once the certificate is valid", func() bool { return auth.Ready() == nil })
	if c, err := auth.TLSConfig().GetCertificate(&tls.ClientHelloInfo{}); err != nil || string(c.Certificate[0]) != string(der) {
		t.Errorf("ready but not serving the new certificate (%v)", err)
	}
	if time.Now().Before(notBefore) {
		t.Errorf("ready before the certificate's start %v", notBefore)
	}
	if n := strings.Count(logs.String(), "not valid before"); n != 1 {
		t.Errorf("the same error logged %d times while retried, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "credentials reloaded") {
		t.Errorf("the recovery is not logged:\n%s", logs.String())
	}
}

// TestCredentialFilesUnavailableAnswer: while the credential files cannot
// be re-read, the 503 says to come back after the reload interval (not a
// fixed 10 s: the interval can be 5 minutes), and is counted apart from
// the brokers' outages.
func TestCredentialFilesUnavailableAnswer(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "tokens", tokenA+"\n")
	auth, err := NewAuth(Config{TokensFile: path, ReloadInterval: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := newBrokerHandler(t, auth)
	srv := httptest.NewServer(h)
	defer srv.Close()
	writeFile(t, dir, "tokens", "short\n")
	if err := auth.Reload(); err == nil {
		t.Fatal("a bad tokens file re-read")
	}
	code, hdr, _ := do(t, srv.Client(), srv.URL, "Bearer "+tokenA, validGrant)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "90" {
		t.Errorf("status %d, Retry-After %q; want 503 and 90 (the reload interval)", code, hdr.Get("Retry-After"))
	}
	auth.Watch(t.Context(), 300*time.Millisecond, slog.New(slog.DiscardHandler))
	if _, hdr, _ := do(t, srv.Client(), srv.URL, "Bearer "+tokenA, validGrant); hdr.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q with a 300ms interval, want 1", hdr.Get("Retry-After"))
	}
	if h.CredentialsUnavailable.Load() != 2 || h.Unavailable.Load() != 2 {
		t.Errorf("credentials unavailable %d, unavailable %d; want 2 and 2", h.CredentialsUnavailable.Load(), h.Unavailable.Load())
	}
}

// TestBlockedCredentialFileHoldsNeitherReloadsNorShutdown: the tokens
// file becomes a named pipe nobody writes to (or sits on a hung mount): a
// read of it never ends. Before, the watcher blocked in it holding the
// lock, so a SIGHUP's Reload blocked too, the intake stayed ready with the
// old tokens, and the watcher ignored its context. Now the read times out:
// not ready (503), Reload returns, the watcher ends with its context, and
// once the file is readable again the intake takes it.
func TestBlockedCredentialFileHoldsNeitherReloadsNorShutdown(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "tokens", tokenA+"\n")
	auth, err := newAuth(Config{TokensFile: path}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &syncBuffer{}
	auth.Watch(ctx, 50*time.Millisecond, slog.New(slog.NewJSONHandler(logs, nil)))

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	old := filepath.Join(dir, "tokens.pipe")
	t.Cleanup(func() {
		// Release the reads still blocked opening the pipe.
		for _, p := range []string{path, old} {
			if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
		}
	})
	waitFor(t, "not ready while the tokens file does not read", func() bool { return auth.Ready() != nil })
	if auth.authorized(bearerReq(tokenA)) {
		t.Error("token A authorized while its file does not read")
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- auth.Reload() }()
	select {
	case err := <-reloaded:
		if err == nil || !strings.Contains(err.Error(), "CONSENT_INTAKE_TOKENS_FILE") {
			t.Errorf("Reload of a blocked file: %v, want an error naming CONSENT_INTAKE_TOKENS_FILE", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Reload blocked behind a read that never ends")
	}
	time.Sleep(500 * time.Millisecond) // ten ticks
	if n := auth.blocked.Load(); n > maxBlockedReads {
		t.Errorf("%d reads left blocked, want at most %d", n, maxBlockedReads)
	}
	if !strings.Contains(logs.String(), "CONSENT_INTAKE_TOKENS_FILE: not read within") {
		t.Errorf("the log does not say which file did not read:\n%s", logs.String())
	}

	// The pipe is replaced by a good file and the blocked reads end: the
	// intake takes the file.
	if err := os.Rename(path, old); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "tokens", tokenB+"\n")
	if w, err := os.OpenFile(old, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		w.Close()
	}
	waitFor(t, "ready with the readable file", func() bool {
		return auth.Ready() == nil && auth.authorized(bearerReq(tokenB)) && !auth.authorized(bearerReq(tokenA))
	})

	// A read that blocks does not keep the watcher from ending.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "not ready again", func() bool { return auth.Ready() != nil })
	cancel()
	waitFor(t, "the watcher's goroutine gone after its context ended", func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*Auth).Watch.func1")
	})
}
