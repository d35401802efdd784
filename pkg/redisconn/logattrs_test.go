package redisconn

import (
	"log/slog"
	"strings"
	"testing"
)

// TestLogAttrsShowTheSecuritySettingsButNoSecret: the start-up log says
// whether Redis is reached over TLS, with which CA, server name and user,
// and never shows the URL, the password or the password file's path.
func TestLogAttrsShowTheSecuritySettingsButNoSecret(t *testing.T) {
	c := DefaultConfig()
	c.URL = "rediss://svc:url-secret-1@redis:6380/0"
	c.TLSCAFile = "/run/ca.pem"
	c.TLSCertFile, c.TLSKeyFile = "/run/c.pem", "/run/k.pem"
	c.TLSServerName = "redis.internal"
	c.Username = "consentgate-enforcer"
	c.PasswordFile = "/run/misplaced-secret-2"
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("config", slog.Any("redis", slog.GroupValue(c.LogAttrs()...)))
	out := b.String()
	for _, want := range []string{`"redis_tls":true`, `"redis_tls_ca_file":"/run/ca.pem"`, `"redis_tls_client_cert":true`,
		`"redis_tls_server_name":"redis.internal"`, `"redis_username":"consentgate-enforcer"`, `"redis_password_set":true`, `"redis_url_set":true`} {
		if !strings.Contains(out, want) {
			t.Errorf("start-up log lacks %s: %s", want, out)
		}
	}
	for _, secret := range []string{"url-secret-1", "misplaced-secret-2", "/run/k.pem"} {
		if strings.Contains(out, secret) {
			t.Errorf("start-up log shows %q: %s", secret, out)
		}
	}
}

// TestLogAttrsHideFileContentInTheCAFileSetting: a CA file setting that
// holds a file's content (a Secret mapped as a value, perhaps the key's) is
// not logged.
func TestLogAttrsHideFileContentInTheCAFileSetting(t *testing.T) {
	c := DefaultConfig()
	c.Addrs = []string{"redis:6380"}
	c.TLSCAFile = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("config", slog.Any("redis", slog.GroupValue(c.LogAttrs()...)))
	out := b.String()
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "MIGHAgEA") {
		t.Errorf("start-up log shows the content of REDIS_TLS_CA_FILE: %s", out)
	}
	if !strings.Contains(out, `"redis_tls_ca_file":"(not a path: not shown)"`) {
		t.Errorf("start-up log does not say REDIS_TLS_CA_FILE is not a path: %s", out)
	}
}
