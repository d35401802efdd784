package explain

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// avroType is one node of a parsed Avro schema, as the JSON converter needs
// it. Named types are parsed once and shared, so a recursive schema is a
// graph, not a tree.
type avroType struct {
	kind    string // null, boolean, int, long, float, double, bytes, string, record, enum, array, map, fixed, union
	name    string // full name of record, enum and fixed
	logical string // logical type goavro honours natively, "" otherwise
	fields  []*avroField
	symbols []string
	items   *avroType // array
	values  *avroType // map
	types   []*avroType
	size    int // fixed
	scale   int // decimal
}

type avroField struct {
	name       string
	typ        *avroType
	def        any // the JSON default, numbers as json.Number
	hasDefault bool
}

// nativeLogical lists the logical types that goavro represents by another Go
// type than their base type, keyed "base.logicalType" as goavro's union keys
// spell them.
var nativeLogical = map[string]bool{
	"long.timestamp-millis": true,
	"long.timestamp-micros": true,
	"int.time-millis":       true,
	"long.time-micros":      true,
	"int.date":              true,
	"bytes.decimal":         true,
	"fixed.decimal":         true,
}

var primitive = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

// unionKey is the key goavro uses for a value of t inside a union.
func (t *avroType) unionKey() string {
	switch t.kind {
	case "record", "enum", "fixed":
		return t.name
	}
	if t.logical != "" {
		return t.kind + "." + t.logical
	}
	return t.kind
}

// describe names t for error messages.
func (t *avroType) describe() string {
	switch t.kind {
	case "record", "enum", "fixed":
		return t.kind + " " + t.name
	case "union":
		keys := make([]string, len(t.types))
		for i, b := range t.types {
			keys[i] = b.unionKey()
		}
		return "one of " + strings.Join(keys, ", ")
	}
	if t.logical != "" {
		return t.kind + " (" + t.logical + ")"
	}
	return t.kind
}

// parseAvro parses schema JSON (an avrocodec.Schema's Text, which goavro has
// already accepted) into an avroType graph.
func parseAvro(text string) (*avroType, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse schema json: %w", err)
	}
	p := schemaParser{named: map[string]*avroType{}}
	return p.parse(raw, "")
}

type schemaParser struct {
	named map[string]*avroType
}

func fullName(name, namespace, enclosing string) string {
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

func (p *schemaParser) parse(raw any, ns string) (*avroType, error) {
	switch t := raw.(type) {
	case string:
		if primitive[t] {
			return &avroType{kind: t}, nil
		}
		if n, ok := p.named[fullName(t, "", ns)]; ok {
			return n, nil
		}
		if n, ok := p.named[t]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q", t)
	case []any:
		u := &avroType{kind: "union"}
		for _, b := range t {
			bt, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			u.types = append(u.types, bt)
		}
		return u, nil
	case map[string]any:
		return p.parseObject(t, ns)
	}
	return nil, fmt.Errorf("unexpected schema element %T", raw)
}

func (p *schemaParser) parseObject(m map[string]any, ns string) (*avroType, error) {
	typ, ok := m["type"]
	if !ok {
		return nil, errors.New("schema object without type")
	}
	ts, isString := typ.(string)
	if !isString {
		return p.parse(typ, ns)
	}
	logical, _ := m["logicalType"].(string)
	name, _ := m["name"].(string)
	nsp, _ := m["namespace"].(string)
	switch ts {
	case "record", "error":
		full := fullName(name, nsp, ns)
		t := &avroType{kind: "record", name: full}
		p.named[full] = t
		rawFields, _ := m["fields"].([]any)
		for _, rf := range rawFields {
			fm, ok := rf.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("record %s has a field that is not an object", full)
			}
			fname, _ := fm["name"].(string)
			ft, err := p.parse(fm["type"], namespaceOf(full))
			if err != nil {
				return nil, fmt.Errorf("record %s field %s: %w", full, fname, err)
			}
			f := &avroField{name: fname, typ: ft}
			f.def, f.hasDefault = fm["default"]
			t.fields = append(t.fields, f)
		}
		return t, nil
	case "enum":
		full := fullName(name, nsp, ns)
		t := &avroType{kind: "enum", name: full}
		syms, _ := m["symbols"].([]any)
		for _, s := range syms {
			if str, ok := s.(string); ok {
				t.symbols = append(t.symbols, str)
			}
		}
		p.named[full] = t
		return t, nil
	case "fixed":
		full := fullName(name, nsp, ns)
		t := &avroType{kind: "fixed", name: full}
		if sz, ok := m["size"].(json.Number); ok {
			v, _ := sz.Int64()
			t.size = int(v)
		}
		if nativeLogical["fixed."+logical] {
			t.logical, t.scale = logical, scaleOf(m)
		}
		p.named[full] = t
		return t, nil
	case "array":
		items, err := p.parse(m["items"], ns)
		if err != nil {
			return nil, fmt.Errorf("array items: %w", err)
		}
		return &avroType{kind: "array", items: items}, nil
	case "map":
		values, err := p.parse(m["values"], ns)
		if err != nil {
			return nil, fmt.Errorf("map values: %w", err)
		}
		return &avroType{kind: "map", values: values}, nil
	}
	if primitive[ts] {
		t := &avroType{kind: ts}
		if nativeLogical[ts+"."+logical] {
			t.logical, t.scale = logical, scaleOf(m)
		}
		return t, nil
	}
	return p.parse(ts, ns)
}

func scaleOf(m map[string]any) int {
	if v, ok := m["scale"].(json.Number); ok {
		x, _ := v.Int64()
		return int(x)
	}
	return 0
}
