package avrocodec

// The two functions of this file expose the pairing that schema resolution
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
