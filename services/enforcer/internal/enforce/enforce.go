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
package enforce

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
)

// Header names set on every output and dead-letter record.
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

// AuditSchema is the full name of the audit record schema.
const AuditSchema = "consentgate.audit.AuditRecord"

// Decoder turns framed Avro into a record.
type Decoder interface {
	Decode(ctx context.Context, data []byte) (*avrocodec.Record, error)
	EncodeSingle(fullName string, value map[string]any) ([]byte, error)
	EncodeLike(ctx context.Context, rec *avrocodec.Record, value map[string]any) ([]byte, error)
}

// ConsentReader reads consent state for a batch of subjects.
type ConsentReader interface {
	Lookup(ctx context.Context, subjects []string) (map[string]*consent.State, error)
}

// Options configure an Enforcer.
type Options struct {
	AuditTopic string
	DLQSuffix  string
	// Redactor treats the fields of events published redacted.
	Redactor *redact.Redactor
}

// ReasonRedactionFailed is the audit reason of an event that had to be
// redacted but could not be (a value that does not fit its schema): it is
// dropped, never published untreated.
const ReasonRedactionFailed = "redaction_failed"

// keptHeaders are the input headers a redacted copy keeps: other headers
// may carry personal data the policy knows nothing about.
var keptHeaders = map[string]bool{"traceparent": true, "tracestate": true}

// Enforcer decides batches of customer events; a stream.Runner drives it.
type Enforcer struct {
	opts    Options
	codec   Decoder
	consent ConsentReader
	policy  *policy.Policy
	now     func() time.Time

	// Per-record outcomes are counted, never logged.
	Passed, Redacted, Dropped, DeadLettered atomic.Int64
}

// New returns an Enforcer.
func New(opts Options, codec Decoder, cr ConsentReader, pol *policy.Policy) *Enforcer {
	return &Enforcer{opts: opts, codec: codec, consent: cr, policy: pol, now: time.Now}
}

type event struct {
	msg     kafka.Message
	rec     *avrocodec.Record
	subject string
	id      string
}

// Process decides a batch and returns every record to write: outputs, audit
// records and dead letters. It returns an error, and nothing to write, when
// a transient failure (consent store, schema registry) leaves any event of
// the batch undecided.
func (e *Enforcer) Process(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error) {
	var out []kafka.Message
	events := make([]event, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	var subjects []string
	for _, m := range batch {
		rec, err := e.codec.Decode(ctx, m.Value)
		if err != nil {
			if !avrocodec.IsPermanent(err) {
				return nil, fmt.Errorf("decode: %w", err)
			}
			out = append(out, e.deadLetter(m, "undecodable", err))
			continue
		}
		subject, _ := avrocodec.StringField(rec.Value, "subject_id")
		id, _ := avrocodec.StringField(rec.Value, "event_id")
		switch {
		case subject == "":
			out = append(out, e.deadLetter(m, "missing_subject_id", errors.New("event has no subject_id")))
			continue
		case id == "":
			out = append(out, e.deadLetter(m, "missing_event_id", errors.New("event has no event_id")))
			continue
		}
		events = append(events, event{msg: m, rec: rec, subject: subject, id: id})
		if !seen[subject] {
			seen[subject] = true
			subjects = append(subjects, subject)
		}
	}
	var states map[string]*consent.State
	if len(subjects) > 0 {
		var err error
		states, err = e.consent.Lookup(ctx, subjects)
		if err != nil {
			return nil, fmt.Errorf("lookup consent: %w", err)
		}
	}
	now := e.now()
	for _, ev := range events {
		in := decision.Input{Schema: ev.rec.Schema.FullName, Categories: ev.rec.Schema.Annotations, State: states[ev.subject], Now: now}
		for _, s := range e.policy.Streams {
			d := decision.Decide(e.policy, s, in)
			var treated []string
			switch d.Outcome {
			case decision.Passed:
				out = append(out, e.output(ev, s.Topic))
				e.Passed.Add(1)
			case decision.Redacted:
				m, t, err := e.redacted(ctx, ev, s, d)
				switch {
				case err == nil:
					out = append(out, m)
					treated = t
					e.Redacted.Add(1)
				case avrocodec.IsRetryable(err):
					return nil, fmt.Errorf("encode redacted event: %w", err)
				default:
					// Fail closed: what cannot be treated is not published.
					d.Outcome, d.Reason = decision.Dropped, ReasonRedactionFailed
					e.Dropped.Add(1)
				}
			default:
				e.Dropped.Add(1)
			}
			a, err := e.audit(ev, d, treated, now)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return out, nil
}

func (e *Enforcer) sourceHeaders(m kafka.Message) []kafka.Header {
	return []kafka.Header{
		{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
		{Key: HeaderSourcePart, Value: []byte(strconv.Itoa(m.Partition))},
		{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	}
}

func (e *Enforcer) output(ev event, topic string) kafka.Message {
	h := make([]kafka.Header, 0, len(ev.msg.Headers)+6)
	h = append(h, ev.msg.Headers...)
	h = append(h, kafka.Header{Key: HeaderEventID, Value: []byte(ev.id)})
	h = append(h, e.sourceHeaders(ev.msg)...)
	h = append(h, kafka.Header{Key: HeaderPolicyVersion, Value: []byte(e.policy.Version)},
		kafka.Header{Key: HeaderDecision, Value: []byte(decision.Passed)})
	return kafka.Message{Topic: topic, Key: ev.msg.Key, Value: ev.msg.Value, Headers: h}
}

// redacted returns the treated copy of ev for stream s, and the treated
// field paths.
func (e *Enforcer) redacted(ctx context.Context, ev event, s policy.Stream, d decision.Decision) (kafka.Message, []string, error) {
	mode := redact.ModeRedact
	if d.Treatment == decision.TreatRemoveExcluded {
		mode = redact.ModeRemoveExcluded
	}
	res, err := e.opts.Redactor.Apply(redact.Request{Schema: ev.rec.Schema, Value: ev.rec.Value, Stream: s, Excluded: d.Excluded, Mode: mode})
	if err != nil {
		return kafka.Message{}, nil, err
	}
	b, err := e.codec.EncodeLike(ctx, ev.rec, res.Value)
	if err != nil {
		return kafka.Message{}, nil, err
	}
	// The key is the subject id as treated: a pseudonym keeps a subject's
	// records on one partition; a removed subject id leaves no key.
	var key []byte
	if subject, _ := avrocodec.StringField(res.Value, "subject_id"); subject != "" {
		key = []byte(subject)
	}
	h := make([]kafka.Header, 0, 8)
	for _, x := range ev.msg.Headers {
		if keptHeaders[x.Key] {
			h = append(h, x)
		}
	}
	h = append(h, kafka.Header{Key: HeaderEventID, Value: []byte(ev.id)})
	h = append(h, e.sourceHeaders(ev.msg)...)
	h = append(h, kafka.Header{Key: HeaderPolicyVersion, Value: []byte(e.policy.Version)},
		kafka.Header{Key: HeaderDecision, Value: []byte(decision.Redacted)})
	return kafka.Message{Topic: s.Topic, Key: key, Value: b, Headers: h}, res.Treated, nil
}

func (e *Enforcer) deadLetter(m kafka.Message, reason string, err error) kafka.Message {
	e.DeadLettered.Add(1)
	h := make([]kafka.Header, 0, len(m.Headers)+5)
	h = append(h, m.Headers...)
	h = append(h, kafka.Header{Key: HeaderDLQReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderDLQError, Value: []byte(err.Error())})
	h = append(h, e.sourceHeaders(m)...)
	return kafka.Message{Topic: m.Topic + e.opts.DLQSuffix, Key: m.Key, Value: m.Value, Headers: h}
}

func (e *Enforcer) audit(ev event, d decision.Decision, treated []string, now time.Time) (kafka.Message, error) {
	treatedAny := make([]any, len(treated))
	for i, t := range treated {
		treatedAny[i] = t
	}
	v := map[string]any{
		"event_id":            ev.id,
		"subject_id":          ev.subject,
		"stream":              d.Stream,
		"purpose":             d.Purpose,
		"decision":            string(d.Outcome),
		"reason":              d.Reason,
		"treated_fields":      treatedAny,
		"consent_change_id":   nil,
		"consent_captured_at": nil,
		"policy_version":      e.policy.Version,
		"source_topic":        ev.msg.Topic,
		"source_partition":    int32(ev.msg.Partition),
		"source_offset":       ev.msg.Offset,
		"event_schema":        ev.rec.Schema.FullName,
		"processed_at":        now,
	}
	if d.ChangeID != "" {
		v["consent_change_id"] = map[string]any{"string": d.ChangeID}
		v["consent_captured_at"] = map[string]any{"long.timestamp-millis": d.CapturedAt}
	}
	b, err := e.codec.EncodeSingle(AuditSchema, v)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode audit record: %w", err)
	}
	return kafka.Message{Topic: e.opts.AuditTopic, Key: []byte(ev.subject), Value: b,
		Headers: []kafka.Header{{Key: HeaderEventID, Value: []byte(ev.id)}}}, nil
}
