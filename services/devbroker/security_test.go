package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadUsers(t *testing.T) {
	write := func(content string) string {
		p := filepath.Join(t.TempDir(), "users")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	u, err := readUsers(write("# users\n\nSCRAM-SHA-512 app pw1\nplain app pw2\nSCRAM-SHA-256 admin pw3 superuser\nacl app allow read topic consent. prefixed\nacl app deny write group g\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(u.list) != 3 || u.list[1].mechanism != "PLAIN" || !u.list[2].superuser || len(u.acls["app"]) != 2 {
		t.Fatalf("users %+v, acls %+v", u.list, u.acls)
	}
	if a := u.acls["app"][0]; !a.Allow || a.Name != "consent." {
		t.Errorf("first acl %+v", a)
	}
	for _, tc := range []struct{ content, want string }{
		{"GSSAPI app hunter2\n", "mechanism is not"},
		{"SCRAM-SHA-512 app\n", "want MECHANISM USER PASSWORD"},
		{"SCRAM-SHA-512 app hunter2 admin\n", "want MECHANISM USER PASSWORD"},
		{"# nobody\n", "lists no user"},
		{"PLAIN app hunter2\nacl bob allow read topic t\n", "has no MECHANISM USER PASSWORD line"},
		{"PLAIN app hunter2\nacl app maybe read topic t\n", "not allow or deny"},
		{"PLAIN app hunter2\nacl app allow fly topic t\n", "acl operation"},
		{"PLAIN app hunter2\nacl app allow read user t\n", "acl resource type"},
	} {
		_, err := readUsers(write(tc.content))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.content, err, tc.want)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error shows the password: %v", tc.content, err)
		}
	}
}

func TestSecurityConfig(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DEVBROKER_TLS_CERT_FILE": "c.pem"}, "needs both"},
		{map[string]string{"DEVBROKER_TLS_CLIENT_CA_FILE": "ca.pem"}, "needs TLS"},
		{map[string]string{"DEVBROKER_ACLS": "true"}, "needs SASL users"},
	} {
		_, err := loadConfig(nil, func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
	if _, err := loadConfig(nil, func(string) string { return "" }); err != nil {
		t.Errorf("the plain default: %v", err)
	}
}
