package ledger

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/consentgate/consentgate/pkg/consent"
)

// textMark starts a string the ledger stores quoted (U+2400 SYMBOL FOR
// NULL).
const textMark = "\u2400"

// storeText is how the ledger stores a string of a record in a TEXT column
// (and inside its JSON columns), on both backends: as it is, unless it
// holds a NUL character or bytes that are not UTF-8 (which Avro strings
// may carry, goavro does not check, and PostgreSQL's TEXT cannot hold: one
// such id in a batch would stop the ledger for good), or starts with
// textMark; those are stored as textMark followed by the Go-quoted string
// (strconv.Quote: "ev\x00-1" becomes ␀"ev\x00-1"). The mapping is
// one-to-one, so a lookup by an id (subject, event) stores the id the same
// way and finds exactly its rows; loadText reverses it.
//
// A string whose stored form would be longer than maxStoredText bytes is
// stored bounded instead: textMark, "~" and the Go-quoted
// consent.BoundChangeID of the string (its first bytes, "~sha256:" and the
// SHA-256 of the whole), at most 1,030 bytes. PostgreSQL refuses for good
// an index entry over 2,704 bytes (the subject index holds the subject and
// change ids), and a record refused for good stopped the ledger there. The
// bounded form is one-to-one too (but for SHA-256 collisions), so lookups
// find exactly the rows of their id, and it is what consent-sync applies
// for an over-long restrictive change id; only the string's tail past its
// first bytes is not kept. No string of at most consent.MaxIDBytes bytes
// is bounded (its quoted form is at most 1,029 bytes).
func storeText(s string) string {
	t := s
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || strings.HasPrefix(s, textMark) {
		t = textMark + strconv.Quote(s)
	}
	if len(t) <= maxStoredText {
		return t
	}
	return textMark + "~" + strconv.Quote(consent.BoundChangeID(s))
}

// maxStoredText bounds the stored form of a string: two of them and a time
// fit PostgreSQL's bound of a B-tree index entry (2,704 bytes).
const maxStoredText = 1200

// loadText is the string storeText stored as t; a bounded one (see
// boundedText) is returned as stored.
func loadText(t string) string {
	if !strings.HasPrefix(t, textMark) || strings.HasPrefix(t, textMark+"~") {
		return t
	}
	s, err := strconv.Unquote(t[len(textMark):])
	if err != nil {
		return t // not written by storeText: as it is
	}
	return s
}

// boundedText reports whether t is the bounded form storeText gives a long
// string, and returns consent.BoundChangeID of that string.
func boundedText(t string) (string, bool) {
	rest, ok := strings.CutPrefix(t, textMark+"~")
	if !ok {
		return "", false
	}
	s, err := strconv.Unquote(rest)
	if err != nil {
		return "", false
	}
	return s, true
}

// ruleText is the string the pipeline's rules see for the stored t: the
// original, or the bounded id of a long one (which keeps its first bytes,
// and so its prefix, and is never empty).
func ruleText(t string) string {
	if b, ok := boundedText(t); ok {
		return b
	}
	return loadText(t)
}

func storeTexts(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = storeText(v)
	}
	return out
}
