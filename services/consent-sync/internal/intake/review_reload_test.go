package intake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// reviewGrant is validGrant with its own change_id.
func reviewGrant(id string) string {
	return strings.Replace(validGrant, `"c1"`, `"`+id+`"`, 1)
}

// postTraced posts body with authz on c and reports the status (0 and the
// error when the request failed) and whether the connection was reused.
func postTraced(t *testing.T, c *http.Client, url, authz, body string) (code int, reused bool, err error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		return 0, reused, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, reused, nil
}

// TestReviewKeepAliveOutlivesWithdrawnClientCA: the operator replaces the
// client CA bundle (CA withdrawn: its certificates must no longer get in)
// and the watcher picks the change up. A new handshake with the withdrawn
// CA's certificate is refused, and a resumed one too
// (TestRemovedClientCAEndsResumedSessions); but a client that keeps its
// connection alive never handshakes again, and authorized() only looks at
// the VerifiedChains of the handshake made under the old pool. So the
// withdrawn certificate keeps getting 202 and producing consent changes for
// as long as the client keeps the connection busy (IdleTimeout 60s only
// closes idle ones): far longer than CONSENT_INTAKE_RELOAD_INTERVAL, in
// practice forever for a busy preference centre.
func TestReviewKeepAliveOutlivesWithdrawnClientCA(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	auth, err := NewAuth(Config{TLSCertFile: p.certFile, TLSKeyFile: p.keyFile, TLSClientCAFile: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	const every = 100 * time.Millisecond
	auth.Watch(t.Context(), every, slog.New(slog.DiscardHandler))
	h := newBrokerHandler(t, auth)
	srv, err := Start("127.0.0.1:0", h, auth.TLSConfig(), 10*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	url := "https://" + srv.Addr().String() + Path

	busy := p.httpClient(p.client) // keeps its connection alive
	if code, _, err := postTraced(t, busy, url, "", reviewGrant("ka-0")); err != nil || code != http.StatusAccepted {
		t.Fatalf("before the CA was withdrawn: %d %v", code, err)
	}

	// Withdraw p's CA: the bundle now holds only the other CA.
	ca, err := os.ReadFile(other.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new handshake with the withdrawn CA's certificate refused", func() bool {
		c := p.httpClient(p.client)
		defer c.CloseIdleConnections()
		_, _, err := postTraced(t, c, url, "", reviewGrant("ka-probe"))
		return err != nil
	})
	if auth.Ready() != nil {
		t.Fatalf("the rotation to a valid CA bundle left the intake not ready: %v", auth.Ready())
	}

	// Ten reload intervals later, the kept-alive connection still gets in.
	deadline := time.Now().Add(10 * every)
	accepted, n := 0, 0
	for time.Now().Before(deadline) {
		n++
		code, reused, err := postTraced(t, busy, url, "", reviewGrant(fmt.Sprintf("ka-after-%d", n)))
		if err == nil && code == http.StatusAccepted {
			accepted++
			if !reused {
				t.Fatalf("a new connection with the withdrawn CA's certificate was accepted")
			}
		}
		time.Sleep(every / 2)
	}
	if accepted > 0 {
		t.Errorf("%d of %d requests over a connection made before the client CA was withdrawn were answered 202 (each one acknowledged by the brokers) "+
			"up to %s after the rotation was read, want every one refused (401) or the connection closed",
			accepted, n, 10*every)
	}
}

// fifoServer serves the successive reads of a named pipe at path: read i
// (from 0) gets contents[min(i, len-1)]. It reproduces, read for read, what
// a file rewritten in place (truncate, write) shows to successive readers,
// without depending on timing.
type fifoServer struct {
	path  string
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	reads int
}

func newFIFOServer(t *testing.T, dir, name string, contents ...string) *fifoServer {
	t.Helper()
	f := &fifoServer{path: filepath.Join(dir, name), stop: make(chan struct{}), done: make(chan struct{})}
	if err := syscall.Mkfifo(f.path, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	go func() {
		defer close(f.done)
		for i := 0; ; i++ {
			w, err := os.OpenFile(f.path, os.O_WRONLY, 0) // blocks until a reader opens
			if err != nil {
				return
			}
			select {
			case <-f.stop:
				w.Close()
				return
			default:
			}
			_, _ = io.WriteString(w, contents[min(i, len(contents)-1)])
			w.Close()
			f.mu.Lock()
			f.reads++
			f.mu.Unlock()
			// Let the reader see the end of file and close before the next
			// writer opens (else two contents would reach one reader).
			time.Sleep(30 * time.Millisecond)
		}
	}()
	return f
}

func (f *fifoServer) Reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// shutdown ends the serving goroutine once nothing reads the pipe any more.
func (f *fifoServer) shutdown() {
	close(f.stop)
	// Unblock a writer waiting for a reader.
	if r, err := os.OpenFile(f.path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		<-f.done
		r.Close()
	}
}

// TestReviewFailedReReadIsNeverRetried: the watcher remembers the
// fingerprint of one read of the files and parses another read. When the
// two differ and the parse fails (here: the tokens file, rewritten in place
// to a valid new content, is caught truncated by the second read), the
// intake goes stale with `seen` set to the fingerprint of the good content.
// Every later tick finds that same good content, equal to `seen`, and never
// reads it again: a valid rotation is refused (503, not ready) for good,
// until someone edits the file again or sends SIGHUP, and the log keeps
// saying the file does not read. (The same gap lets a parse of older
// content stick while `seen` holds the newer one: a revoked token would
// then be accepted until the next change.)
func TestReviewFailedReReadIsNeverRetried(t *testing.T) {
	const tokenC = "tok-c-0123456789abcdef0123456789"
	dir := t.TempDir()
	// Reads 0 and 1: NewAuth (fingerprint, parse). Read 2: the watcher's
	// fingerprint finds the rotated file (B and C), read 3 its parse finds
	// it mid-rewrite (empty); from then on the file is B and C for good.
	fifo := newFIFOServer(t, dir, "tokens", tokenA+"\n", tokenA+"\n", tokenB+"\n"+tokenC+"\n", "", tokenB+"\n"+tokenC+"\n")
	auth, err := NewAuth(Config{TokensFile: fifo.path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	logs := &syncBuffer{}
	const every = 100 * time.Millisecond
	auth.Watch(ctx, every, slog.New(slog.NewJSONHandler(logs, nil)))
	t.Cleanup(func() {
		cancel()
		time.Sleep(6 * every) // the watcher sees ctx end between two reads
		fifo.shutdown()
	})
	h := newBrokerHandler(t, auth)
	srv := &http.Server{Handler: h}
	ln := listenLocal(t)
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + Path

	waitFor(t, "the watcher to read the rotated file mid-rewrite", func() bool { return fifo.Reads() >= 4 })
	// The file now holds B and C, a valid content, for good. Give the
	// watcher 20 intervals (and at least 8 more reads) to take it.
	start := fifo.Reads()
	deadline := time.Now().Add(20 * every)
	for time.Now().Before(deadline) && (auth.Ready() != nil || fifo.Reads() < start+8) {
		time.Sleep(every / 2)
	}
	code, _, err := postTraced(t, &http.Client{Timeout: 20 * time.Second}, url, "Bearer "+tokenB, reviewGrant("stuck-1"))
	if err != nil {
		t.Fatal(err)
	}
	if auth.Ready() != nil || code != http.StatusAccepted {
		t.Errorf("the tokens file has held a valid rotation for %s (%d reads of it since): ready %v, token B answered %d, "+
			"want ready and 202: a re-read that failed is never tried again while the fingerprint stays the same\nlog:\n%s",
			20*every, fifo.Reads()-start, auth.Ready(), code, logs.String())
	}
}

// TestReviewSameLengthInPlaceRewrite (sound): a token replaced in place by
// another of the same length, within the same second (same size, maybe the
// same mtime), is seen: the fingerprint hashes the content.
func TestReviewSameLengthInPlaceRewrite(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "tokens", tokenA+"\n")
	auth, err := NewAuth(Config{TokensFile: path})
	if err != nil {
		t.Fatal(err)
	}
	auth.Watch(t.Context(), 100*time.Millisecond, slog.New(slog.DiscardHandler))
	other := strings.Replace(tokenA, "tok-a", "tok-z", 1)
	if len(other) != len(tokenA) {
		t.Fatal("test tokens differ in length")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0) // in place: same inode, no truncation
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(other), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, "token A refused after an in-place same-length rewrite", func() bool { return !auth.authorized(bearerReq(tokenA)) })
	if !auth.authorized(bearerReq(other)) || auth.Ready() != nil {
		t.Errorf("new token refused or not ready: %v", auth.Ready())
	}
}

// TestReviewTLSReloadErrorsShowNoKeyMaterial (sound): a rotation that
// breaks the key (the key file holds another key, or garbage with key
// bytes in it) fails closed and its log line names the settings, never a
// byte of the key.
func TestReviewTLSReloadErrorsShowNoKeyMaterial(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	tokens := writeFile(t, p.dir, "tokens", tokenA+"\n")
	auth, err := NewAuth(Config{TokensFile: tokens, TLSCertFile: p.certFile, TLSKeyFile: p.keyFile, TLSClientCAFile: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	auth.Watch(t.Context(), 100*time.Millisecond, slog.New(slog.NewJSONHandler(logs, nil)))
	otherKey, err := os.ReadFile(other.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ownKey, err := os.ReadFile(p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for i, bad := range [][]byte{otherKey, append([]byte("garbage\n"), ownKey[:len(ownKey)/2]...)} {
		if err := os.WriteFile(p.keyFile, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "not ready after a bad key", func() bool { return auth.Ready() != nil })
		if auth.authorized(bearerReq(tokenA)) {
			t.Errorf("case %d: a request authorized with a broken key pair", i)
		}
		if err := os.WriteFile(p.keyFile, ownKey, 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "ready after the key is back", func() bool { return auth.Ready() == nil })
	}
	out := logs.String()
	for _, pemFile := range [][]byte{otherKey, ownKey} {
		for _, line := range strings.Split(string(pemFile), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(out, line[:16]) {
				t.Errorf("the log shows key material:\n%s", out)
			}
		}
	}
	if strings.Contains(out, tokenA) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(tokenA))[:16]) {
		t.Errorf("the log shows a token:\n%s", out)
	}
	if !strings.Contains(out, "CONSENT_INTAKE_TLS_CERT_FILE") {
		t.Errorf("the log does not name the setting:\n%s", out)
	}
	// The last good certificate keeps serving handshakes.
	if c, err := auth.TLSConfig().GetCertificate(&tls.ClientHelloInfo{}); err != nil || c == nil {
		t.Errorf("GetCertificate after reloads: %v", err)
	}
}

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestReviewSlowBodyOutlivesRevocation: the token is checked when the
// headers arrive, the change produced after the body has been read. A
// client that sends its headers with token A and then trickles the body
// (the server allows 15 s for a whole request) gets its change produced
// and a 202 after the revocation of A was read and is in force: a leaked
// token keeps working, on connections opened before, up to ReadTimeout
// after the rotation, longer than CONSENT_INTAKE_RELOAD_INTERVAL.
func TestReviewSlowBodyOutlivesRevocation(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "tokens", tokenA+"\n"+tokenB+"\n")
	auth, err := NewAuth(Config{TokensFile: path})
	if err != nil {
		t.Fatal(err)
	}
	const every = 100 * time.Millisecond
	auth.Watch(t.Context(), every, slog.New(slog.DiscardHandler))
	h := newBrokerHandler(t, auth)
	srv, err := Start("127.0.0.1:0", h, nil, 10*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	url := "http://" + srv.Addr().String() + Path

	body := reviewGrant("slow-1")
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokenA)
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			res <- result{0, err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, nil}
	}()
	if _, err := io.WriteString(pw, body[:10]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the handler has checked the token and waits for the body

	// Token A is revoked; the watcher reads it.
	writeFile(t, dir, "tokens", tokenB+"\n")
	waitFor(t, "token A refused", func() bool { return !auth.authorized(bearerReq(tokenA)) })
	time.Sleep(5 * every) // well past the interval: the revocation is in force
	if _, err := io.WriteString(pw, body[10:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.code == http.StatusAccepted {
		t.Errorf("a change sent with token A, revoked %s before the body ended, answered %d and produced (accepted %d): "+
			"want 401, the token checked again once the body is read", 5*every, r.code, h.Accepted.Load())
	}
}

// TestReviewWatchAndSIGHUPConverge (sound, run with -race): while the
// tokens file is swapped again and again (Secret volume), SIGHUPs and the
// watcher re-read it concurrently; once it settles, within a few intervals
// the intake is ready with exactly the last file's tokens, and the
// watcher's goroutine ends with its context.
func TestReviewWatchAndSIGHUPConverge(t *testing.T) {
	// A guard so that a SIGHUP delivered after ReloadOnSIGHUP stopped
	// cannot kill the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	t.Cleanup(func() { time.Sleep(200 * time.Millisecond); signal.Stop(guard) })

	const tokenC = "tok-c-0123456789abcdef0123456789"
	vol, path := newSecretVolume(t, "tokens", tokenA+"\n")
	auth, err := NewAuth(Config{TokensFile: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	const every = 100 * time.Millisecond
	auth.ReloadOnSIGHUP(ctx, log)
	auth.Watch(ctx, every, log)
	contents := []string{tokenB + "\n", "short\n", tokenA + "\n" + tokenC + "\n", "", tokenC + "\n"}
	for i := range 60 {
		vol.update("tokens", contents[i%len(contents)])
		if i%3 == 0 {
			if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(7 * time.Millisecond)
	}
	vol.update("tokens", tokenB+"\n")
	waitFor(t, "ready with the last file", func() bool {
		return auth.Ready() == nil && auth.authorized(bearerReq(tokenB)) && !auth.authorized(bearerReq(tokenA)) && !auth.authorized(bearerReq(tokenC))
	})
	time.Sleep(3 * every)
	if auth.Ready() != nil || !auth.authorized(bearerReq(tokenB)) || auth.authorized(bearerReq(tokenC)) {
		t.Errorf("after settling: ready %v", auth.Ready())
	}
	for _, s := range []string{tokenA, tokenB, tokenC, "short\n"} {
		if strings.Contains(logs.String(), strings.TrimSpace(s)) && len(strings.TrimSpace(s)) > 5 {
			t.Errorf("the log shows a token")
		}
	}
	cancel()
	waitFor(t, "the watcher's goroutine gone after its context ended", func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*Auth).Watch.func1")
	})
}

// TestReviewReadyWithAnExpiredServerCertificate: a rotation to a key pair
// that matches but whose certificate has expired (the wrong file copied, a
// renewal that never ran) is taken: tls.LoadX509KeyPair does not look at
// the dates. The intake stays ready while every client refuses the
// handshake: it accepts nothing, and neither readiness nor the log says so.
// (The same holds, without any rotation, when the certificate in use
// expires.)
func TestReviewReadyWithAnExpiredServerCertificate(t *testing.T) {
	p := newPKI(t)
	tokens := writeFile(t, p.dir, "tokens", tokenA+"\n")
	auth, err := NewAuth(Config{TokensFile: tokens, TLSCertFile: p.certFile, TLSKeyFile: p.keyFile})
	if err != nil {
		t.Fatal(err)
	}
	auth.Watch(t.Context(), 100*time.Millisecond, slog.New(slog.DiscardHandler))
	h := newBrokerHandler(t, auth)
	srv, err := Start("127.0.0.1:0", h, auth.TLSConfig(), 10*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	url := "https://" + srv.Addr().String() + Path

	// An expired, self-signed server certificate for 127.0.0.1 (the client
	// trusts it: only its dates are wrong).
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "expired"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := x509.ParseCertificate(der)
	p.roots.AddCert(expired)
	kb, _ := x509.MarshalECPrivateKey(key)
	if code, _, err := postTraced(t, p.httpClient(), url, "Bearer "+tokenA, reviewGrant("exp-0")); err != nil || code != http.StatusAccepted {
		t.Fatalf("before the rotation: %d %v", code, err)
	}
	// Key first, then certificate: in between the pair does not match (stale).
	if err := os.WriteFile(p.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rotation read (the expired certificate in use, or the intake not ready)", func() bool {
		c, _ := auth.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
		return auth.Ready() != nil || (c != nil && len(c.Certificate) > 0 && string(c.Certificate[0]) == string(der))
	})
	time.Sleep(300 * time.Millisecond) // a tick between the key and the certificate has passed
	if auth.Ready() != nil {
		return // the expired certificate was refused: the intake says it is not ready
	}
	_, _, herr := postTraced(t, p.httpClient(), url, "Bearer "+tokenA, reviewGrant("exp-1"))
	if herr == nil {
		t.Fatal("the handshake with an expired server certificate succeeded: the test is wrong")
	}
	t.Errorf("every client refuses the intake's certificate (%v) and the intake reports ready: "+
		"want not ready (and start-up refused) while the certificate in use is outside its validity", herr)
}
