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
// Each file is read once per look, and what is checked for a change is
// what is parsed. A re-read that fails fails closed: the credentials read
// before are no longer trusted (a token just revoked must not keep working
// because the file that revokes it has a typo), every request is answered
// 503 and [Auth.Ready] reports an error, until a re-read succeeds; the
// watcher tries again on every tick. A read that does not end within
// [DefaultReadTimeout] (a named pipe, a hung mount) is a failed one; it
// holds no lock. A server certificate outside its validity dates is
// refused like a file that does not parse, and [Auth.Ready] also fails
// once the certificate in use has expired.
//
// With tokens, every request needs "Authorization: Bearer <token>" with one
// of them. With a client CA, the TLS handshake requires a client certificate
// that the CA verifies, and every request is checked again against the CA
// in use (a connection kept alive may outlive a CA's withdrawal). With
// both, a request needs both. The handler checks the credentials when the
// headers arrive and again once the body is read.
type Auth struct {
	cfg Config

	tokens atomic.Pointer[bearer.Digests]
	cert   atomic.Pointer[servedCert]
	pool   atomic.Pointer[x509.CertPool]
	// stale is set while the last re-read failed: nothing is authorized.
	stale atomic.Bool
	// every is the watcher's interval (nanoseconds), for Retry-After.
	every atomic.Int64

	// readSem serialises the reads of the files (outside mu: a file that
	// blocks, a named pipe or a hung mount, blocks its reader only, and a
	// read that times out is abandoned); gen numbers the reads in the
	// order they start.
	readSem     chan struct{}
	gen         atomic.Uint64
	readTimeout time.Duration
	blocked     atomic.Int32           // reads abandoned, still blocked
	blockedOn   atomic.Pointer[string] // setting of the last one's file

	mu      sync.Mutex // serialises applying what was read, and logging it
	seen    [sha256.Size]byte
	applied uint64 // gen of the read applied last
	lastErr string // error of the last apply, "" after a success
	expiry  string // the in-use certificate's expiry, once logged
	// loggedErr is the error logged last ("" after a success logged).
	loggedErr string
}

// servedCert is the server's certificate with the end of the validity of
// its chain (the earliest NotAfter).
type servedCert struct {
	cert     tls.Certificate
	notAfter time.Time
}

// DefaultReadTimeout bounds one read of the credential files.
const DefaultReadTimeout = 5 * time.Second

// NewAuth reads the credentials that cfg names. Its errors name the setting
// and, for the tokens file, the line; never a token.
func NewAuth(cfg Config) (*Auth, error) { return newAuth(cfg, DefaultReadTimeout) }

func newAuth(cfg Config, readTimeout time.Duration) (*Auth, error) {
	a := &Auth{cfg: cfg, readSem: make(chan struct{}, 1), readTimeout: readTimeout}
	every := cfg.ReloadInterval
	if every <= 0 {
		every = DefaultReloadInterval
	}
	a.every.Store(int64(every))
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// ErrStale is what [Auth.Ready] reports while the credential files could
// not be re-read.
var ErrStale = errors.New("the intake's credential files (CONSENT_INTAKE_TOKENS_FILE, CONSENT_INTAKE_TLS_*_FILE) changed and could not be re-read: " +
	"every request is refused until they can (the log says what is wrong)")

// Ready reports whether the credentials in use are those of the files and
// usable: nil, [ErrStale] after a failed re-read, or an error naming
// CONSENT_INTAKE_TLS_CERT_FILE once the server certificate in use has
// expired (every client refuses the handshake).
func (a *Auth) Ready() error {
	if a.stale.Load() {
		return ErrStale
	}
	return a.certExpired(time.Now())
}

// certExpired reports the server certificate in use expired at now.
func (a *Auth) certExpired(now time.Time) error {
	if c := a.cert.Load(); c != nil && now.After(c.notAfter) {
		return fmt.Errorf("CONSENT_INTAKE_TLS_CERT_FILE: the certificate in use expired on %s: every client refuses the handshake; put a current certificate and its key there",
			c.notAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// RetryAfter is the Retry-After of a 503 for credential files that could
// not be re-read: the watcher's interval, in whole seconds (at least 1).
func (a *Auth) RetryAfter() string {
	s := (time.Duration(a.every.Load()) + time.Second - 1) / time.Second
	return strconv.FormatInt(int64(max(s, 1)), 10)
}

// Reload re-reads every credential file. On an error the credentials read
// before are kept in memory but no longer used: every request is refused
// (see [Auth]) until a Reload succeeds.
func (a *Auth) Reload() error { return a.reload(context.Background(), "", nil) }

// credFile is one file to read: its path and its setting.
type credFile struct{ path, setting string }

func (a *Auth) files() []credFile {
	return []credFile{
		{a.cfg.TokensFile, "CONSENT_INTAKE_TOKENS_FILE"},
		{a.cfg.TLSCertFile, "CONSENT_INTAKE_TLS_CERT_FILE"},
		{a.cfg.TLSKeyFile, "CONSENT_INTAKE_TLS_KEY_FILE"},
		{a.cfg.TLSClientCAFile, "CONSENT_INTAKE_TLS_CLIENT_CA_FILE"},
	}
}

// snapshot is one read of every credential file: their bytes (or the error
// reading each), and a digest of all of it. The digest and the parse come
// from the same bytes.
type snapshot struct {
	gen   uint64
	b     [4][]byte
	errs  [4]error
	fp    [sha256.Size]byte
	whole error // the read as a whole failed (timed out)
}

// maxBlockedReads bounds the reads of the credential files left blocked
// (each holds a thread) before no new one is started.
const maxBlockedReads = 4

// Read states.
const (
	readRunning int32 = iota
	readFinished
	readAbandoned
)

// read reads every credential file once, following symbolic links as a
// Kubernetes Secret volume's files are. Reads are one at a time, numbered
// in order. A read that does not end within the read timeout (a named pipe
// without a writer, a hung mount) is a failed read: it is abandoned to the
// background, its result discarded, and the next read starts afresh (up to
// maxBlockedReads left blocked). ok is false when ctx ended first.
func (a *Auth) read(ctx context.Context) (s snapshot, ok bool) {
	timer := time.NewTimer(a.readTimeout)
	defer timer.Stop()
	failed := func(err error) snapshot {
		s := snapshot{gen: a.gen.Add(1), whole: err}
		s.fp = sha256.Sum256([]byte(err.Error()))
		return s
	}
	blockedOn := func(p *string) string {
		if p != nil {
			return *p
		}
		return "CONSENT_INTAKE_TOKENS_FILE, CONSENT_INTAKE_TLS_*_FILE"
	}
	select {
	case a.readSem <- struct{}{}:
	case <-timer.C:
		return failed(fmt.Errorf("%s: not read within %s (a named pipe, or a hung mount?); it is read again every interval", blockedOn(a.blockedOn.Load()), a.readTimeout)), true
	case <-ctx.Done():
		return snapshot{}, false
	}
	release := func() { <-a.readSem }
	if n := a.blocked.Load(); n >= maxBlockedReads {
		release()
		return failed(fmt.Errorf("%s: %d earlier reads are still blocked (a named pipe, or a hung mount?): no new one is started until they end",
			blockedOn(a.blockedOn.Load()), n)), true
	}
	var (
		state   atomic.Int32
		reading atomic.Pointer[string]
		done    = make(chan snapshot, 1)
	)
	gen := a.gen.Add(1)
	go func() {
		s := snapshot{gen: gen}
		h := sha256.New()
		for i, f := range a.files() {
			if f.path == "" {
				continue
			}
			reading.Store(&f.setting)
			s.b[i], s.errs[i] = os.ReadFile(f.path)
			if s.errs[i] != nil {
				fmt.Fprintf(h, "%s\x00error %v\x00", f.path, s.errs[i])
				continue
			}
			fmt.Fprintf(h, "%s\x00%d\x00", f.path, len(s.b[i]))
			h.Write(s.b[i])
		}
		h.Sum(s.fp[:0])
		if state.CompareAndSwap(readRunning, readFinished) {
			done <- s
			return
		}
		a.blocked.Add(-1) // abandoned: nobody waits for it
	}()
	abandon := func(err error) (snapshot, bool) {
		if !state.CompareAndSwap(readRunning, readAbandoned) {
			s := <-done // it finished meanwhile
			release()
			return s, true
		}
		a.blocked.Add(1)
		a.blockedOn.Store(reading.Load())
		release()
		if err != nil {
			return snapshot{}, false
		}
		return failed(fmt.Errorf("%s: not read within %s (a named pipe, or a hung mount?); it is read again every interval", blockedOn(reading.Load()), a.readTimeout)), true
	}
	select {
	case s := <-done:
		release()
		return s, true
	case <-timer.C:
		return abandon(nil)
	case <-ctx.Done():
		return abandon(ctx.Err())
	}
}

// reload reads the files and applies them; it logs the outcome with why
// when log is not nil. It returns the error of the credentials in force:
// when a read that started later was applied first, that one's.
func (a *Auth) reload(ctx context.Context, why string, log *slog.Logger) error {
	s, ok := a.read(ctx)
	if !ok {
		return ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.gen < a.applied {
		return a.lastErrLocked() // a newer content is in force
	}
	wasStale := a.stale.Load()
	err := a.apply(s)
	if log != nil {
		a.logLocked(log, why, err, wasStale)
	}
	return err
}

func (a *Auth) lastErrLocked() error {
	if a.lastErr == "" {
		return nil
	}
	return errors.New(a.lastErr)
}

// apply parses what s read and, when all of it is good, puts it in use;
// a.mu is held.
func (a *Auth) apply(s snapshot) error {
	a.applied, a.seen = s.gen, s.fp
	err := a.parse(s)
	if err != nil {
		a.stale.Store(true)
		a.lastErr = err.Error()
		return err
	}
	a.lastErr = ""
	a.stale.Store(false)
	return nil
}

func (a *Auth) parse(s snapshot) error {
	if s.whole != nil {
		return s.whole
	}
	var (
		tokens bearer.Digests
		cert   *servedCert
		pool   *x509.CertPool
		errs   []error
	)
	for i, f := range a.files() {
		if f.path != "" && s.errs[i] != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.setting, s.errs[i]))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if a.cfg.TokensFile != "" {
		t, err := bearer.Parse(s.b[0], "CONSENT_INTAKE_TOKENS_FILE")
		if err != nil {
			errs = append(errs, err)
		}
		tokens = t
	}
	if a.cfg.TLSCertFile != "" {
		c, err := tls.X509KeyPair(s.b[1], s.b[2])
		if err != nil {
			errs = append(errs, fmt.Errorf("CONSENT_INTAKE_TLS_CERT_FILE/CONSENT_INTAKE_TLS_KEY_FILE: %w", err))
		} else if cert, err = checkValidity(c, time.Now()); err != nil {
			errs = append(errs, err)
		}
	}
	if a.cfg.TLSClientCAFile != "" {
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(s.b[3]) {
			errs = append(errs, errors.New("CONSENT_INTAKE_TLS_CLIENT_CA_FILE holds no PEM certificate"))
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

// checkValidity refuses a certificate chain of which a certificate is
// outside its validity dates at now: every client would refuse the
// handshake. Its errors name the setting and the dates, nothing else.
func checkValidity(c tls.Certificate, now time.Time) (*servedCert, error) {
	s := &servedCert{cert: c}
	for i, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("CONSENT_INTAKE_TLS_CERT_FILE: certificate %d of the chain does not parse: %w", i+1, err)
		}
		which := "the certificate"
		if i > 0 {
			which = fmt.Sprintf("certificate %d of the chain", i+1)
		}
		switch {
		case now.After(x.NotAfter):
			return nil, fmt.Errorf("CONSENT_INTAKE_TLS_CERT_FILE: %s expired on %s: every client would refuse it; put a current certificate and its key there",
				which, x.NotAfter.UTC().Format(time.RFC3339))
		case now.Before(x.NotBefore):
			return nil, fmt.Errorf("CONSENT_INTAKE_TLS_CERT_FILE: %s is not valid before %s: every client would refuse it until then (it is tried again every interval)",
				which, x.NotBefore.UTC().Format(time.RFC3339))
		}
		if s.notAfter.IsZero() || x.NotAfter.Before(s.notAfter) {
			s.notAfter = x.NotAfter
		}
	}
	return s, nil
}

// Watch re-reads the credentials whenever the content of one of their files
// changes, looking every interval, until ctx ends, and logs the outcome
// (counts and setting names only, never a token). While the last re-read
// failed it re-reads on every tick, whatever the content, and logs only
// when the error changes.
func (a *Auth) Watch(ctx context.Context, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = DefaultReloadInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a.every.Store(int64(every))
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			a.tick(ctx, log)
		}
	}()
}

// tick is one look of the watcher at the files.
func (a *Auth) tick(ctx context.Context, log *slog.Logger) {
	s, ok := a.read(ctx)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.gen < a.applied {
		return // a newer read (SIGHUP) is in force
	}
	wasStale := a.stale.Load()
	if s.fp == a.seen && !wasStale {
		a.applied = s.gen
		a.logExpiryLocked(log)
		return
	}
	err := a.apply(s)
	a.logLocked(log, "changed on disk", err, wasStale)
}

// logLocked logs the outcome of an apply (a.mu is held, so the line says
// what is in force). why "" means no log is wanted.
func (a *Auth) logLocked(log *slog.Logger, why string, err error, wasStale bool) {
	if err != nil {
		if why == "changed on disk" && wasStale && a.loggedErr == err.Error() {
			return // retried, same error: said already
		}
		a.loggedErr = err.Error()
		log.Error("intake: credentials could not be re-read: the intake answers every request 503 and is not ready until they can",
			"why", why, "error", err.Error())
		return
	}
	a.loggedErr = ""
	log.Info("intake: credentials reloaded", "why", why, "tokens", strconv.Itoa(a.Tokens()), "mutual_tls", a.MutualTLS())
	a.logExpiryLocked(log)
}

// logExpiryLocked logs, once, that the certificate in use has expired.
func (a *Auth) logExpiryLocked(log *slog.Logger) {
	err := a.certExpired(time.Now())
	switch {
	case err == nil:
		a.expiry = ""
	case err.Error() != a.expiry:
		a.expiry = err.Error()
		log.Error("intake: not ready", "error", err.Error())
	}
}

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
// are looked up per handshake, so a Reload takes effect for new
// connections; requests on connections made before are checked against
// the client CA in use by [Auth.authorized].
func (a *Auth) TLSConfig() *tls.Config {
	if a.cfg.TLSCertFile == "" {
		return nil
	}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := a.cert.Load(); c != nil {
				return &c.cert, nil
			}
			return nil, errors.New("no server certificate")
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
	if a.MutualTLS() && !a.clientCertValid(r.TLS, time.Now()) {
		return false
	}
	tokens := a.tokens.Load()
	if tokens == nil {
		return true
	}
	return tokens.Match(bearer.FromHeader(r.Header.Get("Authorization")))
}

// clientCertValid reports whether the client certificate of cs verifies,
// at now, against the client CA in use. The handshake verified it against
// the CA in use then; a connection kept alive (or a session resumed) may
// outlive that CA, so every request is checked again.
func (a *Auth) clientCertValid(cs *tls.ConnectionState, now time.Time) bool {
	if cs == nil || len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return false
	}
	pool := a.pool.Load()
	if pool == nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err == nil
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
				_ = a.reload(ctx, "SIGHUP", log)
			}
		}
	}()
}
