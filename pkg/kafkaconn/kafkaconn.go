// Package kafkaconn says how every Kafka client of the project connects:
// over TLS (with the brokers' CA, an optional client certificate and the
// name the brokers' certificate is checked against) and with SASL (PLAIN,
// SCRAM-SHA-256 or SCRAM-SHA-512). One Config, filled from the KAFKA_TLS*
// and KAFKA_SASL_* variables or their flags, gives the kafka-go Dialer (for
// readers and Conn) and Transport (for writers and kafka.Client) that
// connect that way.
//
// The SASL password is read from a file (KAFKA_SASL_PASSWORD_FILE), never
// from a variable or a flag, and no message of this package shows it: not
// Validate's, not a failed authentication's. The files are read when the
// Dialer or Transport is built (at start-up); a password or certificate
// that changes takes effect at the next start.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/consentgate/consentgate/pkg/envflag"

	"github.com/consentgate/consentgate/pkg/internal/secretfile"
)

// The SASL mechanisms, as KAFKA_SASL_MECHANISM names them.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Config is the security part of a Kafka client's configuration. The zero
// value is a plain TCP connection without authentication.
type Config struct {
	// TLS turns TLS on; it is on too when any of the TLS files is set.
	TLS bool
	// CAFile holds the PEM certificates of the CAs that signed the
	// brokers' certificates; empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key (PEM),
	// for brokers that ask for one: both or neither.
	CertFile, KeyFile string
	// ServerName is the name the brokers' certificates are checked
	// against; empty: the host of each broker address.
	ServerName string
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no
	// SASL.
	SASLMechanism string
	// SASLUsername is the user; SASLPasswordFile the file holding its
	// password (a trailing newline is not part of it).
	SASLUsername, SASLPasswordFile string

	// passwordVar is KAFKA_SASL_PASSWORD (or its flag), which is never
	// used: the password is read only from a file, so that a value there
	// stops start-up instead of being ignored. It is never printed.
	passwordVar string
}

// TLSOn reports whether connections use TLS.
func (c Config) TLSOn() bool {
	return c.TLS || c.CAFile != "" || c.CertFile != "" || c.KeyFile != ""
}

// SASLOn reports whether connections authenticate with SASL.
func (c Config) SASLOn() bool { return c.SASLMechanism != "" }

// Enabled reports whether anything but plain TCP is configured.
func (c Config) Enabled() bool {
	return c.TLSOn() || c.SASLOn() || c.SASLUsername != "" || c.SASLPasswordFile != ""
}

// mechanism returns the canonical name of c's mechanism, or "" and false
// when it is not one of the three.
func (c Config) mechanism() (string, bool) {
	switch m := strings.ToUpper(strings.TrimSpace(c.SASLMechanism)); m {
	case Plain, ScramSHA256, ScramSHA512:
		return m, true
	}
	return "", false
}

// Flags declares the settings on s, next to the other KAFKA_* settings.
func (c *Config) Flags(s *envflag.Set) {
	s.Bool(&c.TLS, "kafka-tls", "KAFKA_TLS", "connect to the brokers over TLS (1.2 or later); on when any KAFKA_TLS_*_FILE is set")
	s.String(&c.CAFile, "kafka-tls-ca-file", "KAFKA_TLS_CA_FILE", "PEM file of the CA certificates that signed the brokers' certificates; empty: the system's roots")
	s.String(&c.CertFile, "kafka-tls-cert-file", "KAFKA_TLS_CERT_FILE", "PEM client certificate, for brokers that require one (with KAFKA_TLS_KEY_FILE)")
	s.String(&c.KeyFile, "kafka-tls-key-file", "KAFKA_TLS_KEY_FILE", "PEM key of that client certificate (with KAFKA_TLS_CERT_FILE)")
	s.String(&c.ServerName, "kafka-tls-server-name", "KAFKA_TLS_SERVER_NAME", "name the brokers' certificates must hold; empty: the host of each broker address")
	s.String(&c.SASLMechanism, "kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL")
	s.String(&c.SASLUsername, "kafka-sasl-username", "KAFKA_SASL_USERNAME", "SASL user name")
	s.String(&c.SASLPasswordFile, "kafka-sasl-password-file", "KAFKA_SASL_PASSWORD_FILE", "file holding the SASL password (a trailing newline is ignored); the password is never read from a variable or a flag")
	s.Secret(&c.passwordVar, "kafka-sasl-password", "KAFKA_SASL_PASSWORD", "not read: setting it stops start-up (the password is read only from KAFKA_SASL_PASSWORD_FILE)")
}

// StdFlags declares the same settings on a standard flag set, each with
// its environment variable as the default (for commands such as consentctl
// that use package flag). It returns an error naming the variable when
// KAFKA_TLS is not true or false.
func (c *Config) StdFlags(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	if v := getenv("KAFKA_TLS"); v != "" {
		b, perr := strconv.ParseBool(strings.TrimSpace(v))
		if perr != nil {
			err = errors.New("KAFKA_TLS is not true or false: set it to true or false, or unset it")
		}
		c.TLS = b
	}
	str := func(p *string, name, env, usage string) {
		fs.StringVar(p, name, getenv(env), usage+" (env "+env+")")
	}
	fs.BoolVar(&c.TLS, "kafka-tls", c.TLS, "connect to the brokers over TLS; on when any --kafka-tls-*-file is set (env KAFKA_TLS)")
	str(&c.CAFile, "kafka-tls-ca-file", "KAFKA_TLS_CA_FILE", "PEM file of the CAs that signed the brokers' certificates")
	str(&c.CertFile, "kafka-tls-cert-file", "KAFKA_TLS_CERT_FILE", "PEM client certificate (with --kafka-tls-key-file)")
	str(&c.KeyFile, "kafka-tls-key-file", "KAFKA_TLS_KEY_FILE", "PEM key of the client certificate")
	str(&c.ServerName, "kafka-tls-server-name", "KAFKA_TLS_SERVER_NAME", "name the brokers' certificates must hold")
	str(&c.SASLMechanism, "kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	str(&c.SASLUsername, "kafka-sasl-username", "KAFKA_SASL_USERNAME", "SASL user name")
	str(&c.SASLPasswordFile, "kafka-sasl-password-file", "KAFKA_SASL_PASSWORD_FILE", "file holding the SASL password")
	// Not a flag (its value would show as the default in -help): only
	// noticed, so that Validate stops start-up.
	c.passwordVar = getenv("KAFKA_SASL_PASSWORD")
	return err
}

// Validate reports every problem at once, each with the setting to fix. It
// reads the files (the CA, the client certificate and key, the password),
// so that a file that cannot be used stops start-up. No message shows the
// password or the content of a file.
func (c Config) Validate() error {
	_, _, err := c.load()
	return err
}

// load reads the files and builds the TLS configuration (nil without TLS)
// and the SASL mechanism (nil without SASL).
func (c Config) load() (*tls.Config, sasl.Mechanism, error) {
	var errs []error
	if c.passwordVar != "" {
		errs = append(errs, errors.New("KAFKA_SASL_PASSWORD is set, but the password is read only from a file: write it to a file readable by this service only, set KAFKA_SASL_PASSWORD_FILE to that file, and unset KAFKA_SASL_PASSWORD"))
	}
	var tc *tls.Config
	if c.TLSOn() {
		tc = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
		// No message quotes these settings: a Secret mapped as a value
		// puts the key itself where its path goes (readPEM).
		if c.CAFile != "" {
			const what = "the PEM file of the CA certificates that signed the brokers' certificates"
			if pem, err := secretfile.ReadPEM("KAFKA_TLS_CA_FILE", c.CAFile, what); err != nil {
				errs = append(errs, err)
			} else {
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					errs = append(errs, errors.New("KAFKA_TLS_CA_FILE holds no PEM certificate: set it to the path of "+what))
				}
				tc.RootCAs = pool
			}
		}
		switch {
		case c.CertFile != "" && c.KeyFile == "":
			errs = append(errs, errors.New("KAFKA_TLS_CERT_FILE is set without KAFKA_TLS_KEY_FILE: set both (the client certificate and its key) or neither"))
		case c.CertFile == "" && c.KeyFile != "":
			errs = append(errs, errors.New("KAFKA_TLS_KEY_FILE is set without KAFKA_TLS_CERT_FILE: set both (the client certificate and its key) or neither"))
		case c.CertFile != "":
			certPEM, cerr := secretfile.ReadPEM("KAFKA_TLS_CERT_FILE", c.CertFile, "the PEM file of the client certificate")
			keyPEM, kerr := secretfile.ReadPEM("KAFKA_TLS_KEY_FILE", c.KeyFile, "the PEM file of the client certificate's key")
			if cerr != nil || kerr != nil {
				errs = append(errs, cerr, kerr) // errors.Join drops a nil
				break
			}
			// tls.X509KeyPair's errors name what is wrong (no PEM data, a
			// key that does not match), never the key itself.
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				errs = append(errs, fmt.Errorf("KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE are not a usable client certificate and key (%v): set them to the paths of the PEM certificate and its PEM key", err))
			} else {
				tc.Certificates = []tls.Certificate{cert}
			}
		}
	} else if c.ServerName != "" {
		errs = append(errs, errors.New("KAFKA_TLS_SERVER_NAME is set but TLS is off: set KAFKA_TLS=true (or KAFKA_TLS_CA_FILE), or unset KAFKA_TLS_SERVER_NAME"))
	}

	var mech sasl.Mechanism
	name, known := c.mechanism()
	switch {
	case c.SASLMechanism == "":
		if c.SASLUsername != "" || c.SASLPasswordFile != "" {
			errs = append(errs, errors.New("KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD_FILE is set without KAFKA_SASL_MECHANISM: set KAFKA_SASL_MECHANISM to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, or unset them"))
		}
	case !known:
		// Not quoted: a value in the wrong variable may be a secret.
		errs = append(errs, errors.New("KAFKA_SASL_MECHANISM is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (the value is not shown): set one of them, or unset it for no SASL"))
	default:
		if c.SASLUsername == "" {
			errs = append(errs, fmt.Errorf("KAFKA_SASL_MECHANISM is %s but KAFKA_SASL_USERNAME is empty: set the user name", name))
		}
		var password string
		if c.SASLPasswordFile == "" {
			errs = append(errs, fmt.Errorf("KAFKA_SASL_MECHANISM is %s but KAFKA_SASL_PASSWORD_FILE is empty: set it to a file holding the password", name))
		} else if p, err := secretfile.ReadPassword("KAFKA_SASL_PASSWORD_FILE", c.SASLPasswordFile); err != nil {
			errs = append(errs, err)
		} else {
			password = p
		}
		if c.SASLUsername != "" && password != "" {
			m, err := newMechanism(name, c.SASLUsername, password)
			if err != nil {
				errs = append(errs, err)
			}
			mech = m
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return tc, mech, nil
}

// newMechanism builds the SASL mechanism. The SCRAM library's errors quote
// the password (SASLprep of a password with a control character), so they
// are replaced, never passed on.
func newMechanism(name, user, password string) (sasl.Mechanism, error) {
	if name == Plain {
		return plain.Mechanism{Username: user, Password: password}, nil
	}
	algo := scram.SHA256
	if name == ScramSHA512 {
		algo = scram.SHA512
	}
	if _, err := scram.Mechanism(algo, user, ""); err != nil {
		return nil, fmt.Errorf("KAFKA_SASL_USERNAME cannot be used with %s (SASLprep refuses it, e.g. a control character): set the user name the brokers know", name)
	}
	m, err := scram.Mechanism(algo, user, password)
	if err != nil {
		return nil, fmt.Errorf("the password in KAFKA_SASL_PASSWORD_FILE cannot be used with %s (SASLprep refuses it, e.g. a control character; the password is not shown): write the password the brokers know, without control characters", name)
	}
	return m, nil
}

// Warnings lists what is allowed but unsafe: SASL PLAIN without TLS sends
// the password in clear.
func (c Config) Warnings() []string {
	if name, ok := c.mechanism(); ok && name == Plain && !c.TLSOn() {
		return []string{"KAFKA_SASL_MECHANISM is PLAIN without TLS: the password travels in clear to the brokers; set KAFKA_TLS=true (and KAFKA_TLS_CA_FILE) unless the network is trusted"}
	}
	return nil
}

var warned sync.Map // message → struct{}

// LogWarnings logs each of c's Warnings once per process, however often it
// is called.
func (c Config) LogWarnings(log *slog.Logger) {
	for _, w := range c.Warnings() {
		if _, seen := warned.LoadOrStore(w, struct{}{}); !seen {
			log.Warn(w)
		}
	}
}

// LogAttrs lists the settings for a start-up log: whether TLS is on, the
// CA file (unless it looks like a file's content), whether a client
// certificate is used, the mechanism and the user; never the password.
func (c Config) LogAttrs() []slog.Attr {
	attrs := []slog.Attr{slog.Bool("kafka_tls", c.TLSOn())}
	switch {
	case secretfile.LooksLikeContent(c.CAFile):
		// A Secret mapped as a value: the content, never logged.
		attrs = append(attrs, slog.String("kafka_tls_ca_file", "(not a path: not shown)"))
	case c.CAFile != "":
		attrs = append(attrs, slog.String("kafka_tls_ca_file", c.CAFile))
	}
	if c.CertFile != "" {
		attrs = append(attrs, slog.Bool("kafka_tls_client_cert", true))
	}
	if c.ServerName != "" {
		attrs = append(attrs, slog.String("kafka_tls_server_name", c.ServerName))
	}
	if name, ok := c.mechanism(); ok {
		attrs = append(attrs, slog.String("kafka_sasl_mechanism", name), slog.String("kafka_sasl_username", c.SASLUsername))
	}
	return attrs
}

// Dialer returns a kafka-go Dialer (for readers and kafka.Conn) that
// connects as c says, with clientID and a 10 s timeout. When c's files
// cannot be used (Validate fails) every dial fails with Validate's error:
// nothing connects without the security it was told to use.
func (c Config) Dialer(clientID string) *kafka.Dialer {
	d := &kafka.Dialer{ClientID: clientID, Timeout: 10 * time.Second, DualStack: true}
	tc, mech, err := c.load()
	if err != nil {
		err = fmt.Errorf("kafka connection settings: %w", err)
		d.DialFunc = func(context.Context, string, string) (net.Conn, error) { return nil, err }
		return d
	}
	d.TLS, d.SASLMechanism = tc, mech
	return d
}

// Transport returns a kafka-go Transport (for writers and kafka.Client)
// that connects as c says, with clientID. When c's files cannot be used,
// every dial fails with Validate's error.
func (c Config) Transport(clientID string) *kafka.Transport {
	t := &kafka.Transport{ClientID: clientID}
	tc, mech, err := c.load()
	if err != nil {
		err = fmt.Errorf("kafka connection settings: %w", err)
		t.Dial = func(context.Context, string, string) (net.Conn, error) { return nil, err }
		return t
	}
	t.TLS, t.SASL = tc, mech
	return t
}

// ErrSecurity matches the errors Explain returns for a failed SASL
// authentication or TLS handshake: settings to fix, not a broker to wait
// for.
var ErrSecurity = errors.New("kafka security")

// SecurityError is a failed authentication or TLS handshake, with what to
// check.
type SecurityError struct {
	What  string // "SASL authentication" or "TLS handshake"
	Check string // what to check, naming the settings
	Err   error
}

func (e *SecurityError) Error() string {
	return fmt.Sprintf("Kafka %s failed: %s (%v)", e.What, e.Check, e.Err)
}

func (e *SecurityError) Unwrap() []error { return []error{ErrSecurity, e.Err} }

// Explain returns err with what to check when it is a failed SASL
// authentication or TLS handshake (a *SecurityError, matching ErrSecurity),
// and err itself otherwise. kafka-go's own texts say neither which setting
// is wrong nor that TLS was the cause.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var se *SecurityError
	if errors.As(err, &se) {
		return err
	}
	const checkSASL = "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD_FILE (the password) and KAFKA_SASL_MECHANISM against the users the brokers know"
	var (
		kerr      kafka.Error
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
		alert     tls.AlertError
		opErr     *net.OpError
	)
	// crypto/tls reports an alert the peer sent over TCP as a
	// *net.OpError with Op "remote error" (its alert type is not
	// exported; tls.AlertError is used only with QUIC).
	remoteAlert := errors.As(err, &alert) || (errors.As(err, &opErr) && opErr.Op == "remote error")
	switch {
	case errors.As(err, &kerr) && (kerr == kafka.SASLAuthenticationFailed || kerr == kafka.IllegalSASLState):
		return &SecurityError{What: "SASL authentication", Check: "the brokers refused the user name or password: " + checkSASL, Err: err}
	case errors.As(err, &kerr) && kerr == kafka.UnsupportedSASLMechanism:
		return &SecurityError{What: "SASL authentication", Check: "the brokers do not offer that mechanism (or no SASL on this listener): " + checkSASL, Err: err}
	case errors.As(err, &unknownCA):
		return &SecurityError{What: "TLS handshake", Check: "the brokers' certificate is not signed by a trusted CA: set KAFKA_TLS_CA_FILE to the CA that signed the brokers' certificates", Err: err}
	case errors.As(err, &hostname):
		return &SecurityError{What: "TLS handshake", Check: "the brokers' certificate is not for the name connected to: set KAFKA_TLS_SERVER_NAME to a name it holds, or use that name in KAFKA_BROKERS", Err: err}
	case errors.As(err, &invalid), errors.As(err, &verify):
		return &SecurityError{What: "TLS handshake", Check: "the brokers' certificate cannot be trusted (expired, or not for a server): check the brokers' certificate and KAFKA_TLS_CA_FILE", Err: err}
	case errors.As(err, &header):
		return &SecurityError{What: "TLS handshake", Check: "the brokers did not answer in TLS: unset KAFKA_TLS and the KAFKA_TLS_* files for a plain listener, or point KAFKA_BROKERS at the TLS listener", Err: err}
	case remoteAlert:
		return &SecurityError{What: "TLS handshake", Check: "the brokers refused the TLS connection (a client certificate may be required or refused): check KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE", Err: err}
	}
	return err
}

// Diagnose is Explain for the errors of a kafka.Client or a Writer (kafka-go's
// Transport), which often lose the cause: a broker that refuses the
// password closes the connection, and the Transport reports only an
// unexpected EOF. When err is not a broker's answer, and d has TLS or SASL,
// Diagnose connects once to the first of brokers with d (within 5 s of
// ctx) and returns that connection's security error, explained, when it
// has one; err (explained) otherwise.
func Diagnose(ctx context.Context, d *kafka.Dialer, brokers []string, err error) error {
	err = Explain(err)
	if err == nil || errors.Is(err, ErrSecurity) {
		return err
	}
	if d == nil {
		return hint(err, false, false)
	}
	tlsOn, saslOn := d.TLS != nil, d.SASLMechanism != nil
	var kerr kafka.Error
	if (!tlsOn && !saslOn) || len(brokers) == 0 || ctx.Err() != nil || errors.As(err, &kerr) {
		// Nothing to diagnose, or the broker answered: connecting worked.
		return hint(err, tlsOn, saslOn)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, derr := d.DialContext(dctx, "tcp", brokers[0])
	if derr == nil {
		conn.Close()
		return err
	}
	if derr = Explain(derr); errors.Is(derr, ErrSecurity) {
		return fmt.Errorf("%w (the request failed with: %v)", derr, err)
	}
	return hint(err, tlsOn, saslOn)
}

// Hint adds to err, when it is a closed connection and c has no TLS or no
// SASL, that a broker requiring them closes such connections. Explain
// cannot say so for sure: a broker going away closes connections too.
func (c Config) Hint(err error) error { return hint(err, c.TLSOn(), c.SASLOn()) }

func hint(err error, tlsOn, saslOn bool) error {
	if err == nil || errors.Is(err, ErrSecurity) {
		return err
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
		return err
	}
	switch {
	case !tlsOn && !saslOn:
		return fmt.Errorf("%w (a broker that requires TLS or SASL closes plain connections: if it does, set KAFKA_TLS and KAFKA_SASL_*)", err)
	case !tlsOn:
		return fmt.Errorf("%w (a broker that requires TLS closes plain connections: if it does, set KAFKA_TLS=true)", err)
	case !saslOn:
		return fmt.Errorf("%w (a broker that requires SASL closes connections without it: if it does, set KAFKA_SASL_*)", err)
	}
	return err
}
