package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// maxZeroDepth bounds the zero value of nested records; a valid Avro schema
// never needs it (recursion goes through a union, an array or a map), it only
// keeps a malformed one from recursing forever.
const maxZeroDepth = 64

// removed returns the value a removed field f takes: null when its type is a
// union with null, else its schema default, else the zero value of its type
// that still encodes. The value is built fresh on every call.
func removed(f *avrocodec.RecordField) (any, error) {
	if f.Type.Nullable() {
		return nil, nil
	}
	if f.HasDefault {
		v, err := defaultOf(f.Type, f.Default)
		if err == nil {
			return v, nil
		}
		// A default goavro accepted but this package cannot convert:
		// the zero value encodes too.
	}
	return zeroOf(f.Type, 0)
}

// zeroOf returns the zero value of t that encodes: false, 0, "", empty
// bytes, a fixed of zero bytes, the first enum symbol, an empty array or
// map, a record whose every field is removed, and for a union the zero of
// its null branch or else of its first branch.
func zeroOf(t *avrocodec.Type, depth int) (any, error) {
	if depth > maxZeroDepth {
		return nil, fmt.Errorf("redact: schema nests records deeper than %d levels without a null, array or map", maxZeroDepth)
	}
	switch t.Kind {
	case avrocodec.KindNull:
		return nil, nil
	case avrocodec.KindBoolean:
		return false, nil
	case avrocodec.KindInt:
		return fromBase(t, int32(0)), nil
	case avrocodec.KindLong:
		return fromBase(t, int64(0)), nil
	case avrocodec.KindFloat:
		return float32(0), nil
	case avrocodec.KindDouble:
		return float64(0), nil
	case avrocodec.KindString:
		return "", nil
	case avrocodec.KindBytes:
		if t.Logical == "decimal" {
			return new(big.Rat), nil
		}
		return []byte{}, nil
	case avrocodec.KindFixed:
		if t.Logical == "decimal" {
			return new(big.Rat), nil
		}
		return make([]byte, t.Size), nil
	case avrocodec.KindEnum:
		if len(t.Symbols) == 0 {
			return nil, fmt.Errorf("redact: enum %s has no symbols", t.Name)
		}
		return t.Symbols[0], nil
	case avrocodec.KindArray:
		return []any{}, nil
	case avrocodec.KindMap:
		return map[string]any{}, nil
	case avrocodec.KindRecord:
		out := make(map[string]any, len(t.Fields))
		for _, f := range t.Fields {
			var v any
			var err error
			if f.Type.Nullable() {
				v = nil
			} else if f.HasDefault {
				if v, err = defaultOf(f.Type, f.Default); err != nil {
					v, err = zeroOf(f.Type, depth+1)
				}
			} else {
				v, err = zeroOf(f.Type, depth+1)
			}
			if err != nil {
				return nil, err
			}
			out[f.Name] = v
		}
		return out, nil
	case avrocodec.KindUnion:
		if t.Nullable() {
			return nil, nil
		}
		if len(t.Branches) == 0 {
			return nil, fmt.Errorf("redact: union without branches")
		}
		v, err := zeroOf(t.Branches[0], depth+1)
		if err != nil {
			return nil, err
		}
		return map[string]any{t.Branches[0].UnionKey(): v}, nil
	}
	return nil, fmt.Errorf("redact: unknown avro type %s", t.Kind)
}

// fromBase turns a primitive value into goavro's native form for the logical
// type of t (timestamps and dates are time.Time, times time.Duration).
func fromBase(t *avrocodec.Type, v any) any {
	switch t.Logical {
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
func defaultOf(t *avrocodec.Type, def any) (any, error) {
	bad := fmt.Errorf("redact: default does not fit avro type %s", t.Kind)
	switch t.Kind {
	case avrocodec.KindNull:
		if def == nil {
			return nil, nil
		}
	case avrocodec.KindBoolean:
		if b, ok := def.(bool); ok {
			return b, nil
		}
	case avrocodec.KindInt:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Int64(); err == nil && x >= math.MinInt32 && x <= math.MaxInt32 {
				return fromBase(t, int32(x)), nil
			}
		}
	case avrocodec.KindLong:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Int64(); err == nil {
				return fromBase(t, x), nil
			}
		}
	case avrocodec.KindFloat:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Float64(); err == nil {
				return float32(x), nil
			}
		}
	case avrocodec.KindDouble:
		if n, ok := def.(json.Number); ok {
			if x, err := n.Float64(); err == nil {
				return x, nil
			}
		}
	case avrocodec.KindString:
		if s, ok := def.(string); ok {
			return s, nil
		}
	case avrocodec.KindBytes, avrocodec.KindFixed:
		s, ok := def.(string)
		if !ok || t.Logical == "decimal" {
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
		if t.Kind == avrocodec.KindFixed && len(b) != t.Size {
			break
		}
		return b, nil
	case avrocodec.KindEnum:
		if s, ok := def.(string); ok {
			for _, sym := range t.Symbols {
				if sym == s {
					return s, nil
				}
			}
		}
	case avrocodec.KindArray:
		arr, ok := def.([]any)
		if !ok {
			break
		}
		out := make([]any, len(arr))
		for i, item := range arr {
			x, err := defaultOf(t.Items, item)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case avrocodec.KindMap:
		m, ok := def.(map[string]any)
		if !ok {
			break
		}
		out := make(map[string]any, len(m))
		for k, item := range m {
			x, err := defaultOf(t.Values, item)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case avrocodec.KindRecord:
		m, ok := def.(map[string]any)
		if !ok {
			break
		}
		out := make(map[string]any, len(t.Fields))
		for _, f := range t.Fields {
			d, ok := m[f.Name]
			if !ok {
				d, ok = f.Default, f.HasDefault
			}
			if !ok {
				return nil, bad
			}
			x, err := defaultOf(f.Type, d)
			if err != nil {
				return nil, err
			}
			out[f.Name] = x
		}
		return out, nil
	case avrocodec.KindUnion:
		if len(t.Branches) == 0 {
			break
		}
		first := t.Branches[0]
		x, err := defaultOf(first, def)
		if err != nil {
			return nil, err
		}
		if first.Kind == avrocodec.KindNull {
			return nil, nil
		}
		return map[string]any{first.UnionKey(): x}, nil
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
