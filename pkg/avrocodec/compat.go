package avrocodec

import "fmt"

// CheckCompatible reports whether data written with writer can always be
// resolved into reader (Avro schema resolution, as Decode performs it). It
// returns nil when it can, and otherwise an error naming the first field or
// type that cannot be resolved. Checking both directions tells whether two
// versions are fully compatible. Defaults are checked for being convertible
// to their field's type.
func CheckCompatible(writer, reader *Schema) error {
	if err := compatible(writer.root, reader.root, map[[2]*node]bool{}); err != nil {
		return fmt.Errorf("read %s data as %s: %w", writer.FullName, reader.FullName, err)
	}
	return nil
}

func compatible(w, r *node, seen map[[2]*node]bool) error {
	key := [2]*node{w, r}
	if seen[key] {
		return nil
	}
	seen[key] = true
	if w.kind == kindUnion {
		for _, b := range w.branches {
			if err := compatible(b, r, seen); err != nil {
				return err
			}
		}
		return nil
	}
	if r.kind == kindUnion {
		rb := resolver{}.pickBranch(w, r)
		if rb == nil {
			return incompatible("no branch of the reader union matches %s", describe(w))
		}
		return compatible(w, rb, seen)
	}
	switch r.kind {
	case kindRecord:
		if w.kind != kindRecord || !namesMatch(w, r) {
			return incompatible("cannot read %s as %s", describe(w), describe(r))
		}
		for _, rf := range r.fields {
			if wf := findField(w, rf); wf != nil {
				if err := compatible(wf.typ, rf.typ, seen); err != nil {
					return fmt.Errorf("field %s: %w", rf.name, err)
				}
				continue
			}
			if !rf.hasDefault {
				return incompatible("field %s of %s is missing from the writer and has no default", rf.name, r.name)
			}
			if _, err := defaultValue(rf.typ, rf.def); err != nil {
				return fmt.Errorf("field %s default: %w", rf.name, err)
			}
		}
		return nil
	case kindEnum:
		if w.kind != kindEnum || !namesMatch(w, r) {
			return incompatible("cannot read %s as %s", describe(w), describe(r))
		}
		if r.hasEnDef {
			return nil
		}
		for _, s := range w.symbols {
			if !r.symIdx[s] {
				return incompatible("symbol %s of %s is unknown to the reader enum, which has no default", s, w.name)
			}
		}
		return nil
	case kindArray:
		if w.kind != kindArray {
			return incompatible("cannot read %s as array", describe(w))
		}
		return compatible(w.items, r.items, seen)
	case kindMap:
		if w.kind != kindMap {
			return incompatible("cannot read %s as map", describe(w))
		}
		return compatible(w.values, r.values, seen)
	case kindFixed:
		if w.kind != kindFixed || w.size != r.size || !namesMatch(w, r) || w.logical != r.logical || w.decimal != r.decimal {
			return incompatible("cannot read %s as %s", describe(w), describe(r))
		}
		return nil
	}
	if w.kind == r.kind || promotable(w.kind, r.kind) {
		if (w.logical == "decimal" || r.logical == "decimal") && (w.logical != r.logical || w.decimal != r.decimal) {
			return incompatible("cannot read %s as %s", describe(w), describe(r))
		}
		return nil
	}
	return incompatible("cannot read %s as %s", describe(w), describe(r))
}
