package avrocodec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file implements the Parsing Canonical Form (PCF) of the Avro
// specification ("Transforming into Parsing Canonical Form") and the
// CRC-64-AVRO fingerprint ("Schema Fingerprints") from the specification's
// text, not from goavro: goavro's Codec.Rabin keeps {"type":"long"} where
// the specification's form is "long" for a logical type such as
// timestamp-millis (linkedin/goavro#174), so its fingerprints differ from
// those of Java Avro, fastavro, avsc and hamba/avro for every schema that
// uses a logical type. The rules, as the specification names them:
//
//   - [PRIMITIVES] a primitive schema in object form, whatever its other
//     attributes (logicalType included), becomes its name: "long".
//   - [FULLNAMES] names of records, enums and fixed types are replaced by
//     their full names (the namespace attribute, or the enclosing named
//     type's namespace, applies to a name without a dot), and so are
//     references to them; namespace attributes are then dropped.
//   - [STRIP] only type, name, fields, symbols, items, values and size are
//     kept (doc, aliases, default, order, logicalType, precision, scale and
//     custom properties such as data_category are dropped).
//   - [ORDER] object members in the order name, type, fields, symbols,
//     items, values, size.
//   - [STRINGS] string literals carry UTF-8 rather than \uXXXX escapes.
//   - [INTEGERS] size is a bare integer without quotes or leading zeros.
//   - [WHITESPACE] no whitespace outside string literals.

// CanonicalForm returns the Parsing Canonical Form of the Avro schema text,
// as the Avro specification defines it. The text must be one JSON value
// (surrounding whitespace aside); it is expected to be a valid schema, and
// only the structure the form needs is checked.
func CanonicalForm(text string) (string, error) {
	return canonicalForm(text, false)
}

// Fingerprint64 returns the CRC-64-AVRO fingerprint of data, the 64-bit
// Rabin fingerprint of the Avro specification. Applied to a schema's
// Parsing Canonical Form it gives the fingerprint that the single-object
// encoding writes, little-endian, after the C3 01 marker.
func Fingerprint64(data []byte) uint64 {
	fp := fpEmpty
	for _, b := range data {
		fp = (fp >> 8) ^ fpTable[byte(fp)^b]
	}
	return fp
}

// SchemaFingerprint returns the CRC-64-AVRO fingerprint of the Parsing
// Canonical Form of the schema text.
func SchemaFingerprint(text string) (uint64, error) {
	pcf, err := CanonicalForm(text)
	if err != nil {
		return 0, err
	}
	return Fingerprint64([]byte(pcf)), nil
}

// fpEmpty is the specification's EMPTY: the CRC-64-AVRO polynomial, and the
// fingerprint of no bytes.
const fpEmpty uint64 = 0xc15d213aa4d7a795

var fpTable = func() (t [256]uint64) {
	for i := range t {
		fp := uint64(i)
		for range 8 {
			fp = (fp >> 1) ^ (fpEmpty & -(fp & 1))
		}
		t[i] = fp
	}
	return t
}()

// canonicalForm is CanonicalForm; with logical set it also keeps
// logicalType, precision and scale (in this order, after the members the
// specification keeps), giving a form that tells apart schemas whose
// values goavro represents differently (a long and a timestamp-millis long
// have one Parsing Canonical Form, but not one native Go type).
func canonicalForm(text string, logical bool) (string, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("canonical form: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", errors.New("canonical form: text after the schema")
	}
	p := pcfWriter{logical: logical, defined: map[string]bool{}}
	if err := p.schema(v, ""); err != nil {
		return "", fmt.Errorf("canonical form: %w", err)
	}
	return p.buf.String(), nil
}

// maxPCFDepth bounds the nesting of a schema, so that hostile text (a schema
// from a registry) cannot exhaust the stack.
const maxPCFDepth = 256

type pcfWriter struct {
	buf     bytes.Buffer
	logical bool
	defined map[string]bool // full names of the named types seen so far
	depth   int
}

var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

// schema writes the canonical form of the schema v, in the namespace ns.
func (p *pcfWriter) schema(v any, ns string) error {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxPCFDepth {
		return fmt.Errorf("schema nested deeper than %d", maxPCFDepth)
	}
	switch x := v.(type) {
	case string:
		if primitives[x] {
			p.str(x)
		} else {
			p.str(p.resolve(x, ns))
		}
		return nil
	case []any:
		p.buf.WriteByte('[')
		for i, b := range x {
			if i > 0 {
				p.buf.WriteByte(',')
			}
			if err := p.schema(b, ns); err != nil {
				return err
			}
		}
		p.buf.WriteByte(']')
		return nil
	case map[string]any:
		return p.object(x, ns)
	}
	return fmt.Errorf("a schema is a string, an array or an object, not %s", jsonKind(v))
}

func (p *pcfWriter) object(m map[string]any, ns string) error {
	t, ok := m["type"].(string)
	if !ok {
		if inner, nested := m["type"]; nested && inner != nil {
			// {"type": {...}} or {"type": [...]}: the object only wraps a
			// schema, and every attribute besides type is stripped.
			return p.schema(inner, ns)
		}
		return errors.New(`a schema object needs a "type"`)
	}
	switch t {
	case "record", "error", "enum", "fixed":
		return p.named(t, m, ns)
	case "array":
		p.buf.WriteString(`{"type":"array","items":`)
		if err := p.member(m, "items", ns); err != nil {
			return err
		}
		p.logicalAttrs(m)
		p.buf.WriteByte('}')
		return nil
	case "map":
		p.buf.WriteString(`{"type":"map","values":`)
		if err := p.member(m, "values", ns); err != nil {
			return err
		}
		p.logicalAttrs(m)
		p.buf.WriteByte('}')
		return nil
	}
	if primitives[t] {
		if p.logical {
			if _, ok := m["logicalType"].(string); ok {
				p.buf.WriteString(`{"type":`)
				p.str(t)
				p.logicalAttrs(m)
				p.buf.WriteByte('}')
				return nil
			}
		}
		p.str(t)
		return nil
	}
	// {"type": "Name"}: a reference to a named type.
	p.str(p.resolve(t, ns))
	return nil
}

func (p *pcfWriter) member(m map[string]any, key, ns string) error {
	v, ok := m[key]
	if !ok {
		return fmt.Errorf("%s schema has no %q", m["type"], key)
	}
	return p.schema(v, ns)
}

// named writes a record, error, enum or fixed definition.
func (p *pcfWriter) named(t string, m map[string]any, ns string) error {
	name, ok := m["name"].(string)
	if !ok || name == "" {
		return fmt.Errorf("%s schema has no name", t)
	}
	if space, ok := m["namespace"]; ok && space != nil {
		s, ok := space.(string)
		if !ok {
			return fmt.Errorf("%s %s: namespace is %s, not a string", t, name, jsonKind(space))
		}
		ns = s
	}
	full := fullNameOf(name, "", ns)
	p.defined[full] = true
	inner := namespaceOf(full) // the namespace of the definition's own nested types
	p.buf.WriteString(`{"name":`)
	p.str(full)
	p.buf.WriteString(`,"type":`)
	if t == "error" {
		// An error (in a protocol) is a record, and Java Avro, against
		// which the shared test vectors are checked, writes it as one.
		p.str("record")
	} else {
		p.str(t)
	}
	switch t {
	case "record", "error":
		fields, ok := m["fields"].([]any)
		if !ok {
			return fmt.Errorf("%s %s has no fields array", t, full)
		}
		p.buf.WriteString(`,"fields":[`)
		for i, f := range fields {
			fm, ok := f.(map[string]any)
			if !ok {
				return fmt.Errorf("%s %s: field %d is not an object", t, full, i)
			}
			fname, ok := fm["name"].(string)
			if !ok {
				return fmt.Errorf("%s %s: field %d has no name", t, full, i)
			}
			if i > 0 {
				p.buf.WriteByte(',')
			}
			p.buf.WriteString(`{"name":`)
			p.str(fname)
			p.buf.WriteString(`,"type":`)
			ft, ok := fm["type"]
			if !ok {
				return fmt.Errorf("%s %s: field %s has no type", t, full, fname)
			}
			if err := p.schema(ft, inner); err != nil {
				return err
			}
			p.buf.WriteByte('}')
		}
		p.buf.WriteByte(']')
	case "enum":
		symbols, ok := m["symbols"].([]any)
		if !ok {
			return fmt.Errorf("enum %s has no symbols array", full)
		}
		p.buf.WriteString(`,"symbols":[`)
		for i, s := range symbols {
			sym, ok := s.(string)
			if !ok {
				return fmt.Errorf("enum %s: symbol %d is not a string", full, i)
			}
			if i > 0 {
				p.buf.WriteByte(',')
			}
			p.str(sym)
		}
		p.buf.WriteByte(']')
	case "fixed":
		size, err := sizeOf(m["size"])
		if err != nil {
			return fmt.Errorf("fixed %s: %w", full, err)
		}
		p.buf.WriteString(`,"size":`)
		p.buf.WriteString(strconv.FormatUint(size, 10))
		p.logicalAttrs(m)
	}
	p.buf.WriteByte('}')
	return nil
}

// logicalAttrs appends logicalType, precision and scale when the writer
// keeps logical types (never for the specification's form).
func (p *pcfWriter) logicalAttrs(m map[string]any) {
	if !p.logical {
		return
	}
	lt, ok := m["logicalType"].(string)
	if !ok {
		return
	}
	p.buf.WriteString(`,"logicalType":`)
	p.str(lt)
	for _, k := range []string{"precision", "scale"} {
		if n, ok := m[k].(json.Number); ok {
			p.buf.WriteString(`,"` + k + `":`)
			p.buf.WriteString(n.String())
		}
	}
}

// resolve returns the full name a type reference names in namespace ns. A
// name with a dot is already full. A short name is looked up in ns and then
// in the null namespace, among the types defined so far, as Java Avro does;
// an unknown short name is qualified with ns.
func (p *pcfWriter) resolve(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	if q := ns + "." + name; p.defined[q] || !p.defined[name] {
		return q
	}
	return name
}

// sizeOf reads a fixed size: a JSON integer, or ([INTEGERS]) an integer in
// quotes, with or without leading zeros.
func sizeOf(v any) (uint64, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return 0, fmt.Errorf("size is %s, not an integer", jsonKind(v))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is not a non-negative integer", s)
	}
	return n, nil
}

// str appends s as a JSON string literal: UTF-8 as is ([STRINGS]), with
// only the quote, the backslash and control characters escaped, as JSON
// requires. Invalid UTF-8 cannot occur (encoding/json replaced it).
func (p *pcfWriter) str(s string) {
	p.buf.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			_, n := utf8.DecodeRuneInString(s[i:])
			p.buf.WriteString(s[i : i+n])
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			p.buf.WriteByte('\\')
			p.buf.WriteByte(c)
		case c == '\n':
			p.buf.WriteString(`\n`)
		case c == '\r':
			p.buf.WriteString(`\r`)
		case c == '\t':
			p.buf.WriteString(`\t`)
		case c == '\b':
			p.buf.WriteString(`\b`)
		case c == '\f':
			p.buf.WriteString(`\f`)
		case c < 0x20:
			fmt.Fprintf(&p.buf, `\u%04x`, c)
		default:
			p.buf.WriteByte(c)
		}
		i++
	}
	p.buf.WriteByte('"')
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
