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

// resolve converts v, a native value of writer type w, to a native value of
// reader type r.
func (rs resolver) resolve(w, r *Type, v any) (any, error) {
	if w.Kind == KindUnion {
		wb, inner, err := unwrapUnion(w, v)
		if err != nil {
			return nil, err
		}
		return rs.resolve(wb, r, inner)
	}
	if r.Kind == KindUnion {
		rb := rs.pickBranch(w, r)
		if rb == nil {
			return nil, incompatible("no branch of the reader union matches %s", w.String())
		}
		out, err := rs.resolve(w, rb, v)
		if err != nil {
			return nil, err
		}
		if rb.Kind == KindNull {
			return nil, nil
		}
		return map[string]any{rb.UnionKey(): out}, nil
	}
	switch r.Kind {
	case KindRecord:
		if w.Kind != KindRecord || !namesMatch(w, r) {
			return nil, incompatible("cannot read %s as %s", w.String(), r.String())
		}
		return rs.record(w, r, v)
	case KindEnum:
		if w.Kind != KindEnum || !namesMatch(w, r) {
			return nil, incompatible("cannot read %s as %s", w.String(), r.String())
		}
		s, ok := v.(string)
		if !ok {
			return nil, incompatible("%s value is %T, want string", w.String(), v)
		}
		if r.symIdx[s] {
			return s, nil
		}
		if r.HasEnumDefault {
			return r.EnumDefault, nil
		}
		return nil, incompatible("symbol of %s is unknown to the reader enum, which has no default", w.String())
	case KindArray:
		if w.Kind != KindArray {
			return nil, incompatible("cannot read %s as array", w.String())
		}
		arr, ok := v.([]any)
		if !ok {
			return nil, incompatible("array value is %T", v)
		}
		out := make([]any, len(arr))
		for i, item := range arr {
			x, err := rs.resolve(w.Items, r.Items, item)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case KindMap:
		if w.Kind != KindMap {
			return nil, incompatible("cannot read %s as map", w.String())
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, incompatible("map value is %T", v)
		}
		out := make(map[string]any, len(m))
		for k, item := range m {
			x, err := rs.resolve(w.Values, r.Values, item)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case KindFixed:
		if w.Kind != KindFixed || w.Size != r.Size || !namesMatch(w, r) {
			return nil, incompatible("cannot read %s as %s", w.String(), r.String())
		}
		if w.Logical != r.Logical || !sameDecimal(w, r) {
			return nil, incompatible("cannot read %s as %s: logical types differ", w.String(), r.String())
		}
		return v, nil
	case KindNull:
		if w.Kind != KindNull {
			return nil, incompatible("cannot read %s as null", w.String())
		}
		return nil, nil
	default:
		return rs.primitive(w, r, v)
	}
}

// unwrapUnion returns the branch of union w that holds v, and the value
// inside goavro's union wrapper.
func unwrapUnion(w *Type, v any) (*Type, any, error) {
	if v == nil {
		for _, b := range w.Branches {
			if b.Kind == KindNull {
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
		for _, b := range w.Branches {
			if b.UnionKey() == key {
				return b, inner, nil
			}
		}
		return nil, nil, incompatible("union has no branch %q", key)
	}
	panic("unreachable")
}

// pickBranch returns the first reader branch that matches the writer type,
// preferring the same type over a promotion.
func (rs resolver) pickBranch(w, r *Type) *Type {
	sameType := func(b *Type) bool {
		if b.Kind != w.Kind {
			return false
		}
		switch b.Kind {
		case KindRecord, KindEnum, KindFixed:
			return namesMatch(w, b)
		}
		return true
	}
	for _, b := range r.Branches {
		if sameType(b) && b.Logical == w.Logical {
			return b
		}
	}
	for _, b := range r.Branches {
		if sameType(b) {
			return b
		}
	}
	for _, b := range r.Branches {
		if promotable(w.Kind, b.Kind) {
			return b
		}
	}
	if rs.narrow {
		for _, b := range r.Branches {
			if narrowable(w.Kind, b.Kind) {
				return b
			}
		}
	}
	return nil
}

func promotable(w, r Kind) bool {
	switch w {
	case KindInt:
		return r == KindLong || r == KindFloat || r == KindDouble
	case KindLong:
		return r == KindFloat || r == KindDouble
	case KindFloat:
		return r == KindDouble
	case KindString:
		return r == KindBytes
	case KindBytes:
		return r == KindString
	}
	return false
}

func narrowable(w, r Kind) bool {
	return (w == KindLong && r == KindInt) || (w == KindDouble && r == KindFloat)
}

func (rs resolver) record(w, r *Type, v any) (any, error) {
	vm, ok := v.(map[string]any)
	if !ok {
		return nil, incompatible("%s value is %T, want map", w.String(), v)
	}
	out := make(map[string]any, len(r.Fields))
	for _, rf := range r.Fields {
		if wf := findField(w, rf); wf != nil {
			if wv, present := vm[wf.Name]; present {
				x, err := rs.resolve(wf.Type, rf.Type, wv)
				if err != nil {
					return nil, fmt.Errorf("field %s: %w", rf.Name, err)
				}
				out[rf.Name] = x
				continue
			}
		}
		if !rf.HasDefault {
			return nil, incompatible("field %s of %s is missing from the data and has no default", rf.Name, r.Name)
		}
		d, err := defaultValue(rf.Type, rf.Default)
		if err != nil {
			return nil, fmt.Errorf("field %s default: %w", rf.Name, err)
		}
		out[rf.Name] = d
	}
	return out, nil
}

// findField finds the writer field that feeds reader field rf: by name, by
// one of the reader field's aliases, or by a writer field alias naming it.
func findField(w *Type, rf *RecordField) *RecordField {
	if i, ok := w.fieldIdx[rf.Name]; ok {
		return w.Fields[i]
	}
	for _, a := range rf.Aliases {
		if i, ok := w.fieldIdx[a]; ok {
			return w.Fields[i]
		}
	}
	for _, wf := range w.Fields {
		for _, a := range wf.Aliases {
			if a == rf.Name {
				return wf
			}
		}
	}
	return nil
}

func (rs resolver) primitive(w, r *Type, v any) (any, error) {
	if w.Kind == r.Kind && w.Logical == r.Logical {
		if w.Logical == "decimal" && !sameDecimal(w, r) {
			return nil, incompatible("cannot read %s as %s: decimal precision or scale differ", w.String(), r.String())
		}
		return v, nil
	}
	if w.Logical == "decimal" || r.Logical == "decimal" {
		return nil, incompatible("cannot read %s as %s", w.String(), r.String())
	}
	if w.Kind != r.Kind && !promotable(w.Kind, r.Kind) && !(rs.narrow && narrowable(w.Kind, r.Kind)) {
		return nil, incompatible("cannot read %s as %s", w.String(), r.String())
	}
	b, err := toBase(w, v)
	if err != nil {
		return nil, err
	}
	p, err := convertBase(b, r.Kind)
	if err != nil {
		return nil, err
	}
	return fromBase(r, p)
}

// toBase turns goavro's native value of a logical type into the value of its
// underlying primitive type.
func toBase(n *Type, v any) (any, error) {
	switch n.Logical {
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
func fromBase(n *Type, v any) (any, error) {
	switch n.Logical {
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
func convertBase(v any, to Kind) (any, error) {
	bad := func() (any, error) { return nil, incompatible("%T value cannot be read as %s", v, to) }
	switch to {
	case KindBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case KindInt:
		switch x := v.(type) {
		case int32:
			return x, nil
		case int64:
			if x < math.MinInt32 || x > math.MaxInt32 {
				return nil, incompatible("long value out of int range")
			}
			return int32(x), nil
		}
	case KindLong:
		switch x := v.(type) {
		case int32:
			return int64(x), nil
		case int64:
			return x, nil
		}
	case KindFloat:
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
	case KindDouble:
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
	case KindString:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case KindBytes:
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
func defaultValue(t *Type, def any) (any, error) {
	switch t.Kind {
	case KindNull:
		if def == nil {
			return nil, nil
		}
	case KindBoolean:
		if b, ok := def.(bool); ok {
			return b, nil
		}
	case KindInt:
		if n, ok := def.(json.Number); ok {
			x, err := n.Int64()
			if err == nil && x >= math.MinInt32 && x <= math.MaxInt32 {
				return fromBase(t, int32(x))
			}
		}
	case KindLong:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Int64(); err == nil {
				return fromBase(t, x)
			}
		}
	case KindFloat:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Float64(); err == nil {
				return float32(x), nil
			}
		}
	case KindDouble:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Float64(); err == nil {
				return x, nil
			}
		}
	case KindString:
		if s, ok := def.(string); ok {
			return s, nil
		}
	case KindBytes, KindFixed:
		if t.Logical == "decimal" {
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
			if t.Kind == KindFixed && len(b) != t.Size {
				return nil, incompatible("fixed default has the wrong size")
			}
			return b, nil
		}
	case KindEnum:
		if s, ok := def.(string); ok && t.symIdx[s] {
			return s, nil
		}
	case KindArray:
		if arr, ok := def.([]any); ok {
			out := make([]any, len(arr))
			for i, item := range arr {
				x, err := defaultValue(t.Items, item)
				if err != nil {
					return nil, err
				}
				out[i] = x
			}
			return out, nil
		}
	case KindMap:
		if m, ok := def.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, item := range m {
				x, err := defaultValue(t.Values, item)
				if err != nil {
					return nil, err
				}
				out[k] = x
			}
			return out, nil
		}
	case KindRecord:
		if m, ok := def.(map[string]any); ok {
			out := make(map[string]any, len(t.Fields))
			for _, f := range t.Fields {
				raw, present := m[f.Name]
				if !present {
					if !f.HasDefault {
						return nil, incompatible("record default lacks field %s", f.Name)
					}
					raw = f.Default
				}
				x, err := defaultValue(f.Type, raw)
				if err != nil {
					return nil, err
				}
				out[f.Name] = x
			}
			return out, nil
		}
	case KindUnion:
		// The Avro specification requires the default to match the first
		// branch; later versions accept any branch, so try them in order.
		for _, b := range t.Branches {
			x, err := defaultValue(b, def)
			if err != nil {
				continue
			}
			if b.Kind == KindNull {
				return nil, nil
			}
			return map[string]any{b.UnionKey(): x}, nil
		}
		return nil, incompatible("union default matches none of its branches")
	}
	return nil, incompatible("default does not match %s", t.String())
}
