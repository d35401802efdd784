package intake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

const (
	tokenA = "tok-a-0123456789abcdef0123456789"
	tokenB = "tok-b-fedcba9876543210fedcba9876"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newBrokerHandler returns a handler producing to a fresh topic of a real
// broker process.
func newBrokerHandler(t *testing.T, auth *Auth) *Handler {
	t.Helper()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	broker.CreateTopics(t, 1, "intake.auth")
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	h := New(Options{Topic: "intake.auth", ProduceTimeout: 10 * time.Second, Auth: auth, Purposes: catalogue}, newCodec(t), kc)
	t.Cleanup(func() { h.Close() })
	return h
}

func do(t *testing.T, c *http.Client, url, authz, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, m
}

// TestBearerTokens: 401 without a token, with a wrong one or another
// scheme; 202 with each token of the file; 400 for a purpose outside the
// catalogue; a reload (and a SIGHUP) swaps the tokens.
func TestBearerTokens(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "tokens", "# intake tokens\n\n  "+tokenA+"  \n# retired: tok-old-0000000000000000\n"+tokenB+"\n")
	auth, err := NewAuth(Config{TokensFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if auth.Tokens() != 2 {
		t.Fatalf("%d tokens, want 2", auth.Tokens())
	}
	h := newBrokerHandler(t, auth)
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := srv.Client()

	for _, tc := range []struct {
		name, authz string
	}{
		{"no token", ""},
		{"wrong token", "Bearer tok-c-0123456789abcdef0123456789"},
		{"prefix of a token", "Bearer " + tokenA[:20]},
		{"token plus a byte", "Bearer " + tokenA + "x"},
		{"commented token", "Bearer tok-old-0000000000000000"},
		{"basic scheme", "Basic " + tokenA},
		{"bare token", tokenA},
		{"empty bearer", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := do(t, c, srv.URL, tc.authz, validGrant)
			if code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401 (%v)", code, body)
			}
			if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}
	// Unauthenticated callers learn nothing, not even the method rule.
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without token: %v %v, want 401", resp.StatusCode, err)
	}

	for _, tok := range []string{tokenA, tokenB} {
		body := strings.Replace(validGrant, `"c1"`, `"c-`+tok[:5]+`"`, 1)
		if code, _, ans := do(t, c, srv.URL, "Bearer "+tok, body); code != http.StatusAccepted {
			t.Fatalf("token %s: status %d, want 202 (%v)", tok[:5], code, ans)
		}
	}
	if code, _, ans := do(t, c, srv.URL, "bearer "+tokenA, strings.Replace(validGrant, `"marketing"`, `"astrology"`, 1)); code != http.StatusBadRequest ||
		!strings.Contains(ans["errors"].([]any)[0].(map[string]any)["field"].(string), "purpose") {
		t.Fatalf("unknown purpose: status %d, want 400 on purpose (%v)", code, ans)
	}
	if h.Unauthorized.Load() != 9 || h.Accepted.Load() != 2 || h.Rejected.Load() != 1 {
		t.Errorf("unauthorized %d accepted %d rejected %d, want 9 2 1", h.Unauthorized.Load(), h.Accepted.Load(), h.Rejected.Load())
	}

	// A bad file on reload fails closed: the tokens read before are not
	// trusted any more (the bad file may be the one revoking a token), every
	// request is answered 503, and the intake is not ready.
	writeFile(t, dir, "tokens", "tiny-secret\n")
	if err := auth.Reload(); err == nil || strings.Contains(err.Error(), "tiny-secret") {
		t.Fatalf("reload of a bad file: %v, want an error naming the line only", err)
	}
	if code, hdr, _ := do(t, c, srv.URL, "Bearer "+tokenA, validGrant); code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("after a failed reload: status %d (Retry-After %q), want 503 with Retry-After", code, hdr.Get("Retry-After"))
	}
	if auth.Ready() == nil {
		t.Error("after a failed reload the intake reports ready")
	}
	writeFile(t, dir, "tokens", tokenA+"\n"+tokenB+"\n")
	if err := auth.Reload(); err != nil || auth.Ready() != nil {
		t.Fatalf("reload of a good file: %v, ready %v", err, auth.Ready())
	}
	body := strings.Replace(validGrant, `"c1"`, `"c-again"`, 1)
	if code, _, _ := do(t, c, srv.URL, "Bearer "+tokenA, body); code != http.StatusAccepted {
		t.Errorf("after a good reload: status %d, want 202", code)
	}
	// SIGHUP reloads: token A is retired, C is new.
	const tokenC = "tok-c-0123456789abcdef0123456789"
	writeFile(t, dir, "tokens", tokenB+"\n"+tokenC+"\n")
	ctx := t.Context()
	auth.ReloadOnSIGHUP(ctx, slog.New(slog.DiscardHandler))
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for auth.authorized(bearerReq(tokenA)) {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the tokens within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !auth.authorized(bearerReq(tokenC)) || !auth.authorized(bearerReq(tokenB)) {
		t.Error("reloaded tokens not accepted")
	}
}

func bearerReq(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestTokensFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", "holds no token"},
		{"only comments", "# nothing\n\n", "holds no token"},
		{"short", "# c\nsecret-short\n", "line 2: token shorter than 16"},
		{"two tokens on a line", tokenA + " " + tokenB + "\n", "line 1: a token holds white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewAuth(Config{TokensFile: writeFile(t, dir, tc.name, tc.content)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewAuth = %v, want %q", err, tc.want)
			}
			for _, secret := range []string{"secret-short", tokenA, tokenB} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a token", err)
				}
			}
		})
	}
	if _, err := NewAuth(Config{TokensFile: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "CONSENT_INTAKE_TOKENS_FILE") {
		t.Errorf("missing file: %v", err)
	}
}

// pki is a throw-away CA with a server and a client certificate.
type pki struct {
	dir                       string
	caFile, certFile, keyFile string
	client, stranger          tls.Certificate
	roots                     *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.roots = x509.NewCertPool()
	p.roots.AddCert(ca)
	p.caFile = writeFile(t, p.dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))

	leaf := func(serial int64, usage x509.ExtKeyUsage, signer *x509.Certificate, signerKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		if signer == nil {
			signer, signerKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	pemKey := func(k *ecdsa.PrivateKey) []byte {
		b, _ := x509.MarshalECPrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b})
	}
	pair := func(der []byte, k *ecdsa.PrivateKey) tls.Certificate {
		c, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pemKey(k))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	srvDER, srvKey := leaf(2, x509.ExtKeyUsageServerAuth, ca, caKey)
	p.certFile = writeFile(t, p.dir, "server.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})))
	p.keyFile = writeFile(t, p.dir, "server-key.pem", string(pemKey(srvKey)))
	cliDER, cliKey := leaf(3, x509.ExtKeyUsageClientAuth, ca, caKey)
	p.client = pair(cliDER, cliKey)
	strDER, strKey := leaf(4, x509.ExtKeyUsageClientAuth, nil, nil) // self-signed
	p.stranger = pair(strDER, strKey)
	return p
}

func (p *pki) httpClient(certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.roots, Certificates: certs, MinVersion: tls.VersionTLS12},
	}}
}

// TestMutualTLS serves the intake on the real listener with TLS and a
// client CA: a client without a certificate, or with one the CA did not
// sign, is refused in the handshake; one with the CA's certificate gets
// 202. With tokens too, the certificate alone is not enough.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	tokens := writeFile(t, p.dir, "tokens", tokenA+"\n")
	for _, withTokens := range []bool{false, true} {
		name := "mtls"
		cfg := Config{TLSCertFile: p.certFile, TLSKeyFile: p.keyFile, TLSClientCAFile: p.caFile}
		if withTokens {
			name, cfg.TokensFile = "mtls+tokens", tokens
		}
		t.Run(name, func(t *testing.T) {
			auth, err := NewAuth(cfg)
			if err != nil {
				t.Fatal(err)
			}
			h := newBrokerHandler(t, auth)
			srv, err := Start("127.0.0.1:0", h, auth.TLSConfig(), 10*time.Second, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown(t.Context())
			url := "https://" + srv.Addr().String() + Path

			for cname, c := range map[string]*http.Client{"no client certificate": p.httpClient(), "certificate of another CA": p.httpClient(p.stranger)} {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(validGrant))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tokenA)
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
					t.Fatalf("%s: answered %d, want the handshake refused", cname, resp.StatusCode)
				}
				if !strings.Contains(err.Error(), "tls") {
					t.Errorf("%s: error %v, want a TLS error", cname, err)
				}
			}
			good := p.httpClient(p.client)
			if withTokens {
				if code, _, ans := do(t, good, url, "", validGrant); code != http.StatusUnauthorized {
					t.Fatalf("certificate without token: %d, want 401 (%v)", code, ans)
				}
				if code, _, ans := do(t, good, url, "Bearer "+tokenA, validGrant); code != http.StatusAccepted {
					t.Fatalf("certificate and token: %d, want 202 (%v)", code, ans)
				}
				return
			}
			if code, _, ans := do(t, good, url, "", validGrant); code != http.StatusAccepted {
				t.Fatalf("client certificate: %d, want 202 (%v)", code, ans)
			}
		})
	}
}
