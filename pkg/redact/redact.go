package redact

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
)

// MinKeyLen is the shortest pseudonymisation key New accepts, in bytes.
const MinKeyLen = 16

// Mode says which fields Apply treats.
type Mode int

const (
	// ModeRedact treats every field as the stream's rules say
	// (Stream.TreatmentFor): the stream publishes an event whose subject
	// has not granted its purposes, and its on_missing_consent is redact.
	// Fields of an excluded category are removed whatever the rules say.
	// It is the zero Mode, the stricter of the two.
	ModeRedact Mode = iota
	// ModeRemoveExcluded removes the fields whose category the grant
	// excludes (Request.Excluded) and applies the stream's
	// unannotated_fields (on a stream with unannotated_fields: remove, an
	// unannotated field gets its field rule, else it is removed), and keeps
	// everything else verbatim: the subject granted the purposes but left
	// some data categories out and the stream's excluded_categories is
	// remove, or a passed event goes to a stream whose unannotated_fields
	// is remove.
	ModeRemoveExcluded
)

// String returns "redact" or "remove_excluded".
func (m Mode) String() string {
	switch m {
	case ModeRedact:
		return "redact"
	case ModeRemoveExcluded:
		return "remove_excluded"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Request is one event to treat for one purpose stream.
type Request struct {
	// Schema is the reader schema the event was decoded into; its model
	// (Root) gives the field types, defaults and data_category
	// annotations. Apply caches the field paths it derives from a Schema,
	// keyed by the pointer: schemas are immutable.
	Schema *avrocodec.Schema
	// Value is the decoded event in goavro's native form, resolved to
	// Schema (as avrocodec.Codec.Decode returns it). Apply never modifies
	// it, nor anything it references.
	Value map[string]any
	// Writer (optional) is the schema the event's bytes were written
	// with, when it is not Schema. Fields are then judged by the
	// categories of both (decision.FieldsOf): a field that the writer
	// annotates counts as annotated, also when the reader does not
	// annotate it.
	Writer *avrocodec.Schema
	// Stream gives the treatments (Treatments, DefaultTreatment,
	// Unannotated) used in ModeRedact. ModeRemoveExcluded uses only
	// the encrypt rules (they apply on every output), Unannotated and,
	// with unannotated_fields: remove, the field rules of unannotated
	// fields.
	Stream policy.Stream
	// Excluded are the category patterns (see decision.Excludes) that
	// the subject's grant excludes. In both modes a field whose category
	// one of them covers is removed, whatever its treatment.
	Excluded []string
	// Mode selects which fields are treated.
	Mode Mode
	// Keys encrypts the fields an encrypt treatment applies to, under the
	// data key of the event's subject (in the enforcer a *shred.DataKey).
	// It is per request (per subject) and never part of a compiled
	// program. Nil means the subject may get no key (an erased subject):
	// every field to encrypt is removed instead (fail closed).
	Keys Encrypter
}

// Encrypter encrypts field values under one subject's data key.
// deterministic selects deterministic encryption (equal plaintexts give
// equal ciphertexts under one key), else randomised. Errors must not
// quote the plaintext or key material.
type Encrypter interface {
	EncryptBytes(plaintext []byte, deterministic bool) ([]byte, error)
	EncryptString(plaintext string, deterministic bool) (string, error)
}

// Result is the treated event.
type Result struct {
	// Value is a deep copy of Request.Value with the treatments applied. It
	// shares nothing with the input and encodes with Request.Schema. Map
	// keys of a record that are not fields of its schema are left out.
	Value map[string]any
	// Treated lists, sorted and without duplicates, the paths (as in
	// avrocodec.Schema.Annotations) of the fields whose value the
	// treatments changed or removed. A field removed whole is listed by its
	// own path only, not by the paths of its sub-fields; a field whose
	// value the treatment left as it was (a null, an address already at
	// its /24, a removed field that already held its removal value) is not
	// listed. It never holds values, so it may go into audit records.
	Treated []string
}

// ErrShortKey is returned by New for a key shorter than MinKeyLen bytes.
var ErrShortKey = errors.New("redact: pseudonymisation key shorter than 16 bytes")

// ErrNoKey is returned by Apply on a Redactor made by NewWithoutKey when a
// treatment would produce a pseudonym: it has no key to make one with, and
// a pseudonym under any other key would not join with the other instances'.
var ErrNoKey = errors.New("redact: a pseudonym is needed but no pseudonymisation key is configured")

// ErrEncrypt wraps an error of Request.Keys: Apply returns it, and nothing
// is published. The error says at which field path, never a value.
var ErrEncrypt = errors.New("redact: encryption failed")

// ErrNoSchema is returned by Apply for a Request without a Schema, or with
// a Schema that has no model (one not made by avrocodec).
var ErrNoSchema = errors.New("redact: request has no schema")

// ErrBadMode is returned by Apply for a Mode other than ModeRedact and
// ModeRemoveExcluded.
var ErrBadMode = errors.New("redact: unknown mode")

// ErrNotReady is returned by Apply on a Redactor not made by New.
var ErrNotReady = errors.New("redact: redactor not made by New")

// MismatchError reports a value that does not fit the schema: a bug
// upstream, since Apply expects a value decoded into Request.Schema. It names
// the field path and the Go type found, never a value.
type MismatchError struct {
	// Path is the field path of the value ("" for the event itself).
	Path string
	// Want is the Avro type the schema expects there.
	Want string
	// Got is the Go type of the value found ("<nil>" for nil).
	Got string
}

func (e *MismatchError) Error() string {
	path := e.Path
	if path == "" {
		path = "(event)"
	}
	return "redact: value at " + path + " does not fit the schema: got " + e.Got + ", want " + e.Want
}

func mismatch(n *node, v any) error {
	return &MismatchError{Path: n.path, Want: string(n.t.Kind), Got: fmt.Sprintf("%T", v)}
}

// Redactor applies field treatments. It holds the pseudonymisation key and a
// cache of the schemas it has seen; it is safe for concurrent use. Make it
// with New: the zero value refuses to work.
//
// The key never leaves the Redactor: String and GoString print a
// placeholder, so that a Redactor in a logged config struct does not leak
// it.
type Redactor struct {
	macs  sync.Pool // of *mac, keyed with the pseudonymisation key
	ready bool
	noKey bool     // made by NewWithoutKey: every pseudonym is ErrNoKey
	plans sync.Map // *avrocodec.Schema -> *node

	progMu sync.RWMutex
	progs  map[programKey]*program // compiled treatments, see compile.go
}

// New returns a Redactor whose pseudonymise treatment is HMAC-SHA-256 under
// key. The key must be at least MinKeyLen (16) bytes, and should be 32
// random bytes kept as a secret: anyone who has it can test guesses against
// pseudonyms. Pseudonyms are stable for one key (so that joins work across
// events, schemas and streams) and unrelated across keys; rotating the key
// breaks joins with earlier output. New copies key.
func New(key []byte) (*Redactor, error) {
	if len(key) < MinKeyLen {
		return nil, ErrShortKey
	}
	k := slices.Clone(key)
	r := &Redactor{ready: true}
	r.macs.New = func() any { return newMAC(k) }
	return r, nil
}

// NewWithoutKey returns a Redactor for a policy that never makes a
// pseudonym (NeedsKey is false): it has no key, and Apply fails with
// ErrNoKey rather than make a pseudonym under some other key. There is no
// random or default key: every pseudonym comes from the configured one.
func NewWithoutKey() *Redactor {
	return &Redactor{ready: true, noKey: true}
}

// ActionNeedsKey reports whether a field treated with a may get a
// pseudonym: pseudonymise makes one of the value, and every action that
// rewrites a value (pseudonymise, mask, truncate_ip, generalise_*) makes
// one of each key of a map it applies to (keys may be personal data). Keep,
// remove and encrypt never make one (encrypt encrypts a map's keys
// deterministically under the subject's data key instead).
func ActionNeedsKey(a policy.Action) bool { return transforming(a) && !encrypting(a) }

// NeedsKey reports whether any stream of pol can make a pseudonym, so that
// the pseudonymisation key must be configured. It looks at the actions the
// policy names, not at the schemas: a map under a rewriting action may
// come in a writer schema (from a registry) known only when it arrives.
func NeedsKey(pol *policy.Policy) bool {
	for _, s := range pol.Streams {
		if ActionNeedsKey(s.DefaultTreatment) {
			return true
		}
		for _, t := range s.Treatments {
			if ActionNeedsKey(t.Action) {
				return true
			}
		}
	}
	return false
}

// String returns a placeholder that hides the key.
func (r *Redactor) String() string { return "redact.Redactor{key: redacted}" }

// GoString returns a placeholder that hides the key.
func (r *Redactor) GoString() string { return r.String() }

// Apply returns a deep copy of req.Value with the treatments of req.Mode
// applied (see the package documentation) and the paths of the fields it
// changed. req.Value is never modified.
//
// The error is ErrNoSchema, ErrBadMode, ErrNotReady, ErrNoKey, ErrEncrypt
// (wrapping the error of req.Keys), or a *MismatchError
// when the value does not fit the schema (a bug upstream: the value was not
// decoded into req.Schema). Errors never contain field values.
func (r *Redactor) Apply(req Request) (Result, error) {
	if r == nil || !r.ready {
		return Result{}, ErrNotReady
	}
	if req.Schema == nil {
		return Result{}, ErrNoSchema
	}
	if req.Mode != ModeRedact && req.Mode != ModeRemoveExcluded {
		return Result{}, ErrBadMode
	}
	p, err := r.program(&req)
	if err != nil {
		return Result{}, err
	}
	if req.Value == nil {
		return Result{}, mismatch(p.root.n, nil)
	}
	w := walker{r: r, keys: req.Keys, treated: make([]string, 0, 8)}
	out, err := w.record(p.root, req.Value)
	if err != nil {
		return Result{}, err
	}
	if len(w.treated) == 0 {
		return Result{Value: out}, nil
	}
	slices.Sort(w.treated)
	return Result{Value: out, Treated: slices.Compact(w.treated)}, nil
}

// plan returns the model of s unrolled along field paths (see node). The
// error is ErrNoSchema when s has no model.
func (r *Redactor) plan(s *avrocodec.Schema) (*node, error) {
	if n, ok := r.plans.Load(s); ok {
		return n.(*node), nil
	}
	root := s.Root()
	if root == nil {
		return nil, ErrNoSchema
	}
	n, _ := r.plans.LoadOrStore(s, &node{t: root})
	return n.(*node), nil
}

// walker is the state of one Apply call: it follows a compiled program
// (see compile.go) along the value.
type walker struct {
	r       *Redactor
	keys    Encrypter // nil: nothing can be encrypted (fields to encrypt are removed)
	treated []string
}

func (w *walker) mark(path string) { w.treated = append(w.treated, path) }

// transforming reports whether a is a treatment that rewrites a value (and
// is therefore inherited by unannotated sub-fields).
func transforming(a policy.Action) bool {
	switch a {
	case policy.ActionPseudonymise, policy.ActionMask, policy.ActionTruncateIP,
		policy.ActionGeneraliseHour, policy.ActionGeneraliseDay,
		policy.ActionEncrypt, actEncryptDeterministic:
		return true
	}
	return false
}

// actEncryptDeterministic is the internal action of an encrypt treatment
// whose encryption is deterministic; policy.ActionEncrypt is randomised.
// The policy format cannot name it (it holds a NUL).
const actEncryptDeterministic policy.Action = "encrypt\x00deterministic"

// encrypting reports whether a is one of the two encrypt actions.
func encrypting(a policy.Action) bool {
	return a == policy.ActionEncrypt || a == actEncryptDeterministic
}

// encryptAction is the internal action of rule action a with encryption e.
func encryptAction(a policy.Action, e policy.Encryption) policy.Action {
	if a == policy.ActionEncrypt && e == policy.EncryptDeterministic {
		return actEncryptDeterministic
	}
	return a
}

// encryptLeaf encrypts a string or bytes value v of node n with keys
// (deterministically when a is actEncryptDeterministic). ok is false when
// the value cannot hold a ciphertext (any other type, a logical type) or
// when there is no key: the enclosing field is then removed.
func encryptLeaf(keys Encrypter, n *node, v any, a policy.Action) (out any, changed, ok bool, err error) {
	if n.t.Logical != "" || keys == nil {
		return nil, false, false, nil
	}
	det := a == actEncryptDeterministic
	switch n.t.Kind {
	case avrocodec.KindString:
		s, isStr := v.(string)
		if !isStr {
			return nil, false, false, mismatch(n, v)
		}
		c, err := keys.EncryptString(s, det)
		if err != nil {
			return nil, false, false, encryptErr(n.path, err)
		}
		return c, true, true, nil
	case avrocodec.KindBytes:
		b, isBytes := v.([]byte)
		if !isBytes {
			return nil, false, false, mismatch(n, v)
		}
		c, err := keys.EncryptBytes(b, det)
		if err != nil {
			return nil, false, false, encryptErr(n.path, err)
		}
		return c, true, true, nil
	}
	return nil, false, false, nil
}

// encryptKey encrypts a map key deterministically (distinct keys stay
// distinct). ok is false without keys.
func encryptKey(keys Encrypter, n *node, k string) (string, bool, error) {
	if keys == nil {
		return "", false, nil
	}
	c, err := keys.EncryptString(k, true)
	if err != nil {
		return "", false, encryptErr(n.path, err)
	}
	return c, true, nil
}

func encryptErr(path string, err error) error {
	if path == "" {
		path = "(event)"
	}
	return fmt.Errorf("%w at %s: %w", ErrEncrypt, path, err)
}

// record treats every field of the record value v as c's fields say.
func (w *walker) record(c *cnode, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok || m == nil {
		return nil, mismatch(c.n, v)
	}
	c.build()
	out := make(map[string]any, len(c.fields))
	for i := range c.fields {
		cf := &c.fields[i]
		fv, present := m[cf.f.def.Name]
		if !present {
			continue // the encoder uses the schema default, a constant
		}
		nv, err := w.field(cf, fv)
		if err != nil {
			return nil, err
		}
		out[cf.f.def.Name] = nv
	}
	return out, nil
}

// field treats one field value.
func (w *walker) field(cf *cfield, v any) (any, error) {
	if cf.action == policy.ActionRemove {
		return w.removeField(cf, v)
	}
	mark := len(w.treated)
	out, changed, ok, err := w.value(cf.node, v)
	if err != nil {
		return nil, err
	}
	if !ok {
		// The treatment does not apply to this value (a non-string to
		// pseudonymise, a non-IP to truncate, ...): remove the field.
		w.treated = w.treated[:mark]
		return w.removeField(cf, v)
	}
	if changed {
		w.mark(cf.f.path)
	}
	return out, nil
}

// removeField removes the field cf, with its shared removal value when it
// has one.
func (w *walker) removeField(cf *cfield, v any) (any, error) {
	if !cf.shared {
		return w.remove(cf.f, v)
	}
	if !same(v, cf.removal) {
		w.mark(cf.f.path)
	}
	return cf.removal, nil
}

// remove returns the removal value of field f (see removed).
func (w *walker) remove(f *fieldNode, v any) (any, error) {
	out, err := removed(f.def)
	if err != nil {
		return nil, err
	}
	if !same(v, out) {
		w.mark(f.path)
	}
	return out, nil
}

// value applies c's treatment (keep or a transforming one) to v. Records
// below recurse with their own fields; arrays, maps and unions apply it to
// their items, values and branch. changed reports whether a value not
// inside a nested record was rewritten (nested records mark their own
// fields); ok is false when the treatment does not apply to v or to one of
// its items, and the enclosing field must be removed instead.
func (w *walker) value(c *cnode, v any) (out any, changed, ok bool, err error) {
	n := c.n
	switch n.t.Kind {
	case avrocodec.KindRecord:
		rec, err := w.record(c, v)
		if err != nil {
			return nil, false, false, err
		}
		return rec, false, true, nil
	case avrocodec.KindUnion:
		if v == nil {
			if !n.t.Nullable() {
				return nil, false, false, mismatch(n, v)
			}
			return nil, false, true, nil
		}
		m, isMap := v.(map[string]any)
		if !isMap || len(m) != 1 {
			return nil, false, false, mismatch(n, v)
		}
		c.build()
		for key, inner := range m {
			i := slices.Index(c.keys, key)
			if i < 0 {
				return nil, false, false, &MismatchError{Path: n.path, Want: "union", Got: "a union value of another type"}
			}
			o, ch, ok, err := w.value(c.branches[i], inner)
			if err != nil || !ok {
				return nil, false, ok, err
			}
			return map[string]any{key: o}, ch, true, nil
		}
	case avrocodec.KindArray:
		arr, isArr := v.([]any)
		if !isArr {
			return nil, false, false, mismatch(n, v)
		}
		c.build()
		res := make([]any, len(arr))
		for i, item := range arr {
			o, ch, ok, err := w.value(c.items, item)
			if err != nil || !ok {
				return nil, false, ok, err
			}
			res[i] = o
			changed = changed || ch
		}
		return res, changed, true, nil
	case avrocodec.KindMap:
		mv, isMap := v.(map[string]any)
		if !isMap {
			return nil, false, false, mismatch(n, v)
		}
		c.build()
		res := make(map[string]any, len(mv))
		encKeys := encrypting(c.a)
		hashKeys := transforming(c.a) && !encKeys
		for k, item := range mv {
			o, ch, ok, err := w.value(c.values, item)
			if err != nil || !ok {
				return nil, false, ok, err
			}
			if encKeys {
				ek, ok, err := encryptKey(w.keys, n, k)
				if err != nil || !ok {
					return nil, false, ok, err
				}
				k, ch = ek, true
			}
			if hashKeys {
				if w.r.noKey {
					return nil, false, false, ErrNoKey
				}
				k = w.r.pseudonym(k)
				ch = true
			}
			res[k] = o
			changed = changed || ch
		}
		return res, changed, true, nil
	}
	if encrypting(c.a) && n.t.Kind != avrocodec.KindNull {
		return encryptLeaf(w.keys, n, v, c.a)
	}
	return leaf(w.r, n, v, c.a)
}

// leaf applies a to a value of a primitive, enum or fixed type.
func leaf(r *Redactor, n *node, v any, a policy.Action) (out any, changed, ok bool, err error) {
	if a == policy.ActionKeep {
		return copyLeaf(v), false, true, nil
	}
	if n.t.Kind == avrocodec.KindNull {
		return nil, false, true, nil
	}
	switch a {
	case policy.ActionPseudonymise, policy.ActionMask, policy.ActionTruncateIP:
		if n.t.Kind != avrocodec.KindString {
			return nil, false, false, nil
		}
		s, isStr := v.(string)
		if !isStr {
			return nil, false, false, mismatch(n, v)
		}
		var res string
		switch a {
		case policy.ActionPseudonymise:
			if r.noKey {
				return nil, false, false, ErrNoKey
			}
			res = r.pseudonym(s)
		case policy.ActionMask:
			res = mask(s)
		default:
			if res, ok = truncateIP(s); !ok {
				return nil, false, false, nil
			}
		}
		return res, res != s, true, nil
	case policy.ActionGeneraliseHour, policy.ActionGeneraliseDay:
		if n.t.Kind != avrocodec.KindLong && n.t.Kind != avrocodec.KindInt {
			return nil, false, false, nil
		}
		unit := time.Hour
		if a == policy.ActionGeneraliseDay {
			unit = 24 * time.Hour
		}
		res, ok := generalise(v, n.t.Logical, unit)
		if !ok {
			return nil, false, false, nil
		}
		return res, !same(v, res), true, nil
	}
	return nil, false, false, nil
}

// copyLeaf returns v, copying the native types that are references.
func copyLeaf(v any) any {
	switch x := v.(type) {
	case []byte:
		return slices.Clone(x)
	case *big.Rat:
		if x != nil {
			return new(big.Rat).Set(x)
		}
	}
	return v
}
