// Package ropa builds the record of processing activities (GDPR Art. 30)
// from the consent policy and the schema catalog: who the controller is,
// which purposes exist on which legal bases, and for every purpose stream
// its recipients, the event schemas it takes and, per data category, how
// the data reaches the stream with consent, without it, and when the
// customer's grant excludes the category.
//
// Nothing here reads the rules a second time. For every stream, schema
// version and case, the record asks decision.Decide (with a synthetic
// consent state: every purpose granted; every purpose denied; granted with
// one category excluded) what the enforcer decides, and redact.Actions what
// the redaction the enforcer would run does to each field; so the record
// says what the pipeline does, first-matching rule included.
//
// Build returns a Record; Markdown renders it for people, encoding/json
// (the struct tags) for tools. Both are deterministic: every list is in
// policy order or sorted.
package ropa

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
)

// EventNamespace is the namespace of the event schemas (schemas/README.md):
// a stream that lists no schemas takes every schema of the catalog in it.
const EventNamespace = "consentgate.events"

// Outcomes of a field on one output of a stream (Field.WithConsent,
// Field.ConsentMissing, Field.Excluded). The redaction actions of the
// policy (policy.Action: keep, remove, pseudonymise, mask, truncate_ip,
// generalise_hour, generalise_day) are outcomes too: the field is in a
// re-encoded copy with that treatment.
const (
	// AsIs: the event's bytes are published unchanged.
	AsIs = "as_is"
	// Dropped: the event is not published on the stream at all.
	Dropped = "dropped"
)

// Topics are the pipeline's record-keeping topics (Record.RecordKeeping).
type Topics struct {
	Changes     string // consent changes, the system of record
	Audit       string // one audit record per input event
	Revocations string // revocation notices to recipients
}

// DefaultTopics are the topics of the default configuration (DESIGN.md).
var DefaultTopics = Topics{Changes: "consent.changes", Audit: "consent.audit", Revocations: "consent.revocations"}

// Record is the record of processing activities.
type Record struct {
	// PolicyVersion is the version of the policy the record describes.
	PolicyVersion string `json:"policy_version"`
	// Controller is the policy's controller block (empty when it has none).
	Controller Controller `json:"controller"`
	// Purposes in policy order.
	Purposes []Purpose `json:"purposes"`
	// Streams in policy order.
	Streams []Stream `json:"streams"`
	// RecordKeeping lists the records the pipeline keeps of what it did.
	RecordKeeping []Measure `json:"record_keeping"`
}

// Controller is who is responsible for the processing.
type Controller struct {
	Name    string `json:"name"`
	Contact string `json:"contact"`
}

// Purpose is one purpose of processing.
type Purpose struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	// LegalBases are the legal bases a grant must have to allow the purpose.
	LegalBases []string `json:"legal_bases"`
	// Consent is "opt_in" (only a valid grant allows the purpose) or
	// "opt_out" (allowed until the customer objects).
	Consent string `json:"consent"`
}

// Stream is one purpose stream: an output topic and its recipients.
type Stream struct {
	Topic       string `json:"topic"`
	Description string `json:"description"`
	// Purposes must all be allowed for an event to pass.
	Purposes   []string `json:"purposes"`
	Recipients []string `json:"recipients"`
	// AllSchemas: the policy lists no schemas, so the stream takes every
	// event schema (Schemas lists those of the catalog).
	AllSchemas bool     `json:"all_schemas"`
	Schemas    []Schema `json:"schemas"`
	// The stream's settings, as in the policy.
	OnMissingConsent   string `json:"on_missing_consent"`
	UnannotatedFields  string `json:"unannotated_fields"`
	ExcludedCategories string `json:"excluded_categories"`
	// Categories are the data categories of the accepted schemas, sorted,
	// with how each field reaches the stream.
	Categories []Category `json:"categories"`
	// Unannotated are the fields without a data category (not personal
	// data by the schemas), with how they reach the stream.
	Unannotated []Field `json:"unannotated"`
}

// Schema is one accepted event schema with its catalog versions.
type Schema struct {
	Name     string `json:"name"`
	Versions []int  `json:"versions"`
}

// Category is one data category on one stream.
type Category struct {
	Category string  `json:"category"`
	Fields   []Field `json:"fields"`
}

// Field is one field of an accepted schema and how it reaches the stream.
type Field struct {
	Schema string `json:"schema"`
	// Versions are the catalog versions of the schema that carry the field
	// with these outcomes.
	Versions []int `json:"versions"`
	// Path is the field's path in the reader (latest) schema, or in the
	// writer's when only older versions have it.
	Path string `json:"path"`
	// WithConsent: every purpose granted, nothing excluded.
	WithConsent string `json:"with_consent"`
	// ConsentMissing: the purposes denied (on_missing_consent).
	ConsentMissing string `json:"consent_missing"`
	// Excluded: the purposes granted, the field's category excluded by
	// the grant (excluded_categories). Empty for unannotated fields,
	// which no exclusion covers.
	Excluded string `json:"excluded,omitempty"`
}

// Measure is one record the pipeline keeps.
type Measure struct {
	Topic       string `json:"topic"`
	Description string `json:"description"`
}

// Build returns the record of processing activities of pol, with the
// data categories of the schemas in cat and DefaultTopics.
func Build(pol *policy.Policy, cat *avrocodec.Catalog) (*Record, error) {
	return BuildWith(pol, cat, DefaultTopics)
}

// BuildWith is Build with the pipeline's topics named.
func BuildWith(pol *policy.Policy, cat *avrocodec.Catalog, topics Topics) (*Record, error) {
	if pol == nil || cat == nil {
		return nil, errors.New("ropa: a policy and a schema catalog are needed")
	}
	rec := &Record{
		PolicyVersion: pol.Version,
		Controller:    Controller{Name: pol.Controller.Name, Contact: pol.Controller.Contact},
		Purposes:      []Purpose{},
		Streams:       []Stream{},
		RecordKeeping: measures(topics, pol.Version),
	}
	for _, p := range pol.Purposes {
		c := "opt_in"
		if p.OptOut {
			c = "opt_out"
		}
		rec.Purposes = append(rec.Purposes, Purpose{ID: p.ID, Description: p.Description, LegalBases: slices.Clone(p.LegalBases), Consent: c})
	}
	red := redact.NewWithoutKey() // Actions makes no pseudonym
	for _, s := range pol.Streams {
		st, err := buildStream(pol, cat, red, s)
		if err != nil {
			return nil, err
		}
		rec.Streams = append(rec.Streams, st)
	}
	return rec, nil
}

func measures(t Topics, version string) []Measure {
	return []Measure{
		{Topic: t.Changes, Description: "every consent change (grant, denial, withdrawal, erasure) with its legal basis, excluded categories, source and notice version: the system of record of consent"},
		{Topic: t.Audit, Description: "one audit record per input event: every stream's decision (passed, redacted, dropped), its reason, the consent change it rests on, the paths of the treated fields (never values) and the policy version (" + version + ")"},
		{Topic: t.Revocations, Description: "revocation notices that tell the recipients to delete what they received after a withdrawal, denial or erasure"},
	}
}

// subject is the synthetic subject of the cases the record asks about.
const subject = "ropa-synthetic-subject"

// now is the time of the synthetic decisions: grants have no expiry, so
// any time gives the same answers.
var now = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// state returns a consent state in which every purpose of s has status st,
// granted ones under the purpose's first legal basis with excluded.
func state(pol *policy.Policy, s policy.Stream, st consent.Status, excluded []string) *consent.State {
	cs := &consent.State{SubjectID: subject, Purposes: map[string]consent.PurposeState{}}
	for _, id := range s.Purposes {
		ps := consent.PurposeState{Status: st, ChangeID: "ropa-" + id, CapturedAt: now.Add(-time.Hour)}
		if p, ok := pol.Purpose(id); ok && len(p.LegalBases) > 0 {
			ps.LegalBasis = consent.LegalBasis(p.LegalBases[0])
		}
		if st == consent.StatusGranted {
			ps.ExcludedCategories = excluded
		}
		cs.Purposes[id] = ps
	}
	return cs
}

// accepted returns the schema names stream s takes, sorted.
func accepted(cat *avrocodec.Catalog, s policy.Stream) ([]string, error) {
	if len(s.Schemas) == 0 {
		var out []string
		for _, sc := range cat.Schemas() {
			if strings.HasPrefix(sc.FullName, EventNamespace+".") && !slices.Contains(out, sc.FullName) {
				out = append(out, sc.FullName)
			}
		}
		return out, nil
	}
	out := slices.Clone(s.Schemas)
	for _, name := range out {
		if len(cat.Versions(name)) == 0 {
			return nil, fmt.Errorf("ropa: stream %s: schema %s is not in the catalog", s.Topic, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// outcomes says, for one decision, what happens to each writer field.
type outcomes struct {
	all     string            // AsIs or Dropped for every field; "" when per field
	byPath  map[string]string // reader path -> action
	carried *decision.Carried
}

func (o outcomes) of(f decision.Field) string {
	if o.all != "" {
		return o.all
	}
	if f.ReaderPath == "" {
		// Only the writer has the field: a re-encoded copy does not
		// carry it.
		return string(policy.ActionRemove)
	}
	if a, ok := o.byPath[f.ReaderPath]; ok {
		return a
	}
	return string(policy.ActionRemove) // fail closed: not in the program
}

// treat returns what decision d publishes of an event written with w and
// read as r on s: the same dispatch as the enforcer's Treat.
func treat(red *redact.Redactor, w, r *avrocodec.Schema, s policy.Stream, d decision.Decision) (outcomes, error) {
	switch {
	case d.Outcome == decision.Dropped:
		return outcomes{all: Dropped}, nil
	case d.Outcome == decision.Passed && len(d.Plan) == 0:
		return outcomes{all: AsIs}, nil
	}
	mode := redact.ModeRemoveExcluded
	if d.Treatment == decision.TreatRedact {
		mode = redact.ModeRedact
	}
	req := redact.Request{Schema: r, Stream: s, Excluded: d.Excluded, Mode: mode}
	if w != r {
		req.Writer = w
	}
	acts, err := red.Actions(req)
	if err != nil {
		return outcomes{}, fmt.Errorf("ropa: stream %s, schema %s v%d: %w", s.Topic, w.FullName, w.Version, err)
	}
	o := outcomes{byPath: map[string]string{}}
	for _, a := range acts {
		if prev, ok := o.byPath[a.Path]; ok && prev != string(a.Action) {
			// Union branches at one path with different actions: the
			// record shows the stricter, remove.
			o.byPath[a.Path] = string(policy.ActionRemove)
			continue
		}
		o.byPath[a.Path] = string(a.Action)
	}
	return o, nil
}

type fieldKey struct {
	category, schema, path, consent, missing, excluded string
}

func buildStream(pol *policy.Policy, cat *avrocodec.Catalog, red *redact.Redactor, s policy.Stream) (Stream, error) {
	st := Stream{
		Topic: s.Topic, Description: s.Description,
		Purposes: slices.Clone(s.Purposes), Recipients: slices.Clone(s.Recipients),
		AllSchemas:         len(s.Schemas) == 0,
		OnMissingConsent:   string(s.OnMissing),
		UnannotatedFields:  s.Unannotated,
		ExcludedCategories: s.Excluded,
		Schemas:            []Schema{}, Categories: []Category{}, Unannotated: []Field{},
	}
	if st.Recipients == nil {
		st.Recipients = []string{}
	}
	names, err := accepted(cat, s)
	if err != nil {
		return Stream{}, err
	}
	versions := map[fieldKey][]int{}
	var order []fieldKey
	note := func(k fieldKey, v int) {
		if _, ok := versions[k]; !ok {
			order = append(order, k)
		}
		if !slices.Contains(versions[k], v) {
			versions[k] = append(versions[k], v)
		}
	}
	for _, name := range names {
		reader, _ := cat.SchemaByName(name)
		sc := Schema{Name: name}
		for _, w := range cat.Versions(name) {
			sc.Versions = append(sc.Versions, w.Version)
			carried := decision.FieldsOf(w, reader)
			decide := func(cs *consent.State) (outcomes, error) {
				d := decision.Decide(pol, s, decision.Input{Schema: name, Fields: carried.Fields, State: cs, Now: now})
				return treat(red, w, reader, s, d)
			}
			withConsent, err := decide(state(pol, s, consent.StatusGranted, nil))
			if err != nil {
				return Stream{}, err
			}
			missing, err := decide(state(pol, s, consent.StatusDenied, nil))
			if err != nil {
				return Stream{}, err
			}
			excluded := map[string]outcomes{}
			for _, f := range carried.Fields {
				for _, c := range f.Categories {
					if _, done := excluded[c]; done {
						continue
					}
					if excluded[c], err = decide(state(pol, s, consent.StatusGranted, []string{c})); err != nil {
						return Stream{}, err
					}
				}
			}
			for _, f := range carried.Fields {
				path := f.ReaderPath
				if path == "" {
					path = f.Path
				}
				if !f.Annotated() {
					note(fieldKey{schema: name, path: path, consent: withConsent.of(f), missing: missing.of(f)}, w.Version)
					continue
				}
				for _, c := range f.Categories {
					note(fieldKey{category: c, schema: name, path: path, consent: withConsent.of(f), missing: missing.of(f), excluded: excluded[c].of(f)}, w.Version)
				}
			}
		}
		st.Schemas = append(st.Schemas, sc)
	}
	slices.SortStableFunc(order, func(a, b fieldKey) int {
		return cmpKeys(a, b)
	})
	for _, k := range order {
		f := Field{Schema: k.schema, Versions: versions[k], Path: k.path, WithConsent: k.consent, ConsentMissing: k.missing, Excluded: k.excluded}
		slices.Sort(f.Versions)
		if k.category == "" {
			st.Unannotated = append(st.Unannotated, f)
			continue
		}
		if n := len(st.Categories); n == 0 || st.Categories[n-1].Category != k.category {
			st.Categories = append(st.Categories, Category{Category: k.category})
		}
		last := &st.Categories[len(st.Categories)-1]
		last.Fields = append(last.Fields, f)
	}
	return st, nil
}

func cmpKeys(a, b fieldKey) int {
	for _, c := range [][2]string{{a.category, b.category}, {a.schema, b.schema}, {a.path, b.path}, {a.consent, b.consent}, {a.missing, b.missing}, {a.excluded, b.excluded}} {
		if n := strings.Compare(c[0], c[1]); n != 0 {
			return n
		}
	}
	return 0
}
