package shred

import (
	"context"
	"errors"
	"sort"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// Erased is the value DecryptValue puts in place of a field whose data key
// was destroyed by an erasure.
const Erased = "(erased)"

// Decrypted says what DecryptValue did, by field path (the path syntax of
// the audit's treated_fields: "email", "items[].sku", "attrs{}"), sorted,
// without duplicates. It holds paths, never values.
type Decrypted struct {
	// Fields were decrypted.
	Fields []string
	// Erased fields hold a value of ciphertext form whose key the ring
	// holds as destroyed, or does not know once it read the keys topic to
	// its end: their value is now Erased (a string field) or nil (a bytes
	// field). A value of that form that was never a ciphertext (a
	// customer's string in a kept field that happens to have the form,
	// "cg1:" and base64url of a header naming an unknown key id) is listed
	// too: a ring cannot tell an id it destroyed and compaction removed
	// from one that was never written (package documentation,
	// Guarantees). Do not build an erasure report on Erased alone.
	Erased []string
}

// Decrypter decrypts ciphertext; *Ring fits.
type Decrypter interface {
	DecryptString(ctx context.Context, s string) (string, error)
	DecryptBytes(ctx context.Context, c []byte) ([]byte, error)
}

// DecryptValue returns a copy of v, a decoded Avro value of type t in
// goavro's native form (what avrocodec decodes: a record is a
// map[string]any, a union {"branch": value}), with every string and bytes
// value that is ciphertext of this package decrypted, map keys included;
// t is the schema's Root(). A ciphertext whose subject was erased becomes
// Erased (or nil for bytes) and is listed in Decrypted.Erased, and so does
// any value of ciphertext form under a key id the ring does not know (see
// Decrypted.Erased: a plaintext of that form is not told apart). Any other
// error (brokers unreachable, a ciphertext that does not verify, no KEK)
// stops the walk: nothing is returned in part. v is not modified.
func DecryptValue(ctx context.Context, d Decrypter, t *avrocodec.Type, v any) (any, Decrypted, error) {
	w := &walker{ctx: ctx, d: d, done: map[string]bool{}, erased: map[string]bool{}}
	out, err := w.value(v, t, "")
	if err != nil {
		return nil, Decrypted{}, err
	}
	return out, Decrypted{Fields: sortedSet(w.done), Erased: sortedSet(w.erased)}, nil
}

type walker struct {
	ctx          context.Context
	d            Decrypter
	done, erased map[string]bool
}

func (w *walker) value(v any, t *avrocodec.Type, path string) (any, error) {
	if t == nil || v == nil {
		return v, nil
	}
	switch t.Kind {
	case avrocodec.KindString:
		x, ok := v.(string)
		if !ok || !IsCiphertext(x) {
			return v, nil
		}
		p, err := w.d.DecryptString(w.ctx, x)
		if errors.Is(err, ErrErased) {
			w.erased[path] = true
			return Erased, nil
		}
		if err != nil {
			return nil, err
		}
		w.done[path] = true
		return p, nil
	case avrocodec.KindBytes:
		x, ok := v.([]byte)
		if !ok || !IsCiphertextBytes(x) {
			return v, nil
		}
		p, err := w.d.DecryptBytes(w.ctx, x)
		if errors.Is(err, ErrErased) {
			w.erased[path] = true
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		w.done[path] = true
		return p, nil
	case avrocodec.KindRecord:
		x, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		for _, f := range t.Fields {
			e, ok := x[f.Name]
			if !ok {
				continue
			}
			val, err := w.value(e, f.Type, join(path, f.Name))
			if err != nil {
				return nil, err
			}
			out[f.Name] = val
		}
		return out, nil
	case avrocodec.KindArray:
		x, ok := v.([]any)
		if !ok {
			return v, nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			val, err := w.value(e, t.Items, path+"[]")
			if err != nil {
				return nil, err
			}
			out[i] = val
		}
		return out, nil
	case avrocodec.KindMap:
		x, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			val, err := w.value(e, t.Values, path+"{}")
			if err != nil {
				return nil, err
			}
			key := k
			if IsCiphertext(k) {
				pk, err := w.d.DecryptString(w.ctx, k)
				switch {
				case errors.Is(err, ErrErased):
					w.erased[path+"{}"] = true
				case err != nil:
					return nil, err
				default:
					w.done[path+"{}"] = true
					key = pk
				}
			}
			out[key] = val
		}
		return out, nil
	case avrocodec.KindUnion:
		x, ok := v.(map[string]any)
		if !ok || len(x) != 1 {
			return v, nil
		}
		for _, b := range t.Branches {
			e, ok := x[b.UnionKey()]
			if !ok {
				continue
			}
			val, err := w.value(e, b, path)
			if err != nil {
				return nil, err
			}
			if val == nil {
				return nil, nil // an erased bytes branch: null
			}
			return map[string]any{b.UnionKey(): val}, nil
		}
	}
	return v, nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func sortedSet(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
