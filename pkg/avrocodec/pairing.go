package avrocodec

// ResolvedType and FeedingField expose the pairing that schema resolution
// (resolve.go) uses, so that code which judges the writer's fields against
// the reader's (package decision) pairs them exactly as Decode does.

// ResolvedType returns the type of reader r that data of writer type w (not
// a union) is read as: for a reader union the branch schema resolution
// picks, else r itself; nil when w cannot be read as r. Only the kinds that
// hold fields are checked in depth: a record needs a matching name (or
// alias), an array or a map the same kind.
func ResolvedType(w, r *Type) *Type {
	if w == nil || r == nil {
		return nil
	}
	if r.Kind == KindUnion {
		r = resolver{}.pickBranch(w, r)
		if r == nil {
			return nil
		}
	}
	switch w.Kind {
	case KindRecord:
		if r.Kind != KindRecord || !namesMatch(w, r) {
			return nil
		}
	case KindArray, KindMap:
		if r.Kind != w.Kind {
			return nil
		}
	}
	return r
}

// FeedingField returns the field of writer record w that reader field rf is
// read from (by name, by one of rf's aliases, or by a writer field alias
// naming rf), or nil when w has none and rf takes its default.
func FeedingField(w *Type, rf *RecordField) *RecordField {
	if w == nil || w.Kind != KindRecord || rf == nil {
		return nil
	}
	return findField(w, rf)
}

// copyCategories sets the data_category annotations of the fields of dst
// to those of src, a model of the same canonical form (same structure;
// defaults, aliases and other properties may differ). dst is a model
// built for this call only, not yet shared.
func copyCategories(dst, src *Type, seen map[*Type]bool) {
	if dst == nil || src == nil || dst.Kind != src.Kind || seen[dst] {
		return
	}
	seen[dst] = true
	switch dst.Kind {
	case KindRecord:
		if len(dst.Fields) != len(src.Fields) {
			return
		}
		for i, f := range dst.Fields {
			f.Category = src.Fields[i].Category
			copyCategories(f.Type, src.Fields[i].Type, seen)
		}
	case KindUnion:
		if len(dst.Branches) != len(src.Branches) {
			return
		}
		for i, b := range dst.Branches {
			copyCategories(b, src.Branches[i], seen)
		}
	case KindArray:
		copyCategories(dst.Items, src.Items, seen)
	case KindMap:
		copyCategories(dst.Values, src.Values, seen)
	}
}
