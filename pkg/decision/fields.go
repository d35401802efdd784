package decision

import (
	"slices"
	"sync"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// Field is one field that an event's bytes carry: a field of the writer
// schema, with its counterpart in the reader schema the event is decoded
// into (matched as Avro schema resolution matches them: by name and
// aliases).
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
}

// Annotated reports whether either schema annotates the field.
func (f Field) Annotated() bool { return len(f.Categories) > 0 }

// Carried is what FieldsOf derives from a pair of schemas.
type Carried struct {
	// Fields are the writer's fields, depth first in schema order.
	Fields []Field
	// ReaderCategories maps the reader paths of the fields the writer
	// carries too to their categories (Field.Categories), so that a
	// redaction done on the reader value judges each field as the writer
	// annotated it as well.
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
	c := &Carried{ReaderCategories: map[string][]string{}}
	pw := pairWalk{c: c, seen: map[[2]*avrocodec.Type]bool{}}
	pw.record(writer.Root(), reader.Root(), "", "", true)
	got, _ := carriedCache.LoadOrStore(key, c)
	return got.(*Carried)
}

type pairWalk struct {
	c    *Carried
	seen map[[2]*avrocodec.Type]bool
}

// record walks the fields of writer record w, paired with reader record r
// (nil when the reader has no counterpart). readerKnown is false below a
// writer-only field.
func (pw *pairWalk) record(w, r *avrocodec.Type, wp, rp string, readerKnown bool) {
	if w == nil || w.Kind != avrocodec.KindRecord {
		return
	}
	k := [2]*avrocodec.Type{w, r}
	if pw.seen[k] {
		return // a recursive type: walked once, as avrocodec.Schema.Fields
	}
	pw.seen[k] = true
	defer delete(pw.seen, k)
	for _, wf := range w.Fields {
		f := Field{Path: join(wp, wf.Name)}
		var rf *avrocodec.RecordField
		if r != nil {
			rf = matchField(r, wf)
		}
		if wf.Category != "" {
			f.Categories = append(f.Categories, wf.Category)
		}
		if rf != nil {
			f.ReaderPath = join(rp, rf.Name)
			if rf.Category != "" && !slices.Contains(f.Categories, rf.Category) {
				f.Categories = append(f.Categories, rf.Category)
			}
			pw.c.ReaderCategories[f.ReaderPath] = f.Categories
		} else if readerKnown {
			pw.c.WriterOnly = append(pw.c.WriterOnly, f.Path)
		}
		pw.c.Fields = append(pw.c.Fields, f)
		var rt *avrocodec.Type
		if rf != nil {
			rt = rf.Type
		}
		pw.value(wf.Type, rt, f.Path, f.ReaderPath, rf != nil)
	}
}

// value walks into the records that a value of writer type w holds
// (through unions, arrays and maps), paired with reader type r.
func (pw *pairWalk) value(w, r *avrocodec.Type, wp, rp string, readerKnown bool) {
	for _, wa := range alternatives(w) {
		var ra *avrocodec.Type
		if readerKnown {
			ra = counterpart(wa, alternatives(r))
		}
		switch wa.Kind {
		case avrocodec.KindRecord:
			pw.record(wa, ra, wp, rp, readerKnown && ra != nil)
		case avrocodec.KindArray:
			var items *avrocodec.Type
			if ra != nil {
				items = ra.Items
			}
			pw.value(wa.Items, items, wp+"[]", rp+"[]", ra != nil)
		case avrocodec.KindMap:
			var values *avrocodec.Type
			if ra != nil {
				values = ra.Values
			}
			pw.value(wa.Values, values, wp+"{}", rp+"{}", ra != nil)
		}
	}
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

// counterpart returns the reader type among rs that data of writer type w
// resolves to, for the kinds that hold fields: a record of the same name
// (or alias), or the only record; an array; a map.
func counterpart(w *avrocodec.Type, rs []*avrocodec.Type) *avrocodec.Type {
	var records []*avrocodec.Type
	for _, r := range rs {
		if r.Kind != w.Kind {
			continue
		}
		if w.Kind != avrocodec.KindRecord {
			return r
		}
		if r.Name == w.Name || slices.Contains(r.Aliases, w.Name) || slices.Contains(w.Aliases, r.Name) {
			return r
		}
		records = append(records, r)
	}
	if len(records) == 1 {
		return records[0]
	}
	return nil
}

// matchField finds the reader field that writer field wf feeds: by name,
// by a reader alias, or by a writer alias (as avrocodec resolves them).
func matchField(r *avrocodec.Type, wf *avrocodec.RecordField) *avrocodec.RecordField {
	if f := r.Field(wf.Name); f != nil {
		return f
	}
	for _, rf := range r.Fields {
		if slices.Contains(rf.Aliases, wf.Name) || slices.Contains(wf.Aliases, rf.Name) {
			return rf
		}
	}
	return nil
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
