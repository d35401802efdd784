package shred

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newKEKLine(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// noSecret fails when err's text holds any of the secrets (or their
// decoded bytes in hex).
func noSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		msg := err.Error() + fmt.Sprintf(" %v %+v", err, err)
		if strings.Contains(msg, s) {
			t.Fatalf("error %q quotes a secret", msg)
		}
		if raw, e := base64.StdEncoding.DecodeString(s); e == nil && len(raw) > 4 {
			if strings.Contains(msg, hex.EncodeToString(raw)) || strings.Contains(msg, string(raw)) {
				t.Fatalf("error %q quotes a secret's bytes", msg)
			}
		}
	}
}

func TestParseLocalKEKRefuses(t *testing.T) {
	t.Parallel()
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 31))
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 33))
	good := newKEKLine(t)
	for _, tc := range []struct {
		name, text, want, secret string
	}{
		{"empty", "", "holds no key", ""},
		{"only comments", "# a comment\n\n   \n", "holds no key", ""},
		{"bad base64", "# kek\n" + good[:20] + "!" + good[21:], "line 2 is not standard base64", good[:20]},
		{"url base64", strings.NewReplacer("+", "-", "/", "_").Replace(good) + "\n" + "@@notbase64", "not standard base64", good[:20]},
		{"short", short, "line 1 decodes to 31 bytes, want 32", short},
		{"long", good + "\n" + long, "line 2 decodes to 33 bytes, want 32", long},
		{"duplicate", good + "\n" + good, "line 2 is the same key as line 1", good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLocalKEK([]byte(tc.text))
			if tc.name == "url base64" && !strings.ContainsAny(good, "+/") {
				tc.want = "line 2 is not standard base64"
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			noSecret(t, err, tc.secret, good)
		})
	}
}

func TestLocalKEKSeveralKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	oldLine, newLine := newKEKLine(t), newKEKLine(t)
	old, err := ParseLocalKEK([]byte(oldLine + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	both, err := ParseLocalKEK([]byte("\ufeff# rotated\n" + newLine + "\r\n\n# previous\n" + oldLine + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ids := both.IDs(); len(ids) != 2 || ids[1] != old.IDs()[0] {
		t.Fatalf("ids %v", ids)
	}
	rawNew, _ := base64.StdEncoding.DecodeString(newLine)
	sum := sha256.Sum256(append([]byte("consentgate kek id\x00"), rawNew...))
	if want := "local:" + hex.EncodeToString(sum[:])[:16]; both.IDs()[0] != want {
		t.Fatalf("kek id %s, want %s", both.IDs()[0], want)
	}
	dek := bytes.Repeat([]byte{0x5a}, 32)
	ad := dekAD(fixedID(), 1, "subject-1")

	oldID, oldWrapped, err := old.Wrap(ctx, dek, ad)
	if err != nil {
		t.Fatal(err)
	}
	newID, newWrapped, err := both.Wrap(ctx, dek, ad)
	if err != nil {
		t.Fatal(err)
	}
	if newID != both.IDs()[0] || oldID != old.IDs()[0] {
		t.Fatalf("wrapped with %s / %s: the first key must wrap", newID, oldID)
	}
	if len(newWrapped) != 12+32+16 || bytes.Contains(newWrapped, dek) {
		t.Fatalf("wrapped key has %d bytes", len(newWrapped))
	}
	for _, w := range []struct {
		id      string
		wrapped []byte
	}{{oldID, oldWrapped}, {newID, newWrapped}} {
		got, err := both.Unwrap(ctx, w.id, w.wrapped, ad)
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("unwrap %s: %v", w.id, err)
		}
	}
	// The old set does not know the new key: the error names both ids.
	_, err = old.Unwrap(ctx, newID, newWrapped, ad)
	if !errors.Is(err, ErrUnknownKEK) || !strings.Contains(err.Error(), newID) || !strings.Contains(err.Error(), oldID) {
		t.Fatalf("unknown kek: %v", err)
	}
	noSecret(t, err, oldLine, newLine)
	_, err = old.Unwrap(ctx, "local:\x00\xffjunk", newWrapped, ad)
	if !errors.Is(err, ErrUnknownKEK) || strings.Contains(err.Error(), "junk") {
		t.Fatalf("malformed kek id: %v", err)
	}
	// Another key id, version or subject in the ad: refused.
	for _, bad := range [][]byte{
		dekAD(fixedID(), 2, "subject-1"),
		dekAD([16]byte{1}, 1, "subject-1"),
		dekAD(fixedID(), 1, "subject-2"),
		dekAD(fixedID(), 1, "subject-1x"),
		nil,
	} {
		_, err := both.Unwrap(ctx, newID, newWrapped, bad)
		if !errors.Is(err, ErrUnwrap) {
			t.Fatalf("ad mismatch: %v, want ErrUnwrap", err)
		}
		noSecret(t, err, oldLine, newLine)
	}
	// Damaged or short wrapped keys.
	for i := range newWrapped {
		m := bytes.Clone(newWrapped)
		m[i] ^= 1
		if _, err := both.Unwrap(ctx, newID, m, ad); !errors.Is(err, ErrUnwrap) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	if _, err := both.Unwrap(ctx, newID, newWrapped[:20], ad); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("short: %v", err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(f, both)
		if !strings.Contains(out, newID) || strings.Contains(out, newLine) {
			t.Fatalf("%s prints %q", f, out)
		}
		raw, _ := base64.StdEncoding.DecodeString(newLine)
		if strings.Contains(out, hex.EncodeToString(raw)) {
			t.Fatalf("%s prints the key", f)
		}
	}
}

func TestAD(t *testing.T) {
	t.Parallel()
	got := dekAD(fixedID(), 0x01020304, "s1")
	id := fixedID()
	want := append([]byte("consentgate/dek/v1\x00"), id[:]...)
	want = append(want, 1, 2, 3, 4, 's', '1')
	if !bytes.Equal(got, want) {
		t.Fatalf("ad %x, want %x", got, want)
	}
}

func TestLoadLocalKEK(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	line := newKEKLine(t)
	good := filepath.Join(dir, "kek")
	if err := os.WriteFile(good, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadLocalKEK(good)
	if err != nil || len(k.IDs()) != 1 {
		t.Fatalf("load: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	shortLine := base64.StdEncoding.EncodeToString(make([]byte, 16))
	_ = os.WriteFile(bad, []byte(shortLine), 0o600)
	for _, tc := range []struct{ path, want string }{
		{line, "looks like a key, not a path"},
		{line + "\n" + line, "looks like a key, not a path"},
		{filepath.Join(dir, "missing"), "cannot be read"},
		{bad, "line 1 decodes to 16 bytes, want 32"},
		{"", "no path"},
	} {
		_, err := LoadLocalKEK(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("LoadLocalKEK: %v, want %q", err, tc.want)
		}
		noSecret(t, err, line, shortLine)
		if tc.path != "" && strings.Contains(err.Error(), tc.path) {
			t.Fatalf("error %q shows the path", err)
		}
	}

	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, ok, err := LocalKEKFromEnv(env(nil)); ok || err != nil {
		t.Fatalf("no setting: ok %v, %v", ok, err)
	}
	if k, ok, err := LocalKEKFromEnv(env(map[string]string{"CONSENT_KEK_FILE": good})); !ok || err != nil || k == nil {
		t.Fatalf("file: %v", err)
	}
	if k, ok, err := LocalKEKFromEnv(env(map[string]string{"CONSENT_KEK": line})); !ok || err != nil || k == nil {
		t.Fatalf("value: %v", err)
	}
	_, _, err = LocalKEKFromEnv(env(map[string]string{"CONSENT_KEK": line, "CONSENT_KEK_FILE": good}))
	if err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Fatalf("both: %v", err)
	}
	_, _, err = LocalKEKFromEnv(env(map[string]string{"CONSENT_KEK": shortLine}))
	if err == nil || !strings.Contains(err.Error(), "CONSENT_KEK: KEK line 1 decodes to 16 bytes") {
		t.Fatalf("bad value: %v", err)
	}
	noSecret(t, err, shortLine)
}
