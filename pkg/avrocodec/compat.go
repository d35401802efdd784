package avrocodec

import "fmt"

// CheckCompatible reports whether data written with writer can always be
// resolved into reader (Avro schema resolution, as Decode performs it). It
// returns nil when it can, and otherwise an error naming the first field or
// type that cannot be resolved. Checking both directions tells whether two
// versions are fully compatible. Defaults are checked for being convertible
// to their field's type.
func CheckCompatible(writer, reader *Schema) error {
	if err := compatible(writer.root, reader.root, map[[2]*Type]bool{}); err != nil {
		return fmt.Errorf("read %s data as %s: %w", writer.FullName, reader.FullName, err)
	}
	return nil
}

func compatible(w, r *Type, seen map[[2]*Type]bool) error {
	key := [2]*Type{w, r}
	if seen[key] {
		return nil
	}
	seen[key] = true
	if w.Kind == KindUnion {
		for _, b := range w.Branches {
			if err := compatible(b, r, seen); err != nil {
				return err
			}
		}
		return nil
	}
	if r.Kind == KindUnion {
		rb := resolver{}.pickBranch(w, r)
		if rb == nil {
			return incompatible("no branch of the reader union matches %s", w.String())
		}
		return compatible(w, rb, seen)
	}
	switch r.Kind {
	case KindRecord:
		if w.Kind != KindRecord || !namesMatch(w, r) {
			return incompatible("cannot read %s as %s", w.String(), r.String())
		}
		for _, rf := range r.Fields {
			if wf := findField(w, rf); wf != nil {
				if err := compatible(wf.Type, rf.Type, seen); err != nil {
					return fmt.Errorf("field %s: %w", rf.Name, err)
				}
				continue
			}
			if !rf.HasDefault {
				return incompatible("field %s of %s is missing from the writer and has no default", rf.Name, r.Name)
			}
			if _, err := defaultValue(rf.Type, rf.Default); err != nil {
				return fmt.Errorf("field %s default: %w", rf.Name, err)
			}
		}
		return nil
	case KindEnum:
		if w.Kind != KindEnum || !namesMatch(w, r) {
			return incompatible("cannot read %s as %s", w.String(), r.String())
		}
		if r.HasEnumDefault {
			return nil
		}
		for _, s := range w.Symbols {
			if !r.symIdx[s] {
				return incompatible("symbol %s of %s is unknown to the reader enum, which has no default", s, w.Name)
			}
		}
		return nil
	case KindArray:
		if w.Kind != KindArray {
			return incompatible("cannot read %s as array", w.String())
		}
		return compatible(w.Items, r.Items, seen)
	case KindMap:
		if w.Kind != KindMap {
			return incompatible("cannot read %s as map", w.String())
		}
		return compatible(w.Values, r.Values, seen)
	case KindFixed:
		if w.Kind != KindFixed || w.Size != r.Size || !namesMatch(w, r) || w.Logical != r.Logical || !sameDecimal(w, r) {
			return incompatible("cannot read %s as %s", w.String(), r.String())
		}
		return nil
	}
	if w.Kind == r.Kind || promotable(w.Kind, r.Kind) {
		if (w.Logical == "decimal" || r.Logical == "decimal") && (w.Logical != r.Logical || !sameDecimal(w, r)) {
			return incompatible("cannot read %s as %s", w.String(), r.String())
		}
		return nil
	}
	return incompatible("cannot read %s as %s", w.String(), r.String())
}
