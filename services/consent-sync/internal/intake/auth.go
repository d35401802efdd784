package intake

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/consentgate/consentgate/pkg/bearer"
)

// MinTokenLength is the shortest bearer token accepted in the tokens file.
const MinTokenLength = bearer.MinTokenLength

// Auth holds the intake's credentials: the bearer tokens
// (CONSENT_INTAKE_TOKENS_FILE) and the TLS files
// (CONSENT_INTAKE_TLS_CERT_FILE, _KEY_FILE, _CLIENT_CA_FILE). [Auth.Reload]
// re-reads all of them at once: consent-sync does on SIGHUP and, with
// [Auth.Watch], whenever their content changes (a Kubernetes Secret volume
// swaps its files without telling anyone). It is safe for concurrent use.
//
// A re-read that fails fails closed: the credentials read before are no
// longer trusted (a token just revoked must not keep working because the
// file that revokes it has a typo), every request is answered 503 and
// [Auth.Ready] reports an error, until a re-read succeeds.
//
// With tokens, every request needs "Authorization: Bearer <token>" with one
// of them. With a client CA, the TLS handshake requires a client certificate
// that the CA verifies. With both, a request needs both.
type Auth struct {
	cfg Config

	tokens atomic.Pointer[bearer.Digests]
	cert   atomic.Pointer[tls.Certificate]
	pool   atomic.Pointer[x509.CertPool]
	// stale is set while the last re-read failed: nothing is authorized.
	stale atomic.Bool

	mu   sync.Mutex // serialises re-reads
	seen [sha256.Size]byte
}

// NewAuth reads the credentials that cfg names. Its errors name the setting
// and, for the tokens file, the line; never a token.
func NewAuth(cfg Config) (*Auth, error) {
	a := &Auth{cfg: cfg}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// ErrStale is what [Auth.Ready] reports while the credential files could
// not be re-read.
var ErrStale = errors.New("the intake's credential files (CONSENT_INTAKE_TOKENS_FILE, CONSENT_INTAKE_TLS_*_FILE) changed and could not be re-read: " +
	"every request is refused until they can (the log says what is wrong)")

// Ready reports whether the credentials in use are those of the files: nil,
// or [ErrStale] after a failed re-read.
func (a *Auth) Ready() error {
	if a.stale.Load() {
		return ErrStale
	}
	return nil
}

// Reload re-reads every credential file. On an error the credentials read
// before are kept in memory but no longer used: every request is refused
// (see [Auth]) until a Reload succeeds.
func (a *Auth) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = a.fingerprint()
	return a.reload()
}

// reload re-reads the files; a.mu is held.
func (a *Auth) reload() error {
	var (
		tokens bearer.Digests
		cert   *tls.Certificate
		pool   *x509.CertPool
		errs   []error
	)
	if a.cfg.TokensFile != "" {
		t, err := bearer.ReadFile(a.cfg.TokensFile, "CONSENT_INTAKE_TOKENS_FILE")
		if err != nil {
			errs = append(errs, err)
		}
		tokens = t
	}
	if a.cfg.TLSCertFile != "" {
		c, err := tls.LoadX509KeyPair(a.cfg.TLSCertFile, a.cfg.TLSKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("CONSENT_INTAKE_TLS_CERT_FILE/CONSENT_INTAKE_TLS_KEY_FILE: %w", err))
		}
		cert = &c
	}
	if a.cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(a.cfg.TLSClientCAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("CONSENT_INTAKE_TLS_CLIENT_CA_FILE: %w", err))
		} else {
			pool = x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, errors.New("CONSENT_INTAKE_TLS_CLIENT_CA_FILE holds no PEM certificate"))
			}
		}
	}
	if len(errs) > 0 {
		a.stale.Store(true)
		return errors.Join(errs...)
	}
	if a.cfg.TokensFile != "" {
		a.tokens.Store(&tokens)
	}
	if cert != nil {
		a.cert.Store(cert)
	}
	if pool != nil {
		a.pool.Store(pool)
	}
	a.stale.Store(false)
	return nil
}

// fingerprint is a digest of the content of every credential file (or of
// the error reading it), following symbolic links as a Kubernetes Secret
// volume's files are.
func (a *Auth) fingerprint() [sha256.Size]byte {
	h := sha256.New()
	for _, f := range []string{a.cfg.TokensFile, a.cfg.TLSCertFile, a.cfg.TLSKeyFile, a.cfg.TLSClientCAFile} {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(h, "%s\x00error %v\x00", f, err)
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// Watch re-reads the credentials whenever the content of one of their files
// changes, looking every interval, until ctx ends, and logs the outcome
// (counts and setting names only, never a token).
func (a *Auth) Watch(ctx context.Context, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = DefaultReloadInterval
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			a.mu.Lock()
			now := a.fingerprint()
			if now == a.seen {
				a.mu.Unlock()
				continue
			}
			a.seen = now
			err := a.reload()
			a.mu.Unlock()
			a.logReload(log, "changed on disk", err)
		}
	}()
}

func (a *Auth) logReload(log *slog.Logger, why string, err error) {
	if err != nil {
		log.Error("intake: credentials could not be re-read: the intake answers every request 503 and is not ready until they can",
			"why", why, "error", err.Error())
		return
	}
	log.Info("intake: credentials reloaded", "why", why, "tokens", strconv.Itoa(a.Tokens()), "mutual_tls", a.MutualTLS())
}

// readTokens reads one token per line; blank lines and lines starting with
// "#" are skipped, surrounding spaces trimmed, and a leading UTF-8 byte
// order mark (some editors write one) ignored. A token is printable ASCII
// without spaces, what a client can send in an Authorization header.
// Tokens is the number of bearer tokens in use.
func (a *Auth) Tokens() int {
	if t := a.tokens.Load(); t != nil {
		return len(*t)
	}
	return 0
}

// MutualTLS reports whether client certificates are required.
func (a *Auth) MutualTLS() bool { return a.cfg.TLSClientCAFile != "" }

// TLSConfig returns the server's TLS configuration, or nil when no
// certificate is configured (plain HTTP). Certificates and the client CA
// are looked up per handshake, so a Reload takes effect for new connections.
func (a *Auth) TLSConfig() *tls.Config {
	if a.cfg.TLSCertFile == "" {
		return nil
	}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return a.cert.Load(), nil
		},
	}
	if !a.MutualTLS() {
		return base
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = a.pool.Load()
		return c, nil
	}
	return base
}

// authorized reports whether r carries the credentials the intake requires.
// A bearer token is hashed and compared, in constant time, with the digest
// of every configured token (no early exit), so that neither which token
// matched nor how long the tokens are shows in the answer's timing.
func (a *Auth) authorized(r *http.Request) bool {
	if a.stale.Load() {
		return false
	}
	if a.MutualTLS() && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		return false // the handshake enforces it; this is a second lock
	}
	tokens := a.tokens.Load()
	if tokens == nil {
		return true
	}
	return tokens.Match(bearer.FromHeader(r.Header.Get("Authorization")))
}

// ReloadOnSIGHUP reloads the credentials on every SIGHUP until ctx ends,
// logging the outcome (counts and setting names only, never a token).
func (a *Auth) ReloadOnSIGHUP(ctx context.Context, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.logReload(log, "SIGHUP", a.Reload())
			}
		}
	}()
}
