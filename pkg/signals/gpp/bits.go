package gpp

import "strconv"

// sextet returns the value of a base64url character ('A'-'Z', 'a'-'z',
// '0'-'9', '-', '_'), or -1 for any other byte. The standard alphabet's '+'
// and '/' and the '=' padding are not accepted: GPP strings are URL-safe
// and unpadded (the spec's "modified" base64; IABTechLab/iabgpp-es rejects
// them too).
func sextet(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// reader reads fixed-width and Fibonacci integers from the bits of one
// base64url segment, most significant bit first.
type reader struct {
	label string // section label for errors
	vals  []byte // one 6-bit value per character
	pos   int    // bits consumed
}

func newReader(label, text string) (*reader, error) {
	if text == "" {
		return nil, errf(label, -1, "empty segment")
	}
	vals := make([]byte, len(text))
	for i := 0; i < len(text); i++ {
		v := sextet(text[i])
		if v < 0 {
			return nil, errf(label, -1, "character %d is not base64url", i+1)
		}
		vals[i] = byte(v)
	}
	return &reader{label: label, vals: vals}, nil
}

func (r *reader) bits() int { return 6 * len(r.vals) }

func (r *reader) bit(i int) int {
	return int(r.vals[i/6]>>(5-i%6)) & 1
}

// int reads an n-bit unsigned integer (n <= 30).
func (r *reader) int(n int, what string) (int, error) {
	if r.pos+n > r.bits() {
		return 0, errf(r.label, r.pos, "truncated: %s needs %d bits, %d left", what, n, r.bits()-r.pos)
	}
	v := 0
	for i := 0; i < n; i++ {
		v = v<<1 | r.bit(r.pos+i)
	}
	r.pos += n
	return v, nil
}

// peek returns the next n bits as an integer without consuming them.
func (r *reader) peek(n int) (int, error) {
	p := r.pos
	v, err := r.int(n, "peek")
	r.pos = p
	return v, err
}

// maxFibonacciBits bounds a Fibonacci code word (value bits + the final
// '1'): 31 bits encode values up to F(32)-1 = 2,178,308, far above any GPP
// section id or offset, and keep the sum within int on every platform.
const maxFibonacciBits = 31

// fibonacci reads one Fibonacci-coded positive integer: bits with the
// weights 1, 2, 3, 5, 8, ... ended by two consecutive 1 bits.
func (r *reader) fibonacci(what string) (int, error) {
	start := r.pos
	v, a, b := 0, 1, 2 // a: weight of the current bit, b: the next weight
	prev := 0
	for i := 0; ; i++ {
		if r.pos >= r.bits() {
			return 0, errf(r.label, start, "truncated: %s: Fibonacci code without its terminating 11", what)
		}
		if i >= maxFibonacciBits {
			return 0, errf(r.label, start, "%s: Fibonacci code longer than %d bits", what, maxFibonacciBits)
		}
		bt := r.bit(r.pos)
		r.pos++
		if bt == 1 && prev == 1 {
			return v, nil
		}
		if bt == 1 {
			v += a
		}
		prev = bt
		a, b = b, a+b
	}
}

// fibonacciRange reads a Range(Fibonacci): Int(12) count, then per item a
// Boolean (0 single id, 1 group), the Fibonacci offset from the last id seen
// (0 before the first) and, for a group, the Fibonacci length to its last
// id. Offsets are at least 1, so the ids are strictly increasing, as the
// spec requires. At most maxIDs ids are expanded; more is an error.
func (r *reader) fibonacciRange(what string, maxIDs int) ([]int, error) {
	start := r.pos
	n, err := r.int(12, what+" count")
	if err != nil {
		return nil, err
	}
	var ids []int
	last := 0
	for i := 0; i < n; i++ {
		item := "item " + strconv.Itoa(i+1)
		group, err := r.int(1, what+" "+item+" type")
		if err != nil {
			return nil, err
		}
		off, err := r.fibonacci(what + " " + item + " offset")
		if err != nil {
			return nil, err
		}
		first := last + off
		end := first
		if group == 1 {
			length, err := r.fibonacci(what + " " + item + " length")
			if err != nil {
				return nil, err
			}
			end = first + length
		}
		if len(ids)+(end-first+1) > maxIDs {
			return nil, errf(r.label, start, "header lists more section ids than the %d sections of the string", maxIDs)
		}
		for id := first; id <= end; id++ {
			ids = append(ids, id)
		}
		last = end
	}
	return ids, nil
}

// fields reads the layout's fields into sec: mappable ones into
// sec.Fields, the others into sec.Notices. A value outside the range the
// spec defines for the field (3 for a 2-bit field, 0 for
// MspaCoveredTransaction) is an error.
func (r *reader) fields(fs []field, sec *Section) error {
	for _, f := range fs {
		names := f.names()
		for _, name := range names {
			at := r.pos
			v, err := r.int(f.bits, name)
			if err != nil {
				return err
			}
			if v < f.min || v > f.max {
				return errf(r.label, at, "invalid value %d for %s", v, name)
			}
			if f.kind != 0 {
				sec.Fields[name] = v
			} else {
				sec.Notices[name] = v
			}
		}
	}
	return nil
}

// end checks what follows the last field: only zero padding bits, to the
// next multiple of 6 bits (the spec's padding) or to the next multiple of 8
// then of 6 bits (what IABTechLab/iabgpp-es writes). Any further character
// or any non-zero padding bit is an error.
func (r *reader) end() error {
	l := r.pos
	short := (l + 5) / 6
	long := ((l+7)/8*8 + 5) / 6
	if len(r.vals) != short && len(r.vals) != long {
		return errf(r.label, l, "trailing data: %d characters after the last field, at most %d of padding", len(r.vals)-short, long-short)
	}
	for i := l; i < r.bits(); i++ {
		if r.bit(i) != 0 {
			return errf(r.label, i, "non-zero padding bit")
		}
	}
	return nil
}
