package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
)

// pseudonym returns the lowercase hex HMAC-SHA-256 of s under the redactor's
// key.
func (r *Redactor) pseudonym(s string) string {
	h := r.macs.Get().(*mac)
	h.h.Reset()
	h.h.Write([]byte(s))
	sum := h.h.Sum(h.buf[:0])
	out := hex.EncodeToString(sum)
	r.macs.Put(h)
	return out
}

// mac is a pooled HMAC state with a buffer for its sum.
type mac struct {
	h   hash.Hash
	buf [sha256.Size]byte
}

func newMAC(key []byte) *mac {
	return &mac{h: hmac.New(sha256.New, key)}
}

// mask hides most of s while keeping its shape (see the package
// documentation): an e-mail keeps its first character and its domain, a
// phone number its last two digits, a card number its last four digits, any
// other string its first character. A one-character string (or local part)
// becomes "*", so that a mask never returns its input unchanged.
func mask(s string) string {
	if at := strings.LastIndexByte(s, '@'); at > 0 && at < len(s)-1 {
		return maskRest(s[:at]) + s[at:]
	}
	if digits, ok := digitShape(s, "+ -()."); ok {
		switch {
		case s[0] != '+' && digits >= 13 && digits <= 19 && onlyChars(s, "0123456789 -"):
			return maskDigits(s, digits-4)
		case digits >= 5:
			return maskDigits(s, digits-2)
		}
	}
	return maskRest(s)
}

// digitShape counts the digits of s and reports whether s holds only digits
// and characters of extra (at least one digit).
func digitShape(s, extra string) (int, bool) {
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case strings.IndexByte(extra, c) >= 0:
		default:
			return 0, false
		}
	}
	return digits, digits > 0
}

func onlyChars(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// maskDigits replaces the first n digits of s by '*', keeping every other
// character.
func maskDigits(s string, n int) string {
	b := []byte(s)
	for i := 0; i < len(b) && n > 0; i++ {
		if b[i] >= '0' && b[i] <= '9' {
			b[i] = '*'
			n--
		}
	}
	return string(b)
}

// maskRest keeps the first character of s and replaces every other one by
// '*' (same length in characters); a single character becomes "*".
func maskRest(s string) string {
	n := utf8.RuneCountInString(s)
	if n <= 1 {
		return strings.Repeat("*", n)
	}
	_, size := utf8.DecodeRuneInString(s)
	var b strings.Builder
	b.Grow(size + n - 1)
	b.WriteString(s[:size])
	for range n - 1 {
		b.WriteByte('*')
	}
	return b.String()
}

// truncateIP returns the network address of s's /24 (IPv4, also written as
// an IPv4-mapped IPv6 address) or /48 (IPv6), in the same notation; a zone
// is dropped. ok is false when s is not an IP address.
func truncateIP(s string) (string, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", false
	}
	a = a.WithZone("")
	switch {
	case a.Is4():
		p, _ := a.Prefix(24)
		return p.Addr().String(), true
	case a.Is4In6():
		p, _ := a.Unmap().Prefix(24)
		return netip.AddrFrom16(p.Addr().As16()).String(), true
	default:
		p, _ := a.Prefix(48)
		return p.Addr().String(), true
	}
}

// generalise truncates a timestamp to unit (time.Hour or 24*time.Hour) in
// UTC. v is a time.Time, or a number when logical names its unit
// (timestamp-millis, timestamp-micros). ok is false for anything else.
func generalise(v any, logical string, unit time.Duration) (any, bool) {
	switch x := v.(type) {
	case time.Time:
		u := x.UTC()
		if unit == 24*time.Hour {
			return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC), true
		}
		return u.Truncate(unit), true
	}
	var per int64
	switch logical {
	case "timestamp-millis":
		per = int64(unit / time.Millisecond)
	case "timestamp-micros":
		per = int64(unit / time.Microsecond)
	default:
		return nil, false
	}
	switch x := v.(type) {
	case int64:
		return floorTo(x, per), true
	case int32:
		return int32(floorTo(int64(x), per)), true
	case int:
		return int(floorTo(int64(x), per)), true
	}
	return nil, false
}

// floorTo rounds x down to a multiple of per (also for negative x).
func floorTo(x, per int64) int64 {
	r := x % per
	if r < 0 {
		r += per
	}
	return x - r
}
