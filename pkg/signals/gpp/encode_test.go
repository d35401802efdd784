package gpp

import (
	"fmt"
	"strings"
)

// This file is a test-only encoder: the inverse of Parse, written from the
// spec, used by the property and fuzz tests.

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

type bitWriter struct{ bits []byte }

func (w *bitWriter) int(v, n int) {
	for i := n - 1; i >= 0; i-- {
		w.bits = append(w.bits, byte(v>>i)&1)
	}
}

// fib appends the Fibonacci code of v >= 1.
func (w *bitWriter) fib(v int) {
	if v < 1 {
		panic("fib of a value < 1")
	}
	f := []int{1, 2}
	for f[len(f)-1]+f[len(f)-2] <= v {
		f = append(f, f[len(f)-1]+f[len(f)-2])
	}
	code := make([]byte, len(f))
	for i := len(f) - 1; i >= 0; i-- {
		if f[i] <= v {
			code[i] = 1
			v -= f[i]
		}
	}
	// trim high zero weights
	n := len(code)
	for n > 0 && code[n-1] == 0 {
		n--
	}
	w.bits = append(w.bits, code[:n]...)
	w.bits = append(w.bits, 1)
}

// text pads with zeros (to 6 bits, or when long to 8 then 6 bits as
// iabgpp-es does) and maps each 6 bits to a base64url character.
func (w *bitWriter) text(long bool) string {
	b := append([]byte(nil), w.bits...)
	if long {
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
	}
	for len(b)%6 != 0 {
		b = append(b, 0)
	}
	var sb strings.Builder
	for i := 0; i < len(b); i += 6 {
		v := 0
		for j := 0; j < 6; j++ {
			v = v<<1 | int(b[i+j])
		}
		sb.WriteByte(alphabet[v])
	}
	return sb.String()
}

// encodeHeader writes a GPP header for ascending distinct ids, grouping runs
// of consecutive ids as the spec's Range(Fibonacci) does.
func encodeHeader(ids []int, long bool) string {
	w := &bitWriter{}
	w.int(3, 6)
	w.int(1, 6)
	type group struct{ first, last int }
	var gs []group
	for _, id := range ids {
		if len(gs) > 0 && gs[len(gs)-1].last+1 == id {
			gs[len(gs)-1].last = id
			continue
		}
		gs = append(gs, group{id, id})
	}
	w.int(len(gs), 12)
	last := 0
	for _, g := range gs {
		if g.first == g.last {
			w.int(0, 1)
			w.fib(g.first - last)
		} else {
			w.int(1, 1)
			w.fib(g.first - last)
			w.fib(g.last - g.first)
		}
		last = g.last
	}
	return w.text(long)
}

func writeFields(w *bitWriter, fs []field, sec Section) {
	for _, f := range fs {
		for _, n := range f.names() {
			v, ok := sec.Fields[n]
			if f.kind == 0 {
				v, ok = sec.Notices[n]
			}
			if !ok {
				panic(fmt.Sprintf("encode: %s: no value for %s", sec.Name, n))
			}
			w.int(v, f.bits)
		}
	}
}

// encodeSection writes a section's text from its decoded values.
func encodeSection(sec Section, long bool) string {
	switch sec.ID {
	case idTCFEUv2:
		return sec.TCF
	case idUSPv1:
		c := func(v int) byte { return "-YN"[v] }
		return string([]byte{'1', c(sec.Notices["notice"]), c(sec.Fields["sale_opt_out"]), c(sec.Notices["lspa_covered"])})
	}
	d, ok := byID[sec.ID]
	if !ok {
		return sec.Raw
	}
	l := d.versions[sec.Version]
	w := &bitWriter{}
	if !l.mspa {
		w.int(sec.Version, 6)
	}
	writeFields(w, l.core, sec)
	out := w.text(long)
	if sec.GPC != nil {
		g := &bitWriter{}
		g.int(1, 2)
		v := 0
		if *sec.GPC {
			v = 1
		}
		g.int(v, 1)
		out += "." + g.text(long)
	}
	if l.sensitive != nil {
		if _, ok := sec.Fields["sensitive_data_processing.1"]; ok {
			s := &bitWriter{}
			writeFields(s, l.sensitive, sec)
			out += "." + s.text(long)
		}
	}
	return out
}

// encodeString writes a whole GPP string.
func encodeString(s *String, long bool) string {
	parts := []string{encodeHeader(s.SectionIDs, long)}
	for _, sec := range s.Sections {
		parts = append(parts, encodeSection(sec, long))
	}
	return strings.Join(parts, "~")
}
