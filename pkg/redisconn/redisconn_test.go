package redisconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/url"
	"strings"
	"testing"
	"time"
)

// leaks reports what part of secret, if any, msg shows: the secret itself,
// an escaped or decoded form of it, or any substring of it of 6 or more
// characters.
func leaks(msg, secret string) (string, bool) {
	forms := []string{secret, url.PathEscape(secret), url.QueryEscape(secret), (&url.URL{User: url.UserPassword("u", secret)}).User.String()}
	if d, err := url.PathUnescape(secret); err == nil {
		forms = append(forms, d)
	}
	if d, err := url.QueryUnescape(secret); err == nil {
		forms = append(forms, d)
	}
	for _, f := range forms {
		if len(f) >= 4 && strings.Contains(msg, f) {
			return f, true
		}
	}
	const run = 6
	for _, f := range forms {
		for i := 0; i+run <= len(f); i++ {
			if strings.Contains(msg, f[i:i+run]) {
				return f[i : i+run], true
			}
		}
	}
	return "", false
}

// checkNoLeak validates c and, when it is valid and points at a closed
// local port, opens it: no error text may show the secret.
func checkNoLeak(t *testing.T, c Config, secret string) {
	t.Helper()
	err := c.Validate()
	if err != nil {
		if part, ok := leaks(err.Error(), secret); ok {
			t.Errorf("Validate error shows %q of the secret:\n%v", part, err)
		}
		if !strings.Contains(err.Error(), "REDIS_") {
			t.Errorf("Validate error does not say what to set: %v", err)
		}
		return
	}
	if u, perr := url.Parse(c.URL); c.URL != "" && (perr != nil || u.Host != closedAddr) {
		return // would dial elsewhere: Validate alone is checked
	}
	for _, a := range c.Addrs {
		if a != closedAddr {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.Timeout, c.PingDeadline = 100*time.Millisecond, 300*time.Millisecond
	rdb, err := Open(ctx, c)
	if err == nil {
		rdb.Close()
		t.Fatalf("Open succeeded against a closed port")
	}
	if part, ok := leaks(err.Error(), secret); ok {
		t.Errorf("Open error shows %q of the secret:\n%v", part, err)
	}
}

// closedAddr is a local address nothing listens on (port 1, tcpmux).
const closedAddr = "127.0.0.1:1"

// TestConfigErrorsNeverShowTheRedisURLSecret: hand-written malformations of
// REDIS_URL (and REDIS_ADDR, REDIS_PASSWORD) whose secret must not appear
// in any configuration error.
func TestConfigErrorsNeverShowTheRedisURLSecret(t *testing.T) {
	t.Parallel()
	const s = "s3cretpw"
	tests := []struct {
		name string
		c    Config
		// secret is s unless set.
		secret string
		valid  bool
	}{
		{name: "issue example: password without host", c: Config{URL: "redis://:s3cretpw"}},
		{name: "user and password without host", c: Config{URL: "redis://user:s3cretpw"}},
		{name: "numeric password without host", c: Config{URL: "redis://:73519264"}, secret: "73519264"},
		{name: "slash in password", c: Config{URL: "redis://:s3c/retpw@" + closedAddr}, secret: "s3c/retpw"},
		{name: "slash in password, numeric head", c: Config{URL: "redis://u:4711/s3cretpw@" + closedAddr}, secret: "4711/s3cretpw"},
		{name: "question mark in password", c: Config{URL: "redis://:s3c?retpw@" + closedAddr}, secret: "s3c?retpw"},
		{name: "question mark in password, numeric head", c: Config{URL: "redis://u:4711?s3cretpw@" + closedAddr}, secret: "4711?s3cretpw"},
		{name: "hash in password", c: Config{URL: "redis://:s3c#retpw@" + closedAddr}, secret: "s3c#retpw"},
		{name: "hash in password, numeric head", c: Config{URL: "redis://u:4711#s3cretpw@" + closedAddr}, secret: "4711#s3cretpw"},
		{name: "percent in password", c: Config{URL: "redis://:s3c%zzretpw@" + closedAddr}, secret: "s3c%zzretpw"},
		{name: "space in password", c: Config{URL: "redis://:s3c retpw@" + closedAddr}, secret: "s3c retpw"},
		{name: "two at signs (the last one ends the password)", c: Config{URL: "redis://:s3c@retpw@" + closedAddr}, secret: "s3c@retpw", valid: true},
		{name: "password as port", c: Config{URL: "redis://127.0.0.1:s3cretpw@"}},
		{name: "password as database", c: Config{URL: "redis://" + closedAddr + "/s3cretpw"}},
		{name: "password in the query", c: Config{URL: "redis://" + closedAddr + "/0?password=s3cretpw"}},
		{name: "password as a query option name", c: Config{URL: "redis://" + closedAddr + "/0?s3cretpw"}},
		{name: "password as a boolean option", c: Config{URL: "redis://" + closedAddr + "/0?pool_fifo=s3cretpw"}},
		{name: "password as a duration option", c: Config{URL: "redis://" + closedAddr + "/0?dial_timeout=s3cretpw"}},
		{name: "password as a number option", c: Config{URL: "redis://" + closedAddr + "/0?pool_size=s3cretpw"}},
		{name: "password as db option", c: Config{URL: "redis://" + closedAddr + "/?db=s3cretpw"}},
		{name: "password in the fragment", c: Config{URL: "redis://" + closedAddr + "#s3cretpw"}},
		{name: "fragment after a password", c: Config{URL: "redis://:s3cretpw@" + closedAddr + "#x"}},
		{name: "wrong scheme", c: Config{URL: "http://:s3cretpw@" + closedAddr}},
		{name: "password as scheme", c: Config{URL: "s3cretpw://" + closedAddr}},
		{name: "no scheme", c: Config{URL: ":s3cretpw@" + closedAddr}},
		{name: "no slashes", c: Config{URL: "redis::s3cretpw@" + closedAddr}},
		{name: "opaque", c: Config{URL: "redis:s3cretpw"}},
		{name: "leading space", c: Config{URL: " redis://:s3cretpw@" + closedAddr}},
		{name: "control character", c: Config{URL: "redis://:s3cret\x7fpw@" + closedAddr}, secret: "s3cret\x7fpw"},
		{name: "percent-encoded password, bad port", c: Config{URL: "redis://:s3%63retpw@127.0.0.1:99999"}, secret: "s3%63retpw"},
		{name: "IPv6 without brackets (Go reads host ::1, port 6379)", c: Config{URL: "redis://:s3cretpw@::1:6379"}, valid: true},
		{name: "URL in REDIS_ADDR", c: Config{Addrs: []string{"redis://:s3cretpw@127.0.0.1:6379"}}},
		{name: "user:password@host in REDIS_ADDR", c: Config{Addrs: []string{"u:s3cretpw@127.0.0.1:6379"}}},
		{name: "password as port in REDIS_ADDR", c: Config{Addrs: []string{"127.0.0.1:s3cretpw"}}},
		{name: "REDIS_PASSWORD with a bad REDIS_ADDR", c: Config{Addrs: []string{"nohostport"}, Password: s}},
		{name: "REDIS_PASSWORD and REDIS_URL", c: Config{URL: "redis://:" + s + "@" + closedAddr, Addrs: []string{closedAddr}, Password: s}},
		{name: "valid URL with a password", c: Config{URL: "redis://:s3cretpw@" + closedAddr + "/0"}, valid: true},
		{name: "valid URL with an encoded password", c: Config{URL: "redis://u:s3c%2Fret%23pw%40@" + closedAddr + "/1?dial_timeout=1s"}, secret: "s3c/ret#pw@", valid: true},
		{name: "valid REDIS_ADDR with REDIS_PASSWORD", c: Config{Addrs: []string{closedAddr}, Password: s}, valid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			c.URL, c.Addrs, c.Password = tt.c.URL, tt.c.Addrs, tt.c.Password
			secret := tt.secret
			if secret == "" {
				secret = s
			}
			if err := c.Validate(); (err == nil) != tt.valid {
				t.Errorf("Validate() = %v, want valid %v", err, tt.valid)
			}
			checkNoLeak(t, c, secret)
		})
	}
}

// secretChars are what a generated secret is drawn from: letters, digits
// and every character with a meaning in a URL.
const secretChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@:/?#%[]!$&'()*+,;= -._~\"<>\\^`{|}"

// randomSecret returns a secret of 8 to 24 characters with at least one
// letter, drawn so that it is unlikely to match any fixed message text.
func randomSecret(r *rand.Rand) string {
	n := 8 + r.Intn(17)
	b := make([]byte, n)
	for i := range b {
		if r.Intn(3) == 0 {
			b[i] = secretChars[r.Intn(len(secretChars))]
		} else {
			b[i] = secretChars[r.Intn(62)]
		}
	}
	b[r.Intn(n)] = "QXZJKW"[r.Intn(6)]
	return string(b)
}

// randomURL places secret (raw, fully or partly percent-encoded) somewhere
// a secret may be put in or near a Redis URL, and sometimes damages the
// result.
func randomURL(r *rand.Rand, secret string) string {
	enc := secret
	switch r.Intn(4) {
	case 1:
		enc = url.PathEscape(secret)
	case 2:
		enc = url.QueryEscape(secret)
	case 3: // partly encoded
		var b strings.Builder
		for i := 0; i < len(secret); i++ {
			if r.Intn(2) == 0 {
				b.WriteString(url.QueryEscape(secret[i : i+1]))
			} else {
				b.WriteByte(secret[i])
			}
		}
		enc = b.String()
	}
	scheme := []string{"redis://", "rediss://", "redis:", "http://", "", "redis:///", "REDIS://"}[r.Intn(7)]
	host := []string{closedAddr, "127.0.0.1", "", "127.0.0.1:", "[::1]:1", "127.0.0.1:99999", "localhost:1"}[r.Intn(7)]
	path := []string{"", "/", "/0", "/15", "/x", "/0/1"}[r.Intn(6)]
	var u string
	switch r.Intn(9) {
	case 0:
		u = scheme + ":" + enc + "@" + host + path
	case 1:
		u = scheme + "user:" + enc + "@" + host + path
	case 2:
		u = scheme + enc + "@" + host + path
	case 3:
		u = scheme + ":" + enc + path
	case 4:
		u = scheme + host + path + "?password=" + enc
	case 5:
		opt := []string{"db", "pool_fifo", "dial_timeout", "pool_size", "client_name", "protocol", "skip_verify", enc}[r.Intn(8)]
		u = scheme + host + path + "?" + opt + "=" + enc
	case 6:
		u = scheme + host + path + "#" + enc
	case 7:
		u = scheme + ":" + enc + "@" + host + path + "#" + enc
	case 8:
		u = scheme + host + "/" + enc
	}
	for n := r.Intn(3); n > 0 && len(u) > 0; n-- {
		i := r.Intn(len(u))
		switch r.Intn(3) {
		case 0: // insert a URL delimiter
			u = u[:i] + string(":/?#@%["[r.Intn(7)]) + u[i:]
		case 1: // delete a byte
			u = u[:i] + u[i+1:]
		case 2: // duplicate a byte
			u = u[:i] + u[i:i+1] + u[i:]
		}
	}
	return u
}

// TestRandomRedisURLsNeverShowTheirSecret is the property: whatever a
// REDIS_URL looks like, no configuration error (nor, for a valid one, the
// error of connecting to a closed port) shows its secret, an encoded or
// decoded form of it, or a 6-character run of it. Deterministic: the seed
// is fixed; FuzzRedisURL explores further.
func TestRandomRedisURLsNeverShowTheirSecret(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewSource(20260601))
	n := 3000
	if testing.Short() {
		n = 300
	}
	opened := 0
	for i := 0; i < n; i++ {
		secret := randomSecret(r)
		c := DefaultConfig()
		c.URL = randomURL(r, secret)
		if c.Validate() == nil {
			// Dialling is slower: a sample of the valid ones.
			if opened >= 20 {
				continue
			}
			opened++
		}
		checkNoLeak(t, c, secret)
		if t.Failed() {
			t.Fatalf("case %d: REDIS_URL %q, secret %q", i, c.URL, secret)
		}
	}
}

// fixedMessages are the texts of every REDIS_URL problem.
var fixedMessages = strings.Join([]string{errURLParse.Error(), errURLScheme.Error(), errURLHost.Error(), errURLFragment.Error(),
	errURLAt.Error(), errURLPort.Error(), errURLDB.Error(), errURLOption.Error()}, "\n")

// FuzzRedisURL: a secret in any position of any string given as REDIS_URL
// never shows in Validate's error.
func FuzzRedisURL(f *testing.F) {
	for _, u := range []string{"redis://:s3cretpw", "redis://u:s3c/retpw@127.0.0.1:1", "redis://127.0.0.1:1/0?password=s3cretpw", "redis://127.0.0.1:1#s3cretpw"} {
		f.Add(u, "s3cretpw")
	}
	f.Fuzz(func(t *testing.T, raw, secret string) {
		if len(secret) < 8 || !strings.Contains(raw, secret) {
			return
		}
		if _, ok := leaks(fixedMessages, secret); ok {
			return // the secret is a piece of the messages themselves
		}
		c := DefaultConfig()
		c.URL = raw
		if err := c.Validate(); err != nil {
			if part, ok := leaks(err.Error(), secret); ok {
				t.Errorf("Validate error shows %q of the secret:\n%v", part, err)
			}
		}
	})
}

func TestScrubbedCutsSecretsAndKeepsTheChain(t *testing.T) {
	t.Parallel()
	base := errors.New(`dial tcp: address u:s3c%2Fret@h: too many colons; s3c/ret`)
	err := fmt.Errorf("ping redis: %w", scrubbed(base, "", "s3c%2Fret"))
	if strings.Contains(err.Error(), "s3c") {
		t.Errorf("scrubbed error still shows the secret: %v", err)
	}
	if !errors.Is(err, base) {
		t.Error("scrubbed error lost its chain")
	}
	plain := errors.New("connection refused")
	if scrubbed(plain, "pw") != plain {
		t.Error("an error without the secret was rewrapped")
	}
}
