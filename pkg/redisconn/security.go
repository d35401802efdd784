package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/internal/secretfile"
)

// secured is what security() makes of the settings: the TLS configuration
// (nil without TLS) and the credentials to send.
type secured struct {
	tls                *tls.Config
	username, password string
}

// urlScheme returns the scheme of REDIS_URL in lower case, "" without one.
func (c Config) urlScheme() string {
	if c.URL == "" {
		return ""
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme)
}

// tlsFiles reports whether any TLS setting other than REDIS_TLS is set.
func (c Config) tlsFiles() bool {
	return c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSServerName != ""
}

// TLSOn reports whether connections use TLS: REDIS_TLS=true, a rediss://
// URL or any of the TLS files. Validate refuses the contradictions
// (REDIS_TLS=false or a redis:// URL with TLS settings).
func (c Config) TLSOn() bool {
	on, _ := c.tlsSetting()
	return on || c.urlScheme() == "rediss" || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != ""
}

// tlsSetting returns REDIS_TLS: whether it is on, and whether it was set
// explicitly (envflag refuses a value that is not true or false).
func (c Config) tlsSetting() (on, explicit bool) {
	if v, set := c.tlsVar.Get(); set {
		return v || c.TLS, true
	}
	return c.TLS, c.TLS
}

// security checks the TLS and authentication settings, reads their files
// and builds what Open needs. It reports every problem at once, each with
// the setting to fix; no message shows a password or a file's content, nor
// the path of the password file (an operator may have put the password
// itself there).
func (c Config) security() (secured, error) {
	var (
		errs []error
		out  secured
	)
	tlsVar, explicit := c.tlsSetting()
	scheme := c.urlScheme()
	explicitOff := explicit && !tlsVar
	switch {
	case explicitOff && scheme == "rediss":
		errs = append(errs, errors.New("REDIS_TLS is false but REDIS_URL is rediss:// (TLS): set REDIS_TLS=true or unset it, or use a redis:// URL on a trusted network"))
	case explicitOff && c.tlsFiles():
		errs = append(errs, errors.New("REDIS_TLS is false but REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE or REDIS_TLS_SERVER_NAME is set: set REDIS_TLS=true to use them, or unset them for a plain connection (they are not ignored)"))
	case scheme == "redis" && (tlsVar || c.tlsFiles()):
		errs = append(errs, errors.New("REDIS_URL is redis:// (no TLS) but REDIS_TLS or a REDIS_TLS_* setting is set: use a rediss:// URL for TLS, or unset the REDIS_TLS settings"))
	case !c.TLSOn() && c.TLSServerName != "":
		errs = append(errs, errors.New("REDIS_TLS_SERVER_NAME is set but TLS is off: set REDIS_TLS=true (or REDIS_TLS_CA_FILE), or unset REDIS_TLS_SERVER_NAME"))
	}
	if c.TLSOn() && !explicitOff && scheme != "redis" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
		// No message quotes these settings: a Secret mapped as a value
		// puts the key itself where its path goes (readPEM).
		if c.TLSCAFile != "" {
			const what = "the PEM file of the CA certificates that signed the Redis servers' certificates"
			if pem, err := secretfile.ReadPEM("REDIS_TLS_CA_FILE", c.TLSCAFile, what); err != nil {
				errs = append(errs, err)
			} else {
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					errs = append(errs, errors.New("REDIS_TLS_CA_FILE holds no PEM certificate: set it to the path of "+what))
				}
				tc.RootCAs = pool
			}
		}
		switch {
		case c.TLSCertFile != "" && c.TLSKeyFile == "":
			errs = append(errs, errors.New("REDIS_TLS_CERT_FILE is set without REDIS_TLS_KEY_FILE: set both (the client certificate and its key) or neither"))
		case c.TLSCertFile == "" && c.TLSKeyFile != "":
			errs = append(errs, errors.New("REDIS_TLS_KEY_FILE is set without REDIS_TLS_CERT_FILE: set both (the client certificate and its key) or neither"))
		case c.TLSCertFile != "":
			certPEM, cerr := secretfile.ReadPEM("REDIS_TLS_CERT_FILE", c.TLSCertFile, "the PEM file of the client certificate")
			keyPEM, kerr := secretfile.ReadPEM("REDIS_TLS_KEY_FILE", c.TLSKeyFile, "the PEM file of the client certificate's key")
			if cerr != nil || kerr != nil {
				errs = append(errs, cerr, kerr) // errors.Join drops a nil
				break
			}
			// tls.X509KeyPair's errors name what is wrong (no PEM data, a
			// key that does not match), never the key itself.
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				errs = append(errs, fmt.Errorf("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE are not a usable client certificate and key (%v): set them to the paths of the PEM certificate and its PEM key", err))
			} else {
				tc.Certificates = []tls.Certificate{cert}
			}
		}
		out.tls = tc
	}

	var urlUser, urlPassword bool
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err == nil && u.User != nil {
			_, urlPassword = u.User.Password()
			urlUser = u.User.Username() != ""
		}
	}
	switch {
	case c.Password != "" && c.PasswordFile != "":
		errs = append(errs, errors.New("both REDIS_PASSWORD and REDIS_PASSWORD_FILE are set: set only REDIS_PASSWORD_FILE (the password in a file readable by this service only) and unset REDIS_PASSWORD"))
	case urlPassword && (c.Password != "" || c.PasswordFile != ""):
		errs = append(errs, errors.New("REDIS_URL holds a password and REDIS_PASSWORD or REDIS_PASSWORD_FILE is set too: remove the password from REDIS_URL and keep REDIS_PASSWORD_FILE"))
	case c.PasswordFile != "":
		p, err := readPassword(c.PasswordFile)
		if err != nil {
			errs = append(errs, err)
		}
		out.password = p
	default:
		out.password = c.Password
	}
	switch {
	case urlUser && c.Username != "":
		errs = append(errs, errors.New("REDIS_URL holds a user name and REDIS_USERNAME is set too: set the user in one place (REDIS_USERNAME)"))
	case c.Username != "" && c.Password == "" && c.PasswordFile == "" && !urlPassword:
		errs = append(errs, errors.New("REDIS_USERNAME is set without a password: set REDIS_PASSWORD_FILE to a file holding that user's password"))
	case strings.ContainsAny(c.Username, " \t\r\n"):
		errs = append(errs, errors.New("REDIS_USERNAME holds a space or a line break (the value is not shown): set the ACL user name the servers know"))
	}
	out.username = c.Username
	if err := errors.Join(errs...); err != nil {
		return secured{}, err
	}
	return out, nil
}

// readPassword reads the password file (secretfile.ReadPassword), which
// must hold one line.
func readPassword(file string) (string, error) {
	p, err := secretfile.ReadPassword("REDIS_PASSWORD_FILE", file)
	if err == nil && strings.ContainsAny(p, "\r\n") {
		return "", errors.New("REDIS_PASSWORD_FILE holds more than one line (not shown): write only the password into it")
	}
	return p, err
}

// ErrSecurity matches the errors Explain returns for a refused TLS
// handshake, a refused user name or password, or a missing permission:
// settings to fix, not a server to wait for.
var ErrSecurity = errors.New("redis security")

// SecurityError is a refused TLS handshake, authentication or command,
// with what to check.
type SecurityError struct {
	What  string // "TLS handshake", "authentication" or "permission"
	Check string // what to check, naming the settings
	Err   error
}

func (e *SecurityError) Error() string {
	return fmt.Sprintf("Redis %s failed: %s (%v)", e.What, e.Check, e.Err)
}

func (e *SecurityError) Unwrap() []error { return []error{ErrSecurity, e.Err} }

// Explain returns err with what to check when it is a refused TLS
// handshake, a refused user name or password (WRONGPASS, NOAUTH) or a
// missing ACL permission (NOPERM, or a command a script may not run): a
// *SecurityError matching ErrSecurity.
// Any other error is returned as it is. The servers' texts, which Explain
// keeps, name neither the password nor a key.
func Explain(err error) error { return Config{}.explain(err) }

// explain is Explain, adding for a closed connection without TLS that a
// server requiring TLS closes such connections.
func (c Config) explain(err error) error {
	if err == nil {
		return nil
	}
	var se *SecurityError
	if errors.As(err, &se) {
		return err
	}
	const checkAuth = "check REDIS_USERNAME and REDIS_PASSWORD_FILE (the password) against the servers' ACL users, and that the user is on"
	var (
		rerr      redis.Error
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
		alert     tls.AlertError
		opErr     *net.OpError
	)
	reply := ""
	if errors.As(err, &rerr) {
		reply = rerr.Error()
	}
	// crypto/tls reports an alert the peer sent over TCP as a *net.OpError
	// with Op "remote error".
	remoteAlert := errors.As(err, &alert) || (errors.As(err, &opErr) && opErr.Op == "remote error")
	switch {
	case strings.HasPrefix(reply, "WRONGPASS"):
		return &SecurityError{What: "authentication", Check: "the servers refused the user name or password: " + checkAuth, Err: err}
	case strings.HasPrefix(reply, "NOAUTH"), strings.HasPrefix(reply, "ERR AUTH") && strings.Contains(reply, "without any password"):
		return &SecurityError{What: "authentication", Check: "the servers and the settings disagree on whether a password is needed: " + checkAuth, Err: err}
	case strings.HasPrefix(reply, "NOPERM"), strings.Contains(reply, "user executing the script can't run this command"):
		return &SecurityError{What: "permission", Check: "the Redis user may not run a command, or use a key or channel, this service needs: give REDIS_USERNAME the ACL line of this service (README, \"Redis in production\")", Err: err}
	case errors.As(err, &unknownCA):
		return &SecurityError{What: "TLS handshake", Check: "the servers' certificate is not signed by a trusted CA: set REDIS_TLS_CA_FILE to the CA that signed the Redis servers' certificates", Err: err}
	case errors.As(err, &hostname):
		return &SecurityError{What: "TLS handshake", Check: "the servers' certificate is not for the name connected to: set REDIS_TLS_SERVER_NAME to a name it holds, or use that name in REDIS_ADDR/REDIS_URL", Err: err}
	case errors.As(err, &invalid), errors.As(err, &verify):
		return &SecurityError{What: "TLS handshake", Check: "the servers' certificate cannot be trusted (expired, or not for a server): check the servers' certificate and REDIS_TLS_CA_FILE", Err: err}
	case errors.As(err, &header):
		return &SecurityError{What: "TLS handshake", Check: "the server did not answer in TLS: point REDIS_ADDR/REDIS_URL at the TLS port (tls-port), or unset REDIS_TLS and the REDIS_TLS_* files for a plain port", Err: err}
	case remoteAlert:
		return &SecurityError{What: "TLS handshake", Check: "the server refused the TLS connection (it may require a client certificate, or refuse this one): check REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE against the servers' tls-ca-cert-file", Err: err}
	}
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	if c.TLSOn() && timeout {
		return fmt.Errorf("%w (no answer over TLS: a port without TLS does not answer a TLS handshake; check that REDIS_ADDR/REDIS_URL is the servers' tls-port)", err)
	}
	if !c.TLSOn() && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
		return fmt.Errorf("%w (a Redis server that requires TLS closes plain connections: if it does, set REDIS_TLS=true and REDIS_TLS_CA_FILE, or use rediss://)", err)
	}
	return err
}
