package ledger

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStoreTextIsOneToOneAndStorable(t *testing.T) {
	for _, s := range []string{"", "subject-1", "jane@example.com", "ev\x00-1", "ev-\xff\xfe", "\u2400", "\u2400\"x\"", "\u2400plain",
		"é", "\x00", "a\\x00", `"quoted"`, "\xe2\x90"} {
		got := storeText(s)
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Errorf("storeText(%q) = %q: not storable in PostgreSQL TEXT", s, got)
		}
		if back := loadText(got); back != s {
			t.Errorf("loadText(storeText(%q)) = %q", s, back)
		}
	}
}

func FuzzStoreText(f *testing.F) {
	for _, s := range []string{"a", "\x00", "\xff", "\u2400\"\\x00\"", strings.Repeat("x", 1300), strings.Repeat("\x00", 300)} {
		f.Add(s, "b")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		sa, sb := storeText(a), storeText(b)
		if !utf8.ValidString(sa) || strings.ContainsRune(sa, 0) {
			t.Fatalf("storeText(%q) = %q: not storable", a, sa)
		}
		if len(sa) > maxStoredText+len(textMark) {
			t.Fatalf("storeText(%q) is %d bytes, over the bound", a, len(sa))
		}
		if _, bounded := boundedText(sa); !bounded && loadText(sa) != a {
			t.Fatalf("loadText(storeText(%q)) = %q", a, loadText(sa))
		}
		// Bounded exactly when the plain or quoted form is too long.
		plain := a
		if !utf8.ValidString(a) || strings.ContainsRune(a, 0) || strings.HasPrefix(a, textMark) {
			plain = textMark + strconv.Quote(a)
		}
		if _, bounded := boundedText(sa); bounded != (len(plain) > maxStoredText) {
			t.Fatalf("storeText of %d bytes bounded %v, its plain form has %d", len(a), bounded, len(plain))
		}
		if (a == b) != (sa == sb) {
			t.Fatalf("storeText(%q) = %q and storeText(%q) = %q: not one-to-one", a, sa, b, sb)
		}
	})
}
