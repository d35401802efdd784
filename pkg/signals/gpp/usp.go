package gpp

// USP is a decoded US Privacy (CCPA) string, version 1: four characters,
// the version digit '1' then Notice, OptOutSale and LSPACovered, each 'Y'
// (yes), 'N' (no) or '-' (not applicable). OptOutSale 'Y' means the consumer
// opted out of the sale of personal information.
type USP struct {
	Version                         int
	Notice, OptOutSale, LSPACovered byte
}

// ParseUSP decodes a US Privacy string such as "1YNN". Anything but exactly
// four characters, version '1' and 'Y', 'N' or '-' in each other place is an
// error (*ParseError with Section "uspv1", errors.Is(err, ErrMalformed));
// lower-case letters are rejected like any other character, the USP spec
// defines only the upper-case ones. As a GPP section (id 6) its mappable
// field is "sale_opt_out": 'Y' = 1 (opted out), 'N' = 2, '-' = 0.
func ParseUSP(s string) (USP, error) {
	if len(s) > MaxLength {
		return USP{}, errf(uspv1Name, -1, "too long: %d bytes, limit %d", len(s), MaxLength)
	}
	if len(s) != 4 {
		return USP{}, errf(uspv1Name, -1, "length %d, want 4", len(s))
	}
	if s[0] != '1' {
		if s[0] >= '0' && s[0] <= '9' {
			return USP{}, errf(uspv1Name, -1, "unsupported version %c", s[0])
		}
		return USP{}, errf(uspv1Name, -1, "version is not a digit")
	}
	names := [3]string{"notice", "opt-out sale", "lspa covered"}
	for i := 1; i < 4; i++ {
		if c := s[i]; c != 'Y' && c != 'N' && c != '-' {
			return USP{}, errf(uspv1Name, -1, "%s: character %d is not Y, N or -", names[i-1], i+1)
		}
	}
	return USP{Version: 1, Notice: s[1], OptOutSale: s[2], LSPACovered: s[3]}, nil
}

// uspValue maps a USP character to the GPP 2-bit convention of OptOut and
// Consent fields: 'Y' = 1, 'N' = 2, '-' = 0.
func uspValue(c byte) int {
	switch c {
	case 'Y':
		return 1
	case 'N':
		return 2
	}
	return 0
}
