package avrocodec

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/linkedin/goavro/v2"
)

// AnnotationKey is the custom field property that carries a field's data
// category, e.g. "data_category": "user.contact.email". goavro ignores custom
// properties, so the catalog reads them from the schema JSON itself.
const AnnotationKey = "data_category"

// Schema is one parsed Avro schema: a catalog entry (loaded from a .avsc file)
// or a writer schema fetched from a schema registry.
//
// A Schema is immutable once built and safe for concurrent use. Its top-level
// type is always a record.
type Schema struct {
	// FullName is the record's full name, e.g. consentgate.events.PageView.
	FullName string
	// Version is the version from the file name (page_view.v2.avsc is 2; a
	// file without a version suffix is 1). Schemas fetched from a registry
	// have version 0.
	Version int
	// File is the catalog file the schema came from; empty for registry
	// schemas.
	File string
	// Fingerprint is the CRC-64-AVRO (Rabin) fingerprint of the schema's
	// parsing canonical form, as used by the single-object encoding.
	Fingerprint uint64
	// Annotations maps field paths to data categories for every field that
	// carries a data_category property. Paths are dotted through records
	// (unions are transparent) and use [] for array items and {} for map
	// values, e.g. "items[].health_category" or "shipping_address.street".
	Annotations map[string]string
	// Fields lists every field path of the schema, depth first in schema
	// order, annotated or not. Recursive types are listed once.
	Fields []FieldInfo
	// Text is the schema JSON as loaded.
	Text string

	codec *goavro.Codec
	root  *node
}

// FieldInfo describes one field path of a schema, so that callers (e.g. a
// redactor) know what a field may hold without knowing Avro.
type FieldInfo struct {
	// Path is the field path (see Schema.Annotations for the syntax).
	Path string
	// Category is the field's own data_category annotation; empty when the
	// field has none. Categories are not inherited from enclosing fields.
	Category string
	// Kind is the Avro type of the field: null, boolean, int, long, float,
	// double, bytes, string, record, enum, array, map, fixed or union.
	Kind string
	// Logical is the field type's logical type as goavro represents it
	// natively (timestamp-millis, date, ...); empty otherwise.
	Logical string
	// Nullable reports whether the field's type is a union with a null
	// branch, i.e. whether nil is a valid native value for it.
	Nullable bool
	// Branches lists, for a union, the goavro union keys of its branches in
	// order ("null", "string", "long.timestamp-millis",
	// "consentgate.events.Address", ...). Empty for other kinds.
	Branches []string
	// HasDefault reports whether the field declares a default value.
	HasDefault bool
}

// Codec returns the goavro codec of the schema. It is exposed for tests and
// tools; services use Codec.Decode and Codec.EncodeLike.
func (s *Schema) Codec() *goavro.Codec { return s.codec }

// kind names an Avro type.
type kind string

const (
	kindNull    kind = "null"
	kindBoolean kind = "boolean"
	kindInt     kind = "int"
	kindLong    kind = "long"
	kindFloat   kind = "float"
	kindDouble  kind = "double"
	kindBytes   kind = "bytes"
	kindString  kind = "string"
	kindRecord  kind = "record"
	kindEnum    kind = "enum"
	kindArray   kind = "array"
	kindMap     kind = "map"
	kindFixed   kind = "fixed"
	kindUnion   kind = "union"
)

var primitiveKinds = map[string]kind{
	"null": kindNull, "boolean": kindBoolean, "int": kindInt, "long": kindLong,
	"float": kindFloat, "double": kindDouble, "bytes": kindBytes, "string": kindString,
}

// goavroLogical lists the logical types goavro turns into other native Go
// types, keyed by "base.logicalType" as goavro names them in unions.
var goavroLogical = map[string]bool{
	"long.timestamp-millis": true,
	"long.timestamp-micros": true,
	"int.time-millis":       true,
	"long.time-micros":      true,
	"int.date":              true,
	"bytes.decimal":         true,
	"fixed.decimal":         true,
}

// node is the schema tree the resolver walks. It mirrors the schema JSON,
// with named references resolved to the same *node.
type node struct {
	kind     kind
	name     string // full name of record, enum, fixed
	aliases  []string
	logical  string // logical type goavro honours, "" otherwise
	decimal  [2]int // precision, scale for decimal
	fields   []*field
	fieldIdx map[string]int
	symbols  []string
	symIdx   map[string]bool
	enumDef  string
	hasEnDef bool
	items    *node // array
	values   *node // map
	branches []*node
	size     int // fixed
}

type field struct {
	name       string
	aliases    []string
	typ        *node
	def        any // JSON default, numbers as json.Number
	hasDefault bool
	category   string
}

// unionKey is the key goavro uses for a value of this type inside a union.
func (n *node) unionKey() string {
	switch n.kind {
	case kindRecord, kindEnum, kindFixed:
		return n.name
	}
	if n.logical != "" {
		return string(n.kind) + "." + n.logical
	}
	return string(n.kind)
}

func shortName(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[i+1:]
	}
	return full
}

// namesMatch reports whether a named writer type may be read as the named
// reader type: same unqualified name, or the writer's name is one of the
// reader's aliases.
func namesMatch(w, r *node) bool {
	if shortName(w.name) == shortName(r.name) {
		return true
	}
	for _, a := range r.aliases {
		if a == w.name || shortName(a) == shortName(w.name) {
			return true
		}
	}
	for _, a := range w.aliases {
		if a == r.name || shortName(a) == shortName(r.name) {
			return true
		}
	}
	return false
}

// parser turns schema JSON into a node tree.
type parser struct {
	named map[string]*node
}

// parseSchemaText parses schema JSON into a node tree. The text must already
// be accepted by goavro; parseSchemaText is defensive nonetheless.
func parseSchemaText(text string) (*node, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse schema json: %w", err)
	}
	p := &parser{named: map[string]*node{}}
	return p.parse(raw, "")
}

func fullNameOf(name, namespace, enclosing string) string {
	if strings.Contains(name, ".") {
		return name
	}
	ns := namespace
	if ns == "" {
		ns = enclosing
	}
	if ns == "" {
		return name
	}
	return ns + "." + name
}

func namespaceOf(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

func stringsOf(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, a := range arr {
		if s, ok := a.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) parse(raw any, ns string) (*node, error) {
	switch t := raw.(type) {
	case string:
		if k, ok := primitiveKinds[t]; ok {
			return &node{kind: k}, nil
		}
		if n, ok := p.named[fullNameOf(t, "", ns)]; ok {
			return n, nil
		}
		if n, ok := p.named[t]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q", t)
	case []any:
		n := &node{kind: kindUnion}
		for _, b := range t {
			bn, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, bn)
		}
		return n, nil
	case map[string]any:
		return p.parseMap(t, ns)
	default:
		return nil, fmt.Errorf("unexpected schema element of type %T", raw)
	}
}

func (p *parser) parseMap(m map[string]any, ns string) (*node, error) {
	typ, ok := m["type"]
	if !ok {
		return nil, errors.New("schema object without type")
	}
	ts, isString := typ.(string)
	if !isString {
		// {"type": {...}} or {"type": [...]}: a wrapped type.
		return p.parse(typ, ns)
	}
	logical, _ := m["logicalType"].(string)
	switch ts {
	case "record", "error":
		name, _ := m["name"].(string)
		nsp, _ := m["namespace"].(string)
		full := fullNameOf(name, nsp, ns)
		n := &node{kind: kindRecord, name: full, fieldIdx: map[string]int{}}
		n.aliases = qualify(stringsOf(m["aliases"]), namespaceOf(full))
		p.named[full] = n
		rawFields, _ := m["fields"].([]any)
		for i, rf := range rawFields {
			fm, ok := rf.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("record %s field %d is not an object", full, i+1)
			}
			fname, _ := fm["name"].(string)
			ft, err := p.parse(fm["type"], namespaceOf(full))
			if err != nil {
				return nil, fmt.Errorf("record %s field %s: %w", full, fname, err)
			}
			f := &field{name: fname, aliases: stringsOf(fm["aliases"]), typ: ft}
			f.def, f.hasDefault = fm["default"]
			f.category, _ = fm[AnnotationKey].(string)
			n.fieldIdx[fname] = len(n.fields)
			n.fields = append(n.fields, f)
		}
		return n, nil
	case "enum":
		name, _ := m["name"].(string)
		nsp, _ := m["namespace"].(string)
		full := fullNameOf(name, nsp, ns)
		n := &node{kind: kindEnum, name: full, symbols: stringsOf(m["symbols"]), symIdx: map[string]bool{}}
		n.aliases = qualify(stringsOf(m["aliases"]), namespaceOf(full))
		for _, s := range n.symbols {
			n.symIdx[s] = true
		}
		n.enumDef, n.hasEnDef = m["default"].(string)
		p.named[full] = n
		return n, nil
	case "fixed":
		name, _ := m["name"].(string)
		nsp, _ := m["namespace"].(string)
		full := fullNameOf(name, nsp, ns)
		n := &node{kind: kindFixed, name: full}
		n.aliases = qualify(stringsOf(m["aliases"]), namespaceOf(full))
		if sz, ok := m["size"].(json.Number); ok {
			v, _ := sz.Int64()
			n.size = int(v)
		}
		if goavroLogical["fixed."+logical] {
			n.logical = logical
			n.decimal = decimalOf(m)
		}
		p.named[full] = n
		return n, nil
	case "array":
		items, err := p.parse(m["items"], ns)
		if err != nil {
			return nil, fmt.Errorf("array items: %w", err)
		}
		return &node{kind: kindArray, items: items}, nil
	case "map":
		values, err := p.parse(m["values"], ns)
		if err != nil {
			return nil, fmt.Errorf("map values: %w", err)
		}
		return &node{kind: kindMap, values: values}, nil
	default:
		if k, ok := primitiveKinds[ts]; ok {
			n := &node{kind: k}
			if logical != "" && goavroLogical[ts+"."+logical] {
				n.logical = logical
				n.decimal = decimalOf(m)
			}
			return n, nil
		}
		// A reference to a named type, written as {"type": "Name"}.
		return p.parse(ts, ns)
	}
}

func decimalOf(m map[string]any) [2]int {
	var d [2]int
	if v, ok := m["precision"].(json.Number); ok {
		x, _ := v.Int64()
		d[0] = int(x)
	}
	if v, ok := m["scale"].(json.Number); ok {
		x, _ := v.Int64()
		d[1] = int(x)
	}
	return d
}

func qualify(aliases []string, ns string) []string {
	for i, a := range aliases {
		aliases[i] = fullNameOf(a, "", ns)
	}
	return aliases
}

// buildSchema parses text with goavro and with the package's own parser, and
// extracts the field paths and annotations.
func buildSchema(text string) (*Schema, error) {
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return nil, fmt.Errorf("invalid avro schema: %w", err)
	}
	root, err := parseSchemaText(text)
	if err != nil {
		return nil, err
	}
	if root.kind != kindRecord {
		return nil, fmt.Errorf("top-level type is %s, want record", root.kind)
	}
	s := &Schema{
		FullName:    root.name,
		Fingerprint: codec.Rabin,
		Annotations: map[string]string{},
		Text:        text,
		codec:       codec,
		root:        root,
	}
	walkFields(root, "", map[*node]bool{}, func(fi FieldInfo) {
		s.Fields = append(s.Fields, fi)
		if fi.Category != "" {
			s.Annotations[fi.Path] = fi.Category
		}
	})
	return s, nil
}

// walkFields visits every field path below the record n.
func walkFields(n *node, prefix string, seen map[*node]bool, visit func(FieldInfo)) {
	if seen[n] {
		return
	}
	seen[n] = true
	defer delete(seen, n)
	for _, f := range n.fields {
		path := f.name
		if prefix != "" {
			path = prefix + "." + f.name
		}
		fi := FieldInfo{Path: path, Category: f.category, Kind: string(f.typ.kind), Logical: f.typ.logical, HasDefault: f.hasDefault}
		if f.typ.kind == kindUnion {
			for _, b := range f.typ.branches {
				fi.Branches = append(fi.Branches, b.unionKey())
				if b.kind == kindNull {
					fi.Nullable = true
				}
			}
		}
		visit(fi)
		descend(f.typ, path, seen, visit)
	}
}

// descend walks into the records reachable from t (through unions, arrays and
// maps) with the path syntax of Schema.Annotations.
func descend(t *node, path string, seen map[*node]bool, visit func(FieldInfo)) {
	switch t.kind {
	case kindRecord:
		walkFields(t, path, seen, visit)
	case kindUnion:
		for _, b := range t.branches {
			descend(b, path, seen, visit)
		}
	case kindArray:
		descend(t.items, path+"[]", seen, visit)
	case kindMap:
		descend(t.values, path+"{}", seen, visit)
	}
}
