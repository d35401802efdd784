package bearer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFileAndMatch(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens")
	if err := os.WriteFile(good, []byte("\xef\xbb\xbf# console tokens\n\n  0123456789abcdef0123  \nsecond-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := ReadFile(good, "LEDGER_CONSOLE_TOKENS_FILE")
	if err != nil || len(d) != 2 {
		t.Fatalf("ReadFile: %d tokens, %v", len(d), err)
	}
	for _, c := range []struct {
		header string
		ok     bool
	}{
		{"Bearer 0123456789abcdef0123", true},
		{"bearer second-token-0123456789", true},
		{"Bearer  0123456789abcdef0123 ", true},
		{"Bearer 0123456789abcdef012", false},
		{"Basic 0123456789abcdef0123", false},
		{"0123456789abcdef0123", false},
		{"Bearer ", false},
		{"", false},
	} {
		if got := d.Match(FromHeader(c.header)); got != c.ok {
			t.Errorf("%q: Match %v, want %v", c.header, got, c.ok)
		}
	}
	if (Digests{}).Match("anything-at-all-0123") {
		t.Error("no digests matched a token")
	}

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("ok-token-0123456789\nshort-secret\nhas space-in-it-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(bad, "LEDGER_CONSOLE_TOKENS_FILE")
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("bad file: %v, want errors naming lines 2 and 3", err)
	}
	if strings.Contains(err.Error(), "short-secret") || strings.Contains(err.Error(), "space-in-it") {
		t.Fatalf("the error quotes a token: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(empty, "X_FILE"); err == nil || !strings.Contains(err.Error(), "X_FILE holds no token") {
		t.Fatalf("empty file: %v", err)
	}
}

// TestParseIsReadFile: Parse of a file's bytes gives what ReadFile of the
// file gives, tokens and errors alike.
func TestParseIsReadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, text := range map[string]string{
		"good": "\xef\xbb\xbf# c\n0123456789abcdef0123\r\nsecond-token-0123456789\n",
		"bad":  "ok-token-0123456789\nshort-secret\n",
		"none": "# nothing\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		fromFile, ferr := ReadFile(p, "X_FILE")
		fromBytes, berr := Parse([]byte(text), "X_FILE")
		if len(fromFile) != len(fromBytes) || (ferr == nil) != (berr == nil) || (ferr != nil && ferr.Error() != berr.Error()) {
			t.Errorf("%s: ReadFile %d tokens, %v; Parse %d tokens, %v", name, len(fromFile), ferr, len(fromBytes), berr)
		}
		for i := range fromFile {
			if fromFile[i] != fromBytes[i] {
				t.Errorf("%s: digest %d differs", name, i)
			}
		}
	}
	if d, err := Parse([]byte("0123456789abcdef0123\n"), "X_FILE"); err != nil || !d.Match("0123456789abcdef0123") {
		t.Errorf("Parse: %d tokens, %v", len(d), err)
	}
}
