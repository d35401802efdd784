package avrocodec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// This file implements Avro schema resolution (the "Schema Resolution"
// section of the Avro specification) on goavro's native values, because
// goavro v2 decodes only with the exact writer schema. Data is first decoded
// with the writer schema, then the native value is resolved into the shape of
// the reader schema.
//
// goavro's native form: records and maps are map[string]any, arrays []any,
// enums string, int int32, long int64, float float32, double float64, bytes
// and fixed []byte, a non-null union value map[string]any{unionKey: v} (the
// key is the full name of a named type, "long.timestamp-millis" for a
// logical type goavro knows, the primitive name otherwise), timestamp-millis
// and timestamp-micros and date time.Time, time-millis and time-micros
// time.Duration.

// resolver resolves native values from one schema to another. narrow allows
// the reverse direction used when re-encoding a reader-shaped value with its
// older writer schema: long to int and double to float when the value fits,
// and unknown enum symbols to the target's enum default.
type resolver struct {
	narrow bool
}

// incompatibleError reports why a value cannot be resolved. It names schema
// elements (field and type names), never values.
type incompatibleError struct {
	msg string
}

func (e *incompatibleError) Error() string { return e.msg }

func incompatible(format string, args ...any) error {
	return &incompatibleError{msg: fmt.Sprintf(format, args...)}
}

func describe(n *node) string {
	switch n.kind {
	case kindRecord, kindEnum, kindFixed:
		return string(n.kind) + " " + n.name
	}
	if n.logical != "" {
		return string(n.kind) + " (" + n.logical + ")"
	}
	return string(n.kind)
}

// resolve converts v, a native value of writer type w, to a native value of
// reader type r.
func (rs resolver) resolve(w, r *node, v any) (any, error) {
	if w.kind == kindUnion {
		wb, inner, err := unwrapUnion(w, v)
		if err != nil {
			return nil, err
		}
		return rs.resolve(wb, r, inner)
	}
	if r.kind == kindUnion {
		rb := rs.pickBranch(w, r)
		if rb == nil {
			return nil, incompatible("no branch of the reader union matches %s", describe(w))
		}
		out, err := rs.resolve(w, rb, v)
		if err != nil {
			return nil, err
		}
		if rb.kind == kindNull {
			return nil, nil
		}
		return map[string]any{rb.unionKey(): out}, nil
	}
	switch r.kind {
	case kindRecord:
		if w.kind != kindRecord || !namesMatch(w, r) {
			return nil, incompatible("cannot read %s as %s", describe(w), describe(r))
		}
		return rs.record(w, r, v)
	case kindEnum:
		if w.kind != kindEnum || !namesMatch(w, r) {
			return nil, incompatible("cannot read %s as %s", describe(w), describe(r))
		}
		s, ok := v.(string)
		if !ok {
			return nil, incompatible("%s value is %T, want string", describe(w), v)
		}
		if r.symIdx[s] {
			return s, nil
		}
		if r.hasEnDef {
			return r.enumDef, nil
		}
		return nil, incompatible("symbol of %s is unknown to the reader enum, which has no default", describe(w))
	case kindArray:
		if w.kind != kindArray {
			return nil, incompatible("cannot read %s as array", describe(w))
		}
		arr, ok := v.([]any)
		if !ok {
			return nil, incompatible("array value is %T", v)
		}
		out := make([]any, len(arr))
		for i, item := range arr {
			x, err := rs.resolve(w.items, r.items, item)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case kindMap:
		if w.kind != kindMap {
			return nil, incompatible("cannot read %s as map", describe(w))
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, incompatible("map value is %T", v)
		}
		out := make(map[string]any, len(m))
		for k, item := range m {
			x, err := rs.resolve(w.values, r.values, item)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case kindFixed:
		if w.kind != kindFixed || w.size != r.size || !namesMatch(w, r) {
			return nil, incompatible("cannot read %s as %s", describe(w), describe(r))
		}
		if w.logical != r.logical || w.decimal != r.decimal {
			return nil, incompatible("cannot read %s as %s: logical types differ", describe(w), describe(r))
		}
		return v, nil
	case kindNull:
		if w.kind != kindNull {
			return nil, incompatible("cannot read %s as null", describe(w))
		}
		return nil, nil
	default:
		return rs.primitive(w, r, v)
	}
}

// unwrapUnion returns the branch of union w that holds v, and the value
// inside goavro's union wrapper.
func unwrapUnion(w *node, v any) (*node, any, error) {
	if v == nil {
		for _, b := range w.branches {
			if b.kind == kindNull {
				return b, nil, nil
			}
		}
		return nil, nil, incompatible("null value for a union without a null branch")
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, nil, incompatible("union value is not a single-key map")
	}
	for key, inner := range m {
		for _, b := range w.branches {
			if b.unionKey() == key {
				return b, inner, nil
			}
		}
		return nil, nil, incompatible("union has no branch %q", key)
	}
	panic("unreachable")
}

// pickBranch returns the first reader branch that matches the writer type,
// preferring the same type over a promotion.
func (rs resolver) pickBranch(w, r *node) *node {
	sameType := func(b *node) bool {
		if b.kind != w.kind {
			return false
		}
		switch b.kind {
		case kindRecord, kindEnum, kindFixed:
			return namesMatch(w, b)
		}
		return true
	}
	for _, b := range r.branches {
		if sameType(b) && b.logical == w.logical {
			return b
		}
	}
	for _, b := range r.branches {
		if sameType(b) {
			return b
		}
	}
	for _, b := range r.branches {
		if promotable(w.kind, b.kind) {
			return b
		}
	}
	if rs.narrow {
		for _, b := range r.branches {
			if narrowable(w.kind, b.kind) {
				return b
			}
		}
	}
	return nil
}

func promotable(w, r kind) bool {
	switch w {
	case kindInt:
		return r == kindLong || r == kindFloat || r == kindDouble
	case kindLong:
		return r == kindFloat || r == kindDouble
	case kindFloat:
		return r == kindDouble
	case kindString:
		return r == kindBytes
	case kindBytes:
		return r == kindString
	}
	return false
}

func narrowable(w, r kind) bool {
	return (w == kindLong && r == kindInt) || (w == kindDouble && r == kindFloat)
}

func (rs resolver) record(w, r *node, v any) (any, error) {
	vm, ok := v.(map[string]any)
	if !ok {
		return nil, incompatible("%s value is %T, want map", describe(w), v)
	}
	out := make(map[string]any, len(r.fields))
	for _, rf := range r.fields {
		if wf := findField(w, rf); wf != nil {
			if wv, present := vm[wf.name]; present {
				x, err := rs.resolve(wf.typ, rf.typ, wv)
				if err != nil {
					return nil, fmt.Errorf("field %s: %w", rf.name, err)
				}
				out[rf.name] = x
				continue
			}
		}
		if !rf.hasDefault {
			return nil, incompatible("field %s of %s is missing from the data and has no default", rf.name, r.name)
		}
		d, err := defaultValue(rf.typ, rf.def)
		if err != nil {
			return nil, fmt.Errorf("field %s default: %w", rf.name, err)
		}
		out[rf.name] = d
	}
	return out, nil
}

// findField finds the writer field that feeds reader field rf: by name, by
// one of the reader field's aliases, or by a writer field alias naming it.
func findField(w *node, rf *field) *field {
	if i, ok := w.fieldIdx[rf.name]; ok {
		return w.fields[i]
	}
	for _, a := range rf.aliases {
		if i, ok := w.fieldIdx[a]; ok {
			return w.fields[i]
		}
	}
	for _, wf := range w.fields {
		for _, a := range wf.aliases {
			if a == rf.name {
				return wf
			}
		}
	}
	return nil
}

func (rs resolver) primitive(w, r *node, v any) (any, error) {
	if w.kind == r.kind && w.logical == r.logical {
		if w.logical == "decimal" && w.decimal != r.decimal {
			return nil, incompatible("cannot read %s as %s: decimal precision or scale differ", describe(w), describe(r))
		}
		return v, nil
	}
	if w.logical == "decimal" || r.logical == "decimal" {
		return nil, incompatible("cannot read %s as %s", describe(w), describe(r))
	}
	if w.kind != r.kind && !promotable(w.kind, r.kind) && !(rs.narrow && narrowable(w.kind, r.kind)) {
		return nil, incompatible("cannot read %s as %s", describe(w), describe(r))
	}
	b, err := toBase(w, v)
	if err != nil {
		return nil, err
	}
	p, err := convertBase(b, r.kind)
	if err != nil {
		return nil, err
	}
	return fromBase(r, p)
}

// toBase turns goavro's native value of a logical type into the value of its
// underlying primitive type.
func toBase(n *node, v any) (any, error) {
	switch n.logical {
	case "":
		return v, nil
	case "timestamp-millis":
		if t, ok := v.(time.Time); ok {
			return t.UnixMilli(), nil
		}
	case "timestamp-micros":
		if t, ok := v.(time.Time); ok {
			return t.UnixMicro(), nil
		}
	case "date":
		if t, ok := v.(time.Time); ok {
			return int32(t.Unix() / 86400), nil
		}
	case "time-millis":
		if d, ok := v.(time.Duration); ok {
			return int32(d / time.Millisecond), nil
		}
	case "time-micros":
		if d, ok := v.(time.Duration); ok {
			return int64(d / time.Microsecond), nil
		}
	}
	// Numeric values are accepted for logical types, as goavro does.
	return v, nil
}

// fromBase turns a primitive value into goavro's native value for the
// logical type of n.
func fromBase(n *node, v any) (any, error) {
	switch n.logical {
	case "timestamp-millis":
		if x, ok := v.(int64); ok {
			return time.UnixMilli(x).UTC(), nil
		}
	case "timestamp-micros":
		if x, ok := v.(int64); ok {
			return time.UnixMicro(x).UTC(), nil
		}
	case "date":
		if x, ok := v.(int32); ok {
			return time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(x)), nil
		}
	case "time-millis":
		if x, ok := v.(int32); ok {
			return time.Duration(x) * time.Millisecond, nil
		}
	case "time-micros":
		if x, ok := v.(int64); ok {
			return time.Duration(x) * time.Microsecond, nil
		}
	}
	return v, nil
}

// convertBase applies a promotion (or, for the reverse direction, a checked
// narrowing) to a primitive native value.
func convertBase(v any, to kind) (any, error) {
	bad := func() (any, error) { return nil, incompatible("%T value cannot be read as %s", v, to) }
	switch to {
	case kindBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case kindInt:
		switch x := v.(type) {
		case int32:
			return x, nil
		case int64:
			if x < math.MinInt32 || x > math.MaxInt32 {
				return nil, incompatible("long value out of int range")
			}
			return int32(x), nil
		}
	case kindLong:
		switch x := v.(type) {
		case int32:
			return int64(x), nil
		case int64:
			return x, nil
		}
	case kindFloat:
		switch x := v.(type) {
		case int32:
			return float32(x), nil
		case int64:
			return float32(x), nil
		case float32:
			return x, nil
		case float64:
			return float32(x), nil
		}
	case kindDouble:
		switch x := v.(type) {
		case int32:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case float32:
			return float64(x), nil
		case float64:
			return x, nil
		}
	case kindString:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case kindBytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	}
	return bad()
}

// defaultValue converts a field default (JSON, numbers as json.Number) into
// goavro's native value for type t. It builds a fresh value on every call so
// that callers may modify what they get.
func defaultValue(t *node, def any) (any, error) {
	switch t.kind {
	case kindNull:
		if def == nil {
			return nil, nil
		}
	case kindBoolean:
		if b, ok := def.(bool); ok {
			return b, nil
		}
	case kindInt:
		if n, ok := def.(json.Number); ok {
			x, err := n.Int64()
			if err == nil && x >= math.MinInt32 && x <= math.MaxInt32 {
				return fromBase(t, int32(x))
			}
		}
	case kindLong:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Int64(); err == nil {
				return fromBase(t, x)
			}
		}
	case kindFloat:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Float64(); err == nil {
				return float32(x), nil
			}
		}
	case kindDouble:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Float64(); err == nil {
				return x, nil
			}
		}
	case kindString:
		if s, ok := def.(string); ok {
			return s, nil
		}
	case kindBytes, kindFixed:
		if t.logical == "decimal" {
			return nil, errors.New("decimal defaults are not supported")
		}
		if s, ok := def.(string); ok {
			// Avro encodes bytes defaults as strings of code points 0-255.
			b := make([]byte, 0, len(s))
			for _, r := range s {
				if r > 255 {
					return nil, incompatible("bytes default has a code point above 255")
				}
				b = append(b, byte(r))
			}
			if t.kind == kindFixed && len(b) != t.size {
				return nil, incompatible("fixed default has the wrong size")
			}
			return b, nil
		}
	case kindEnum:
		if s, ok := def.(string); ok && t.symIdx[s] {
			return s, nil
		}
	case kindArray:
		if arr, ok := def.([]any); ok {
			out := make([]any, len(arr))
			for i, item := range arr {
				x, err := defaultValue(t.items, item)
				if err != nil {
					return nil, err
				}
				out[i] = x
			}
			return out, nil
		}
	case kindMap:
		if m, ok := def.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, item := range m {
				x, err := defaultValue(t.values, item)
				if err != nil {
					return nil, err
				}
				out[k] = x
			}
			return out, nil
		}
	case kindRecord:
		if m, ok := def.(map[string]any); ok {
			out := make(map[string]any, len(t.fields))
			for _, f := range t.fields {
				raw, present := m[f.name]
				if !present {
					if !f.hasDefault {
						return nil, incompatible("record default lacks field %s", f.name)
					}
					raw = f.def
				}
				x, err := defaultValue(f.typ, raw)
				if err != nil {
					return nil, err
				}
				out[f.name] = x
			}
			return out, nil
		}
	case kindUnion:
		// The Avro specification requires the default to match the first
		// branch; later versions accept any branch, so try them in order.
		for _, b := range t.branches {
			x, err := defaultValue(b, def)
			if err != nil {
				continue
			}
			if b.kind == kindNull {
				return nil, nil
			}
			return map[string]any{b.unionKey(): x}, nil
		}
		return nil, incompatible("union default matches none of its branches")
	}
	return nil, incompatible("default does not match %s", describe(t))
}
