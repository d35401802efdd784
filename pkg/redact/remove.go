package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"time"
)

// maxZeroDepth bounds the zero value of nested records; a valid Avro schema
// never needs it (recursion goes through a union, an array or a map), it only
// keeps a malformed one from recursing forever.
const maxZeroDepth = 64

// removed returns the value a removed field f takes: null when its type is a
// union with null, else its schema default, else the zero value of its type
// that still encodes. The value is built fresh on every call.
func removed(f *fieldDef) (any, error) {
	if f.typ.nullable() {
		return nil, nil
	}
	if f.hasDef {
		v, err := defaultOf(f.typ, f.def)
		if err == nil {
			return v, nil
		}
		// A default goavro accepted but this package cannot convert:
		// the zero value encodes too.
	}
	return zeroOf(f.typ, 0)
}

// zeroOf returns the zero value of t that encodes: false, 0, "", empty
// bytes, a fixed of zero bytes, the first enum symbol, an empty array or
// map, a record whose every field is removed, and for a union the zero of
// its null branch or else of its first branch.
func zeroOf(t *typ, depth int) (any, error) {
	if depth > maxZeroDepth {
		return nil, fmt.Errorf("redact: schema nests records deeper than %d levels without a null, array or map", maxZeroDepth)
	}
	switch t.kind {
	case "null":
		return nil, nil
	case "boolean":
		return false, nil
	case "int":
		return fromBase(t, int32(0)), nil
	case "long":
		return fromBase(t, int64(0)), nil
	case "float":
		return float32(0), nil
	case "double":
		return float64(0), nil
	case "string":
		return "", nil
	case "bytes":
		if t.logical == "decimal" {
			return new(big.Rat), nil
		}
		return []byte{}, nil
	case "fixed":
		if t.logical == "decimal" {
			return new(big.Rat), nil
		}
		return make([]byte, t.size), nil
	case "enum":
		if len(t.symbols) == 0 {
			return nil, fmt.Errorf("redact: enum %s has no symbols", t.name)
		}
		return t.symbols[0], nil
	case "array":
		return []any{}, nil
	case "map":
		return map[string]any{}, nil
	case "record":
		out := make(map[string]any, len(t.fields))
		for _, f := range t.fields {
			var v any
			var err error
			if f.typ.nullable() {
				v = nil
			} else if f.hasDef {
				if v, err = defaultOf(f.typ, f.def); err != nil {
					v, err = zeroOf(f.typ, depth+1)
				}
			} else {
				v, err = zeroOf(f.typ, depth+1)
			}
			if err != nil {
				return nil, err
			}
			out[f.name] = v
		}
		return out, nil
	case "union":
		if t.nullable() {
			return nil, nil
		}
		if len(t.branches) == 0 {
			return nil, fmt.Errorf("redact: union without branches")
		}
		v, err := zeroOf(t.branches[0], depth+1)
		if err != nil {
			return nil, err
		}
		return map[string]any{t.branches[0].unionKey(): v}, nil
	}
	return nil, fmt.Errorf("redact: unknown avro type %s", t.kind)
}

// fromBase turns a primitive value into goavro's native form for the logical
// type of t (timestamps and dates are time.Time, times time.Duration).
func fromBase(t *typ, v any) any {
	switch t.logical {
	case "timestamp-millis":
		if x, ok := v.(int64); ok {
			return time.UnixMilli(x).UTC()
		}
	case "timestamp-micros":
		if x, ok := v.(int64); ok {
			return time.UnixMicro(x).UTC()
		}
	case "date":
		if x, ok := v.(int32); ok {
			return time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(x))
		}
	case "time-millis":
		if x, ok := v.(int32); ok {
			return time.Duration(x) * time.Millisecond
		}
	case "time-micros":
		if x, ok := v.(int64); ok {
			return time.Duration(x) * time.Microsecond
		}
	}
	return v
}

// defaultOf converts a field default (JSON, numbers as json.Number) into
// goavro's native form for t. A union default belongs to the first branch.
func defaultOf(t *typ, def any) (any, error) {
	bad := fmt.Errorf("redact: default does not fit avro type %s", t.kind)
	switch t.kind {
	case "null":
		if def == nil {
			return nil, nil
		}
	case "boolean":
		if b, ok := def.(bool); ok {
			return b, nil
		}
	case "int":
		if n, ok := def.(json.Number); ok {
			if x, err := n.Int64(); err == nil && x >= math.MinInt32 && x <= math.MaxInt32 {
				return fromBase(t, int32(x)), nil
			}
		}
	case "long":
		if n, ok := def.(json.Number); ok {
			if x, err := n.Int64(); err == nil {
				return fromBase(t, x), nil
			}
		}
	case "float":
		if n, ok := def.(json.Number); ok {
			if x, err := n.Float64(); err == nil {
				return float32(x), nil
			}
		}
	case "double":
		if n, ok := def.(json.Number); ok {
			if x, err := n.Float64(); err == nil {
				return x, nil
			}
		}
	case "string":
		if s, ok := def.(string); ok {
			return s, nil
		}
	case "bytes", "fixed":
		s, ok := def.(string)
		if !ok || t.logical == "decimal" {
			break
		}
		// Avro writes bytes defaults as strings of code points 0-255.
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 255 {
				return nil, bad
			}
			b = append(b, byte(r))
		}
		if t.kind == "fixed" && len(b) != t.size {
			break
		}
		return b, nil
	case "enum":
		if s, ok := def.(string); ok {
			for _, sym := range t.symbols {
				if sym == s {
					return s, nil
				}
			}
		}
	case "array":
		arr, ok := def.([]any)
		if !ok {
			break
		}
		out := make([]any, len(arr))
		for i, item := range arr {
			x, err := defaultOf(t.items, item)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case "map":
		m, ok := def.(map[string]any)
		if !ok {
			break
		}
		out := make(map[string]any, len(m))
		for k, item := range m {
			x, err := defaultOf(t.values, item)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case "record":
		m, ok := def.(map[string]any)
		if !ok {
			break
		}
		out := make(map[string]any, len(t.fields))
		for _, f := range t.fields {
			d, ok := m[f.name]
			if !ok {
				d, ok = f.def, f.hasDef
			}
			if !ok {
				return nil, bad
			}
			x, err := defaultOf(f.typ, d)
			if err != nil {
				return nil, err
			}
			out[f.name] = x
		}
		return out, nil
	case "union":
		if len(t.branches) == 0 {
			break
		}
		first := t.branches[0]
		x, err := defaultOf(first, def)
		if err != nil {
			return nil, err
		}
		if first.kind == "null" {
			return nil, nil
		}
		return map[string]any{first.unionKey(): x}, nil
	}
	return nil, bad
}

// same reports whether two native values are equal, comparing times as
// instants. It decides whether a treatment changed a field.
func same(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !same(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !same(x[i], y[i]) {
				return false
			}
		}
		return true
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case *big.Rat:
		y, ok := b.(*big.Rat)
		return ok && x != nil && y != nil && x.Cmp(y) == 0
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool, int, int32, int64, float32, float64, time.Duration:
		return a == b
	}
	return false
}
