package avrocodec

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/linkedin/goavro/v2"
)

// This file reads the envelope of an event (event_id, subject_id, writer
// and reader schema) straight from the Avro binary, without building the
// native value, and judges the whole datum exactly as Decode does: an
// Envelope succeeds on every message Decode succeeds on and fails, with
// the same DecodeError Reason, on every message Decode fails on.
//
// For each (writer, reader) pair a program is compiled once (cached on the
// Codec): a graph of ops that mirrors how goavro decodes the writer schema
// (varints of any length, union and enum indexes in range, block counts up
// to goavro.MaxBlockCount, string and bytes lengths within the datum,
// booleans 0 or 1, no duplicate map keys, no bytes after the datum) and
// marks, from resolve.go's rules, the values that cannot be resolved into
// the reader schema: a writer union branch no reader branch takes, an enum
// symbol the reader lacks without a default, a record whose reader field
// has no writer field and no usable default, a type the reader cannot read
// at all. Those marks are static per type pair, so running the program is
// a walk over the bytes only.
//
// Schemas whose decoding this file does not reproduce (decimal logical
// types, goavro's validated-string, envelope fields of record or map type,
// named types whose full names goavro reads differently) get no program:
// their envelopes are read with the full decoder, which is slower but
// equally exact.

// Envelope is what an event's bytes say about the event without decoding
// its value: the framing, the writer and reader schemas, and the envelope
// fields. It keeps the message's payload (a sub-slice of the bytes given
// to ReadEnvelope, not a copy): do not modify those bytes while the
// Envelope is in use. DecodeEnvelope decodes the full Record from it.
type Envelope struct {
	// Schema is the reader schema, as Record.Schema.
	Schema *Schema
	// Framing, WriterID and WriterFingerprint are as in Record.
	Framing           Framing
	WriterID          int
	WriterFingerprint uint64
	// EventID and SubjectID are the top-level event_id and subject_id of
	// the event read as Schema, as StringField(rec.Value, "event_id")
	// gives them for the Record Decode returns: empty when the field is
	// missing, null or not a string.
	EventID   string
	SubjectID string

	writer  *Schema
	payload []byte
	rec     *Record // the decoded record, when the full decoder read the envelope
}

// Writer returns the schema the message was written with.
func (e *Envelope) Writer() *Schema { return e.writer }

// Envelope reads the envelope of a message (see ReadEnvelope) into a new
// Envelope.
func (c *Codec) Envelope(ctx context.Context, data []byte) (*Envelope, error) {
	env := new(Envelope)
	if err := c.ReadEnvelope(ctx, data, env); err != nil {
		return nil, err
	}
	return env, nil
}

// ReadEnvelope reads the framing, the writer and reader schemas, event_id
// and subject_id of a message into env, and checks that the whole message
// is well formed and resolvable into the reader schema, without decoding
// it into a value. Its errors are exactly Decode's: a *DecodeError with
// the Reason Decode gives for the same bytes, or an error wrapping
// ErrRegistryUnavailable. env keeps a reference to data (see Envelope). On
// error env holds nothing usable.
func (c *Codec) ReadEnvelope(ctx context.Context, data []byte, env *Envelope) error {
	*env = Envelope{}
	f, err := c.frame(ctx, data)
	if err != nil {
		return err
	}
	env.Framing, env.WriterID, env.writer, env.payload = f.framing, f.writerID, f.writer, f.payload
	env.WriterFingerprint = f.writer.Fingerprint
	env.Schema = c.readerFor(f.writer)
	p := c.program(f.writer, env.Schema)
	if p.slow {
		rec, err := c.decodeFramed(f)
		if err != nil {
			return err
		}
		env.rec = rec
		env.EventID, _ = StringField(rec.Value, "event_id")
		env.SubjectID, _ = StringField(rec.Value, "subject_id")
		return nil
	}
	return p.run(f.payload, env)
}

// DecodeEnvelope decodes the record of a message whose envelope env holds,
// without parsing its framing again. The result equals what Decode returns
// for the same bytes.
func (c *Codec) DecodeEnvelope(env *Envelope) (*Record, error) {
	if env == nil || env.writer == nil {
		return nil, decodeErr(ReasonEmpty, "no envelope")
	}
	if env.rec != nil {
		return env.rec, nil
	}
	return c.decodeFramed(framed{framing: env.Framing, writerID: env.WriterID, writer: env.writer, payload: env.payload})
}

// programKey identifies a program: schemas are immutable and live as long
// as the catalog, or the codec for registry schemas.
type programKey struct{ writer, reader *Schema }

func (c *Codec) program(writer, reader *Schema) *program {
	k := programKey{writer, reader}
	if p, ok := c.programs.Load(k); ok {
		return p.(*program)
	}
	p, _ := c.programs.LoadOrStore(k, compileProgram(writer, reader))
	return p.(*program)
}

// opKind is the wire shape of a value.
type opKind uint8

const (
	opNull opKind = iota
	opBoolean
	opInt
	opLong
	opFloat
	opDouble
	opBytes // bytes and string
	opFixed
	opEnum
	opArray
	opMap
	opRecord
	opUnion
)

// op reads one value of a writer type, as read into one reader type.
type op struct {
	kind opKind
	// bad: resolving a value here into the reader type fails (Decode
	// gives ReasonIncompatible once the whole datum decoded).
	bad bool
	// str: the value, read as the reader type, is a Go string
	// (StringField reads it): a string, bytes promoted to string, or an
	// enum (its symbol, see symbols).
	str bool
	// zero: the value takes no bytes and cannot fail to decode (null, or
	// a record of such values); zeroBad: resolving it always fails.
	zero, zeroBad bool

	size     int      // fixed
	symbols  []string // enum: the symbol the reader reads for each writer index
	symBad   []bool   // enum: writer index whose symbol the reader cannot read
	elem     *op      // array items, map values
	fields   []fieldOp
	branches []*op // union, per writer branch
}

// fieldOp reads one writer field: once per reader field it feeds (the same
// bytes, read as each), or once without a reader when it feeds none.
type fieldOp struct {
	ops []*op
	// caps, at the top level only: the envelope slot each read fills
	// (capNone, capEvent, capSubject).
	caps []int8
}

const (
	capNone int8 = iota - 1
	capEvent
	capSubject
)

// program is the compiled reader of one (writer, reader) pair.
type program struct {
	writer, reader *Schema
	root           *op
	slow           bool      // read with the full decoder
	defaults       [2]string // envelope values when no writer field feeds the slot
	resolving      bool
}

// compileProgram builds the program for data of writer read as reader.
func compileProgram(writer, reader *Schema) *program {
	p := &program{writer: writer, reader: reader, resolving: !sameShape(writer, reader)}
	if writer.root == nil || reader.root == nil || unsupported(writer) || (p.resolving && unsupported(reader)) {
		p.slow = true
		return p
	}
	if p.resolving && !(namesAgree(writer) && namesAgree(reader)) {
		p.slow = true
		return p
	}
	b := &builder{memo: map[[2]*Type]*op{}}
	if p.resolving {
		p.root = b.compile(writer.root, reader.root)
	} else {
		p.root = b.compile(writer.root, nil)
	}
	if p.root.kind != opRecord {
		p.slow = true
		return p
	}
	// The root op is shared with recursive uses of the root type: give
	// the top level its own copy of the field list with the captures.
	root := *p.root
	root.fields = make([]fieldOp, len(p.root.fields))
	copy(root.fields, p.root.fields)
	slots := [2]string{"event_id", "subject_id"}
	fed := [2]bool{}
	for i, wf := range writer.root.Fields {
		fo := root.fields[i]
		fo.caps = make([]int8, len(fo.ops))
		for j := range fo.caps {
			fo.caps[j] = capNone
		}
		for slot, name := range slots {
			var j int
			switch {
			case !p.resolving && wf.Name == name:
				j = 0
			case p.resolving:
				rf := reader.root.Field(name)
				if rf == nil || findField(writer.root, rf) != wf {
					continue
				}
				j = readerIndex(writer.root, reader.root, wf, rf)
			default:
				continue
			}
			if j < 0 || j >= len(fo.ops) || !capturable(fo.ops[j]) {
				p.slow = true
				return p
			}
			// The union wrapper of the value read is keyed by the
			// reader's branch names when resolving, else by goavro's.
			valueType, names := wf.Type, writer
			if p.resolving {
				valueType, names = reader.root.Field(name).Type, reader
			}
			if !unwrappable(valueType, names) {
				p.slow = true
				return p
			}
			fo.caps[j] = int8(slot)
			fed[slot] = true
		}
		root.fields[i] = fo
	}
	if p.resolving {
		for slot, name := range slots {
			rf := reader.root.Field(name)
			if fed[slot] || rf == nil || !rf.HasDefault {
				continue
			}
			if d, err := defaultValue(rf.Type, rf.Default); err == nil {
				p.defaults[slot], _ = StringField(map[string]any{name: d}, name)
			}
		}
	}
	p.root = &root
	return p
}

// readerIndex returns the index, among the reader fields wf feeds (in
// reader order, as builder.record lists them), of rf.
func readerIndex(w, r *Type, wf, rf *RecordField) int {
	n := 0
	for _, x := range r.Fields {
		if findField(w, x) != wf {
			continue
		}
		if x == rf {
			return n
		}
		n++
	}
	return -1
}

// capturable reports whether the envelope value read by o can be taken
// from its bytes: anything but a record or a map, which StringField might
// unwrap into a string of its own.
func capturable(o *op) bool {
	switch o.kind {
	case opRecord, opMap:
		return false
	case opUnion:
		for _, b := range o.branches {
			if b.kind == opRecord || b.kind == opMap {
				return false
			}
		}
	}
	return true
}

// unwrappable reports whether StringField reads through the union wrapper
// of every named branch of t (a value of schema s) that the program may
// capture a string from: an enum's wrapper is keyed by its full name, which
// StringField takes for a wrapper only when it has a dot; without one (a
// schema without a namespace) the decoded field holds no string at all.
func unwrappable(t *Type, s *Schema) bool {
	if t.Kind != KindUnion {
		return true
	}
	for _, b := range t.Branches {
		if b.Kind == KindEnum && (!strings.Contains(b.Name, ".") || !namesAgree(s)) {
			return false
		}
	}
	return true
}

// unsupported reports whether s uses a type this file does not decode the
// way goavro does.
func unsupported(s *Schema) bool {
	if strings.Contains(s.Text, "validated-string") {
		return true
	}
	bad := false
	walkTypes(s.root, map[*Type]bool{}, func(t *Type) {
		if t.Logical == "decimal" {
			bad = true
		}
	})
	return bad
}

// namesAgree reports whether every named type of s has, in goavro's
// canonical schema, the full name the model gives it: union values carry
// goavro's names, and resolution finds branches by the model's.
func namesAgree(s *Schema) bool {
	canon := s.codec.CanonicalSchema()
	ok := true
	walkTypes(s.root, map[*Type]bool{}, func(t *Type) {
		switch t.Kind {
		case KindRecord, KindEnum, KindFixed:
			if !strings.Contains(canon, `"name":"`+t.Name+`"`) {
				ok = false
			}
		}
	})
	return ok
}

// walkTypes visits every type reachable from t once.
func walkTypes(t *Type, seen map[*Type]bool, visit func(*Type)) {
	if t == nil || seen[t] {
		return
	}
	seen[t] = true
	visit(t)
	for _, f := range t.Fields {
		walkTypes(f.Type, seen, visit)
	}
	for _, b := range t.Branches {
		walkTypes(b, seen, visit)
	}
	walkTypes(t.Items, seen, visit)
	walkTypes(t.Values, seen, visit)
}

type builder struct {
	memo map[[2]*Type]*op
}

// compile returns the op reading writer type w into reader type r; r nil
// means the value is only checked, not resolved (same shape, a writer
// field the reader drops, or below a value that fails to resolve anyway).
func (b *builder) compile(w, r *Type) *op {
	k := [2]*Type{w, r}
	if o, ok := b.memo[k]; ok {
		return o
	}
	o := &op{}
	b.memo[k] = o
	b.fill(o, w, r)
	return o
}

func (b *builder) fill(o *op, w, r *Type) {
	if r != nil && w.Kind != KindUnion {
		if r.Kind == KindUnion {
			// resolve: a reader union takes the branch pickBranch picks.
			rb := resolver{}.pickBranch(w, r)
			if rb == nil {
				o.bad = true
			}
			r = rb
		}
		if r != nil && !readable(w, r) {
			o.bad = true
			r = nil
		}
	}
	resolving := r != nil
	switch w.Kind {
	case KindNull:
		o.kind = opNull
	case KindBoolean:
		o.kind = opBoolean
	case KindInt:
		o.kind = opInt
	case KindLong:
		o.kind = opLong
	case KindFloat:
		o.kind = opFloat
	case KindDouble:
		o.kind = opDouble
	case KindString, KindBytes:
		o.kind = opBytes
		if resolving {
			o.str = r.Kind == KindString
		} else {
			o.str = !o.bad && w.Kind == KindString
		}
	case KindFixed:
		o.kind, o.size = opFixed, w.Size
	case KindEnum:
		o.kind = opEnum
		o.str = !o.bad
		o.symbols = w.Symbols
		if resolving {
			o.symbols = make([]string, len(w.Symbols))
			o.symBad = make([]bool, len(w.Symbols))
			for i, s := range w.Symbols {
				switch {
				case r.symIdx[s]:
					o.symbols[i] = s
				case r.HasEnumDefault:
					o.symbols[i] = r.EnumDefault
				default:
					o.symBad[i] = true
				}
			}
		}
	case KindArray:
		o.kind = opArray
		var ri *Type
		if resolving {
			ri = r.Items
		}
		o.elem = b.compile(w.Items, ri)
	case KindMap:
		o.kind = opMap
		var rv *Type
		if resolving {
			rv = r.Values
		}
		o.elem = b.compile(w.Values, rv)
	case KindRecord:
		o.kind = opRecord
		b.record(o, w, r)
	case KindUnion:
		o.kind = opUnion
		o.branches = make([]*op, len(w.Branches))
		for i, wb := range w.Branches {
			// resolve unwraps a writer union before looking at the reader.
			o.branches[i] = b.compile(wb, r)
		}
	}
	switch o.kind {
	case opNull:
		o.zero, o.zeroBad = true, o.bad
	case opRecord:
		o.zero, o.zeroBad = true, o.bad
		for _, f := range o.fields {
			for _, x := range f.ops {
				o.zero = o.zero && x.zero
				o.zeroBad = o.zeroBad || x.zeroBad
			}
		}
		if !o.zero {
			o.zeroBad = false
		}
	}
}

// record fills the field ops of writer record w read as reader record r
// (nil: check only), as resolver.record pairs them.
func (b *builder) record(o *op, w, r *Type) {
	o.fields = make([]fieldOp, len(w.Fields))
	for i, wf := range w.Fields {
		var fo fieldOp
		if r != nil {
			for _, rf := range r.Fields {
				if findField(w, rf) == wf {
					fo.ops = append(fo.ops, b.compile(wf.Type, rf.Type))
				}
			}
		}
		if len(fo.ops) == 0 {
			fo.ops = []*op{b.compile(wf.Type, nil)}
		}
		o.fields[i] = fo
	}
}

// readable reports whether resolve can read values of the non-union writer
// type w as the non-union reader type r, whatever the value (resolve.go's
// checks that depend on the value only are enum symbols, done per index,
// and union branches, done per branch). For records it checks the reader
// fields no writer field feeds.
func readable(w, r *Type) bool {
	switch r.Kind {
	case KindRecord:
		if w.Kind != KindRecord || !namesMatch(w, r) {
			return false
		}
		for _, rf := range r.Fields {
			if findField(w, rf) != nil {
				continue
			}
			if !rf.HasDefault {
				return false
			}
			if _, err := defaultValue(rf.Type, rf.Default); err != nil {
				return false
			}
		}
		return true
	case KindEnum:
		return w.Kind == KindEnum && namesMatch(w, r)
	case KindArray, KindMap:
		return w.Kind == r.Kind
	case KindUnion:
		return false // not reached: unions are unwrapped first
	}
	// Fixed, null and the primitives: resolve itself decides, with a
	// value of the native Go type goavro gives w (the checks depend on
	// the type only).
	_, err := resolver{}.resolve(w, r, sampleNative(w))
	return err == nil
}

// sampleNative returns a value of the Go type goavro decodes w into.
func sampleNative(w *Type) any {
	switch w.Kind {
	case KindBoolean:
		return false
	case KindInt:
		if w.Logical != "" {
			return fromBaseMust(w, int32(0)) // date, time-millis
		}
		return int32(0)
	case KindLong:
		if w.Logical != "" {
			return fromBaseMust(w, int64(0))
		}
		return int64(0)
	case KindFloat:
		return float32(0)
	case KindDouble:
		return float64(0)
	case KindString:
		return ""
	case KindBytes:
		return []byte{}
	case KindFixed:
		return make([]byte, w.Size)
	}
	return nil
}

func fromBaseMust(t *Type, v any) any {
	out, _ := fromBase(t, v)
	return out
}

// runner is the state of one program run.
type runner struct {
	data         []byte
	incompatible bool
	fail         string // why the datum does not decode (no values)
	failAt       int
	capRaw       [2][]byte
	capSym       [2]string
	capSet       [2]bool
	capIsRaw     [2]bool
}

// run checks payload and fills the envelope fields of env.
func (p *program) run(payload []byte, env *Envelope) error {
	r := runner{data: payload}
	pos, ok := r.record(p.root, 0, true)
	if !ok {
		return &DecodeError{Reason: ReasonBadPayload, Err: fmt.Errorf("%s: %s at byte %d of the datum", p.writer.FullName, r.fail, r.failAt)}
	}
	if pos != len(payload) {
		return decodeErr(ReasonTrailingBytes, "%d bytes after the %s datum", len(payload)-pos, p.writer.FullName)
	}
	if r.incompatible {
		return incompatibleErr(p.writer, p.reader, fmt.Errorf("a value of the data cannot be read as the reader schema"))
	}
	var out [2]string
	n := 0
	for slot := range out {
		switch {
		case !r.capSet[slot]:
			if p.resolving {
				out[slot] = p.defaults[slot]
			}
		case r.capIsRaw[slot]:
			n += len(r.capRaw[slot])
		default:
			out[slot] = r.capSym[slot]
		}
	}
	if n > 0 {
		// One allocation for both strings.
		var sb strings.Builder
		sb.Grow(n)
		for slot := range out {
			if r.capSet[slot] && r.capIsRaw[slot] {
				sb.Write(r.capRaw[slot])
			}
		}
		s := sb.String()
		for slot := range out {
			if r.capSet[slot] && r.capIsRaw[slot] {
				l := len(r.capRaw[slot])
				out[slot], s = s[:l], s[l:]
			}
		}
	}
	env.EventID, env.SubjectID = out[capEvent], out[capSubject]
	return nil
}

func (r *runner) failed(why string, pos int) (int, bool) {
	r.fail, r.failAt = why, pos
	return pos, false
}

// readLong reads a zig-zag varint as goavro does: any number of bytes, the
// bits beyond 64 dropped.
func (r *runner) readLong(pos int) (int64, int, bool) {
	var v uint64
	var shift uint
	for ; pos < len(r.data); pos++ {
		b := r.data[pos]
		v |= uint64(b&0x7f) << shift
		if b&0x80 == 0 {
			return int64(v>>1) ^ -int64(v&1), pos + 1, true
		}
		shift += 7
	}
	return 0, pos, false
}

// record reads the fields of a record; top is true for the datum itself,
// whose fields fill the envelope.
func (r *runner) record(o *op, pos int, top bool) (int, bool) {
	if o.bad {
		r.incompatible = true
	}
	for i := range o.fields {
		f := &o.fields[i]
		start := pos
		for j, x := range f.ops {
			slot := capNone
			if top && f.caps != nil {
				slot = f.caps[j]
			}
			var ok bool
			if pos, ok = r.value(x, start, slot); !ok {
				return pos, false
			}
		}
	}
	return pos, true
}

// value reads one value of op o at pos and returns the position after it.
func (r *runner) value(o *op, pos int, slot int8) (int, bool) {
	if o.bad {
		r.incompatible = true
	}
	d := r.data
	switch o.kind {
	case opNull:
		return pos, true
	case opBoolean:
		if pos >= len(d) {
			return r.failed("truncated boolean", pos)
		}
		if d[pos] > 1 {
			return r.failed("boolean byte is neither 0 nor 1", pos)
		}
		return pos + 1, true
	case opInt, opLong:
		for ; pos < len(d); pos++ {
			if d[pos]&0x80 == 0 {
				return pos + 1, true
			}
		}
		return r.failed("truncated varint", pos)
	case opFloat:
		if len(d)-pos < 4 {
			return r.failed("truncated float", pos)
		}
		return pos + 4, true
	case opDouble:
		if len(d)-pos < 8 {
			return r.failed("truncated double", pos)
		}
		return pos + 8, true
	case opBytes:
		n, next, ok := r.readLong(pos)
		if !ok {
			return r.failed("truncated length", pos)
		}
		if n < 0 {
			return r.failed("negative length", pos)
		}
		if n > int64(len(d)-next) {
			return r.failed("length beyond the datum", pos)
		}
		end := next + int(n)
		if slot >= 0 && o.str {
			r.capSet[slot], r.capIsRaw[slot], r.capRaw[slot] = true, true, d[next:end]
		}
		return end, true
	case opFixed:
		if o.size > len(d)-pos {
			return r.failed("truncated fixed", pos)
		}
		return pos + o.size, true
	case opEnum:
		i, next, ok := r.readLong(pos)
		if !ok {
			return r.failed("truncated enum index", pos)
		}
		if i < 0 || i >= int64(len(o.symbols)) {
			return r.failed("enum index out of range", pos)
		}
		if o.symBad != nil && o.symBad[i] {
			r.incompatible = true
		} else if slot >= 0 && o.str {
			r.capSet[slot], r.capIsRaw[slot], r.capSym[slot] = true, false, o.symbols[i]
		}
		return next, true
	case opUnion:
		i, next, ok := r.readLong(pos)
		if !ok {
			return r.failed("truncated union index", pos)
		}
		if i < 0 || i >= int64(len(o.branches)) {
			return r.failed("union index out of range", pos)
		}
		return r.value(o.branches[i], next, slot)
	case opRecord:
		return r.record(o, pos, false)
	case opArray, opMap:
		return r.blocks(o, pos)
	}
	return r.failed("unknown type", pos)
}

// blocks reads the blocks of an array or a map as goavro does.
func (r *runner) blocks(o *op, pos int) (int, bool) {
	var keys [][]byte // map keys seen, to refuse duplicates as goavro does
	var keySet map[string]struct{}
	for {
		at := pos
		count, next, ok := r.readLong(pos)
		if !ok {
			return r.failed("truncated block count", at)
		}
		pos = next
		if count < 0 {
			if count == math.MinInt64 {
				return r.failed("block count out of range", at)
			}
			count = -count
			if _, pos, ok = r.readLong(pos); !ok {
				return r.failed("truncated block size", pos)
			}
		}
		if count > int64(goavro.MaxBlockCount) {
			return r.failed("block count over MaxBlockCount", at)
		}
		if count == 0 {
			return pos, true
		}
		if o.kind == opArray && o.elem.zero {
			// Items that take no bytes: goavro reads count of them.
			if o.elem.zeroBad {
				r.incompatible = true
			}
			continue
		}
		for range count {
			if o.kind == opMap {
				kat := pos
				n, next, ok := r.readLong(pos)
				if !ok {
					return r.failed("truncated map key length", kat)
				}
				if n < 0 {
					return r.failed("negative map key length", kat)
				}
				if n > int64(len(r.data)-next) {
					return r.failed("map key beyond the datum", kat)
				}
				key := r.data[next : next+int(n)]
				pos = next + int(n)
				if keySet != nil {
					if _, dup := keySet[string(key)]; dup {
						return r.failed("duplicate map key", kat)
					}
					keySet[string(key)] = struct{}{}
				} else {
					for _, k := range keys {
						if string(k) == string(key) {
							return r.failed("duplicate map key", kat)
						}
					}
					keys = append(keys, key)
					if len(keys) > 32 {
						keySet = make(map[string]struct{}, 2*len(keys))
						for _, k := range keys {
							keySet[string(k)] = struct{}{}
						}
					}
				}
			}
			if pos, ok = r.value(o.elem, pos, capNone); !ok {
				return pos, false
			}
		}
	}
}
