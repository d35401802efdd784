package gpp

import (
	"errors"
	"strings"
	"testing"
)

// hdr returns the header for the given ids (8-bit padding, as iabgpp-es).
func hdr(ids ...int) string { return encodeHeader(ids, true) }

// bitsText encodes 2-bit values after a 6-bit first value.
func bitsText(first int, twoBit ...int) string {
	w := &bitWriter{}
	w.int(first, 6)
	for _, v := range twoBit {
		w.int(v, 2)
	}
	return w.text(true)
}

func TestParseErrors(t *testing.T) {
	long := hdr(7) + "~" + strings.Repeat("A", MaxLength)
	for _, c := range []struct {
		name    string
		in      string
		section string
		bit     int // -2: do not check
		reason  string
	}{
		{"empty", "", "string", -1, "empty"},
		{"too long", long, "string", -1, "too long"},
		{"header type not 3", "CBAA", "header", 0, "type 2, want 3"},
		{"header version 2", "DCAA", "header", 6, "unsupported version 2"},
		{"header version 0", "DAAA", "header", 6, "unsupported version 0"},
		{"header truncated", "DBA", "header", 12, "truncated"},
		{"header lists a section the string lacks", "DBABLA", "header", 12, "more section ids than the 0 sections"},
		{"header lists fewer sections than the string has", "DBAA~1YNN", "header", -1, "header lists 0 sections, the string has 1"},
		{"header lists 2, string has 3", hdr(2, 6) + "~" + tcfA + "~1YNN~1YNN", "header", -1, "header lists 2 sections, the string has 3"},
		{"reference: missing section", "DBACOeA~" + tcfB + "~" + tcfC, "header", 12, "more section ids than the 2 sections"},
		{"reference: blank section", "DBACOeA~~1YNN", "header", 12, "more section ids than the 2 sections"},
		{"blank section", hdr(2, 6) + "~~1YNN", "tcfeuv2", -1, "empty section"},
		{"header trailing characters", "DBAAAA", "header", 24, "trailing data"},
		{"header non-zero padding", "DBABN~" + tcfA, "header", 29, "non-zero padding bit"},
		{"header standard base64 '+'", "DB+A", "header", -1, "character 3 is not base64url"},
		{"header '=' padding", "DBAA=", "header", -1, "character 5 is not base64url"},
		{"header Fibonacci unterminated", "DBABA", "header", 25, "truncated"},
		{"header Fibonacci too long", "DBABAAAAAAA", "header", 25, "longer than 31 bits"},
		{"tcfeuv2 bad character", hdr(2) + "~CPSG+8A", "tcfeuv2", -1, "segment 1: character 5 is not base64url"},
		{"tcfeuv2 empty segment", hdr(2) + "~CPSG_8A..IAAA", "tcfeuv2", -1, "empty segment 2"},
		{"unsupported section bad character", hdr(5) + "~AB*C", "section 5", -1, "character 3 is not URL-safe"},
		{"usp bad character", hdr(6) + "~1YNX", "uspv1", -1, "lspa covered: character 4 is not Y, N or -"},
		{"usp lower case", hdr(6) + "~1ynn", "uspv1", -1, "notice: character 2 is not Y, N or -"},
		{"usp version 2", hdr(6) + "~2YNN", "uspv1", -1, "unsupported version 2"},
		{"usp too short", hdr(6) + "~1YN", "uspv1", -1, "length 3, want 4"},
		{"usp too long", hdr(6) + "~1YNNN", "uspv1", -1, "length 5, want 4"},
		{"usnat truncated", hdr(7) + "~BAAA", "usnat", 24, "truncated"},
		{"usnat version 3", hdr(7) + "~DAAAAAAAAABA", "usnat", 0, "unsupported version 3"},
		{"usnat version 0", hdr(7) + "~AAAAAAAAAABA", "usnat", 0, "unsupported version 0"},
		{"usnat v1 label on the v2 layout (iabgpp-es BVVVkkkkkpFY)", hdr(7) + "~BVVVkkkkkpFY", "usnat", 60, "trailing data"},
		{"iabgpp-es all-sections string with a usnat v1 label on 72 bits", "DBACOcGA~CPSG_8APSG_8ANwAAAENAAFgAAAAAAAAAAAAAAAAAAAA.IAAA.YAAAAAAAAAAA~BPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAAAA.YAAAAAAAAAA~1---~BAAAAAAAAABA.QA~BAAAAABA.QA~BAAAABA~BAAAAEA.QA~BAAAAAQA~BAAAAAEA.QA~BAAAAABA~BAAAAABA.QA~BAAAAAABAA.QA~BAAAAAQA.QA~BAAAAAABAA.QA~BAAAAAQA.QA~BAAAAAQA.QA~BAAAAABA.QA~BAAAAAAAQA.QA~BAAAAAQA.QA~BAAAAAQA.QA~BQAA.QA~BQAA.AAA~BQAA.AAA~BQAA.AAA", "usnat", 54, "invalid value 0 for mspa_covered_transaction"},
		{"usnat v2 label on the v1 layout (iabgpp-es CVQqAAAACg)", hdr(7) + "~CVQqAAAACg", "usnat", 60, "truncated"},
		{"usnat v2 label, v1 layout, 8-bit padding (iabgpp-es CAAAAAAAAQA)", hdr(7) + "~CAAAAAAAAQA.QA", "usnat", 64, "invalid value 0 for mspa_covered_transaction"},
		{"usnat sale_opt_out 3", hdr(7) + "~" + bitsText(2, 0, 0, 0, 0, 0, 0, 3), "usnat", 18, "invalid value 3 for sale_opt_out"},
		{"usca 3 in a notice (iabgpp-es BbYbGwXY)", hdr(8) + "~BbYbGwXY.YA", "usca", 10, "invalid value 3 for sensitive_data_limit_use_notice"},
		{"usct 3 in a notice (iabgpp-es BbYbG22w)", hdr(12) + "~BbYbG22w", "usct", 10, "invalid value 3 for targeted_advertising_opt_out_notice"},
		{"usut service provider mode 3", hdr(11) + "~" + bitsText(1, 1, 1, 1, 1, 1, 1, 2, 1, 0, 2, 1, 0, 2, 1, 1, 1, 1, 3), "usut", 40, "invalid value 3 for mspa_service_provider_mode"},
		{"gpc subsection type 0", hdr(7) + "~CAAAAAAAAABA.AA", "usnat gpc", 0, "subsection type 0"},
		{"gpc subsection type 2", hdr(7) + "~CAAAAAAAAABA.gA", "usnat gpc", 0, "unknown subsection type 2"},
		{"gpc subsection non-zero padding", hdr(7) + "~CAAAAAAAAABA.R", "usnat gpc", 5, "non-zero padding bit"},
		{"gpc subsection trailing", hdr(7) + "~CAAAAAAAAABA.QAAA", "usnat gpc", 3, "trailing data"},
		{"two subsections", hdr(7) + "~CAAAAAAAAABA.QA.QA", "usnat", -1, "2 subsections"},
		{"empty subsection", hdr(7) + "~CAAAAAAAAABA.", "usnat", -1, "empty segment 2"},
		{"subsection on usva", hdr(9) + "~BVWSSVY.YA", "usva", -1, "has no subsections"},
		{"usin sensitive subsection truncated", hdr(25) + "~BVVV.kk", "usin sensitive data consents", 12, "truncated"},
		{"usin sensitive value 3", hdr(25) + "~BVVV.8AA", "usin sensitive data consents", 0, "invalid value 3 for sensitive_data_processing.1"},
		{"usin spec section-header form", hdr(25) + "~ZBAB", "usin", 0, "section header form"},
		{"usmd covered transaction 0", hdr(24) + "~BAAA.QA", "usmd", 6, "invalid value 0 for mspa_covered_transaction"},
		{"section bad base64", hdr(7) + "~CAAA/AAAAABA", "usnat", -1, "character 5 is not base64url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := Parse(c.in)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", g)
			}
			if g != nil {
				t.Errorf("Parse returned a partial result with the error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is not ErrMalformed", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *ParseError", err)
			}
			if pe.Section != c.section || (c.bit != -2 && pe.Bit != c.bit) || !strings.Contains(pe.Reason, c.reason) {
				t.Errorf("error = %q (section %q bit %d), want section %q bit %d reason containing %q",
					err, pe.Section, pe.Bit, c.section, c.bit, c.reason)
			}
			if len(c.in) > 8 {
				if parts := strings.Split(c.in, "~"); len(parts) > 1 && len(parts[1]) > 6 && strings.Contains(err.Error(), parts[1]) {
					t.Errorf("error %q echoes the input", err)
				}
			}
			if len(err.Error()) > 200 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestParseUSPErrors(t *testing.T) {
	for in, reason := range map[string]string{
		"":        "length 0, want 4",
		"1YN":     "length 3, want 4",
		"1YNNY":   "length 5, want 4",
		"2YNN":    "unsupported version 2",
		"XYNN":    "version is not a digit",
		"1yNN":    "notice: character 2 is not Y, N or -",
		"1YxN":    "opt-out sale: character 3 is not Y, N or -",
		"1YN ":    "lspa covered: character 4 is not Y, N or -",
		"1YN\x00": "lspa covered: character 4 is not Y, N or -",
	} {
		u, err := ParseUSP(in)
		var pe *ParseError
		if err == nil || !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) || pe.Section != "uspv1" || pe.Bit != -1 || pe.Reason != reason {
			t.Errorf("ParseUSP(%q) = %+v, %v; want reason %q", in, u, err, reason)
		}
		if u != (USP{}) {
			t.Errorf("ParseUSP(%q) returned a partial result %+v", in, u)
		}
	}
	if _, err := ParseUSP(strings.Repeat("1", MaxLength+1)); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("long input: %v", err)
	}
}

func TestParseErrorFormat(t *testing.T) {
	e := &ParseError{Section: "usnat", Bit: 24, Reason: "invalid value 3 for sale_opt_out"}
	if got := e.Error(); got != "gpp: usnat: bit 24: invalid value 3 for sale_opt_out" {
		t.Errorf("Error() = %q", got)
	}
	e = &ParseError{Section: "string", Bit: -1, Reason: "empty"}
	if got := e.Error(); got != "gpp: string: empty" {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(e, ErrMalformed) || errors.Is(e, errors.New("other")) {
		t.Error("Is")
	}
}
