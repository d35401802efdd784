package kafkaconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"

	"github.com/consentgate/consentgate/pkg/envflag"
)

const secret = "s3cret-\x07-pw"

// files writes the test's files: a CA (any PEM certificate does for the
// parser), a client certificate and key, and password files.
type files struct{ ca, cert, key, pw, pwNL, pwCtl, empty, garbage, missing string }

func writeFiles(t *testing.T) files {
	t.Helper()
	dir := t.TempDir()
	w := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return files{
		ca: w("ca.pem", string(certPEM)), cert: w("cert.pem", string(certPEM)), key: w("key.pem", string(keyPEM)),
		pw: w("pw", "plain-secret"), pwNL: w("pw-nl", "nl-secret\r\n\n"), pwCtl: w("pw-ctl", secret+"\n"),
		empty: w("empty", "\n"), garbage: w("garbage", "not a certificate, "+secret), missing: filepath.Join(dir, "missing"),
	}
}

// A self-signed certificate and its key, for the parser only.
var certPEM = []byte(`-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAw
DgYDVQQKEwdBY21lIENvMB4XDTE3MTAyMDE5NDMwNloXDTE4MTAyMDE5NDMwNlow
EjEQMA4GA1UEChMHQWNtZSBDbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD0d
7VNhbWvZLWPuj/RtHFjvtJBEwOkhbN/BnnE8rnZR8+sbwnc/KhCk3FhnpHZnQz7B
5aETbbIgmuvewdjvSBSjYzBhMA4GA1UdDwEB/wQEAwICpDATBgNVHSUEDDAKBggr
BgEFBQcDATAPBgNVHRMBAf8EBTADAQH/MCkGA1UdEQQiMCCCDmxvY2FsaG9zdDo1
NDUzgg4xMjcuMC4wLjE6NTQ1MzAKBggqhkjOPQQDAgNIADBFAiEA2zpJEPQyz6/l
Wf86aX6PepsntZv2GYlA5UpabfT2EZICICpJ5h/iI+i341gBmLiAFQOyTDT+/wQc
6MF9+Yw1Yy0t
-----END CERTIFICATE-----
`)

var keyPEM = []byte(`-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49
AwEHoUQDQgAEPR3tU2Fta9ktY+6P9G0cWO+0kETA6SFs38GecTyudlHz6xvCdz8q
EKTcWGekdmdDPsHloRNtsiCa697B2O9IFA==
-----END EC PRIVATE KEY-----
`)

func TestValidate(t *testing.T) {
	f := writeFiles(t)
	cases := []struct {
		name string
		c    Config
		want []string // each in the error; none: valid
	}{
		{"plain TCP", Config{}, nil},
		{"TLS with system roots", Config{TLS: true}, nil},
		{"TLS with a CA and a client certificate", Config{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key, ServerName: "kafka"}, nil},
		{"SCRAM over TLS", Config{CAFile: f.ca, SASLMechanism: "SCRAM-SHA-512", SASLUsername: "app", SASLPasswordFile: f.pw}, nil},
		{"mechanism in lower case", Config{TLS: true, SASLMechanism: "scram-sha-256", SASLUsername: "app", SASLPasswordFile: f.pw}, nil},
		{"PLAIN without TLS (allowed, warned)", Config{SASLMechanism: "PLAIN", SASLUsername: "app", SASLPasswordFile: f.pw}, nil},
		{"unreadable CA", Config{CAFile: f.missing}, []string{"KAFKA_TLS_CA_FILE", "cannot be read", "no such file"}},
		{"CA without certificates", Config{CAFile: f.garbage}, []string{"KAFKA_TLS_CA_FILE", "holds no PEM certificate"}},
		{"certificate without key", Config{CertFile: f.cert}, []string{"KAFKA_TLS_CERT_FILE is set without KAFKA_TLS_KEY_FILE", "both"}},
		{"key without certificate", Config{KeyFile: f.key}, []string{"KAFKA_TLS_KEY_FILE is set without KAFKA_TLS_CERT_FILE"}},
		{"key that is not a key", Config{CertFile: f.cert, KeyFile: f.garbage}, []string{"KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE", "not a usable client certificate"}},
		{"server name without TLS", Config{ServerName: "kafka"}, []string{"KAFKA_TLS_SERVER_NAME", "KAFKA_TLS=true"}},
		{"unknown mechanism", Config{TLS: true, SASLMechanism: "GSSAPI", SASLUsername: "app", SASLPasswordFile: f.pw},
			[]string{"KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", "not shown"}},
		{"a secret as the mechanism is not shown", Config{TLS: true, SASLMechanism: secret, SASLUsername: "app", SASLPasswordFile: f.pw},
			[]string{"KAFKA_SASL_MECHANISM"}},
		{"mechanism without user", Config{TLS: true, SASLMechanism: "PLAIN", SASLPasswordFile: f.pw}, []string{"KAFKA_SASL_USERNAME is empty"}},
		{"mechanism without password file", Config{TLS: true, SASLMechanism: "SCRAM-SHA-256", SASLUsername: "app"}, []string{"KAFKA_SASL_PASSWORD_FILE is empty"}},
		{"unreadable password file", Config{TLS: true, SASLMechanism: "PLAIN", SASLUsername: "app", SASLPasswordFile: f.missing},
			[]string{"KAFKA_SASL_PASSWORD_FILE", "cannot be read"}},
		{"empty password file", Config{TLS: true, SASLMechanism: "PLAIN", SASLUsername: "app", SASLPasswordFile: f.empty},
			[]string{"KAFKA_SASL_PASSWORD_FILE", "is empty"}},
		{"user and password without mechanism", Config{SASLUsername: "app", SASLPasswordFile: f.pw}, []string{"without KAFKA_SASL_MECHANISM"}},
		{"SCRAM password that SASLprep refuses", Config{TLS: true, SASLMechanism: "SCRAM-SHA-512", SASLUsername: "app", SASLPasswordFile: f.pwCtl},
			[]string{"KAFKA_SASL_PASSWORD_FILE", "SASLprep", "not shown"}},
		{"SCRAM user that SASLprep refuses", Config{TLS: true, SASLMechanism: "SCRAM-SHA-256", SASLUsername: "a\x07b", SASLPasswordFile: f.pw},
			[]string{"KAFKA_SASL_USERNAME", "SASLprep"}},
		{"every problem at once", Config{CertFile: f.cert, SASLMechanism: "SCRAM-SHA-256"},
			[]string{"KAFKA_TLS_KEY_FILE", "KAFKA_SASL_USERNAME is empty", "KAFKA_SASL_PASSWORD_FILE is empty"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: nil, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, s := range []string{secret, "plain-secret", "not a certificate"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows a secret or a file's content", err)
				}
			}
		})
	}
}

func TestPasswordFileTrailingNewlineIsTrimmed(t *testing.T) {
	f := writeFiles(t)
	c := Config{TLS: true, SASLMechanism: "PLAIN", SASLUsername: "app", SASLPasswordFile: f.pwNL}
	d := c.Dialer("id")
	m, ok := d.SASLMechanism.(plain.Mechanism)
	if !ok {
		t.Fatalf("mechanism %T, want plain.Mechanism", d.SASLMechanism)
	}
	if m.Username != "app" || m.Password != "nl-secret" {
		t.Errorf("user %q password %q, want app and nl-secret (trailing CR/LF trimmed)", m.Username, m.Password)
	}
}

func TestDialerAndTransport(t *testing.T) {
	f := writeFiles(t)
	c := Config{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key, ServerName: "kafka.internal", SASLMechanism: ScramSHA512, SASLUsername: "app", SASLPasswordFile: f.pw}
	d := c.Dialer("client-1")
	if d.ClientID != "client-1" || d.TLS == nil || d.SASLMechanism == nil || d.SASLMechanism.Name() != ScramSHA512 || d.DialFunc != nil {
		t.Fatalf("dialer %+v", d)
	}
	if d.TLS.MinVersion != tls.VersionTLS12 || d.TLS.ServerName != "kafka.internal" || d.TLS.RootCAs == nil || len(d.TLS.Certificates) != 1 {
		t.Errorf("dialer TLS: min version %x, server name %q, roots %v, %d certificates", d.TLS.MinVersion, d.TLS.ServerName, d.TLS.RootCAs != nil, len(d.TLS.Certificates))
	}
	tr := c.Transport("client-1")
	if tr.ClientID != "client-1" || tr.TLS == nil || tr.TLS.MinVersion != tls.VersionTLS12 || tr.SASL == nil || tr.SASL.Name() != ScramSHA512 || tr.Dial != nil {
		t.Fatalf("transport %+v", tr)
	}
	plainD, plainT := Config{}.Dialer("x"), Config{}.Transport("x")
	if plainD.TLS != nil || plainD.SASLMechanism != nil || plainT.TLS != nil || plainT.SASL != nil {
		t.Error("the zero Config gives TLS or SASL")
	}
}

// TestBadFilesFailClosed: a Dialer or Transport built from settings that
// cannot be used (Validate skipped) connects to nothing.
func TestBadFilesFailClosed(t *testing.T) {
	f := writeFiles(t)
	c := Config{TLS: true, SASLMechanism: "PLAIN", SASLUsername: "app", SASLPasswordFile: f.missing}
	d := c.Dialer("x")
	if d.DialFunc == nil {
		t.Fatal("no failing DialFunc")
	}
	if _, err := d.DialContext(context.Background(), "tcp", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "KAFKA_SASL_PASSWORD_FILE") {
		t.Errorf("dial: %v, want the settings error", err)
	}
	tr := c.Transport("x")
	if tr.Dial == nil {
		t.Fatal("no failing Dial")
	}
	if _, err := tr.Dial(context.Background(), "tcp", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "KAFKA_SASL_PASSWORD_FILE") {
		t.Errorf("transport dial: %v, want the settings error", err)
	}
}

func TestWarnings(t *testing.T) {
	f := writeFiles(t)
	clear := Config{SASLMechanism: "plain", SASLUsername: "app", SASLPasswordFile: f.pw}
	if w := clear.Warnings(); len(w) != 1 || !strings.Contains(w[0], "in clear") {
		t.Errorf("PLAIN without TLS: warnings %q", w)
	}
	for _, c := range []Config{{}, {TLS: true, SASLMechanism: "PLAIN"}, {SASLMechanism: "SCRAM-SHA-256"}} {
		if w := c.Warnings(); len(w) != 0 {
			t.Errorf("%+v: warnings %q, want none", c, w)
		}
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	clear.LogWarnings(log)
	clear.LogWarnings(log)
	if n := strings.Count(buf.String(), "in clear"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, buf.String())
	}
	if strings.Contains(buf.String(), "plain-secret") {
		t.Error("the warning shows the password")
	}
}

func TestFlagsAndHelpShowNoSecret(t *testing.T) {
	f := writeFiles(t)
	var c Config
	s := envflag.New("svc", "test")
	c.Flags(s)
	env := map[string]string{"KAFKA_TLS_CA_FILE": f.ca, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "app", "KAFKA_SASL_PASSWORD_FILE": f.pw}
	if err := s.Parse([]string{"--kafka-tls-server-name=kafka"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if !c.TLSOn() || c.CAFile != f.ca || c.ServerName != "kafka" || c.SASLMechanism != "SCRAM-SHA-512" || c.SASLUsername != "app" || c.SASLPasswordFile != f.pw {
		t.Fatalf("parsed %+v", c)
	}
	var help bytes.Buffer
	s.PrintUsage(&help)
	for _, name := range []string{"KAFKA_TLS ", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE", "KAFKA_TLS_SERVER_NAME", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD_FILE"} {
		if !strings.Contains(help.String(), name) {
			t.Errorf("--help does not list %s", name)
		}
	}
	if strings.Contains(help.String(), "plain-secret") {
		t.Error("--help shows the password")
	}
	for _, a := range c.LogAttrs() {
		if strings.Contains(a.Value.String(), "plain-secret") {
			t.Error("LogAttrs shows the password")
		}
	}
}

func TestStdFlags(t *testing.T) {
	env := map[string]string{"KAFKA_TLS": "true", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "env-user", "KAFKA_SASL_PASSWORD_FILE": "/p"}
	var c Config
	fs := flag.NewFlagSet("consentctl", flag.ContinueOnError)
	if err := c.StdFlags(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--kafka-sasl-username=flag-user"}); err != nil {
		t.Fatal(err)
	}
	if !c.TLS || c.SASLMechanism != "PLAIN" || c.SASLUsername != "flag-user" || c.SASLPasswordFile != "/p" {
		t.Errorf("parsed %+v: want the environment's values, the flag winning", c)
	}
	var bad Config
	err := bad.StdFlags(flag.NewFlagSet("x", flag.ContinueOnError), func(k string) string { return map[string]string{"KAFKA_TLS": "maybe"}[k] })
	if err == nil || !strings.Contains(err.Error(), "KAFKA_TLS") {
		t.Errorf("KAFKA_TLS=maybe: %v", err)
	}
}

func TestExplain(t *testing.T) {
	if Explain(nil) != nil {
		t.Error("Explain(nil) is not nil")
	}
	plainErr := errors.New("connection refused")
	if Explain(plainErr) != plainErr {
		t.Error("Explain changed an error that is not a security failure")
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{kafka.SASLAuthenticationFailed, "KAFKA_SASL_PASSWORD_FILE"},
		{errors.Join(errors.New("ctx"), kafka.UnsupportedSASLMechanism), "KAFKA_SASL_MECHANISM"},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "did not answer in TLS"},
		{tls.AlertError(116), "KAFKA_TLS_CERT_FILE"},
	} {
		err := Explain(tc.err)
		if !errors.Is(err, ErrSecurity) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "failed") {
			t.Errorf("Explain(%v) = %v: want a security error saying %q", tc.err, err, tc.want)
		}
		if Explain(err) != err {
			t.Errorf("Explain is not idempotent on %v", err)
		}
	}
	if err := (Config{}).Hint(io.ErrUnexpectedEOF); !strings.Contains(err.Error(), "KAFKA_TLS") || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Hint on a closed plain connection: %v", err)
	}
	if err := (Config{TLS: true, SASLMechanism: "PLAIN"}).Hint(io.EOF); err != io.EOF {
		t.Errorf("Hint with TLS and SASL on: %v, want the error as it is", err)
	}
}

// TestPasswordInAVariableStopsStartUp: the password is read only from
// KAFKA_SASL_PASSWORD_FILE; an operator who sets KAFKA_SASL_PASSWORD
// (the name other Kafka tools use) must be told so at start-up instead of
// the setting being ignored, and the message must not show the value.
func TestPasswordInAVariableStopsStartUp(t *testing.T) {
	f := writeFiles(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"alone", map[string]string{"KAFKA_SASL_PASSWORD": "var-secret-1"}},
		{"with SASL set up", map[string]string{"KAFKA_TLS_CA_FILE": f.ca, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "app", "KAFKA_SASL_PASSWORD_FILE": f.pw, "KAFKA_SASL_PASSWORD": "var-secret-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			s := envflag.New("svc", "test")
			c.Flags(s)
			if err := s.Parse(nil, func(k string) string { return tc.env[k] }); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), "KAFKA_SASL_PASSWORD_FILE") || !strings.Contains(err.Error(), "unset KAFKA_SASL_PASSWORD") {
				t.Fatalf("KAFKA_SASL_PASSWORD set: Validate() = %v, want an error saying to use KAFKA_SASL_PASSWORD_FILE and unset KAFKA_SASL_PASSWORD", err)
			}
			if strings.Contains(err.Error(), "var-secret-1") {
				t.Error("the error shows the password")
			}
			var help bytes.Buffer
			s.PrintUsage(&help)
			if strings.Contains(help.String(), "var-secret-1") {
				t.Error("--help shows the password")
			}
		})
	}
	var c Config
	fs := flag.NewFlagSet("consentctl", flag.ContinueOnError)
	if err := c.StdFlags(fs, func(k string) string { return map[string]string{"KAFKA_SASL_PASSWORD": "var-secret-1"}[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "var-secret-1") {
		t.Errorf("consentctl with KAFKA_SASL_PASSWORD set: Validate() = %v, want an error without the value", err)
	}
}

// TestPasswordMisplacedAsItsFileIsNotShown: an operator who puts the
// password itself into KAFKA_SASL_PASSWORD_FILE gets an error that names
// the setting without echoing its value (which is then the password).
func TestPasswordMisplacedAsItsFileIsNotShown(t *testing.T) {
	c := Config{TLS: true, SASLMechanism: ScramSHA512, SASLUsername: "app", SASLPasswordFile: "misplaced-secret-7"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "KAFKA_SASL_PASSWORD_FILE") {
		t.Fatalf("Validate() = %v, want an error naming KAFKA_SASL_PASSWORD_FILE", err)
	}
	if strings.Contains(err.Error(), "misplaced-secret-7") {
		t.Errorf("the error shows the value of KAFKA_SASL_PASSWORD_FILE, which may be the password: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.SASLPasswordFile = empty
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty password file: Validate() = %v, want it to say the file is empty", err)
	}
}

// TestKeyContentInAFileSettingIsNotShown: an operator who maps the Secret of
// the client key (or certificate, or CA) to KAFKA_TLS_*_FILE as a value
// instead of mounting it as a file gets an error that says the setting
// holds a file's content, and shows neither that content nor any of these
// settings' values (a path may be the key too); nor does the start-up log.
func TestKeyContentInAFileSettingIsNotShown(t *testing.T) {
	f := writeFiles(t)
	key := string(keyPEM)
	body := strings.Split(key, "\n")[1] // a line of the key's base64 body
	misplaced := "misplaced-key-line-9"
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"key content as KAFKA_TLS_KEY_FILE", Config{CertFile: f.cert, KeyFile: key}, "KAFKA_TLS_KEY_FILE looks like the content of a file"},
		{"key content as KAFKA_TLS_CERT_FILE", Config{CertFile: key, KeyFile: f.key}, "KAFKA_TLS_CERT_FILE looks like the content of a file"},
		{"key content as KAFKA_TLS_CA_FILE", Config{CAFile: key}, "KAFKA_TLS_CA_FILE looks like the content of a file"},
		{"two lines as KAFKA_TLS_KEY_FILE", Config{CertFile: f.cert, KeyFile: misplaced + "\r\n" + misplaced}, "KAFKA_TLS_KEY_FILE looks like the content of a file"},
		{"one line as KAFKA_TLS_KEY_FILE", Config{CertFile: f.cert, KeyFile: misplaced}, "KAFKA_TLS_KEY_FILE cannot be read"},
		{"one line as KAFKA_TLS_CERT_FILE", Config{CertFile: misplaced, KeyFile: f.key}, "KAFKA_TLS_CERT_FILE cannot be read"},
		{"one line as KAFKA_TLS_CA_FILE", Config{CAFile: misplaced}, "KAFKA_TLS_CA_FILE cannot be read"},
	} {
		err := tc.c.Validate()
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s: the error does not say %q:\n%s", tc.name, tc.want, msg)
		}
		for _, s := range []string{body, "PRIVATE KEY", misplaced} {
			if strings.Contains(msg, s) {
				t.Errorf("%s: the error shows the setting's value (%q):\n%s", tc.name, s, msg)
			}
		}
		var b strings.Builder
		slog.New(slog.NewJSONHandler(&b, nil)).Info("config", slog.Any("kafka", slog.GroupValue(tc.c.LogAttrs()...)))
		if out := b.String(); strings.Contains(out, body) || strings.Contains(out, "PRIVATE KEY") {
			t.Errorf("%s: the start-up log shows the key: %s", tc.name, out)
		}
	}
}

// TestPasswordFileByteOrderMarkIsNotPartOfIt: a password file written by an
// editor that puts a UTF-8 byte order mark first gives the password
// without it (the brokers would refuse it otherwise, with nothing visible
// to explain why).
func TestPasswordFileByteOrderMarkIsNotPartOfIt(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("\ufeffbom-secret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{TLS: true, SASLMechanism: "PLAIN", SASLUsername: "app", SASLPasswordFile: pw}
	m, ok := c.Dialer("id").SASLMechanism.(plain.Mechanism)
	if !ok || m.Password != "bom-secret" {
		t.Errorf("password %q, want bom-secret (the byte order mark and CRLF left out)", m.Password)
	}
}
