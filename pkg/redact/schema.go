package redact

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// typ is one Avro type of a schema, parsed from the schema JSON. Named types
// referenced more than once are the same *typ.
type typ struct {
	kind     string // null, boolean, int, long, float, double, bytes, string, record, enum, array, map, fixed, union
	name     string // full name of a record, enum or fixed
	logical  string // logical type goavro represents natively, "" otherwise
	fields   []*fieldDef
	symbols  []string
	items    *typ // array
	values   *typ // map
	branches []*typ
	size     int // fixed
}

// fieldDef is one field of a record type.
type fieldDef struct {
	name     string
	typ      *typ
	def      any // JSON default, numbers as json.Number
	hasDef   bool
	category string
}

// nullable reports whether t is a union with a null branch.
func (t *typ) nullable() bool {
	if t.kind != "union" {
		return false
	}
	for _, b := range t.branches {
		if b.kind == "null" {
			return true
		}
	}
	return false
}

// unionKey is the key goavro uses for a value of t inside a union.
func (t *typ) unionKey() string {
	switch t.kind {
	case "record", "enum", "fixed":
		return t.name
	}
	if t.logical != "" {
		return t.kind + "." + t.logical
	}
	return t.kind
}

// branch returns the union branch whose goavro key is key.
func (t *typ) branch(key string) (int, bool) {
	for i, b := range t.branches {
		if b.unionKey() == key {
			return i, true
		}
	}
	return 0, false
}

var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

// nativeLogical lists the logical types goavro turns into other native Go
// types, keyed as goavro names them in unions (same list as avrocodec).
var nativeLogical = map[string]bool{
	"long.timestamp-millis": true,
	"long.timestamp-micros": true,
	"int.time-millis":       true,
	"long.time-micros":      true,
	"int.date":              true,
	"bytes.decimal":         true,
	"fixed.decimal":         true,
}

// schemaParser turns schema JSON into a typ tree.
type schemaParser struct {
	named map[string]*typ
}

func parseSchema(text string) (*typ, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse schema json: %w", err)
	}
	p := &schemaParser{named: map[string]*typ{}}
	t, err := p.parse(raw, "")
	if err != nil {
		return nil, err
	}
	if t.kind != "record" {
		return nil, fmt.Errorf("top-level type is %s, want record", t.kind)
	}
	return t, nil
}

func qualified(name, namespace, enclosing string) string {
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

func (p *schemaParser) parse(raw any, ns string) (*typ, error) {
	switch x := raw.(type) {
	case string:
		if primitives[x] {
			return &typ{kind: x}, nil
		}
		if t, ok := p.named[qualified(x, "", ns)]; ok {
			return t, nil
		}
		if t, ok := p.named[x]; ok {
			return t, nil
		}
		return nil, fmt.Errorf("unknown type %q", x)
	case []any:
		t := &typ{kind: "union"}
		for _, b := range x {
			bt, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			t.branches = append(t.branches, bt)
		}
		return t, nil
	case map[string]any:
		return p.parseObject(x, ns)
	default:
		return nil, fmt.Errorf("unexpected schema element of type %T", raw)
	}
}

func (p *schemaParser) parseObject(m map[string]any, ns string) (*typ, error) {
	rawType, ok := m["type"]
	if !ok {
		return nil, errors.New("schema object without type")
	}
	ts, isString := rawType.(string)
	if !isString {
		return p.parse(rawType, ns)
	}
	logical, _ := m["logicalType"].(string)
	name, _ := m["name"].(string)
	nsp, _ := m["namespace"].(string)
	switch ts {
	case "record", "error":
		full := qualified(name, nsp, ns)
		t := &typ{kind: "record", name: full}
		p.named[full] = t
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
			f := &fieldDef{name: fname, typ: ft}
			f.def, f.hasDef = fm["default"]
			f.category, _ = fm["data_category"].(string)
			t.fields = append(t.fields, f)
		}
		return t, nil
	case "enum":
		full := qualified(name, nsp, ns)
		t := &typ{kind: "enum", name: full}
		if syms, ok := m["symbols"].([]any); ok {
			for _, s := range syms {
				if str, ok := s.(string); ok {
					t.symbols = append(t.symbols, str)
				}
			}
		}
		p.named[full] = t
		return t, nil
	case "fixed":
		full := qualified(name, nsp, ns)
		t := &typ{kind: "fixed", name: full}
		if sz, ok := m["size"].(json.Number); ok {
			v, _ := sz.Int64()
			t.size = int(v)
		}
		if nativeLogical["fixed."+logical] {
			t.logical = logical
		}
		p.named[full] = t
		return t, nil
	case "array":
		items, err := p.parse(m["items"], ns)
		if err != nil {
			return nil, fmt.Errorf("array items: %w", err)
		}
		return &typ{kind: "array", items: items}, nil
	case "map":
		values, err := p.parse(m["values"], ns)
		if err != nil {
			return nil, fmt.Errorf("map values: %w", err)
		}
		return &typ{kind: "map", values: values}, nil
	default:
		if primitives[ts] {
			t := &typ{kind: ts}
			if logical != "" && nativeLogical[ts+"."+logical] {
				t.logical = logical
			}
			return t, nil
		}
		return p.parse(ts, ns)
	}
}

// node is a type at a field path: the schema tree unrolled along paths, so
// that every field knows its path without building strings per event.
// Children are built on first use (recursive types unroll only as deep as
// the data goes) and are then shared by every call.
type node struct {
	t    *typ
	path string // field path of the value this node describes ("" for the root record)

	once     sync.Once
	fields   []*fieldNode // record
	items    *node        // array: path + "[]"
	values   *node        // map: path + "{}"
	branches []*node      // union: same path
}

// fieldNode is one record field at its path.
type fieldNode struct {
	def  *fieldDef
	path string
	node *node
}

func (n *node) children() *node {
	n.once.Do(func() {
		switch n.t.kind {
		case "record":
			n.fields = make([]*fieldNode, len(n.t.fields))
			for i, f := range n.t.fields {
				p := f.name
				if n.path != "" {
					p = n.path + "." + f.name
				}
				n.fields[i] = &fieldNode{def: f, path: p, node: &node{t: f.typ, path: p}}
			}
		case "array":
			n.items = &node{t: n.t.items, path: n.path + "[]"}
		case "map":
			n.values = &node{t: n.t.values, path: n.path + "{}"}
		case "union":
			n.branches = make([]*node, len(n.t.branches))
			for i, b := range n.t.branches {
				n.branches[i] = &node{t: b, path: n.path}
			}
		}
	})
	return n
}
