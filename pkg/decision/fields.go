package decision

import (
	"slices"
	"sync"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// Field is one field that an event's bytes carry: a field of the writer
// schema, with its counterpart in the reader schema the event is decoded
// into (paired exactly as Avro schema resolution in avrocodec pairs them:
// named types by their unqualified name or aliases, union branches as the
// resolver picks them, fields by name and aliases).
type Field struct {
	// Path is the field's path in the writer schema (the syntax of
	// avrocodec.Schema.Annotations).
	Path string
	// ReaderPath is the path of the same field in the reader schema; empty
	// when the reader has no such field (schema resolution drops it).
	ReaderPath string
	// Categories are the data_category annotations of the field in the
	// writer and in the reader schema, without duplicates: a field either
	// version annotates is judged by both. Empty when neither annotates it.
	Categories []string
	// Unexpanded: the field's value holds a record whose fields are
	// already listed above it (a recursive type, walked once), so the
	// fields below it, at deeper paths, are not listed. They are the same
	// record fields, with the same categories, but a field rule may name
	// one of their deeper paths (PlanFor fails closed on such a rule).
	Unexpanded bool
}

// Annotated reports whether either schema annotates the field.
func (f Field) Annotated() bool { return len(f.Categories) > 0 }

// Carried is what FieldsOf derives from a pair of schemas.
type Carried struct {
	// Fields are the writer's fields, depth first in schema order (a
	// recursive type is listed once, as avrocodec.Schema.Fields does).
	Fields []Field
	// FieldCategories maps every reader field that a writer field feeds,
	// wherever it occurs in the data (at any depth of a recursive type, in
	// any union branch), to the categories it is judged by: its own and
	// those of every writer field it is read from. A redaction done on the
	// reader value looks its fields up here, so that each is judged as the
	// writer annotated it as well. A reader field missing from the map is
	// not in the bytes (it takes its default): its own category applies.
	FieldCategories map[*avrocodec.RecordField][]string
	// ReaderCategories is FieldCategories by reader path, for
	// explanations. Paths do not tell union branches apart, nor the depths
	// of a recursive type beyond the first: a path holds the categories of
	// every field at it.
	ReaderCategories map[string][]string
	// WriterOnly are the outermost writer paths of the fields the reader
	// lacks: a copy re-encoded from the reader value no longer carries
	// them (or carries their writer default).
	WriterOnly []string
}

var carriedCache sync.Map // [2]*avrocodec.Schema -> *Carried

// FieldsOf returns the fields the bytes of writer carry, judged with the
// annotations of writer and reader (see Field). writer nil means reader.
// Schemas are immutable, so the result is computed once per pair and
// shared: callers must not modify it.
func FieldsOf(writer, reader *avrocodec.Schema) *Carried {
	if writer == nil {
		writer = reader
	}
	if reader == nil {
		reader = writer
	}
	if writer == nil {
		return &Carried{}
	}
	key := [2]*avrocodec.Schema{writer, reader}
	if c, ok := carriedCache.Load(key); ok {
		return c.(*Carried)
	}
	c := &Carried{FieldCategories: map[*avrocodec.RecordField][]string{}, ReaderCategories: map[string][]string{}}
	pw := pairWalk{c: c, seen: map[[2]*avrocodec.Type]bool{}}
	pw.record(writer.Root(), reader.Root(), "", "", true, true)
	got, _ := carriedCache.LoadOrStore(key, c)
	return got.(*Carried)
}

type pairWalk struct {
	c    *Carried
	seen map[[2]*avrocodec.Type]bool
}

// record walks the fields of writer record w, paired with reader record r
// (nil when the reader has no counterpart). readerKnown is false below a
// writer-only field. emit is false on a second walk of the same writer
// fields (a writer field that feeds two reader fields): the pairs are
// recorded, the fields are not listed again.
//
// It reports whether it met a record already being walked (a recursive
// type), whose fields it did not list again at these paths.
func (pw *pairWalk) record(w, r *avrocodec.Type, wp, rp string, readerKnown, emit bool) (unexpanded bool) {
	if w == nil || w.Kind != avrocodec.KindRecord {
		return false
	}
	k := [2]*avrocodec.Type{w, r}
	if pw.seen[k] {
		return true // a recursive type: its pairs are recorded on the way in
	}
	pw.seen[k] = true
	defer delete(pw.seen, k)
	for _, wf := range w.Fields {
		f := Field{Path: join(wp, wf.Name)}
		if wf.Category != "" {
			f.Categories = append(f.Categories, wf.Category)
		}
		var fed []*avrocodec.RecordField
		if r != nil {
			for _, rf := range r.Fields {
				if avrocodec.FeedingField(w, rf) == wf {
					fed = append(fed, rf)
					if rf.Category != "" && !slices.Contains(f.Categories, rf.Category) {
						f.Categories = append(f.Categories, rf.Category)
					}
				}
			}
		}
		if len(fed) > 0 {
			f.ReaderPath = join(rp, fed[0].Name)
		} else if readerKnown && emit {
			pw.c.WriterOnly = append(pw.c.WriterOnly, f.Path)
		}
		for _, rf := range fed {
			pw.c.FieldCategories[rf] = merge(pw.c.FieldCategories[rf], f.Categories)
			rpath := join(rp, rf.Name)
			pw.c.ReaderCategories[rpath] = merge(pw.c.ReaderCategories[rpath], f.Categories)
		}
		at := -1
		if emit {
			at = len(pw.c.Fields)
			pw.c.Fields = append(pw.c.Fields, f)
		}
		var unexp bool
		if len(fed) == 0 {
			unexp = pw.value(wf.Type, nil, f.Path, "", false, emit)
		}
		for i, rf := range fed {
			if pw.value(wf.Type, rf.Type, f.Path, join(rp, rf.Name), true, emit && i == 0) {
				unexp = true
			}
		}
		if unexp && at >= 0 {
			pw.c.Fields[at].Unexpanded = true
		}
	}
	return false
}

// merge returns the categories of have and add without duplicates, in a
// new slice when it grows (the slices may be shared).
func merge(have, add []string) []string {
	out := have
	for _, c := range add {
		if !slices.Contains(out, c) {
			if len(out) == len(have) {
				out = slices.Clone(have)
			}
			out = append(out, c)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// value walks into the records that a value of writer type w holds
// (through unions, arrays and maps), paired with reader type r as schema
// resolution pairs them (avrocodec.ResolvedType). It reports whether it
// met a record already being walked (see record).
func (pw *pairWalk) value(w, r *avrocodec.Type, wp, rp string, readerKnown, emit bool) (unexpanded bool) {
	for _, wa := range alternatives(w) {
		var ra *avrocodec.Type
		if readerKnown {
			ra = avrocodec.ResolvedType(wa, r)
		}
		switch wa.Kind {
		case avrocodec.KindRecord:
			unexpanded = pw.record(wa, ra, wp, rp, readerKnown && ra != nil, emit) || unexpanded
		case avrocodec.KindArray:
			var items *avrocodec.Type
			if ra != nil {
				items = ra.Items
			}
			unexpanded = pw.value(wa.Items, items, wp+"[]", rp+"[]", ra != nil, emit) || unexpanded
		case avrocodec.KindMap:
			var values *avrocodec.Type
			if ra != nil {
				values = ra.Values
			}
			unexpanded = pw.value(wa.Values, values, wp+"{}", rp+"{}", ra != nil, emit) || unexpanded
		}
	}
	return unexpanded
}

// alternatives returns the branches of a union, or t itself.
func alternatives(t *avrocodec.Type) []*avrocodec.Type {
	if t == nil {
		return nil
	}
	if t.Kind == avrocodec.KindUnion {
		return t.Branches
	}
	return []*avrocodec.Type{t}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
