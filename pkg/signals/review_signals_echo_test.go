package signals

import (
	"strings"
	"testing"
)

// TestReviewSignalsErrorDoesNotEchoType shows that *Error.Error() repeats
// the signal's type exactly as sent, whatever it is: a caller that mixes up
// the members ({"type": "<the TC string>"}) or puts a customer's e-mail in
// the wrong place gets that text into every error message and log line
// built from the error, unbounded (up to the body limit). The package
// promises "The reason never repeats the signal's text"; the type is
// caller text as much as the value is. Only a known type should be named.
func TestReviewSignalsErrorDoesNotEchoType(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{
		"CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA",
		"jane.doe@example.com",
		strings.Repeat("x", 10000),
	} {
		_, err := Decode(Submission{Signals: []Signal{{Type: typ, Value: "1"}}})
		if err == nil {
			t.Fatalf("type %.20q accepted", typ)
		}
		if msg := err.Error(); strings.Contains(msg, typ) {
			t.Errorf("error repeats the type as sent (%d bytes): %.80q", len(msg), msg)
		}
	}
}
