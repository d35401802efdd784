// Package enforce decides batches of customer events: decode them, read the
// consent of every subject in one round trip, decide each event for every
// stream of the policy, and return the outputs, audit records and dead
// letters to write. A stream.Runner writes them with acks=all and only then
// commits the input offsets.
//
// Fail closed: when consent cannot be read (or a schema registry cannot be
// reached) Process returns an error and nothing to write; the runner retries
// the batch with backoff and commits nothing for it, so the enforcer neither
// passes unchecked events nor drops them silently.
//
// Judge what is sent: every decision is made on the fields the input bytes
// carry, the writer schema's, judged with the writer's and the reader's
// data_category annotations (decision.FieldsOf), and the input bytes are
// forwarded unchanged only when the decision passed and its Plan
// (decision.PlanFor: excluded categories, the stream's unannotated_fields)
// is empty for the writer schema. Any other output is a copy re-encoded
// from the decoded value by Treat, with the treatments applied; it no
// longer carries the fields the reader schema lacks, and the audit record
// lists every field it changed. Treat is the one place that chooses
// between the two; explain uses it too.
package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/pkg/telemetry"
)

// Header names set on every output and dead-letter record (outputs carry
// the consent context too: see HeaderConsentPurposes). They are all in
// the enforcer's namespace (EnforcerHeader).
const (
	HeaderEventID       = "consentgate.event_id"
	HeaderSourceTopic   = "consentgate.source.topic"
	HeaderSourcePart    = "consentgate.source.partition"
	HeaderSourceOffset  = "consentgate.source.offset"
	HeaderPolicyVersion = "consentgate.policy_version"
	HeaderDecision      = "consentgate.decision"
	HeaderDLQReason     = "consentgate.dlq.reason"
	HeaderDLQError      = "consentgate.dlq.error"
)

// EnforcerHeader reports whether key is in the header namespace of
// consentgate ("consentgate.", HeaderNamespace): the enforcer's headers
// (HeaderEventID, the source coordinates, HeaderPolicyVersion,
// HeaderDecision, the consent context), the dead-letter headers, and any
// the enforcer may add later. A record forwarded on a purpose stream
// keeps none of the input's headers in the namespace: a producer could
// otherwise forge the consent context (or the source coordinates the
// runner ties records to their input by) ahead of the enforcer's own,
// where a reader that takes the first value would read the forgery. Dead
// letters keep the input's headers as they were, these included: on a
// dead letter only the headers after the input's are the enforcer's.
func EnforcerHeader(key string) bool {
	// In any letter case: a sink that folds header names (to HTTP headers,
	// say) must not meet a forged ConsentGate.consent_mode.* first.
	return len(key) >= len(HeaderNamespace) && strings.EqualFold(key[:len(HeaderNamespace)], HeaderNamespace)
}

// HeaderNamespace starts the key of every header the enforcer (and the
// rest of consentgate) writes.
const HeaderNamespace = "consentgate."

// AuditSchema is the full name of the audit record schema.
const AuditSchema = audit.Schema

// Decoder turns framed Avro into a record.
type Decoder interface {
	// ReadEnvelope and DecodeEnvelope: see avrocodec.Codec. An event whose
	// bytes are forwarded is never decoded into a value.
	ReadEnvelope(ctx context.Context, data []byte, env *avrocodec.Envelope) error
	DecodeEnvelope(env *avrocodec.Envelope) (*avrocodec.Record, error)
	EncodeSingle(fullName string, value map[string]any) ([]byte, error)
	EncodeLike(ctx context.Context, rec *avrocodec.Record, value map[string]any) ([]byte, error)
}

// Encoder re-encodes a treated copy of a decoded record in its input's
// framing; *avrocodec.Codec satisfies it.
type Encoder interface {
	EncodeLike(ctx context.Context, rec *avrocodec.Record, value map[string]any) ([]byte, error)
}

// ConsentReader reads consent state for a batch of subjects.
type ConsentReader interface {
	Lookup(ctx context.Context, subjects []string) (map[string]*consent.State, error)
}

// KeySource gives the data keys that encrypt rules encrypt under, one per
// subject (see package shred: the keys live in the consent.keys topic,
// and a subject without one gets a new one, durably written before it is
// returned). want maps each subject to the newest erasure its consent
// state knows (zero for none): a key is one made knowing at least that
// erasure, and a subject whose erasure in the keys topic is newer than
// what the state knows gets no key (shred.ErrStaleErasure: the state is
// older than the erasure). An error means no key may be
// used: Process fails and the batch is retried, so nothing is published
// in clear and nothing is lost.
type KeySource interface {
	Encrypters(ctx context.Context, want map[string]shred.Erasure) (map[string]redact.Encrypter, error)
}

// Options configure an Enforcer.
type Options struct {
	AuditTopic string
	DLQSuffix  string
	// Redactor treats the fields of events published redacted.
	Redactor *redact.Redactor
	// Keys gives the subjects' data keys when the policy encrypts
	// (policy.Policy.Encrypts). Without it every field to encrypt is
	// removed instead.
	Keys KeySource
	// Tracer (optional) traces each record whose producer's trace context
	// is sampled, and carries it on to every record written for it.
	Tracer trace.Tracer
	// Log (optional, else slog.Default) is told once at start when audit
	// records cannot take the fast encoder (see AuditFingerprint).
	Log *slog.Logger
	// Workers is how many goroutines decide a batch; 0 means
	// DefaultWorkers (one per CPU). The records written do not depend on
	// it (see Process).
	Workers int
}

// Dead-letter reasons: the consentgate.dlq.reason of a dead letter the
// enforcer writes, and the dead_letter_reason of its DEAD_LETTERED audit
// record (documented in the audit schema; schemas/reasons_test.go keeps the
// two in step).
const (
	DeadLetterUndecodable      = "undecodable"
	DeadLetterMissingSubjectID = "missing_subject_id"
	DeadLetterMissingEventID   = "missing_event_id"
	// DeadLetterIDTooLong: the event's event_id or subject_id is longer
	// than MaxIDBytes. Its DEAD_LETTERED audit record, key and headers
	// leave the over-long id out (see deadLetterAudit), so that the audit
	// record fits whatever the producer sent.
	DeadLetterIDTooLong = "id_too_long"
)

// MaxIDBytes bounds the event_id and subject_id of an event the enforcer
// decides (consent.MaxIDBytes, the bound of a consent change's ids too).
const MaxIDBytes = consent.MaxIDBytes

// ReasonRedactionFailed is the audit reason of an event that had to be
// redacted but could not be (a value that does not fit its schema): it is
// dropped, never published untreated.
const ReasonRedactionFailed = "redaction_failed"

// Enforcer decides batches of customer events; a stream.Runner drives it.
type Enforcer struct {
	opts    Options
	codec   Decoder
	consent ConsentReader
	policy  *policy.Policy
	now     func() time.Time

	// Per-record outcomes are counted, never logged.
	Passed, Redacted, Dropped, DeadLettered atomic.Int64

	metrics *metrics

	// fastAudit: the catalog's AuditRecord is the schema appendAudit
	// encodes (see AuditFingerprint); else audit records go through goavro.
	fastAudit bool
	// The values of the consentgate.policy_version header and of
	// consentgate.decision per outcome, shared by every record (kafka-go
	// only reads header values).
	policyVersion                []byte
	passedB, redactedB, droppedB []byte
	// The consent context of each stream (in the policy's order) and the
	// header values every record's shares (see HeaderConsentPurposes).
	streamCtx []streamContext
	consentB  consentValues
}

// metrics are the enforcer's instruments (see Observe).
type metrics struct {
	decisions, deadLetters, lookups metric.Int64Counter
	lookupTook                      metric.Float64Histogram
}

// Observe records the enforcer's outcomes as metrics on m: decisions by
// stream, purpose, decision and reason; dead letters by reason; consent
// lookups by result and their latency. Call it before the first Process.
func (e *Enforcer) Observe(m metric.Meter) error {
	var x metrics
	var err error
	if x.decisions, err = m.Int64Counter(telemetry.MetricDecisions, metric.WithDescription("decisions, by stream, purpose, decision and reason")); err != nil {
		return err
	}
	if x.deadLetters, err = m.Int64Counter(telemetry.MetricDeadLetters, metric.WithDescription("records sent to a dead-letter topic, by reason")); err != nil {
		return err
	}
	if x.lookups, err = m.Int64Counter(telemetry.MetricLookups, metric.WithDescription("consent lookups of a batch, by result (ok, error)")); err != nil {
		return err
	}
	if x.lookupTook, err = m.Float64Histogram(telemetry.MetricLookupDuration, metric.WithUnit("s"), metric.WithDescription("time to read the consent of a batch"),
		metric.WithExplicitBucketBoundaries(.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1)); err != nil {
		return err
	}
	e.metrics = &x
	return nil
}

type decisionKey struct{ stream, purpose, outcome, reason string }

// tally counts a batch's outcomes; they are recorded only when the batch
// is decided as a whole, so that a retried batch is not counted twice.
type tally struct {
	decisions map[decisionKey]int64
	dlq       map[string]int64
}

func (t *tally) decision(d decision.Decision) {
	if t.decisions == nil {
		t.decisions = map[decisionKey]int64{}
	}
	t.decisions[decisionKey{d.Stream, d.Purpose, string(d.Outcome), d.Reason}]++
}

// merge adds the counts of o to t.
func (t *tally) merge(o *tally) {
	for k, n := range o.decisions {
		if t.decisions == nil {
			t.decisions = map[decisionKey]int64{}
		}
		t.decisions[k] += n
	}
	for r, n := range o.dlq {
		if t.dlq == nil {
			t.dlq = map[string]int64{}
		}
		t.dlq[r] += n
	}
}

func (t *tally) deadLetter(reason string) {
	if t.dlq == nil {
		t.dlq = map[string]int64{}
	}
	t.dlq[reason]++
}

func (e *Enforcer) record(ctx context.Context, t *tally) {
	for k, n := range t.decisions {
		switch decision.Outcome(k.outcome) {
		case decision.Passed:
			e.Passed.Add(n)
		case decision.Redacted:
			e.Redacted.Add(n)
		default:
			e.Dropped.Add(n)
		}
	}
	for _, n := range t.dlq {
		e.DeadLettered.Add(n)
	}
	if e.metrics == nil {
		return
	}
	for k, n := range t.decisions {
		e.metrics.decisions.Add(ctx, n, metric.WithAttributes(attribute.String("stream", k.stream), attribute.String("purpose", k.purpose),
			attribute.String("decision", k.outcome), attribute.String("reason", k.reason)))
	}
	for r, n := range t.dlq {
		e.metrics.deadLetters.Add(ctx, n, metric.WithAttributes(attribute.String("reason", r)))
	}
}

// New returns an Enforcer.
//
// Audit records are encoded by a hand-written encoder when the codec's
// catalog holds the AuditRecord schema it was written for (AuditFingerprint);
// otherwise through goavro, which New logs once.
func New(opts Options, codec Decoder, cr ConsentReader, pol *policy.Policy) *Enforcer {
	e := &Enforcer{opts: opts, codec: codec, consent: cr, policy: pol, now: time.Now,
		policyVersion: []byte(pol.Version), passedB: []byte(decision.Passed), redactedB: []byte(decision.Redacted), droppedB: []byte(decision.Dropped),
		streamCtx: newStreamContexts(pol), consentB: newConsentValues()}
	var why string
	e.fastAudit, why = auditFastPath(codec)
	if !e.fastAudit {
		log := opts.Log
		if log == nil {
			log = slog.Default()
		}
		log.Warn("audit records are encoded through the generic Avro encoder (slower)", "reason", why)
	}
	return e
}

type event struct {
	msg kafka.Message
	// env is the event's envelope (event_id, subject_id, writer and reader
	// schema), read without decoding the value; rec is the decoded record,
	// made only when a stream needs a treated copy.
	env     avrocodec.Envelope
	rec     *avrocodec.Record
	subject string
	id      string
	// Shared, read-only bytes of the records written for the event: the
	// subject as a key, the event id, and the source coordinates headers.
	key, idBytes []byte
	src          []kafka.Header
	// ctx carries the record's span when it is traced (span not nil).
	ctx  context.Context
	span trace.Span
	// deadLetter is the dead-letter reason of an event that is not
	// decided (dlErr says why): it gets a DEAD_LETTERED audit record in
	// its place.
	deadLetter string
	dlErr      error
	// The event's records are out[from:to] of worker w.
	w, from, to int
}

// worker is what one goroutine deciding events of a batch owns: the
// records it made (each event knows its range), its tally, and the arenas
// its records' bytes and headers are carved from.
type worker struct {
	out  []kafka.Message
	t    tally
	ar   arena
	hdr  headerArena
	decs []StreamDecision
	// idScratch is appendConsent's scratch.
	idScratch []byte
	// The last source topic and its bytes: a batch rarely has more than one.
	topic  string
	topicB []byte
}

// Process decides a batch and returns every record to write: outputs, audit
// records and dead letters. It returns an error, and nothing to write, when
// a transient failure (consent store, schema registry) leaves any event of
// the batch undecided.
//
// The batch is decided on Options.Workers goroutines in three steps: the
// envelopes are read (event id, subject id and schemas straight from the
// Avro binary, the whole datum checked as the full decoder would), the
// consent of every subject is read in one lookup, and each event is
// decided for every stream. The records are then returned in input order,
// each event's together (its outputs in the policy's stream order, then
// its audit record; a dead letter, then its audit record), exactly as one
// goroutine would return them: how the work was spread changes nothing
// that is written.
func (e *Enforcer) Process(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error) {
	events := make([]event, len(batch))
	defer func() {
		for i := range events {
			if events[i].span != nil {
				events[i].span.End()
			}
		}
	}()
	workers := e.opts.Workers
	if workers <= 0 {
		workers = DefaultWorkers()
	}
	ws := make([]worker, workers)
	if err := parallel(len(batch), workers, func(w, i int) error { return e.read(ctx, &ws[w], &events[i], batch[i]) }); err != nil {
		return nil, err
	}
	subjects := make([]string, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for i := range events {
		if ev := &events[i]; ev.deadLetter == "" && !seen[ev.subject] {
			seen[ev.subject] = true
			subjects = append(subjects, ev.subject)
		}
	}
	var states map[string]*consent.State
	if len(subjects) > 0 {
		var err error
		states, err = e.lookup(ctx, subjects)
		if err != nil {
			return nil, fmt.Errorf("lookup consent: %w", err)
		}
	}
	now := e.now()
	keys, err := e.keys(ctx, events, states, now)
	if err != nil {
		return nil, err
	}
	if err := parallel(len(batch), workers, func(w, i int) error { return e.decide(ctx, &ws[w], w, &events[i], states, keys, now) }); err != nil {
		return nil, err
	}
	n := 0
	for w := range ws {
		n += len(ws[w].out)
	}
	out := make([]kafka.Message, 0, n)
	for i := range events {
		ev := &events[i]
		out = append(out, ws[ev.w].out[ev.from:ev.to]...)
	}
	var t tally
	for w := range ws {
		t.merge(&ws[w].t)
	}
	e.record(ctx, &t)
	return out, nil
}

// read starts ev's span (when its producer's trace context is sampled) and
// reads its envelope. A permanent problem marks ev dead-lettered; only a
// transient one (a schema registry that cannot be reached) is an error.
func (e *Enforcer) read(ctx context.Context, w *worker, ev *event, m kafka.Message) error {
	ev.msg, ev.ctx = m, ctx
	if e.opts.Tracer != nil && telemetry.HasTraceContext(m.Headers) {
		if pctx := telemetry.ExtractTraceContext(ctx, m.Headers); trace.SpanContextFromContext(pctx).IsSampled() {
			ev.ctx, ev.span = e.opts.Tracer.Start(pctx, "enforce record", trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("messaging.source.name", m.Topic),
					attribute.Int("messaging.kafka.partition", m.Partition), attribute.Int64("messaging.kafka.offset", m.Offset)))
		}
	}
	if err := e.codec.ReadEnvelope(ctx, m.Value, &ev.env); err != nil {
		ev.env = avrocodec.Envelope{}
		if !avrocodec.IsPermanent(err) {
			return fmt.Errorf("decode: %w", err)
		}
		ev.deadLetter, ev.dlErr = DeadLetterUndecodable, err
		return nil
	}
	ev.subject, ev.id = ev.env.SubjectID, ev.env.EventID
	if reason, why := missing(ev); reason != "" {
		ev.deadLetter, ev.dlErr = reason, why
		return nil
	}
	if ev.span != nil {
		ev.span.SetAttributes(attribute.String("consentgate.event_schema", ev.env.Schema.FullName))
	}
	if string(m.Key) == ev.subject {
		ev.key = m.Key
	} else {
		ev.key = w.ar.bytes(ev.subject)
	}
	ev.idBytes = w.ar.bytes(ev.id)
	ev.src = e.sourceHeaders(w, m)
	return nil
}

// decide makes ev's records on worker w (goroutine wi): a dead letter and
// its audit record, or its outputs and its audit record.
func (e *Enforcer) decide(ctx context.Context, w *worker, wi int, ev *event, states map[string]*consent.State, keys map[string]redact.Encrypter, now time.Time) error {
	ev.w, ev.from = wi, len(w.out)
	defer func() { ev.to = len(w.out) }()
	if ev.deadLetter != "" {
		// In input order with the other audit records, so that they
		// keep their order per subject.
		w.out = append(w.out, e.deadLetterRecord(w, ev))
		a, err := e.audit(w, ev, deadLetterAudit(ev, now))
		if err != nil {
			return err
		}
		w.out = append(w.out, a)
		return nil
	}
	in := decision.Input{Schema: ev.env.Schema.FullName, Fields: decision.FieldsOf(ev.env.Writer(), ev.env.Schema).Fields,
		State: states[ev.subject], Now: now}
	// decs holds the event's decisions until its audit record is encoded;
	// it is reused for the worker's next event.
	decs := w.decs[:0]
	for si, s := range e.policy.Streams {
		d := decision.Decide(e.policy, s, in)
		var treated []string
		if d.Outcome != decision.Dropped {
			m, tr, err := e.publish(ctx, w, ev, si, s, d, keys[ev.subject], in.State, now)
			switch {
			case err == nil:
				w.out = append(w.out, m)
				treated = tr
			case avrocodec.IsRetryable(err):
				return fmt.Errorf("encode treated event: %w", err)
			default:
				// Fail closed: what cannot be treated is not published.
				d.Outcome, d.Reason = decision.Dropped, ReasonRedactionFailed
			}
		}
		w.t.decision(d)
		if ev.span != nil {
			ev.span.AddEvent("decided", trace.WithAttributes(attribute.String("stream", d.Stream),
				attribute.String("decision", string(d.Outcome)), attribute.String("reason", d.Reason)))
		}
		decs = append(decs, StreamDecision{Stream: d.Stream, Purposes: s.Purposes, Decision: d.Outcome, Reason: d.Reason,
			DecidingPurpose: d.Purpose, TreatedFields: treated, Consents: d.Consents})
	}
	w.decs = decs
	// One audit record per input event, listing every stream's decision in
	// the policy's order.
	a, err := e.audit(w, ev, &AuditRecord{Outcome: AuditDecided, EventID: ev.id, SubjectID: ev.subject, EventSchema: ev.env.Schema.FullName,
		ProcessedAt: now, Decisions: decs})
	if err != nil {
		return err
	}
	w.out = append(w.out, a)
	return nil
}

// lookup reads the consent of subjects, measured.
func (e *Enforcer) lookup(ctx context.Context, subjects []string) (map[string]*consent.State, error) {
	start := time.Now()
	states, err := e.consent.Lookup(ctx, subjects)
	if e.metrics != nil {
		result := "ok"
		if err != nil {
			result = "error"
		}
		e.metrics.lookups.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
		e.metrics.lookupTook.Record(ctx, time.Since(start).Seconds())
	}
	return states, err
}

// sourceHeaders returns the consentgate.source.* headers of m, carved from
// w's arenas.
func (e *Enforcer) sourceHeaders(w *worker, m kafka.Message) []kafka.Header {
	if w.topicB == nil || w.topic != m.Topic {
		w.topic, w.topicB = m.Topic, []byte(m.Topic)
	}
	h := w.hdr.take(3)
	return append(h,
		kafka.Header{Key: HeaderSourceTopic, Value: w.topicB},
		kafka.Header{Key: HeaderSourcePart, Value: w.ar.appendInt(int64(m.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: w.ar.appendInt(m.Offset)})
}

// decisionBytes is the consentgate.decision header value of o.
func (e *Enforcer) decisionBytes(o decision.Outcome) []byte {
	switch o {
	case decision.Passed:
		return e.passedB
	case decision.Redacted:
		return e.redactedB
	case decision.Dropped:
		return e.droppedB
	}
	return []byte(o)
}

// output returns the record of ev that passed decision d forwards on
// stream s (index si): the input's key, value and headers (but those in
// the enforcer's namespace: see EnforcerHeader), and the enforcer's.
func (e *Enforcer) output(w *worker, ev *event, si int, s policy.Stream, d *decision.Decision, st *consent.State, now time.Time) (kafka.Message, error) {
	sc := &e.streamCtx[si]
	h := w.hdr.take(len(ev.msg.Headers) + 6 + consentHeaderCount(sc, d) + traceHeaders(ev))
	for _, x := range ev.msg.Headers {
		if !EnforcerHeader(x.Key) {
			h = append(h, x)
		}
	}
	h = append(h, kafka.Header{Key: HeaderEventID, Value: ev.idBytes})
	h = append(h, ev.src...)
	h = append(h, kafka.Header{Key: HeaderPolicyVersion, Value: e.policyVersion},
		kafka.Header{Key: HeaderDecision, Value: e.passedB})
	h, err := e.appendConsent(w, h, sc, s, d, st, ev.subject, true, now)
	if err != nil {
		return kafka.Message{}, err
	}
	ev.inject(&h)
	return kafka.Message{Topic: s.Topic, Key: ev.msg.Key, Value: ev.msg.Value, Headers: h}, nil
}

// Published is what Treat says goes to a stream.
type Published struct {
	// Forward: the input bytes are published as they are (a passed
	// decision with an empty Plan). Otherwise Bytes is a re-encoded copy.
	Forward bool
	// Value is the treated copy in the reader schema's shape (not
	// Forward), and Bytes its encoding in the input's framing.
	Value map[string]any
	Bytes []byte
	// Mode is the redaction mode of the copy (not Forward).
	Mode redact.Mode
	// Treated lists the paths of the fields the copy changed, sorted: the
	// redaction's, plus the writer-only fields a copy no longer carries.
	Treated []string
}

// Treat returns what decision d publishes of rec (its input bytes data) on
// stream s: the input bytes only when d passed with an empty Plan, else a
// copy treated by red (decision.TreatRedact: every field per the stream's
// rules; otherwise the excluded categories removed and the stream's
// unannotated_fields applied) and re-encoded by enc in the input's framing.
// d must not be Dropped. The error is the redaction's or the encoder's
// (avrocodec.IsRetryable tells a registry failure from a permanent one).
func Treat(ctx context.Context, enc Encoder, red *redact.Redactor, rec *avrocodec.Record, data []byte, s policy.Stream, d decision.Decision) (Published, error) {
	return TreatWith(ctx, enc, red, rec, data, s, d, nil)
}

// TreatWith is Treat with the subject's data key for the fields the
// stream encrypts; with a nil key they are removed.
func TreatWith(ctx context.Context, enc Encoder, red *redact.Redactor, rec *avrocodec.Record, data []byte, s policy.Stream, d decision.Decision, key redact.Encrypter) (Published, error) {
	if Forwards(d) {
		return Published{Forward: true, Bytes: data}, nil
	}
	mode := redact.ModeRemoveExcluded
	if d.Treatment == decision.TreatRedact {
		mode = redact.ModeRedact
	}
	res, err := red.Apply(redact.Request{Schema: rec.Schema, Writer: rec.Writer(), Value: rec.Value, Stream: s, Excluded: d.Excluded, Mode: mode, Keys: key})
	if err != nil {
		return Published{}, err
	}
	b, err := enc.EncodeLike(ctx, rec, res.Value)
	if err != nil {
		return Published{}, err
	}
	treated := res.Treated
	if w := rec.Writer(); w != nil && w != rec.Schema {
		if only := decision.FieldsOf(w, rec.Schema).WriterOnly; len(only) > 0 {
			treated = append(slices.Clone(treated), only...)
			slices.Sort(treated)
			treated = slices.Compact(treated)
		}
	}
	return Published{Value: res.Value, Bytes: b, Mode: mode, Treated: treated}, nil
}

// Forwards reports whether decision d publishes the input bytes as they
// are: it passed and its Plan is empty for the writer schema. Any other
// decision that is not Dropped publishes a treated copy (Treat).
func Forwards(d decision.Decision) bool {
	return d.Outcome == decision.Passed && len(d.Plan) == 0
}

// publish returns the record decision d publishes of ev on stream s (index
// si), and the treated field paths; st and now are what d was decided on
// (the record's consent context is read from them). The event's value is
// decoded only here, the first time a stream needs a treated copy of it.
func (e *Enforcer) publish(ctx context.Context, w *worker, ev *event, si int, s policy.Stream, d decision.Decision, dk redact.Encrypter,
	st *consent.State, now time.Time) (kafka.Message, []string, error) {
	if Forwards(d) {
		m, err := e.output(w, ev, si, s, &d, st, now)
		return m, nil, err
	}
	if ev.rec == nil {
		rec, err := e.codec.DecodeEnvelope(&ev.env)
		if err != nil {
			return kafka.Message{}, nil, err
		}
		ev.rec = rec
	}
	p, err := TreatWith(ctx, e.codec, e.opts.Redactor, ev.rec, ev.msg.Value, s, d, dk)
	if err != nil {
		return kafka.Message{}, nil, err
	}
	// The key is the subject id as treated: a pseudonym or a deterministic
	// ciphertext keeps a subject's records on one partition; a removed
	// subject id leaves no key.
	var key []byte
	subject, _ := avrocodec.StringField(p.Value, "subject_id")
	if subject != "" {
		key = []byte(subject)
		if dk != nil && shred.IsCiphertext(subject) {
			// An encrypted subject id keys its records by its
			// deterministic ciphertext: a randomised one differs on
			// every record and would scatter the subject's records
			// over the partitions.
			det, err := dk.EncryptString(ev.subject, true)
			if err != nil {
				return kafka.Message{}, nil, fmt.Errorf("%w: the record key: %w", redact.ErrEncrypt, err)
			}
			key = []byte(det)
		}
	}
	// Of the input's headers a re-encoded copy (redacted, or passed with
	// the stream's unannotated_fields applied) keeps only its W3C trace
	// context (re-encoded, never baggage): others may carry personal data
	// the policy knows nothing about.
	sc := &e.streamCtx[si]
	h := w.hdr.take(8 + consentHeaderCount(sc, &d) + traceHeaders(ev))
	telemetry.CopyTraceContext(&h, ev.msg.Headers)
	h = append(h, kafka.Header{Key: HeaderEventID, Value: ev.idBytes})
	h = append(h, ev.src...)
	h = append(h, kafka.Header{Key: HeaderPolicyVersion, Value: e.policyVersion},
		kafka.Header{Key: HeaderDecision, Value: e.decisionBytes(d.Outcome)})
	// A copy that does not carry the subject id as it came in (removed,
	// pseudonymised, masked, encrypted) lists no change id: the ids would
	// tie it back to the subject (see HeaderConsentChangeIDs).
	h, err = e.appendConsent(w, h, sc, s, &d, st, ev.subject, subject == ev.subject, now)
	if err != nil {
		return kafka.Message{}, nil, err
	}
	ev.inject(&h)
	return kafka.Message{Topic: s.Topic, Key: key, Value: p.Bytes, Headers: h}, p.Treated, nil
}

// missing returns the dead-letter reason of a decoded event that cannot be
// decided for want of its subject or event id, or because one of them is
// longer than MaxIDBytes, and the error to report (naming the field and
// its length, never its value).
func missing(ev *event) (string, error) {
	switch {
	case ev.subject == "":
		return DeadLetterMissingSubjectID, errors.New("event has no subject_id")
	case ev.id == "":
		return DeadLetterMissingEventID, errors.New("event has no event_id")
	case len(ev.subject) > MaxIDBytes:
		return DeadLetterIDTooLong, fmt.Errorf("event's subject_id is %d bytes long, more than %d", len(ev.subject), MaxIDBytes)
	case len(ev.id) > MaxIDBytes:
		return DeadLetterIDTooLong, fmt.Errorf("event's event_id is %d bytes long, more than %d", len(ev.id), MaxIDBytes)
	}
	return "", nil
}

// recordable reports whether id may be written into an audit record, its
// key or its headers: it is set and at most MaxIDBytes long.
func recordable(id string) bool { return id != "" && len(id) <= MaxIDBytes }

// deadLetterRecord returns the dead letter of ev, which read marked
// dead-lettered; decide writes its DEAD_LETTERED audit record
// (deadLetterAudit) right after it in the same batch, so that the input
// offset is committed only once both are written. The dead letter keeps the
// input's key, value and headers untouched (its traceparent, if any, still
// points at the producer's span) and adds the reason, the error and the
// source coordinates.
func (e *Enforcer) deadLetterRecord(w *worker, ev *event) kafka.Message {
	w.t.deadLetter(ev.deadLetter)
	if ev.span != nil {
		ev.span.AddEvent("dead-lettered", trace.WithAttributes(attribute.String("reason", ev.deadLetter)))
	}
	m := ev.msg
	h := make([]kafka.Header, 0, len(m.Headers)+5)
	h = append(h, m.Headers...)
	h = append(h, kafka.Header{Key: HeaderDLQReason, Value: []byte(ev.deadLetter)},
		kafka.Header{Key: HeaderDLQError, Value: []byte(ev.dlErr.Error())})
	h = append(h, e.sourceHeaders(w, m)...)
	// What the audit record is keyed and tied by: the subject and the
	// event id, when the event has them and they are not over-long
	// (id_too_long: the audit record must fit whatever the producer sent).
	if recordable(ev.subject) {
		ev.key = []byte(ev.subject)
	}
	if recordable(ev.id) {
		ev.idBytes = []byte(ev.id)
	}
	return kafka.Message{Topic: m.Topic + e.opts.DLQSuffix, Key: m.Key, Value: m.Value, Headers: h}
}

// deadLetterAudit is the audit record of a dead-lettered event: what is
// known of it (event id, subject, schema) and the reason, no decisions. An
// id longer than MaxIDBytes is left out (null), whatever the reason: the
// dead letter keeps it, the audit record says id_too_long.
func deadLetterAudit(ev *event, now time.Time) *AuditRecord {
	a := &AuditRecord{Outcome: AuditDeadLettered, DeadLetterReason: ev.deadLetter, ProcessedAt: now}
	if recordable(ev.id) {
		a.EventID = ev.id
	}
	if recordable(ev.subject) {
		a.SubjectID = ev.subject
	}
	if ev.env.Schema != nil { // the envelope was read (read zeroes it when it could not be)
		a.EventSchema = ev.env.Schema.FullName
	}
	return a
}

// audit returns the audit record a of ev, with the policy version and the
// source coordinates filled in: keyed by the subject (no key when there is
// none), with the event id header (when known) and, when ev is traced, its
// trace context; never the input's other headers or baggage.
func (e *Enforcer) audit(w *worker, ev *event, a *AuditRecord) (kafka.Message, error) {
	a.PolicyVersion = e.policy.Version
	a.SourceTopic, a.SourcePartition, a.SourceOffset = ev.msg.Topic, int32(ev.msg.Partition), ev.msg.Offset
	b, err := e.encodeAudit(w.ar.start(128+160*len(a.Decisions)), a)
	if err != nil {
		return kafka.Message{}, err
	}
	b = w.ar.commit(b)
	var h []kafka.Header
	switch {
	case ev.span != nil:
		h = w.hdr.take(1 + traceHeaders(ev))
		if len(ev.idBytes) > 0 {
			h = append(h, kafka.Header{Key: HeaderEventID, Value: ev.idBytes})
		}
		ev.inject(&h)
	case len(ev.idBytes) > 0:
		h = append(w.hdr.take(1), kafka.Header{Key: HeaderEventID, Value: ev.idBytes})
	}
	return kafka.Message{Topic: e.opts.AuditTopic, Key: ev.key, Value: b, Headers: h}, nil
}

// encodeAudit returns the single-object encoding of a: appended to buf by
// the hand-written encoder when the catalog's AuditRecord is the one it was
// written for (fastAudit), else through goavro (buf unused).
func (e *Enforcer) encodeAudit(buf []byte, a *AuditRecord) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if e.fastAudit {
		b, err = appendAudit(buf, AuditFingerprint, a)
	} else {
		b, err = e.codec.EncodeSingle(AuditSchema, auditNative(a))
	}
	if err != nil {
		return nil, fmt.Errorf("encode audit record: %w", err)
	}
	return b, nil
}

// traceHeaders is the room to leave in a header slice for the trace
// context written into it (traceparent, tracestate).
func traceHeaders(ev *event) int {
	if ev.span != nil {
		return 2
	}
	return 0
}

// inject writes the record's span context into headers, when it is traced.
func (ev *event) inject(h *[]kafka.Header) {
	if ev.span != nil {
		telemetry.InjectTraceContext(ev.ctx, h)
	}
}
