package intake

import (
	"strings"
	"testing"
)

// TestTokensFileEditorQuirks: a tokens file saved by a Windows editor (a
// UTF-8 byte order mark, CRLF line ends) holds the same tokens as a plain
// one. Before, the first token kept the byte order mark: it was counted
// ("tokens": 2 in the log) but never matched anything the client sent.
func TestTokensFileEditorQuirks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"bom":      "\ufeff" + tokenA + "\n" + tokenB + "\n",
		"crlf":     tokenA + "\r\n" + tokenB + "\r\n",
		"bom+crlf": "\ufeff" + tokenA + "\r\n\r\n" + tokenB,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			auth, err := NewAuth(Config{TokensFile: writeFile(t, dir, name, content)})
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range []string{tokenA, tokenB} {
				if !auth.authorized(bearerReq(tok)) {
					t.Errorf("token %s… of the file is refused", tok[:5])
				}
			}
		})
	}
	// A byte order mark anywhere else is not white space, and not a token
	// character either: the line is refused, never silently unusable.
	_, err := NewAuth(Config{TokensFile: writeFile(t, dir, "inner-bom", tokenA+"\n\ufeff"+tokenB+"\n")})
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), tokenB) {
		t.Errorf("token with an inner byte order mark: %v, want line 2 refused", err)
	}
}
