package explain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// FieldError is a JSON event that does not fit its schema at one field. It
// names the field path and what was expected, never the value found, so it
// can be printed whatever the event holds.
type FieldError struct {
	// Path locates the field: names joined by dots, "[i]" for the i-th
	// array item (from 0) and "{}" for a map value, as in "items[1].sku".
	// Empty for the event itself.
	Path string
	// Problem says what is wrong, without the value.
	Problem string
}

// Error implements error as "<path>: <problem>".
func (e *FieldError) Error() string {
	path := e.Path
	if path == "" {
		path = "(event)"
	}
	return path + ": " + e.Problem
}

// ErrNoSchema matches (errors.Is) the error of ResolveSchema when no catalog
// schema accepts the event, or the named schema does not exist.
var ErrNoSchema = errors.New("no schema fits the event")

// ErrAmbiguousSchema matches the error of ResolveSchema when several catalog
// schemas accept the event and none was named.
var ErrAmbiguousSchema = errors.New("several schemas fit the event")

// DecodeObject reads one JSON object from data, keeping numbers exact (as
// json.Number), and rejects anything after it.
func DecodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("read json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("read json: more than one json value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("read json: want an object, got %s", jsonKind(v))
	}
	return obj, nil
}

// ToNative converts a plain JSON object (as DecodeObject returns it) into
// goavro's native form for schema s, ready for s.EncodeSingle.
//
// The JSON is the friendly form an engineer writes, not the Avro JSON
// encoding: unions are not wrapped (null, or the value of a branch, which is
// found by trying the branches in schema order; a value already wrapped as
// {"<branch>": value} is accepted too), records are objects with the
// schema's field names, arrays and maps are arrays and objects, enums are
// their symbol as a string. timestamp-millis and timestamp-micros take an
// RFC 3339 string ("2026-11-22T08:00:00.123Z") or a number of epoch
// milliseconds (microseconds); date takes "2006-01-02" or days since the
// epoch; time-millis/time-micros a number of milliseconds/microseconds;
// int and long an integral JSON number in range; decimal a number or a
// numeric string; bytes and fixed a string (its UTF-8 bytes). A field that
// is missing takes its schema default; without one it is an error, and so
// is a key that is no field of the record. Errors are *FieldError.
func ToNative(s *avrocodec.Schema, obj map[string]any) (map[string]any, error) {
	root, err := rootOf(s)
	if err != nil {
		return nil, err
	}
	v, err := toNative(root, obj, "")
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// rootOf returns the model of s, which every Schema made by avrocodec has.
func rootOf(s *avrocodec.Schema) (*avrocodec.Type, error) {
	if s.Root() == nil {
		return nil, fmt.Errorf("schema %s: no type model (not made by avrocodec)", s.FullName)
	}
	return s.Root(), nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
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

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func mismatch(t *avrocodec.Type, v any, path string) error {
	return &FieldError{Path: path, Problem: "want " + t.String() + ", got " + jsonKind(v)}
}

func toNative(t *avrocodec.Type, v any, path string) (any, error) {
	switch t.Kind {
	case avrocodec.KindNull:
		if v != nil {
			return nil, mismatch(t, v, path)
		}
		return nil, nil
	case avrocodec.KindUnion:
		return unionToNative(t, v, path)
	case avrocodec.KindRecord:
		return recordToNative(t, v, path)
	case avrocodec.KindArray:
		arr, ok := v.([]any)
		if !ok {
			return nil, mismatch(t, v, path)
		}
		out := make([]any, len(arr))
		for i, item := range arr {
			n, err := toNative(t.Items, item, path+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case avrocodec.KindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, mismatch(t, v, path)
		}
		out := make(map[string]any, len(m))
		for k, item := range m {
			n, err := toNative(t.Values, item, path+"{}")
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case avrocodec.KindEnum:
		s, ok := v.(string)
		if !ok {
			return nil, mismatch(t, v, path)
		}
		if !t.HasSymbol(s) {
			return nil, &FieldError{Path: path, Problem: "not a symbol of enum " + t.Name + " (" + strings.Join(t.Symbols, ", ") + ")"}
		}
		return s, nil
	case avrocodec.KindBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, mismatch(t, v, path)
		}
		return b, nil
	case avrocodec.KindString:
		s, ok := v.(string)
		if !ok {
			return nil, mismatch(t, v, path)
		}
		return s, nil
	case avrocodec.KindBytes, avrocodec.KindFixed:
		if t.Logical == "decimal" {
			return decimalToNative(t, v, path)
		}
		s, ok := v.(string)
		if !ok {
			return nil, mismatch(t, v, path)
		}
		if t.Kind == avrocodec.KindFixed && len(s) != t.Size {
			return nil, &FieldError{Path: path, Problem: fmt.Sprintf("want %d bytes for fixed %s", t.Size, t.Name)}
		}
		return []byte(s), nil
	case avrocodec.KindFloat, avrocodec.KindDouble:
		n, ok := v.(json.Number)
		if !ok {
			return nil, mismatch(t, v, path)
		}
		f, err := n.Float64()
		if err != nil {
			return nil, &FieldError{Path: path, Problem: "want a " + string(t.Kind) + ", the number is out of range"}
		}
		if t.Kind == avrocodec.KindFloat {
			return float32(f), nil
		}
		return f, nil
	case avrocodec.KindInt, avrocodec.KindLong:
		return integerToNative(t, v, path)
	}
	return nil, &FieldError{Path: path, Problem: "unsupported avro type " + string(t.Kind)}
}

func integerToNative(t *avrocodec.Type, v any, path string) (any, error) {
	switch t.Logical {
	case "timestamp-millis", "timestamp-micros":
		if s, ok := v.(string); ok {
			ts, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, &FieldError{Path: path, Problem: "want an RFC 3339 time such as 2026-11-22T08:00:00.123Z, or epoch " + unitOf(t.Logical)}
			}
			return ts.UTC(), nil
		}
	case "date":
		if s, ok := v.(string); ok {
			d, err := time.Parse(time.DateOnly, s)
			if err != nil {
				return nil, &FieldError{Path: path, Problem: "want a date such as 2026-11-22, or days since 1970-01-01"}
			}
			return d.UTC(), nil
		}
	}
	n, ok := v.(json.Number)
	if !ok {
		if t.Logical != "" {
			return nil, &FieldError{Path: path, Problem: "want " + t.String() + " as a string or a number, got " + jsonKind(v)}
		}
		return nil, mismatch(t, v, path)
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return nil, &FieldError{Path: path, Problem: "want an integer in the range of " + string(t.Kind)}
	}
	if t.Kind == avrocodec.KindInt && (i < math.MinInt32 || i > math.MaxInt32) {
		return nil, &FieldError{Path: path, Problem: "want an integer in the range of int (32 bits)"}
	}
	switch t.Logical {
	case "timestamp-millis":
		return time.UnixMilli(i).UTC(), nil
	case "timestamp-micros":
		return time.UnixMicro(i).UTC(), nil
	case "date":
		return time.Unix(i*86400, 0).UTC(), nil
	case "time-millis":
		return time.Duration(i) * time.Millisecond, nil
	case "time-micros":
		return time.Duration(i) * time.Microsecond, nil
	}
	if t.Kind == avrocodec.KindInt {
		return int32(i), nil
	}
	return i, nil
}

func unitOf(logical string) string {
	if logical == "timestamp-micros" {
		return "microseconds"
	}
	return "milliseconds"
}

func decimalToNative(t *avrocodec.Type, v any, path string) (any, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return nil, &FieldError{Path: path, Problem: "want a decimal as a number or a string, got " + jsonKind(v)}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, &FieldError{Path: path, Problem: "want a decimal number"}
	}
	return r, nil
}

func recordToNative(t *avrocodec.Type, v any, path string) (any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, mismatch(t, v, path)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if t.Field(k) == nil {
			return nil, &FieldError{Path: join(path, k), Problem: "no such field in " + t.Name}
		}
	}
	out := make(map[string]any, len(t.Fields))
	for _, f := range t.Fields {
		fp := join(path, f.Name)
		fv, present := m[f.Name]
		if !present {
			if !f.HasDefault {
				return nil, &FieldError{Path: fp, Problem: "missing, and the field has no default"}
			}
			d, err := defaultToNative(f.Type, f.Default, fp)
			if err != nil {
				return nil, err
			}
			out[f.Name] = d
			continue
		}
		n, err := toNative(f.Type, fv, fp)
		if err != nil {
			return nil, err
		}
		out[f.Name] = n
	}
	return out, nil
}

// defaultToNative converts a schema default: a union's default is a value of
// its first branch, and bytes and fixed defaults are strings of code points
// 0-255 (a decimal's the big-endian two's-complement unscaled value).
func defaultToNative(t *avrocodec.Type, def any, path string) (any, error) {
	if t.Kind != avrocodec.KindUnion {
		return defaultLeaf(t, def, path)
	}
	if len(t.Branches) == 0 {
		return nil, &FieldError{Path: path, Problem: "empty union"}
	}
	first := t.Branches[0]
	if first.Kind == avrocodec.KindNull {
		return nil, nil
	}
	n, err := defaultLeaf(first, def, path)
	if err != nil {
		return nil, err
	}
	return map[string]any{first.UnionKey(): n}, nil
}

func defaultLeaf(t *avrocodec.Type, def any, path string) (any, error) {
	s, isString := def.(string)
	if !isString || (t.Kind != avrocodec.KindBytes && t.Kind != avrocodec.KindFixed) {
		return toNative(t, def, path)
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 255 {
			return nil, &FieldError{Path: path, Problem: "bytes default with a code point above 255"}
		}
		b = append(b, byte(r))
	}
	if t.Logical != "decimal" {
		return b, nil
	}
	unscaled := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		unscaled.Sub(unscaled, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return new(big.Rat).SetFrac(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Scale)), nil)), nil
}

func unionToNative(t *avrocodec.Type, v any, path string) (any, error) {
	if v == nil {
		for _, b := range t.Branches {
			if b.Kind == avrocodec.KindNull {
				return nil, nil
			}
		}
		return nil, mismatch(t, v, path)
	}
	var (
		nonNull  int
		firstErr error
	)
	for _, b := range t.Branches {
		if b.Kind == avrocodec.KindNull {
			continue
		}
		nonNull++
		n, err := toNative(b, v, path)
		if err == nil {
			return map[string]any{b.UnionKey(): n}, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	// Accept the Avro JSON wrapping too: {"string": "..."}.
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, inner := range m {
			for _, b := range t.Branches {
				if b.Kind != avrocodec.KindNull && b.UnionKey() == k {
					n, err := toNative(b, inner, path)
					if err != nil {
						return nil, err
					}
					return map[string]any{k: n}, nil
				}
			}
		}
	}
	if nonNull == 1 {
		// One possible branch: its own error says the most (a nested
		// field, a bad timestamp).
		return nil, firstErr
	}
	return nil, mismatch(t, v, path)
}

// ResolveSchema picks the catalog schema of a JSON event and converts the
// event with ToNative.
//
// With name set, it uses that full name, trying its versions newest first
// (an event written with an older version, such as page_title of PageView
// v1, fits that version). Without, it tries every full name of the catalog
// the same way and takes the one schema that accepts the object; when none
// or several do, the error (ErrNoSchema, ErrAmbiguousSchema) lists them, and
// for none the first problem with each.
func ResolveSchema(cat *avrocodec.Catalog, obj map[string]any, name string) (*avrocodec.Schema, map[string]any, error) {
	if name != "" {
		versions := cat.Versions(name)
		if len(versions) == 0 {
			return nil, nil, fmt.Errorf("%w: no schema %s in the catalog (known: %s)", ErrNoSchema, name, strings.Join(names(cat), ", "))
		}
		s, native, err := fitName(versions, obj)
		if err != nil {
			return nil, nil, fmt.Errorf("event does not fit %s: %w", name, err)
		}
		return s, native, nil
	}
	type fit struct {
		s      *avrocodec.Schema
		native map[string]any
	}
	var (
		fits     []fit
		problems []string
	)
	for _, n := range names(cat) {
		s, native, err := fitName(cat.Versions(n), obj)
		if err != nil {
			problems = append(problems, "  "+n+": "+err.Error())
			continue
		}
		fits = append(fits, fit{s, native})
	}
	switch len(fits) {
	case 1:
		return fits[0].s, fits[0].native, nil
	case 0:
		return nil, nil, fmt.Errorf("%w; name one with --schema. Why each schema does not fit:\n%s", ErrNoSchema, strings.Join(problems, "\n"))
	}
	cands := make([]string, len(fits))
	for i, f := range fits {
		cands[i] = f.s.FullName
	}
	return nil, nil, fmt.Errorf("%w: %s; name one with --schema", ErrAmbiguousSchema, strings.Join(cands, ", "))
}

// fitName converts obj with the newest version of versions (oldest first)
// that accepts it; the error is the newest version's.
func fitName(versions []*avrocodec.Schema, obj map[string]any) (*avrocodec.Schema, map[string]any, error) {
	var newestErr error
	for i := len(versions) - 1; i >= 0; i-- {
		native, err := ToNative(versions[i], obj)
		if err == nil {
			return versions[i], native, nil
		}
		if newestErr == nil {
			newestErr = err
		}
	}
	return nil, nil, newestErr
}

// names lists the distinct full names of the catalog, sorted.
func names(cat *avrocodec.Catalog) []string {
	var out []string
	for _, s := range cat.Schemas() {
		if len(out) == 0 || out[len(out)-1] != s.FullName {
			out = append(out, s.FullName)
		}
	}
	return out
}

// FromNative converts a value in goavro's native form for schema s back
// into the friendly JSON form that ToNative reads: unions unwrapped, fields
// in schema order, timestamps as RFC 3339 strings in UTC. It is used to
// show a redacted event.
func FromNative(s *avrocodec.Schema, native map[string]any) (json.Marshaler, error) {
	root, err := rootOf(s)
	if err != nil {
		return nil, err
	}
	v, err := fromNative(root, native, "")
	if err != nil {
		return nil, err
	}
	return v.(object), nil
}

// object is a JSON object that keeps its keys in order.
type object []member

type member struct {
	key   string
	value any
}

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshal(m.key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without escaping <, > and & (URLs stay readable).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func nativeMismatch(t *avrocodec.Type, v any, path string) error {
	return &FieldError{Path: path, Problem: fmt.Sprintf("native value of Go type %T does not fit %s", v, t.String())}
}

func fromNative(t *avrocodec.Type, v any, path string) (any, error) {
	switch t.Kind {
	case avrocodec.KindNull:
		return nil, nil
	case avrocodec.KindUnion:
		if v == nil {
			return nil, nil
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, nativeMismatch(t, v, path)
		}
		for k, inner := range m {
			for _, b := range t.Branches {
				if b.UnionKey() == k {
					return fromNative(b, inner, path)
				}
			}
		}
		return nil, nativeMismatch(t, v, path)
	case avrocodec.KindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, nativeMismatch(t, v, path)
		}
		out := make(object, 0, len(t.Fields))
		for _, f := range t.Fields {
			fv, present := m[f.Name]
			if !present {
				continue
			}
			j, err := fromNative(f.Type, fv, join(path, f.Name))
			if err != nil {
				return nil, err
			}
			out = append(out, member{f.Name, j})
		}
		return out, nil
	case avrocodec.KindArray:
		arr, ok := v.([]any)
		if !ok {
			return nil, nativeMismatch(t, v, path)
		}
		out := make([]any, len(arr))
		for i, item := range arr {
			j, err := fromNative(t.Items, item, path+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	case avrocodec.KindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, nativeMismatch(t, v, path)
		}
		out := make(map[string]any, len(m))
		for k, item := range m {
			j, err := fromNative(t.Values, item, path+"{}")
			if err != nil {
				return nil, err
			}
			out[k] = j
		}
		return out, nil
	}
	switch x := v.(type) {
	case time.Time:
		switch t.Logical {
		case "date":
			return x.UTC().Format(time.DateOnly), nil
		case "timestamp-micros":
			return x.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), nil
		}
		return x.UTC().Format("2006-01-02T15:04:05.000Z07:00"), nil
	case time.Duration:
		if t.Logical == "time-micros" {
			return x.Microseconds(), nil
		}
		return x.Milliseconds(), nil
	case []byte:
		return string(x), nil
	case *big.Rat:
		if x == nil {
			return nil, nil
		}
		return json.Number(strings.TrimRight(strings.TrimRight(x.FloatString(18), "0"), ".")), nil
	case float32:
		return json.Number(strconv.FormatFloat(float64(x), 'g', -1, 32)), nil
	}
	return v, nil
}
