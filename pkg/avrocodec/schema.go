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
	// Parsing Canonical Form, both as the Avro specification defines them
	// (see CanonicalForm): the fingerprint the single-object encoding writes
	// and that Java Avro, fastavro, avsc and hamba/avro compute.
	Fingerprint uint64
	// LegacyFingerprint is the fingerprint goavro's Codec.Rabin gives, which
	// consentgate wrote into single-object records before it computed the
	// canonical form itself. It differs from Fingerprint for every schema
	// that uses a logical type. The catalog still finds a schema by it, so
	// that records already written stay readable; it is never written.
	LegacyFingerprint uint64
	// Canonical is the schema's Parsing Canonical Form.
	Canonical string
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
	root  *Type
	// shape is the fingerprint of the canonical form with logical types
	// kept: two schemas with the same shape decode to the same native Go
	// values, which one Fingerprint does not promise (a long and a
	// timestamp-millis long share it).
	shape uint64
}

// sameShape reports whether data of schema a, decoded natively, is a valid
// native value of schema b without resolution.
func sameShape(a, b *Schema) bool {
	return a == b || (a.Fingerprint == b.Fingerprint && a.shape == b.shape)
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

// Root returns the schema model: the Type of the schema's top-level record,
// built once with the Schema. It is never nil for a Schema made by this
// package (a Catalog's schemas, the writer schemas a Codec fetches from a
// registry). The model is a read-only graph shared by every caller; see
// Type for how to walk it.
func (s *Schema) Root() *Type { return s.root }

// Codec returns the goavro codec of the schema. It is exposed for tests and
// tools; services use Codec.Decode and Codec.EncodeLike.
func (s *Schema) Codec() *goavro.Codec { return s.codec }

// Kind names an Avro type.
type Kind string

// The Avro types. A Type of kind KindRecord, KindEnum or KindFixed is a
// named type.
const (
	KindNull    Kind = "null"
	KindBoolean Kind = "boolean"
	KindInt     Kind = "int"
	KindLong    Kind = "long"
	KindFloat   Kind = "float"
	KindDouble  Kind = "double"
	KindBytes   Kind = "bytes"
	KindString  Kind = "string"
	KindRecord  Kind = "record"
	KindEnum    Kind = "enum"
	KindArray   Kind = "array"
	KindMap     Kind = "map"
	KindFixed   Kind = "fixed"
	KindUnion   Kind = "union"
)

var primitiveKinds = map[string]Kind{
	"null": KindNull, "boolean": KindBoolean, "int": KindInt, "long": KindLong,
	"float": KindFloat, "double": KindDouble, "bytes": KindBytes, "string": KindString,
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

// Type is one Avro type of a Schema, as the schema JSON declares it: the
// schema model. avrocodec builds it once per Schema, when the Schema is
// built, and uses it itself for schema resolution, compatibility checks,
// Schema.Annotations and Schema.Fields; other packages read it (from
// Schema.Root) to learn field types, defaults, enum symbols and nullability
// without parsing the schema JSON again.
//
// # A graph, not a tree
//
// A named type (record, enum, fixed) is one *Type wherever the schema
// refers to it by name, so two fields of the same record type share their
// Type, and a recursive schema (a record that refers to itself, through a
// union, an array or a map) is a cycle: following Fields, Items, Values and
// Branches from the root may come back to a Type already visited. A walker
// over the types alone must therefore track the named types it has entered
// (e.g. a map[*Type]bool, removed again on the way out when it wants every
// route) or it never ends; a walker that follows a value instead stops where
// the value does. For the same reason a Type has no field path: one record
// type may stand at several paths (Schema.Fields lists them).
//
// # Read-only
//
// A Type and everything it points to is shared by every user of its Schema,
// concurrently: never modify its fields, its slices or the types and fields
// they hold.
type Type struct {
	// Kind is the Avro type. A reference to a named type is resolved: its
	// Kind is that of the named type, never a name.
	Kind Kind
	// Name is the full name (namespace.name) of a record, enum or fixed;
	// empty for other kinds.
	Name string
	// Aliases are the full names of the aliases of a record, enum or fixed.
	Aliases []string
	// Logical is the logical type when goavro represents it by another Go
	// type than the base type's (timestamp-millis, timestamp-micros,
	// time-millis, time-micros, date, decimal); empty otherwise, also for
	// logical types goavro ignores (e.g. uuid on a string).
	Logical string
	// Precision and Scale are those of a decimal (Logical "decimal"); zero
	// otherwise.
	Precision, Scale int
	// Fields are the fields of a record, in schema order.
	Fields []*RecordField
	// Symbols are the symbols of an enum, in schema order.
	Symbols []string
	// EnumDefault is the default symbol of an enum that declares one
	// (HasEnumDefault): a reader reads a writer's unknown symbols as it.
	EnumDefault string
	// HasEnumDefault reports whether an enum declares a default symbol.
	HasEnumDefault bool
	// Items is the item type of an array.
	Items *Type
	// Values is the value type of a map.
	Values *Type
	// Branches are the branch types of a union, in schema order.
	Branches []*Type
	// Size is the size in bytes of a fixed.
	Size int

	fieldIdx map[string]int  // record: field name -> index in Fields
	symIdx   map[string]bool // enum: the symbols
}

// RecordField is one field of a record Type. Like Type, it is read-only.
type RecordField struct {
	// Name is the field name.
	Name string
	// Aliases are the field's aliases (plain names, as declared).
	Aliases []string
	// Type is the field's type.
	Type *Type
	// Default is the field's default value as the schema JSON spells it
	// (decoded with json.Decoder.UseNumber: numbers are json.Number,
	// objects map[string]any, arrays []any); nil when the default is null
	// or absent, which HasDefault tells apart.
	Default any
	// HasDefault reports whether the field declares a default value.
	HasDefault bool
	// Category is the field's data_category annotation (AnnotationKey);
	// empty when the field has none.
	Category string
}

// UnionKey is the key goavro uses for a value of type t inside a union: the
// full name of a named type, "base.logical" for a logical type goavro
// represents natively ("long.timestamp-millis"), the kind otherwise
// ("string", "array").
func (t *Type) UnionKey() string {
	switch t.Kind {
	case KindRecord, KindEnum, KindFixed:
		return t.Name
	}
	if t.Logical != "" {
		return string(t.Kind) + "." + t.Logical
	}
	return string(t.Kind)
}

// Nullable reports whether t is a union with a null branch, i.e. whether
// nil is a valid native value of type t.
func (t *Type) Nullable() bool {
	if t.Kind != KindUnion {
		return false
	}
	for _, b := range t.Branches {
		if b.Kind == KindNull {
			return true
		}
	}
	return false
}

// BranchIndex returns the index in Branches of the union branch whose
// UnionKey is key, or -1 when t has none (or is not a union).
func (t *Type) BranchIndex(key string) int {
	for i, b := range t.Branches {
		if b.UnionKey() == key {
			return i
		}
	}
	return -1
}

// Field returns the field of record t named name (not by alias), or nil
// when t has none (or is not a record).
func (t *Type) Field(name string) *RecordField {
	if i, ok := t.fieldIdx[name]; ok {
		return t.Fields[i]
	}
	return nil
}

// HasSymbol reports whether s is a symbol of enum t.
func (t *Type) HasSymbol(s string) bool { return t.symIdx[s] }

// String describes t for messages, without values: "record a.b.Address",
// "enum a.b.Country", "long (timestamp-millis)", "string", or for a union
// "one of null, string".
func (t *Type) String() string {
	switch t.Kind {
	case KindRecord, KindEnum, KindFixed:
		return string(t.Kind) + " " + t.Name
	case KindUnion:
		keys := make([]string, len(t.Branches))
		for i, b := range t.Branches {
			keys[i] = b.UnionKey()
		}
		return "one of " + strings.Join(keys, ", ")
	}
	if t.Logical != "" {
		return string(t.Kind) + " (" + t.Logical + ")"
	}
	return string(t.Kind)
}

// sameDecimal reports whether two decimals have the same precision and
// scale.
func sameDecimal(a, b *Type) bool {
	return a.Precision == b.Precision && a.Scale == b.Scale
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
func namesMatch(w, r *Type) bool {
	if shortName(w.Name) == shortName(r.Name) {
		return true
	}
	for _, a := range r.Aliases {
		if a == w.Name || shortName(a) == shortName(w.Name) {
			return true
		}
	}
	for _, a := range w.Aliases {
		if a == r.Name || shortName(a) == shortName(r.Name) {
			return true
		}
	}
	return false
}

// parser turns schema JSON into a Type graph.
type parser struct {
	named map[string]*Type
}

// parseSchemaText parses schema JSON into a Type graph. The text must
// already be accepted by goavro; parseSchemaText is defensive nonetheless.
func parseSchemaText(text string) (*Type, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse schema json: %w", err)
	}
	p := &parser{named: map[string]*Type{}}
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

func (p *parser) parse(raw any, ns string) (*Type, error) {
	switch t := raw.(type) {
	case string:
		if k, ok := primitiveKinds[t]; ok {
			return &Type{Kind: k}, nil
		}
		if n, ok := p.named[fullNameOf(t, "", ns)]; ok {
			return n, nil
		}
		if n, ok := p.named[t]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q", t)
	case []any:
		n := &Type{Kind: KindUnion}
		for _, b := range t {
			bn, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			n.Branches = append(n.Branches, bn)
		}
		return n, nil
	case map[string]any:
		return p.parseMap(t, ns)
	default:
		return nil, fmt.Errorf("unexpected schema element of type %T", raw)
	}
}

func (p *parser) parseMap(m map[string]any, ns string) (*Type, error) {
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
		n := &Type{Kind: KindRecord, Name: full, fieldIdx: map[string]int{}}
		n.Aliases = qualify(stringsOf(m["aliases"]), namespaceOf(full))
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
			f := &RecordField{Name: fname, Aliases: stringsOf(fm["aliases"]), Type: ft}
			f.Default, f.HasDefault = fm["default"]
			f.Category, _ = fm[AnnotationKey].(string)
			n.fieldIdx[fname] = len(n.Fields)
			n.Fields = append(n.Fields, f)
		}
		return n, nil
	case "enum":
		name, _ := m["name"].(string)
		nsp, _ := m["namespace"].(string)
		full := fullNameOf(name, nsp, ns)
		n := &Type{Kind: KindEnum, Name: full, Symbols: stringsOf(m["symbols"]), symIdx: map[string]bool{}}
		n.Aliases = qualify(stringsOf(m["aliases"]), namespaceOf(full))
		for _, s := range n.Symbols {
			n.symIdx[s] = true
		}
		n.EnumDefault, n.HasEnumDefault = m["default"].(string)
		p.named[full] = n
		return n, nil
	case "fixed":
		name, _ := m["name"].(string)
		nsp, _ := m["namespace"].(string)
		full := fullNameOf(name, nsp, ns)
		n := &Type{Kind: KindFixed, Name: full}
		n.Aliases = qualify(stringsOf(m["aliases"]), namespaceOf(full))
		if sz, ok := m["size"].(json.Number); ok {
			v, _ := sz.Int64()
			n.Size = int(v)
		}
		if goavroLogical["fixed."+logical] {
			n.Logical = logical
			n.Precision, n.Scale = decimalOf(m)
		}
		p.named[full] = n
		return n, nil
	case "array":
		items, err := p.parse(m["items"], ns)
		if err != nil {
			return nil, fmt.Errorf("array items: %w", err)
		}
		return &Type{Kind: KindArray, Items: items}, nil
	case "map":
		values, err := p.parse(m["values"], ns)
		if err != nil {
			return nil, fmt.Errorf("map values: %w", err)
		}
		return &Type{Kind: KindMap, Values: values}, nil
	default:
		if k, ok := primitiveKinds[ts]; ok {
			n := &Type{Kind: k}
			if logical != "" && goavroLogical[ts+"."+logical] {
				n.Logical = logical
				n.Precision, n.Scale = decimalOf(m)
			}
			return n, nil
		}
		// A reference to a named type, written as {"type": "Name"}.
		return p.parse(ts, ns)
	}
}

// decimalOf returns the precision and scale of a decimal type object.
func decimalOf(m map[string]any) (precision, scale int) {
	if v, ok := m["precision"].(json.Number); ok {
		x, _ := v.Int64()
		precision = int(x)
	}
	if v, ok := m["scale"].(json.Number); ok {
		x, _ := v.Int64()
		scale = int(x)
	}
	return precision, scale
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
	if root.Kind != KindRecord {
		return nil, fmt.Errorf("top-level type is %s, want record", root.Kind)
	}
	pcf, err := CanonicalForm(text)
	if err != nil {
		return nil, err
	}
	shape, err := canonicalForm(text, true)
	if err != nil {
		return nil, err
	}
	s := &Schema{
		FullName:          root.Name,
		Fingerprint:       Fingerprint64([]byte(pcf)),
		LegacyFingerprint: codec.Rabin,
		Canonical:         pcf,
		Annotations:       map[string]string{},
		Text:              text,
		codec:             codec,
		root:              root,
		shape:             Fingerprint64([]byte(shape)),
	}
	walkFields(root, "", map[*Type]bool{}, func(fi FieldInfo) {
		s.Fields = append(s.Fields, fi)
		if fi.Category != "" {
			s.Annotations[fi.Path] = fi.Category
		}
	})
	return s, nil
}

// walkFields visits every field path below the record t. seen holds the
// records on the current route, so that a recursive type is walked once.
func walkFields(t *Type, prefix string, seen map[*Type]bool, visit func(FieldInfo)) {
	if seen[t] {
		return
	}
	seen[t] = true
	defer delete(seen, t)
	for _, f := range t.Fields {
		path := f.Name
		if prefix != "" {
			path = prefix + "." + f.Name
		}
		fi := FieldInfo{Path: path, Category: f.Category, Kind: string(f.Type.Kind), Logical: f.Type.Logical, HasDefault: f.HasDefault}
		if f.Type.Kind == KindUnion {
			fi.Nullable = f.Type.Nullable()
			for _, b := range f.Type.Branches {
				fi.Branches = append(fi.Branches, b.UnionKey())
			}
		}
		visit(fi)
		descend(f.Type, path, seen, visit)
	}
}

// descend walks into the records reachable from t (through unions, arrays and
// maps) with the path syntax of Schema.Annotations.
func descend(t *Type, path string, seen map[*Type]bool, visit func(FieldInfo)) {
	switch t.Kind {
	case KindRecord:
		walkFields(t, path, seen, visit)
	case KindUnion:
		for _, b := range t.Branches {
			descend(b, path, seen, visit)
		}
	case KindArray:
		descend(t.Items, path+"[]", seen, visit)
	case KindMap:
		descend(t.Values, path+"{}", seen, visit)
	}
}
