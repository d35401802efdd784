package bearer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReviewTokenFileEdges: what a token file accepts and what a request
// must present. A file without a token (empty, only blank lines, comments
// or a byte order mark) is an error, never "no tokens, so no check"; a
// token is the whole line without surrounding white space (CRLF files, a
// trailing newline or spaces are the same token); a token that is a prefix
// of another, or the other with a suffix, does not match; several tokens
// each match; nothing in an error quotes a token.
func TestReviewTokenFileEdges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const long, short = "0123456789abcdef0123456789abcdef", "0123456789abcdef"
	for name, text := range map[string]string{
		"empty": "", "newlines": "\n\n\r\n", "bom only": "\xef\xbb\xbf", "comments": "# a\n   # b\n",
		"spaces": "   \t  \n",
	} {
		if d, err := ReadFile(write(name, text), "X_FILE"); err == nil || len(d) != 0 {
			t.Errorf("%s: %d tokens, err %v: a file without a token must be refused", name, len(d), err)
		}
	}
	d, err := ReadFile(write("tokens", long+"\r\n  "+short+"  \n\n"), "X_FILE")
	if err != nil || len(d) != 2 {
		t.Fatalf("two tokens: %d, %v", len(d), err)
	}
	for tok, ok := range map[string]bool{
		long: true, short: true, long[:len(long)-1]: false, short + "0": false, long + long: false, short[:15]: false,
		" " + short: false, short + "\n": false, strings.ToUpper(long): false, "": false, "\x00" + short: false,
	} {
		if got := d.Match(tok); got != ok {
			t.Errorf("Match(%q) = %v, want %v", tok, got, ok)
		}
	}
	for header, ok := range map[string]bool{
		"Bearer " + long: true, "BEARER " + short: true, "Bearer " + short + " ": true,
		"Bearer " + short + " " + long: false, "Bearer " + short + "," + long: false, "Bearer\t" + short: false,
		"Token " + short: false, "Bearer": false, short: false, "Bearer " + short + "\x00": false,
	} {
		if got := d.Match(FromHeader(header)); got != ok {
			t.Errorf("header %q: %v, want %v", header, got, ok)
		}
	}
	// One bad line refuses the file, and no message quotes a token.
	_, err = ReadFile(write("mixed", long+"\n"+"qqz\u00a0xw-0123456789abcdef\nvvkq\n"+"caf\xe9-0123456789abcdef\n"), "X_FILE")
	if err == nil {
		t.Fatal("a file with bad lines is accepted")
	}
	for _, part := range []string{long, "qqz", "vvkq", "caf", "0123456789"} {
		if strings.Contains(err.Error(), part) {
			t.Errorf("the error quotes %q: %v", part, err)
		}
	}
	for _, line := range []string{"line 2", "line 3", "line 4"} {
		if !strings.Contains(err.Error(), line) {
			t.Errorf("the error does not name %s: %v", line, err)
		}
	}
}
