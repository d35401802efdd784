package intake

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/consentgate/consentgate/pkg/bearer"
)

// MinTokenLength is the shortest bearer token accepted in the tokens file.
const MinTokenLength = bearer.MinTokenLength

// Auth holds the intake's credentials: the bearer tokens
// (CONSENT_INTAKE_TOKENS_FILE) and the TLS files
// (CONSENT_INTAKE_TLS_CERT_FILE, _KEY_FILE, _CLIENT_CA_FILE). [Auth.Reload]
// re-reads all of them at once (consent-sync does on SIGHUP); a reload that
// fails keeps the credentials in use. It is safe for concurrent use.
//
// With tokens, every request needs "Authorization: Bearer <token>" with one
// of them. With a client CA, the TLS handshake requires a client certificate
// that the CA verifies. With both, a request needs both.
type Auth struct {
	cfg Config

	tokens atomic.Pointer[bearer.Digests]
	cert   atomic.Pointer[tls.Certificate]
	pool   atomic.Pointer[x509.CertPool]
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

// Reload re-reads every credential file; on an error nothing changes.
func (a *Auth) Reload() error {
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
	return nil
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
				if err := a.Reload(); err != nil {
					log.Warn("intake: credentials not reloaded; the previous ones stay in use", "error", err.Error())
					continue
				}
				log.Info("intake: credentials reloaded", "tokens", strconv.Itoa(a.Tokens()), "mutual_tls", a.MutualTLS())
			}
		}
	}()
}
