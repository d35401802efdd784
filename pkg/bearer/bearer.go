// Package bearer reads bearer-token files and checks the tokens requests
// present, for consent-sync's intake and the ledger's console. A token file
// holds one token per line (blank lines and lines starting with # are
// skipped); only the tokens' SHA-256 digests are kept in memory, and no
// error or log line ever quotes a token.
package bearer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
)

// MinTokenLength is the shortest token accepted in a token file.
const MinTokenLength = 16

// Digests are the SHA-256 digests of the accepted tokens.
type Digests [][sha256.Size]byte

// ReadFile reads the token file at path. setting names the variable that
// points at it (e.g. CONSENT_INTAKE_TOKENS_FILE); errors name it and the
// line, never a token.
func ReadFile(path, setting string) (Digests, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	return Parse(b, setting)
}

// Parse reads the content of a token file, as [ReadFile] does: a caller
// that also hashes the content (to notice a change) parses the very bytes
// it hashed. Its errors name setting and the line, never a token.
func Parse(b []byte, setting string) (Digests, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	var (
		out  Digests
		errs []error
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case strings.IndexFunc(line, unicode.IsSpace) >= 0:
			errs = append(errs, fmt.Errorf("%s line %d: a token holds white space (one token per line)", setting, n))
		case strings.IndexFunc(line, func(r rune) bool { return r < '!' || r > '~' }) >= 0:
			errs = append(errs, fmt.Errorf("%s line %d: a token holds a character other than printable ASCII", setting, n))
		case len(line) < MinTokenLength:
			errs = append(errs, fmt.Errorf("%s line %d: token shorter than %d characters (e.g. openssl rand -hex 32)", setting, n, MinTokenLength))
		default:
			out = append(out, sha256.Sum256([]byte(line)))
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", setting, err))
	}
	if len(errs) == 0 && len(out) == 0 {
		errs = append(errs, fmt.Errorf("%s holds no token: add one per line", setting))
	}
	return out, errors.Join(errs...)
}

// FromHeader returns the token of an "Authorization: Bearer <token>"
// header value, or "" when it holds none.
func FromHeader(authorization string) string {
	scheme, presented, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(presented)
}

// Match reports whether token is one of d. The token is hashed and compared,
// in constant time, with every digest (no early exit), so that neither which
// token matched nor how long the tokens are shows in the timing. An empty
// token never matches.
func (d Digests) Match(token string) bool {
	if token == "" {
		return false
	}
	h := sha256.Sum256([]byte(token))
	match := 0
	for i := range d {
		match |= subtle.ConstantTimeCompare(h[:], d[i][:])
	}
	return match == 1
}
