package ledger

import (
	"strconv"
	"strings"
	"unicode/utf8"
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
func storeText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) && !strings.HasPrefix(s, textMark) {
		return s
	}
	return textMark + strconv.Quote(s)
}

// loadText is the string storeText stored as t.
func loadText(t string) string {
	if !strings.HasPrefix(t, textMark) {
		return t
	}
	s, err := strconv.Unquote(t[len(textMark):])
	if err != nil {
		return t // not written by storeText: as it is
	}
	return s
}

func storeTexts(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = storeText(v)
	}
	return out
}
