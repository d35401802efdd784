package explain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/services/enforcer/internal/enforce"
)

// DemoKey is the pseudonymisation key explain uses when no key file is
// given. It is public, so pseudonyms computed with it show the shape of the
// output only: they differ from the production enforcer's.
var DemoKey = []byte("consentgate-explain-demo-key-not-a-secret")

// Input is one explain request.
type Input struct {
	// Policy is the parsed policy; Source names its file in the output.
	Policy *policy.Policy
	Source string
	// Catalog is the schema catalog the enforcer would load.
	Catalog *avrocodec.Catalog
	// Event is the event as a plain JSON object (DecodeObject); SchemaName,
	// when set, is its schema's full name, else it is guessed (see
	// ResolveSchema).
	Event      map[string]any
	SchemaName string
	// State is the subject's consent (ParseConsent); nil for a subject
	// about whom nothing is stored.
	State *consent.State
	// Signals, when set, are consent signals whose changes apply on top
	// of State (EvaluateSignals), as consent-sync would store them; their
	// SubjectID is set to the event's subject.
	Signals *signals.Submission
	// Now is the time of the decision (expiry is checked against it).
	Now time.Time
	// Key is the pseudonymisation key; nil uses DemoKey.
	Key []byte
	// Keys encrypts the fields of encrypt rules (the subject's data key);
	// nil uses a throwaway illustrative key drawn for this explanation
	// (see illustrativeKey), whose ciphertexts show the format only.
	Keys redact.Encrypter
	// ShowValues adds the redacted events, as published, to the output.
	ShowValues bool
}

// Explanation says what the enforcer does with one event under one policy
// and one consent state, stream by stream.
type Explanation struct {
	Policy        string    `json:"policy"`
	PolicyVersion string    `json:"policy_version"`
	Schema        string    `json:"schema"`
	WriterVersion int       `json:"written_with_version"`
	ReaderVersion int       `json:"read_as_version"`
	Now           time.Time `json:"now"`
	// Key is "demo" (DemoKey) or "given".
	Key string `json:"pseudonymisation_key"`
	// DataKey is "illustrative" (a throwaway key drawn for this
	// explanation) or "given" when some stream encrypts a field; empty
	// when none does.
	DataKey string `json:"data_key,omitempty"`
	// DeadLetter is the dead-letter reason when the enforcer would not
	// decide the event at all (missing_subject_id, missing_event_id); the
	// streams are empty then.
	DeadLetter string `json:"dead_letter,omitempty"`
	// Notes point out things in the input worth knowing.
	Notes []string `json:"notes,omitempty"`
	// Signals says what the signals of Input.Signals decide; nil without
	// signals. The streams are decided on the state they produce.
	Signals *SignalsReport `json:"signals,omitempty"`
	Streams []Stream       `json:"streams"`
}

// Stream is the decision for one purpose stream.
type Stream struct {
	Topic     string           `json:"topic"`
	Purposes  []string         `json:"purposes"`
	OnMissing policy.OnMissing `json:"on_missing_consent"`
	Decision  decision.Outcome `json:"decision"`
	// Purpose is the purpose that decided (the first that failed, else the
	// first of the stream).
	Purpose string `json:"purpose"`
	// Reason is the reason code of the audit record; Why says it in words.
	Reason string `json:"reason"`
	Why    string `json:"why"`
	// ChangeID and CapturedAt name the consent change that decided; empty
	// when none did (never asked, unknown subject).
	ChangeID   string     `json:"consent_change_id,omitempty"`
	CapturedAt *time.Time `json:"consent_captured_at,omitempty"`
	// Consents name, for every purpose whose consent was checked, the
	// consent change its verdict rests on, as the audit record's
	// decisions[].consents do.
	Consents []Consent `json:"consents,omitempty"`
	// Treatment is "redact" or "remove_excluded" for a REDACTED event, and
	// "stream_settings" for a PASSED event re-encoded with the stream's
	// unannotated_fields applied; empty when the input bytes are published
	// as they are.
	Treatment string `json:"treatment,omitempty"`
	// Excluded are the category patterns the grants exclude.
	Excluded []string `json:"excluded_categories,omitempty"`
	// Treated lists the fields the redaction changed, with the action.
	Treated []Treated `json:"treated_fields,omitempty"`
	// Event is the event as published on the stream (a treated copy,
	// with ShowValues only).
	Event json.Marshaler `json:"event,omitempty"`
}

// Consent is the consent change one purpose's verdict rests on; ChangeID
// and CapturedAt are empty when there is none.
type Consent struct {
	Purpose    string     `json:"purpose"`
	ChangeID   string     `json:"consent_change_id,omitempty"`
	CapturedAt *time.Time `json:"consent_captured_at,omitempty"`
}

// Treated is one field a redaction changed or removed.
type Treated struct {
	Path   string        `json:"path"`
	Action policy.Action `json:"action"`
	// Encryption is the mode of an encrypt Action.
	Encryption policy.Encryption `json:"encryption,omitempty"`
	// Rule says which part of the policy chose the action.
	Rule string `json:"rule"`
}

// Explain decides in.Event for every stream of in.Policy with the code the
// enforcer runs: the event is encoded with its schema (single-object
// framing, as a producer would), decoded by avrocodec into the catalog's
// latest version, decided by decision.Decide with the same input, and
// redacted by a redact.Redactor and re-encoded exactly as package enforce
// does (a redaction that fails drops the event, reason redaction_failed).
func Explain(ctx context.Context, in Input) (*Explanation, error) {
	if in.Policy == nil || in.Catalog == nil {
		return nil, errors.New("explain: policy and catalog are required")
	}
	if in.Signals != nil {
		// A malformed signal fails the request, whatever the event.
		if _, err := signals.Decode(*in.Signals); err != nil {
			return nil, err
		}
	}
	writer, native, err := ResolveSchema(in.Catalog, in.Event, in.SchemaName)
	if err != nil {
		return nil, err
	}
	data, err := writer.EncodeSingle(native)
	if err != nil {
		return nil, fmt.Errorf("encode event with %s version %d: %w", writer.FullName, writer.Version, err)
	}
	codec := avrocodec.New(in.Catalog, nil)
	rec, err := codec.Decode(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	key, keyName := in.Key, "given"
	if key == nil {
		key, keyName = DemoKey, "demo"
	}
	red, err := redact.New(key)
	if err != nil {
		return nil, fmt.Errorf("pseudonymisation key: %w", err)
	}
	keys, dataKey := in.Keys, "given"
	if keys == nil && in.Policy.Encrypts() {
		if keys, err = newIllustrativeKey(); err != nil {
			return nil, err
		}
		dataKey = "illustrative"
	}
	ex := &Explanation{
		Policy: in.Source, PolicyVersion: in.Policy.Version,
		Schema: rec.Schema.FullName, WriterVersion: writer.Version, ReaderVersion: rec.Schema.Version,
		Now: in.Now.UTC(), Key: keyName, Streams: []Stream{},
	}
	subject, _ := avrocodec.StringField(rec.Value, "subject_id")
	id, _ := avrocodec.StringField(rec.Value, "event_id")
	switch {
	case subject == "":
		ex.DeadLetter = enforce.DeadLetterMissingSubjectID
		return ex, nil
	case id == "":
		ex.DeadLetter = enforce.DeadLetterMissingEventID
		return ex, nil
	}
	if in.State != nil && in.State.SubjectID != "" && in.State.SubjectID != subject {
		ex.Notes = append(ex.Notes, "the consent's subject_id is not the event's: the enforcer would look up the event's subject instead")
	}
	state := in.State
	if in.Signals != nil {
		sub := *in.Signals
		sub.SubjectID = subject
		if ex.Signals, state, err = EvaluateSignals(in.Policy, sub, in.State, in.Now); err != nil {
			return nil, err
		}
		if len(in.Policy.Signals.Rules) == 0 {
			ex.Notes = append(ex.Notes, "the policy has no signals section: signals change no consent (consent-sync refuses them: 404)")
		}
	}
	fields := make(map[string]avrocodec.FieldInfo, len(rec.Schema.Fields))
	for _, f := range rec.Schema.Fields {
		fields[f.Path] = f
	}
	carried := decision.FieldsOf(rec.Writer(), rec.Schema)

	// The same input and loop as enforce.Enforcer.Process.
	dIn := decision.Input{Schema: rec.Schema.FullName, Fields: carried.Fields, State: state, Now: in.Now}
	for _, s := range in.Policy.Streams {
		d := decision.Decide(in.Policy, s, dIn)
		out := Stream{Topic: s.Topic, Purposes: s.Purposes, OnMissing: s.OnMissing, Excluded: d.Excluded}
		if d.Outcome != decision.Dropped {
			var (
				p   enforce.Published
				err error
			)
			if decision.NeedsDataKey(d, s) {
				ex.DataKey = dataKey
				p, err = enforce.TreatWith(ctx, codec, red, rec, data, s, d, keys)
			} else {
				p, err = enforce.Treat(ctx, codec, red, rec, data, s, d)
			}
			switch {
			case err != nil:
				// Fail closed, as the enforcer does.
				d.Outcome, d.Reason = decision.Dropped, enforce.ReasonRedactionFailed
			case !p.Forward:
				out.Treatment = p.Mode.String()
				if d.Treatment == decision.TreatSettings {
					out.Treatment = "stream_settings"
				}
				j := judge{s: s, fields: fields, cats: carried.ReaderCategories, excl: decision.NewExclusions(d.Excluded), mode: p.Mode}
				for _, path := range p.Treated {
					a, enc, rule := j.treatedBy(path)
					if transforming(a) && looksRemoved(fieldValue(p.Value, path)) {
						if a == policy.ActionEncrypt {
							rule += "; encrypt does not apply to this value (only string and bytes hold a ciphertext), or the subject has no data key, so it is removed"
						} else {
							rule += "; " + string(a) + " does not apply to this value, so it is removed"
						}
						a, enc = policy.ActionRemove, ""
					}
					out.Treated = append(out.Treated, Treated{Path: path, Action: a, Encryption: enc, Rule: rule})
				}
				if in.ShowValues {
					back, err := codec.Decode(ctx, p.Bytes)
					if err != nil {
						return nil, fmt.Errorf("decode treated event: %w", err)
					}
					if out.Event, err = FromNative(back.Schema, back.Value); err != nil {
						return nil, err
					}
				}
			}
		}
		out.Decision, out.Purpose, out.Reason = d.Outcome, d.Purpose, d.Reason
		out.ChangeID = d.ChangeID
		if !d.CapturedAt.IsZero() {
			t := d.CapturedAt.UTC()
			out.CapturedAt = &t
		}
		for _, c := range d.Consents {
			pc := Consent{Purpose: c.Purpose, ChangeID: c.ChangeID}
			if c.ChangeID != "" {
				t := c.CapturedAt.UTC()
				pc.CapturedAt = &t
			}
			out.Consents = append(out.Consents, pc)
		}
		out.Why = why(in.Policy, s, d, state, rec.Schema.FullName)
		if d.Outcome != decision.Redacted {
			out.Excluded = nil
			if d.Reason == decision.ReasonExcludedCategory {
				out.Excluded = d.Excluded
			}
		}
		ex.Streams = append(ex.Streams, out)
	}
	return ex, nil
}

// transforming mirrors the treatments package redact inherits to unannotated
// sub-fields (those that rewrite a value).
func transforming(a policy.Action) bool {
	switch a {
	case policy.ActionPseudonymise, policy.ActionMask, policy.ActionTruncateIP,
		policy.ActionGeneraliseHour, policy.ActionGeneraliseDay, policy.ActionEncrypt:
		return true
	}
	return false
}

// encryption returns the mode of the encrypt rule Stream.TreatmentFor
// picks for the field: randomised when it is the default_treatment.
func encryption(s policy.Stream, path, cat string) policy.Encryption {
	if e, ok := s.EncryptionFor(path, cat); ok {
		return e
	}
	return policy.EncryptRandomised
}

// everyOutput reports whether an encrypt rule is the first matching rule
// of the field for one of its categories (it applies on every output),
// and the mode: deterministic only when every such category says so, as
// package redact decides.
func everyOutput(s policy.Stream, path string, cats []string) (policy.Encryption, string, bool) {
	cs := cats
	if len(cs) == 0 {
		cs = []string{""}
	}
	found, det, rule := false, true, ""
	for _, c := range cs {
		if e, ok := s.EncryptionFor(path, c); ok {
			if !found {
				rule = ruleFor(s, path, c)
			}
			found = true
			det = det && e == policy.EncryptDeterministic
		}
	}
	if det {
		return policy.EncryptDeterministic, rule, found
	}
	return policy.EncryptRandomised, rule, found
}

// judge follows package redact's selection rules to say, for a field it
// treated, which action and which part of the policy chose it.
type judge struct {
	s      policy.Stream
	fields map[string]avrocodec.FieldInfo // reader fields by path
	cats   map[string][]string            // reader path -> writer and reader categories
	excl   decision.Exclusions
	mode   redact.Mode
}

func (j judge) categories(path string) []string {
	if c, ok := j.cats[path]; ok {
		return c
	}
	if c := j.fields[path].Category; c != "" {
		return []string{c}
	}
	return nil
}

// treatedBy says which action package redact applied to the field at path
// and which part of the policy chose it, following its selection rules
// (see the redact package documentation): top-down from the outermost
// enclosing field, excluded categories first (decision.Exclusions, with the
// writer's and the reader's annotations), unannotated fields inheriting an
// enclosing rewriting treatment, Stream.TreatmentFor otherwise. A path the
// reader schema lacks is a writer-only field that a re-encoded copy no
// longer carries.
func (j judge) treatedBy(path string) (policy.Action, policy.Encryption, string) {
	if _, ok := j.fields[strings.TrimSuffix(strings.TrimSuffix(path, "[]"), "{}")]; !ok {
		return policy.ActionRemove, "", "only the writer's schema has this field; the re-encoded copy does not carry it"
	}
	s := j.s
	var (
		inherit     policy.Action
		inheritEnc  policy.Encryption
		inheritFrom string
	)
	segs := strings.Split(path, ".")
	for i := range segs {
		q := strings.Join(segs[:i+1], ".")
		fq := strings.TrimSuffix(strings.TrimSuffix(q, "[]"), "{}")
		cats := j.categories(fq)
		cat := strings.Join(cats, "+")
		var (
			a    policy.Action
			enc  policy.Encryption
			rule string
		)
		p, excluded := j.excl.CoversAny(cats)
		e, encRule, encrypts := everyOutput(s, fq, cats)
		switch {
		case excluded:
			a, rule = policy.ActionRemove, "category "+cat+" is excluded by the grant"
			if p != cat {
				rule += " (" + p + ")"
			}
		case j.mode == redact.ModeRemoveExcluded && encrypts:
			a, enc, rule = policy.ActionEncrypt, e, encRule+"; encrypt applies on every output"
		case j.mode == redact.ModeRemoveExcluded && len(cats) == 0 && s.Unannotated == policy.UnannotatedRemove:
			a = s.TreatmentFor(fq, "")
			rule = ruleFor(s, fq, "")
		case j.mode == redact.ModeRemoveExcluded:
			a, rule = policy.ActionKeep, "kept: only excluded categories, encrypt rules and unannotated_fields apply"
		case len(cats) == 0 && inherit != "":
			a, enc, rule = inherit, inheritEnc, "unannotated, inherits "+string(inherit)+" from "+inheritFrom
			for _, t := range s.Treatments {
				if t.Field != "" && t.Field == fq {
					a, enc, rule = t.Action, t.Encryption, fmt.Sprintf("field rule, policy line %d", t.Line)
					break
				}
			}
		case len(cats) > 1 && s.TreatmentFor(fq, cats[0]) != s.TreatmentFor(fq, cats[1]):
			a, rule = policy.ActionRemove, "the writer's and the reader's categories ("+cat+") get different treatments, so it is removed"
		default:
			c := ""
			if len(cats) > 0 {
				c = cats[0]
			}
			a = s.TreatmentFor(fq, c)
			rule = ruleFor(s, fq, c)
			if a == policy.ActionEncrypt {
				enc = encryption(s, fq, c)
			}
		}
		if a != policy.ActionKeep && !transforming(a) {
			a = policy.ActionRemove
		}
		if inherit == policy.ActionEncrypt && a != policy.ActionRemove && a != policy.ActionEncrypt {
			a, enc, rule = inherit, inheritEnc, "inside "+inheritFrom+", which is encrypted: every value in it is encrypted or removed"
		}
		if a == policy.ActionEncrypt && enc == "" {
			enc = policy.EncryptRandomised
		}
		if a != policy.ActionEncrypt {
			enc = ""
		}
		if fq == path || i == len(segs)-1 {
			return a, enc, rule
		}
		if a == policy.ActionRemove {
			return a, "", rule + " (on " + fq + ")"
		}
		inherit, inheritEnc, inheritFrom = "", "", ""
		if transforming(a) {
			inherit, inheritEnc, inheritFrom = a, enc, fq
		}
	}
	return policy.ActionRemove, "", "unknown"
}

// ruleFor names the rule Stream.TreatmentFor picks for the field.
func ruleFor(s policy.Stream, path, cat string) string {
	for _, t := range s.Treatments {
		if t.Field != "" && t.Field == path {
			return fmt.Sprintf("field rule, policy line %d", t.Line)
		}
		if t.Category != "" && policy.MatchCategory(t.Category, cat) {
			if t.Category == cat {
				return fmt.Sprintf("category rule %s, policy line %d", cat, t.Line)
			}
			return fmt.Sprintf("category rule %s for %s, policy line %d", t.Category, cat, t.Line)
		}
	}
	if cat == "" {
		return "unannotated_fields: " + s.Unannotated
	}
	return "default_treatment for " + cat
}

// fieldValue reads the value at a schema path (as in Result.Treated) of a
// native value; a path through an array or map gives the items' values.
func fieldValue(v map[string]any, path string) any {
	got, ok := avrocodec.Field(v, path)
	if !ok {
		return nil
	}
	return got
}

// looksRemoved reports whether v is what a removal leaves: null, a zero
// value, an empty collection, or the epoch. Rewriting treatments never
// produce these from a value they apply to.
func looksRemoved(v any) bool {
	switch x := avrocodec.Unwrap(v).(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case int32:
		return x == 0
	case int64:
		return x == 0
	case float32:
		return x == 0
	case float64:
		return x == 0
	case []byte:
		return len(x) == 0
	case time.Time:
		return x.UnixMilli() == 0
	case time.Duration:
		return x == 0
	case *big.Rat:
		return x == nil || x.Sign() == 0
	case []any:
		for _, item := range x {
			if !looksRemoved(item) {
				return false
			}
		}
		return true
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// why explains a decision in one sentence.
func why(p *policy.Policy, s policy.Stream, d decision.Decision, st *consent.State, schema string) string {
	pur, _ := p.Purpose(d.Purpose)
	kind := "opt-in"
	if pur.OptOut {
		kind = "opt-out"
	}
	var text string
	switch d.Reason {
	case decision.ReasonSchemaNotAccepted:
		return "the stream does not take " + schema + " events (schemas: " + strings.Join(s.Schemas, ", ") + ")"
	case decision.ReasonUnknownPurpose:
		return "the stream needs purpose " + d.Purpose + ", which the policy does not declare"
	case string(consent.ReasonGranted):
		if len(s.Purposes) > 1 {
			return "the customer granted every purpose of the stream (" + strings.Join(s.Purposes, ", ") + ")" + settingsNote(d)
		}
		return "the customer granted " + d.Purpose + settingsNote(d)
	case decision.ReasonOptOutNotExercised:
		return d.Purpose + " is opt-out and the customer has not objected" + settingsNote(d)
	case decision.ReasonGrantedWithExclusions:
		return "the stream's purposes are allowed, but the customer's grant excludes data categories the event carries (" +
			strings.Join(d.Excluded, ", ") + "); excluded_categories is remove, so those fields are removed"
	case decision.ReasonExcludedCategory:
		return "the customer's grant excludes data categories the event carries (" + strings.Join(d.Excluded, ", ") +
			"); excluded_categories is drop, so the event is left off the stream"
	case enforce.ReasonRedactionFailed:
		return "the event had to be redacted but could not be, so it is dropped (fail closed)"
	case string(consent.ReasonNeverAsked):
		text = "the customer was never asked for " + d.Purpose + "; " + d.Purpose + " is " + kind
	case string(consent.ReasonUnknownSubject):
		text = "nothing is stored about the customer (unknown subject), so " + d.Purpose + " is not granted; " + d.Purpose + " is " + kind
	case string(consent.ReasonDenied):
		text = "the customer denied " + d.Purpose
	case string(consent.ReasonWithdrawn):
		text = "the customer withdrew consent for " + d.Purpose
	case string(consent.ReasonExpired):
		text = "the customer's grant for " + d.Purpose + " expired"
		if st != nil {
			if ps, ok := st.Purposes[d.Purpose]; ok && !ps.ExpiresAt.IsZero() {
				text += " at " + ps.ExpiresAt.UTC().Format(time.RFC3339)
			}
		}
	case string(consent.ReasonErased):
		text = "the customer was erased and has not granted " + d.Purpose + " since"
	case decision.ReasonLegalBasisNotAccepted:
		basis := "its legal basis"
		if st != nil {
			if ps, ok := st.Purposes[d.Purpose]; ok {
				basis = string(ps.LegalBasis)
			}
		}
		text = "the grant for " + d.Purpose + " is under " + basis + ", which the policy does not accept for it (accepted: " +
			strings.Join(pur.LegalBases, ", ") + ")"
	default:
		text = "consent for " + d.Purpose + " is missing (" + d.Reason + ")"
	}
	if d.Outcome == decision.Redacted {
		return text + "; on_missing_consent is redact, so a redacted copy is published"
	}
	return text + "; on_missing_consent is drop, so the event is left off the stream"
}

// settingsNote says that a passed event is published re-encoded.
func settingsNote(d decision.Decision) string {
	if d.Outcome != decision.Passed || d.Treatment != decision.TreatSettings {
		return ""
	}
	var unannotated bool
	for _, st := range d.Plan {
		if st.Cause == decision.CauseUnannotated {
			unannotated = true
		}
	}
	switch {
	case unannotated && d.Plan.Encrypts():
		return "; the stream's unannotated_fields is remove and it encrypts fields on every output, so a re-encoded copy without the unannotated fields and with those fields encrypted is published"
	case d.Plan.Encrypts():
		return "; the stream encrypts fields on every output, so a re-encoded copy with those fields encrypted is published"
	}
	return "; the stream's unannotated_fields is remove, so a copy without the unannotated fields is published"
}

// WriteJSON prints the explanation as indented JSON.
func (e *Explanation) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(e)
}

// WriteText prints the explanation for people: a header, then one block per
// stream. Field values appear only in the events of Stream.Event.
func (e *Explanation) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "event:   %s (written with version %d, read as version %d)\n", e.Schema, e.WriterVersion, e.ReaderVersion)
	fmt.Fprintf(&b, "policy:  %s (%s)\n", e.Policy, e.PolicyVersion)
	fmt.Fprintf(&b, "time:    %s\n", e.Now.Format("2006-01-02T15:04:05.000Z07:00"))
	if e.Key == "demo" {
		b.WriteString("pseudonyms: computed with a fixed demo key, not your production key (--pseudonymisation-key-file to use it)\n")
	} else {
		b.WriteString("pseudonyms: computed with the key of --pseudonymisation-key-file\n")
	}
	switch e.DataKey {
	case "illustrative":
		b.WriteString("data key: encrypted fields use a throwaway key drawn for this explanation: the ciphertexts are illustrative (they show where and in which form fields are encrypted) and decrypt with nothing; the enforcer encrypts under each subject's own data key\n")
	case "given":
		b.WriteString("data key: encrypted fields use the data key given\n")
	}
	for _, n := range e.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if e.Signals != nil {
		e.Signals.writeText(&b)
	}
	if e.DeadLetter != "" {
		fmt.Fprintf(&b, "\nDEAD-LETTERED (%s): the enforcer decides nothing for an event without %s; it goes to the dead-letter topic\n",
			e.DeadLetter, strings.TrimPrefix(e.DeadLetter, "missing_"))
	}
	for _, s := range e.Streams {
		fmt.Fprintf(&b, "\n%s (purposes: %s; on_missing_consent: %s)\n", s.Topic, strings.Join(s.Purposes, ", "), s.OnMissing)
		fmt.Fprintf(&b, "  decision:       %s\n", s.Decision)
		fmt.Fprintf(&b, "  reason:         %s: %s\n", s.Reason, s.Why)
		if s.ChangeID != "" {
			at := ""
			if s.CapturedAt != nil {
				at = ", captured " + s.CapturedAt.Format("2006-01-02T15:04:05.000Z07:00")
			}
			fmt.Fprintf(&b, "  consent change: %s (purpose %s%s)\n", s.ChangeID, s.Purpose, at)
		} else {
			fmt.Fprintf(&b, "  consent change: none (purpose %s)\n", s.Purpose)
		}
		if s.Treatment == "" {
			continue
		}
		fmt.Fprintf(&b, "  treatment:      %s\n", s.Treatment)
		if len(s.Treated) == 0 {
			b.WriteString("  treated fields: none changed\n")
		} else {
			b.WriteString("  treated fields:\n")
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			for _, t := range s.Treated {
				action := string(t.Action)
				if t.Encryption != "" {
					action += " (" + string(t.Encryption) + ")"
				}
				fmt.Fprintf(tw, "    %s\t-> %s\t(%s)\n", t.Path, action, t.Rule)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if s.Event != nil {
			b.WriteString("  published event:\n    ")
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("    ", "  ")
			if err := enc.Encode(s.Event); err != nil {
				return err
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
