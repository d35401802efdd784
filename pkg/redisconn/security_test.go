package redisconn

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// parseEnv fills a Config from env the way a service does (envflag).
func parseEnv(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	c := DefaultConfig()
	s := envflag.New("test", "test")
	c.Flags(s)
	err := s.Parse(args, func(k string) string { return env[k] })
	return c, err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func readString(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSecuritySettingsRefused: every contradictory or unusable TLS or
// password setting stops start-up with a message naming what to set, and
// no message shows the password, the content of a file or the path of the
// password file.
func TestSecuritySettingsRefused(t *testing.T) {
	t.Parallel()
	const secret = "Zq7-secret-Xw9"
	certs := redistest.NewCerts(t)
	pwFile := writeFile(t, "pw", secret+"\n")
	notPEM := writeFile(t, "ca.pem", "not a certificate "+secret)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	// An operator who puts the password itself where its file's path goes.
	misplaced := secret + "-as-path"
	// The files' content where their paths go (a Secret mapped as a value).
	keyPEM, certPEM, caPEM := readString(t, certs.ClientKey), readString(t, certs.ClientCert), readString(t, certs.CAFile)
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"cert without key", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": certs.ClientCert}, []string{"REDIS_TLS_CERT_FILE is set without REDIS_TLS_KEY_FILE"}},
		{"key without cert", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_KEY_FILE": certs.ClientKey}, []string{"REDIS_TLS_KEY_FILE is set without REDIS_TLS_CERT_FILE"}},
		{"unreadable CA file", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CA_FILE": missing}, []string{"REDIS_TLS_CA_FILE", "cannot be read"}},
		{"CA file without a certificate", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CA_FILE": notPEM}, []string{"REDIS_TLS_CA_FILE", "holds no PEM certificate"}},
		{"unreadable client certificate", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": missing, "REDIS_TLS_KEY_FILE": certs.ClientKey}, []string{"REDIS_TLS_CERT_FILE cannot be read", "no such file"}},
		{"unreadable client key", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": certs.ClientCert, "REDIS_TLS_KEY_FILE": missing}, []string{"REDIS_TLS_KEY_FILE cannot be read", "no such file"}},
		{"key content as REDIS_TLS_KEY_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": certs.ClientCert, "REDIS_TLS_KEY_FILE": keyPEM}, []string{"REDIS_TLS_KEY_FILE looks like the content of a file, not its path", "mount it as a file"}},
		{"certificate content as REDIS_TLS_CERT_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": certPEM, "REDIS_TLS_KEY_FILE": certs.ClientKey}, []string{"REDIS_TLS_CERT_FILE looks like the content of a file"}},
		{"CA content as REDIS_TLS_CA_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CA_FILE": caPEM}, []string{"REDIS_TLS_CA_FILE looks like the content of a file"}},
		{"a secret of two lines as REDIS_TLS_KEY_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": certs.ClientCert, "REDIS_TLS_KEY_FILE": secret + "\r\n" + secret}, []string{"REDIS_TLS_KEY_FILE looks like the content of a file"}},
		{"a path that is a secret, as REDIS_TLS_CA_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CA_FILE": misplaced}, []string{"REDIS_TLS_CA_FILE cannot be read"}},
		{"a path that is a secret, as REDIS_TLS_KEY_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": certs.ClientCert, "REDIS_TLS_KEY_FILE": misplaced}, []string{"REDIS_TLS_KEY_FILE cannot be read"}},
		{"key that is not the certificate's", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": certs.ClientCert, "REDIS_TLS_KEY_FILE": certs.ServerKey}, []string{"not a usable client certificate"}},
		{"REDIS_TLS=false with a CA file", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS": "false", "REDIS_TLS_CA_FILE": certs.CAFile}, []string{"REDIS_TLS is false", "set REDIS_TLS=true"}},
		{"REDIS_TLS=false with a client certificate", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS": "0", "REDIS_TLS_CERT_FILE": certs.ClientCert, "REDIS_TLS_KEY_FILE": certs.ClientKey}, []string{"REDIS_TLS is false"}},
		{"REDIS_TLS=false with a server name", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS": "false", "REDIS_TLS_SERVER_NAME": "redis"}, []string{"REDIS_TLS is false"}},
		{"REDIS_TLS=false with rediss://", map[string]string{"REDIS_URL": "rediss://127.0.0.1:1", "REDIS_TLS": "false"}, []string{"REDIS_TLS is false but REDIS_URL is rediss://"}},
		{"redis:// with TLS files", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "REDIS_TLS_CA_FILE": certs.CAFile}, []string{"REDIS_URL is redis://", "rediss://"}},
		{"redis:// with REDIS_TLS=true", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "REDIS_TLS": "true"}, []string{"REDIS_URL is redis://"}},
		{"server name without TLS", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_SERVER_NAME": "redis"}, []string{"REDIS_TLS_SERVER_NAME is set but TLS is off"}},
		{"skip_verify in a rediss URL", map[string]string{"REDIS_URL": "rediss://127.0.0.1:1?skip_verify=true"}, []string{"skip_verify"}},
		{"REDIS_PASSWORD and REDIS_PASSWORD_FILE", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_PASSWORD": secret, "REDIS_PASSWORD_FILE": pwFile}, []string{"both REDIS_PASSWORD and REDIS_PASSWORD_FILE are set"}},
		{"URL password and REDIS_PASSWORD_FILE", map[string]string{"REDIS_URL": "rediss://:" + secret + "@127.0.0.1:1", "REDIS_PASSWORD_FILE": pwFile}, []string{"REDIS_URL holds a password"}},
		{"URL user and REDIS_USERNAME", map[string]string{"REDIS_URL": "rediss://u:" + secret + "@127.0.0.1:1", "REDIS_USERNAME": "u"}, []string{"REDIS_URL holds a user name"}},
		{"unreadable password file (the password itself put there)", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_USERNAME": "u", "REDIS_PASSWORD_FILE": misplaced}, []string{"REDIS_PASSWORD_FILE cannot be read", "not the password itself"}},
		{"empty password file", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_PASSWORD_FILE": writeFile(t, "empty", "\n")}, []string{"REDIS_PASSWORD_FILE is empty"}},
		{"password file of several lines", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_PASSWORD_FILE": writeFile(t, "two", secret+"\nextra-line-content\n")}, []string{"more than one line"}},
		{"user without a password", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_USERNAME": "u"}, []string{"REDIS_USERNAME is set without a password"}},
		{"several problems at once", map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CERT_FILE": certs.ClientCert, "REDIS_PASSWORD": secret, "REDIS_PASSWORD_FILE": pwFile}, []string{"REDIS_TLS_KEY_FILE", "both REDIS_PASSWORD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseEnv(t, tt.env)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			verr := c.Validate()
			if verr == nil {
				t.Fatalf("Validate accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(verr.Error(), w) {
					t.Errorf("Validate error lacks %q:\n%v", w, verr)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			rdb, oerr := Open(ctx, c)
			if oerr == nil {
				rdb.Close()
				t.Fatal("Open accepted it")
			}
			for _, msg := range []string{verr.Error(), oerr.Error()} {
				if part, ok := leaks(msg, secret); ok {
					t.Errorf("error shows %q of the secret:\n%s", part, msg)
				}
				// Not even a path: the value may be the key itself.
				for _, name := range []string{"REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE"} {
					if v := tt.env[name]; v != "" && strings.Contains(msg, v) {
						t.Errorf("error shows the value of %s:\n%s", name, msg)
					}
				}
				for _, content := range []string{"not a certificate", "BEGIN", "extra-line-content"} {
					if strings.Contains(msg, content) {
						t.Errorf("error shows a file's content (%q):\n%s", content, msg)
					}
				}
			}
		})
	}
}

// TestSecuritySettingsAccepted: settings that fit together pass Validate.
func TestSecuritySettingsAccepted(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	pw := writeFile(t, "pw", "pw\n")
	for _, env := range []map[string]string{
		{"REDIS_ADDR": "127.0.0.1:1"},
		{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS": "false"},
		{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS": "true"},
		{"REDIS_ADDR": "127.0.0.1:1,127.0.0.1:2", "REDIS_TLS": "true", "REDIS_TLS_CA_FILE": certs.CAFile, "REDIS_TLS_CERT_FILE": certs.ClientCert, "REDIS_TLS_KEY_FILE": certs.ClientKey, "REDIS_TLS_SERVER_NAME": "localhost", "REDIS_USERNAME": "u", "REDIS_PASSWORD_FILE": pw},
		{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_CA_FILE": certs.CAFile},
		{"REDIS_URL": "rediss://127.0.0.1:1/0", "REDIS_TLS_CA_FILE": certs.CAFile, "REDIS_USERNAME": "u", "REDIS_PASSWORD_FILE": pw},
		{"REDIS_URL": "rediss://127.0.0.1:1/0", "REDIS_TLS": "true"},
		{"REDIS_URL": "redis://:pw@127.0.0.1:1/0", "REDIS_TLS": "false"},
		{"REDIS_ADDR": "127.0.0.1:1", "REDIS_PASSWORD": "pw"},
	} {
		c, err := parseEnv(t, env)
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
}

// TestSecurityFlags: the flags set the same fields as the variables, and
// --help lists every variable.
func TestSecurityFlags(t *testing.T) {
	t.Parallel()
	c, err := parseEnv(t, nil, "--redis-addr=127.0.0.1:1", "--redis-tls=true", "--redis-tls-ca-file=ca", "--redis-tls-cert-file=c",
		"--redis-tls-key-file=k", "--redis-tls-server-name=n", "--redis-username=u", "--redis-password-file=p")
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLSOn() || c.TLSCAFile != "ca" || c.TLSCertFile != "c" || c.TLSKeyFile != "k" || c.TLSServerName != "n" || c.Username != "u" || c.PasswordFile != "p" {
		t.Fatalf("flags not applied: %+v", c)
	}
	var help bytes.Buffer
	s := envflag.New("test", "test")
	c.Flags(s)
	s.PrintUsage(&help)
	for _, n := range []string{"REDIS_TLS ", "REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE", "REDIS_TLS_SERVER_NAME", "REDIS_USERNAME", "REDIS_PASSWORD_FILE"} {
		if !strings.Contains(help.String(), n) {
			t.Errorf("--help lacks %s", n)
		}
	}
}

// TestRedisTLSFlagAlone: --redis-tls alone turns TLS on, like --kafka-tls;
// --redis-tls=false is an explicit false (refused with TLS files), and so
// is REDIS_TLS=false; a bad value is refused without being shown.
func TestRedisTLSFlagAlone(t *testing.T) {
	t.Parallel()
	c, err := parseEnv(t, map[string]string{"REDIS_ADDR": "127.0.0.1:1"}, "--redis-tls")
	if err != nil {
		t.Fatalf("--redis-tls alone: %v", err)
	}
	if !c.TLSOn() || c.Validate() != nil {
		t.Errorf("--redis-tls alone: TLS on %v, Validate %v; want on and valid", c.TLSOn(), c.Validate())
	}
	c, err = parseEnv(t, map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS": "false"}, "--redis-tls")
	if err != nil || !c.TLSOn() {
		t.Errorf("--redis-tls over REDIS_TLS=false: TLS on %v, %v; want on", c.TLSOn(), err)
	}
	for _, args := range [][]string{{"--redis-tls=false"}, nil} {
		env := map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS_SERVER_NAME": "redis"}
		if args == nil {
			env["REDIS_TLS"] = "false"
		}
		c, err = parseEnv(t, env, args...)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "REDIS_TLS is false") {
			t.Errorf("%v %v: Validate %v, want the explicit false refused with REDIS_TLS_SERVER_NAME", args, env, err)
		}
	}
	const secret = "Zq7-secret-Xw9"
	for _, in := range []struct {
		env  map[string]string
		args []string
	}{
		{map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_TLS": secret}, nil},
		{map[string]string{"REDIS_ADDR": "127.0.0.1:1"}, []string{"--redis-tls=" + secret}},
	} {
		c, err := parseEnv(t, in.env, in.args...)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), "REDIS_TLS") && !strings.Contains(err.Error(), "--redis-tls") {
			t.Errorf("a REDIS_TLS that is not a boolean: %v, want it refused naming it", err)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the value of REDIS_TLS: %v", err)
		}
	}
}

// tlsConfig is the production configuration of a client of s (TLS files
// of certs; user with password, in a file, when user is set).
func tlsConfig(t *testing.T, certs *redistest.Certs, addr, user, password string) Config {
	t.Helper()
	c := DefaultConfig()
	c.Addrs, c.TLS = []string{addr}, true
	c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile = certs.CAFile, certs.ClientCert, certs.ClientKey
	if user != "" {
		c.Username, c.PasswordFile = user, writeFile(t, "pw", password+"\n")
	}
	return c
}

func open(t *testing.T, c Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.PingDeadline = 3 * time.Second
	rdb, err := Open(ctx, c)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := rdb.Set(ctx, "redisconn-probe", "1", time.Minute).Err(); err != nil {
		return err
	}
	return nil
}

// TestOpenTLS: a real redis-server on a TLS port that requires client
// certificates and ACL users: REDIS_ADDR, rediss:// URLs and a cluster
// connect with the CA, the client certificate and the user's password
// from a file.
func TestOpenTLS(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	users := []string{"user app on >app-pw ~* +@all"}
	s := redistest.StartWith(t, redistest.Options{TLS: certs, ClientCerts: true, Users: users})

	if err := open(t, tlsConfig(t, certs, s.Addr(), "app", "app-pw")); err != nil {
		t.Errorf("REDIS_ADDR over TLS: %v", err)
	}
	// A rediss:// URL with the CA and client certificate files, and the
	// user and password from the variables.
	c := tlsConfig(t, certs, s.Addr(), "app", "app-pw")
	c.Addrs, c.URL, c.TLS = nil, "rediss://"+s.Addr()+"/0", false
	if err := open(t, c); err != nil {
		t.Errorf("rediss:// URL with the TLS files: %v", err)
	}
	// The same, with the user and password in the URL.
	c = tlsConfig(t, certs, s.Addr(), "", "")
	c.Addrs, c.URL = nil, "rediss://app:app-pw@"+s.Addr()
	if err := open(t, c); err != nil {
		t.Errorf("rediss:// URL with its own credentials: %v", err)
	}
	// The name checked is REDIS_TLS_SERVER_NAME's when set.
	c = tlsConfig(t, certs, s.Addr(), "app", "app-pw")
	c.TLSServerName = "localhost"
	if err := open(t, c); err != nil {
		t.Errorf("REDIS_TLS_SERVER_NAME localhost: %v", err)
	}

	cl := redistest.StartClusterWith(t, 3, redistest.Options{TLS: certs, ClientCerts: true, Users: users})
	c = tlsConfig(t, certs, "", "app", "app-pw")
	c.Addrs = cl.Addrs()
	if err := open(t, c); err != nil {
		t.Errorf("cluster over TLS: %v", err)
	}
}

// TestOpenRefusedSaysWhatToCheck: a refused TLS handshake, password or
// permission fails Open with ErrSecurity and the settings to check, and
// never shows the password.
func TestOpenRefusedSaysWhatToCheck(t *testing.T) {
	t.Parallel()
	const pw = "Kp4-right-pw-Vb8"
	certs := redistest.NewCerts(t)
	other := redistest.NewCerts(t) // a CA the server's certificate is not from
	s := redistest.StartWith(t, redistest.Options{TLS: certs, ClientCerts: true,
		Users: []string{"user app on >" + pw + " ~* +@all", "user noping on >" + pw + " ~* +get +hello +auth"}})
	plainSrv := redistest.Start(t)

	noCert := tlsConfig(t, certs, s.Addr(), "app", pw)
	noCert.TLSCertFile, noCert.TLSKeyFile = "", ""
	wrongCA := tlsConfig(t, certs, s.Addr(), "app", pw)
	wrongCA.TLSCAFile = other.CAFile
	wrongName := tlsConfig(t, certs, s.Addr(), "app", pw)
	wrongName.TLSServerName = "redis.example"
	plainToTLS := DefaultConfig()
	plainToTLS.Addrs, plainToTLS.Username, plainToTLS.Password = []string{s.Addr()}, "app", pw
	tlsToPlain := tlsConfig(t, certs, plainSrv.Addr(), "", "")
	const wrongPW = "Jd2-wrong-pw-Qm5"
	tests := []struct {
		name     string
		c        Config
		security bool
		want     string
	}{
		{"no client certificate", noCert, true, "REDIS_TLS_CERT_FILE"},
		{"another CA", wrongCA, true, "REDIS_TLS_CA_FILE"},
		{"another server name", wrongName, true, "REDIS_TLS_SERVER_NAME"},
		{"TLS to a plain port", tlsToPlain, false, "tls-port"},
		{"plain to the TLS port", plainToTLS, false, "set REDIS_TLS=true"},
		{"wrong password", tlsConfig(t, certs, s.Addr(), "app", wrongPW), true, "REDIS_PASSWORD_FILE"},
		{"unknown user", tlsConfig(t, certs, s.Addr(), "nobody", wrongPW), true, "REDIS_USERNAME"},
		{"no password for a server that needs one", tlsConfig(t, certs, s.Addr(), "", ""), true, "REDIS_PASSWORD_FILE"},
		{"a user without PING", tlsConfig(t, certs, s.Addr(), "noping", pw), true, "Redis in production"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := open(t, tt.c)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if errors.Is(err, ErrSecurity) != tt.security {
				t.Errorf("errors.Is(err, ErrSecurity) = %v, want %v: %v", !tt.security, tt.security, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not say to check %q:\n%v", tt.want, err)
			}
			for _, secret := range []string{pw, wrongPW} {
				if part, ok := leaks(err.Error(), secret); ok {
					t.Errorf("error shows %q of a password:\n%v", part, err)
				}
			}
		})
	}
}
