package avrocodec

import "strings"

// Field returns the value at path in a decoded record value, reading through
// goavro's union wrappers, so that callers need not know them. A union that
// holds null yields (nil, true).
//
// Paths use the syntax of Schema.Annotations: dotted through nested records
// ("shipping_address.city"), "[]" after an array field and "{}" after a map
// field collect the rest of the path from every item into a []any
// ("items[].sku" gives one value per line item; items whose rest of path is
// missing are skipped). The result is unwrapped too: a ["null","string"]
// field gives a string, not map[string]any{"string": ...}.
//
// ok is false when a field on the path does not exist or a value on the path
// is not a record (or array/map where [] / {} says so).
//
// Union wrappers are recognised by their key: a full type name (contains a
// dot), a primitive type name, "array" or "map". Record fields named like a
// primitive type inside a record with a single field are therefore read as
// a union wrapper; consentgate schemas use namespaces and have no such
// records.
func Field(value map[string]any, path string) (any, bool) {
	if path == "" {
		return nil, false
	}
	return lookup(value, strings.Split(path, "."))
}

// StringField returns the string at path (see Field). ok is false when the
// path does not exist or does not hold a string (null included).
func StringField(value map[string]any, path string) (string, bool) {
	v, ok := Field(value, path)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

// Unwrap returns the value inside a goavro union wrapper
// (map[string]any{"string": "x"} gives "x") and any other value unchanged.
func Unwrap(v any) any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return v
	}
	for k, inner := range m {
		if isUnionKey(k) {
			return inner
		}
	}
	return v
}

func isUnionKey(k string) bool {
	if strings.Contains(k, ".") {
		return true
	}
	switch k {
	case "null", "boolean", "int", "long", "float", "double", "bytes", "string", "array", "map":
		return true
	}
	return false
}

func lookup(cur any, segs []string) (any, bool) {
	cur = Unwrap(cur)
	if len(segs) == 0 {
		return cur, true
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, false
	}
	seg := segs[0]
	var each string
	switch {
	case strings.HasSuffix(seg, "[]"):
		seg, each = strings.TrimSuffix(seg, "[]"), "[]"
	case strings.HasSuffix(seg, "{}"):
		seg, each = strings.TrimSuffix(seg, "{}"), "{}"
	}
	v, ok := m[seg]
	if !ok {
		return nil, false
	}
	v = Unwrap(v)
	switch each {
	case "[]":
		if v == nil {
			return nil, true
		}
		arr, ok := v.([]any)
		if !ok {
			return nil, false
		}
		out := make([]any, 0, len(arr))
		for _, item := range arr {
			if x, ok := lookup(item, segs[1:]); ok {
				out = append(out, x)
			}
		}
		return out, true
	case "{}":
		if v == nil {
			return nil, true
		}
		mv, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		out := make([]any, 0, len(mv))
		for _, item := range mv {
			if x, ok := lookup(item, segs[1:]); ok {
				out = append(out, x)
			}
		}
		return out, true
	}
	return lookup(v, segs[1:])
}
