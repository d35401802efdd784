// Package signalsin is consent-sync's Kafka intake for consent signals: the
// consent.signals topic, for producers that have a Kafka client, as
// POST /v1/consent-signals (package intake) is for those that have none.
//
// Each record of the topic is one signal submission, a
// consentgate.consent.ConsentSignal (schemas/consent_signal.avsc) in the Avro
// single-object encoding (or Confluent framing with SCHEMA_REGISTRY_URL),
// keyed by the subject id. [Consumer.Process], driven by a stream.Runner
// with its own consumer group, turns each into consent changes exactly as
// the HTTP intake does: the policy's signals section maps the signals
// (signals.Changes: one change per decided purpose, change ids derived from
// the submission), the clock rule (consent.Change.BoundCapturedAt) bounds
// every change against the record's timestamp (the HTTP intake's receive
// time), and the changes are produced to the consent topic with key =
// subject id, the signal record's timestamp as theirs, and the headers
// consentgate.intake.signal_submission (as the HTTP intake sets it),
// consentgate.intake.claimed_captured_at when the clock rule moved
// captured_at, and [HeaderSignalSource], where they came from.
//
// Guarantees (those of stream.Runner): the offsets of a batch are committed
// only after every change made from it, and every dead letter, is
// acknowledged by the brokers (acks=all); a transient failure (a broker
// down, a schema registry unreachable) pauses and retries the batch, never
// skips it. Delivery is at least once: a record delivered again (a restart
// before its commit) makes the same changes with the same change ids, which
// consent-sync applies once (compare-and-set on captured_at and change id).
//
// A record that cannot be used is dead-lettered whole to <topic><DLQ_SUFFIX>
// with its original key, value and headers, consentgate.dlq.reason (one of
// the Reason constants), consentgate.dlq.error (never a signal's text or a
// subject id) and its coordinates (consentgate.source.*); it is committed
// once the dead letter is acknowledged. Nothing of such a record is
// produced. A record whose signals decide no purpose of the policy (absence
// is never a grant) produces nothing, is counted ([Consumer.Ignored]) and
// committed.
package signalsin

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/services/consent-sync/internal/intake"
)

// SubmissionSchema is the full name of the schema of the signals topic's
// records; ChangeSchema that of the records produced.
const (
	SubmissionSchema = "consentgate.consent.ConsentSignal"
	ChangeSchema     = intake.ChangeSchema
)

// Defaults of the settings.
const (
	DefaultTopic   = "consent.signals"
	DefaultGroupID = "consentgate-consent-sync-signals"
)

// HeaderSignalSource is the header of every change produced here: the
// signal record it was made from, "<topic>/<partition>/<offset>". It is
// not personal data. The Runner ties a change that can never be written to
// its signal record by it ([Origin]).
const HeaderSignalSource = "consentgate.intake.signal_source"

// Dead-letter reasons (consentgate.dlq.reason).
const (
	// ReasonUndecodable: the value is not Avro the codec can read (no
	// framing, an unknown fingerprint or registry id, bad bytes).
	ReasonUndecodable = "undecodable"
	// ReasonWrongSchema: the value decodes, but not as a ConsentSignal.
	ReasonWrongSchema = "wrong_schema"
	// ReasonInvalidSubmission: a field breaks the rules of
	// SubmissionFromNative (empty subject, bad jurisdiction, no signals, ...).
	ReasonInvalidSubmission = "invalid_submission"
	// ReasonMalformedSignal: a signal does not decode (signals.Decode:
	// a bad TC, GPP or USP string, an unknown type or Consent Mode state).
	ReasonMalformedSignal = "malformed_signal"
	// ReasonInvalidChange: a change made from the signals fails
	// consent.Change.Validate or cannot be encoded (a bug); no change of
	// the record is produced.
	ReasonInvalidChange = "invalid_change"
	// ReasonRefusedGrant: the clock rule refused a GRANT of the record (dated
	// too far ahead); the record's other changes were produced, and the
	// record is kept in the dead letters for the record.
	ReasonRefusedGrant = "grant_refused"
)

// Reasons lists the dead-letter reasons, in documentation order.
var Reasons = []string{ReasonUndecodable, ReasonWrongSchema, ReasonInvalidSubmission, ReasonMalformedSignal, ReasonInvalidChange, ReasonRefusedGrant}

// MetricSignalRecords is the counter of signal records consumed, by result
// (decided, ignored, and each dead-letter reason); MetricSignalChanges the
// counter of consent changes made from them.
const (
	MetricSignalRecords = "consentgate.consent.signal_records"
	MetricSignalChanges = "consentgate.consent.signal_changes"
)

// Off is the value of CONSENT_SIGNALS_TOPIC that turns the consumer off
// (an empty environment variable counts as not set, so the default would
// apply; the flag may also be given empty, --signals-topic=).
const Off = "off"

// Config is the signals consumer's part of consent-sync's configuration.
type Config struct {
	// Topic is the signals topic; empty or Off turns the consumer off.
	Topic string
	// GroupID is the consumer's own group (never consent-sync's group of
	// the consent topic: the two commit different topics' offsets).
	GroupID string
}

// DefaultConfig returns the defaults: on, DefaultTopic, DefaultGroupID.
func DefaultConfig() Config { return Config{Topic: DefaultTopic, GroupID: DefaultGroupID} }

// Enabled reports whether the consumer is on: Topic is neither empty nor
// Off.
func (c Config) Enabled() bool { return c.Topic != "" && c.Topic != Off }

// Flags declares the settings (CONSENT_SIGNALS_*) on s.
func (c *Config) Flags(s *envflag.Set) {
	s.String(&c.Topic, "signals-topic", "CONSENT_SIGNALS_TOPIC", "topic of consent signal submissions (schema consentgate.consent.ConsentSignal, key = subject id) that consent-sync maps by the policy's signals section to consent changes; needs POLICY_FILE with a signals section; off (or the flag given empty): no signals consumer")
	s.String(&c.GroupID, "signals-group-id", "CONSENT_SIGNALS_GROUP_ID", "consumer group of the signals topic (its own: not CONSENT_SYNC_GROUP_ID)")
}

// Validate reports every problem of c alone at once, each with what to set.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if strings.ContainsAny(c.Topic, " ,/") {
		errs = append(errs, fmt.Errorf("bad topic name %q: fix CONSENT_SIGNALS_TOPIC", c.Topic))
	}
	if c.GroupID == "" || strings.ContainsAny(c.GroupID, " ,") {
		errs = append(errs, fmt.Errorf("bad consumer group %q: set CONSENT_SIGNALS_GROUP_ID, e.g. %s", c.GroupID, DefaultGroupID))
	}
	return errors.Join(errs...)
}

// CheckPolicy refuses a policy that maps no signals: with the topic on,
// every record would be refused or ignored.
func CheckPolicy(pol *policy.Policy) error {
	if pol != nil && len(pol.Signals.Rules) > 0 {
		return nil
	}
	what := "POLICY_FILE is not set"
	if pol != nil {
		what = "the policy (POLICY_FILE) has no signals section"
	}
	return fmt.Errorf("the consent signals topic (CONSENT_SIGNALS_TOPIC) is on, but %s, so nothing maps signals to purposes: "+
		"set POLICY_FILE to a policy with a signals: section (pkg/policy/README.md, Signals), "+
		"or set CONSENT_SIGNALS_TOPIC=off to turn the signals consumer off", what)
}

// Codec decodes signal records and encodes changes; *avrocodec.Codec fits.
type Codec interface {
	Decode(ctx context.Context, data []byte) (*avrocodec.Record, error)
	EncodeSingle(fullName string, value map[string]any) ([]byte, error)
	SchemaByName(fullName string) (*avrocodec.Schema, bool)
}

// Options configure a Consumer.
type Options struct {
	// ChangesTopic is the consent topic the changes are produced to (the
	// HTTP intake's topic).
	ChangesTopic string
	// DLQSuffix names the dead-letter topic of topic T: T+DLQSuffix
	// (stream.DefaultDLQSuffix when empty).
	DLQSuffix string
	// Policy maps the signals; it must have a signals section.
	Policy *policy.Policy
	// MaxClockSkew is the clock rule's bound (consent.DefaultMaxClockSkew
	// when zero): consent-sync passes CONSENT_MAX_CLOCK_SKEW.
	MaxClockSkew time.Duration
	// Log receives the rare internal errors (never a subject id or a
	// signal's text); nil discards them.
	Log *slog.Logger
	// Now is the consumer's clock (time.Now when nil): the clock rule
	// never takes a record's timestamp later than it.
	Now func() time.Time
}

// Consumer turns signal records into consent changes; its Process is a
// stream.Processor. It is safe for concurrent use.
type Consumer struct {
	opts  Options
	codec Codec

	// Decided counts the records that made changes, Changes the changes
	// made, ClockAdjusted the changes whose captured_at the clock rule
	// moved; Ignored the records that decided nothing; DeadLettered the
	// records dead-lettered (by reason in DeadLetteredBy).
	Decided, Changes, ClockAdjusted, Ignored, DeadLettered atomic.Int64
	deadLettered                                           map[string]*atomic.Int64
}

// New returns a Consumer. It fails when the policy maps no signals, or the
// codec lacks the ConsentSignal or the ConsentChange schema (SCHEMAS_DIR).
func New(opts Options, codec Codec) (*Consumer, error) {
	if err := CheckPolicy(opts.Policy); err != nil {
		return nil, err
	}
	if opts.ChangesTopic == "" {
		return nil, errors.New("signals consumer: no consent topic to produce to")
	}
	for _, name := range []string{SubmissionSchema, ChangeSchema} {
		if _, ok := codec.SchemaByName(name); !ok {
			return nil, fmt.Errorf("the schemas (SCHEMAS_DIR) lack %s, which the signals consumer needs: add it (schemas/), or unset SCHEMAS_DIR", name)
		}
	}
	if opts.DLQSuffix == "" {
		opts.DLQSuffix = stream.DefaultDLQSuffix
	}
	if opts.MaxClockSkew <= 0 {
		opts.MaxClockSkew = consent.DefaultMaxClockSkew
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Consumer{opts: opts, codec: codec, deadLettered: map[string]*atomic.Int64{}}
	for _, r := range Reasons {
		c.deadLettered[r] = new(atomic.Int64)
	}
	return c, nil
}

// DeadLetteredBy returns how many records were dead-lettered for reason
// (one of Reasons).
func (c *Consumer) DeadLetteredBy(reason string) int64 {
	if n, ok := c.deadLettered[reason]; ok {
		return n.Load()
	}
	return 0
}

// Observe exports the counters as metrics on m: MetricSignalRecords by
// result (decided, ignored, dead_lettered.<reason>), MetricSignalChanges.
func (c *Consumer) Observe(m metric.Meter) error {
	records, err := m.Int64ObservableCounter(MetricSignalRecords, metric.WithDescription("consent signal records consumed, by result"))
	if err != nil {
		return err
	}
	changes, err := m.Int64ObservableCounter(MetricSignalChanges, metric.WithDescription("consent changes made from consent signal records"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(records, c.Decided.Load(), metric.WithAttributes(attribute.String("result", "decided")))
		o.ObserveInt64(records, c.Ignored.Load(), metric.WithAttributes(attribute.String("result", "ignored")))
		for _, r := range Reasons {
			o.ObserveInt64(records, c.deadLettered[r].Load(), metric.WithAttributes(attribute.String("result", "dead_lettered"), attribute.String("reason", r)))
		}
		o.ObserveInt64(changes, c.Changes.Load())
		return nil
	}, records, changes)
	return err
}

// counts are one batch's additions to the counters, added once Process
// succeeds (a failed batch is processed again).
type counts struct {
	decided, changes, adjusted, ignored int64
	letters                             map[string]int64
}

// Process turns a batch of signal records into the consent changes and
// dead letters to write (see the package documentation). It returns an
// error, and nothing, only when a record could not be decoded for now (the
// schema registry unreachable): the runner retries the batch.
func (c *Consumer) Process(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error) {
	var out []kafka.Message
	n := counts{letters: map[string]int64{}}
	for _, m := range batch {
		changes, adjusted, reason, err := c.record(ctx, m)
		switch {
		case err != nil && reason == "":
			return nil, fmt.Errorf("decode a signal record: %w", err)
		case err != nil:
			n.letters[reason]++
			out = append(out, c.deadLetter(m, reason, err))
			if len(changes) > 0 { // a refused grant: the other changes are produced
				n.decided++
				n.changes += int64(len(changes))
				n.adjusted += adjusted
				out = append(out, changes...)
			}
		case len(changes) == 0:
			n.ignored++
		default:
			n.decided++
			n.changes += int64(len(changes))
			n.adjusted += adjusted
			out = append(out, changes...)
		}
	}
	c.Decided.Add(n.decided)
	c.Changes.Add(n.changes)
	c.ClockAdjusted.Add(n.adjusted)
	c.Ignored.Add(n.ignored)
	for r, k := range n.letters {
		c.deadLettered[r].Add(k)
		c.DeadLettered.Add(k)
	}
	return out, nil
}

// record returns the change records of one signal record and how many of
// them the clock rule moved; or the dead-letter reason and why; or, with an
// empty reason, a transient error.
func (c *Consumer) record(ctx context.Context, m kafka.Message) ([]kafka.Message, int64, string, error) {
	rec, err := c.codec.Decode(ctx, m.Value)
	if err != nil {
		if !avrocodec.IsPermanent(err) {
			return nil, 0, "", err
		}
		// The codec's error may quote bytes of the record: the dead letter
		// says only what kind of failure it was (the record is kept whole).
		return nil, 0, ReasonUndecodable, errors.New("the record is not a single-object or registry-framed Avro record of a known schema that decodes")
	}
	if rec.Schema.FullName != SubmissionSchema {
		return nil, 0, ReasonWrongSchema, fmt.Errorf("record has schema %s, want %s", rec.Schema.FullName, SubmissionSchema)
	}
	sub, err := SubmissionFromNative(rec.Value)
	if err != nil {
		return nil, 0, ReasonInvalidSubmission, err
	}
	changes, err := signals.Changes(c.opts.Policy, sub)
	if err != nil {
		return nil, 0, ReasonMalformedSignal, err
	}
	if len(changes) == 0 {
		return nil, 0, "", nil
	}
	// The HTTP intake's header: the submission's digest.
	digest := hex.EncodeToString(signals.SubmissionDigest(sub)[:8])
	source := m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)
	for _, ch := range changes {
		if err := ch.Validate(); err != nil {
			// The policy made a change the consent schema refuses: a bug,
			// never produced; the record is kept in the dead letters.
			c.opts.Log.Error("signals consumer: a signal made an invalid change; dead-lettered", "purpose", ch.Purpose, "error", err.Error())
			return nil, 0, ReasonInvalidChange, fmt.Errorf("a change made from the signals is not valid: %w", err)
		}
	}
	// The clock rule per change, as the HTTP intake: a grant dated too far
	// ahead is refused (and its record dead-lettered, for the record),
	// while the objections that came with it are produced.
	// The receive time is the record's timestamp (LogAppendTime, as
	// provision plans the topic), checked against this consumer's own
	// clock, which a producer's clock on a CreateTime topic may be off
	// from either way: a grant is bounded by the earlier of the two (a
	// clock running ahead must not carry it past the rule), an objection
	// by the later (a clock running behind must not move it back behind
	// a grant it came after).
	now := c.opts.Now()
	grants, refusals := m.Time, m.Time
	if grants.IsZero() || now.Before(grants) {
		grants = now
	}
	if refusals.IsZero() || now.After(refusals) {
		refusals = now
	}
	kept, refused := signals.BoundChangesAt(changes, grants, refusals, c.opts.MaxClockSkew)
	var refusedErr error
	if len(refused) > 0 {
		parts := make([]string, len(refused))
		for i, r := range refused {
			parts[i] = "the " + r.Purpose + " grant: " + r.Reason
		}
		refusedErr = fmt.Errorf("the clock rule refused %s; the record's other changes (%d) were produced", strings.Join(parts, "; "), len(kept))
	}
	out := make([]kafka.Message, 0, len(kept))
	var adjusted int64
	claimed := make(map[string]time.Time, len(changes)) // the dates before the clock rule
	for _, ch := range changes {
		claimed[ch.ChangeID] = ch.CapturedAt
	}
	for _, bound := range kept {
		value, err := c.codec.EncodeSingle(ChangeSchema, bound.Native())
		if err != nil {
			c.opts.Log.Error("signals consumer: encode a valid change; dead-lettered", "purpose", bound.Purpose, "error", err.Error())
			return nil, 0, ReasonInvalidChange, fmt.Errorf("the change for purpose %s could not be encoded: %w", bound.Purpose, err)
		}
		msg := kafka.Message{Topic: c.opts.ChangesTopic, Key: []byte(bound.SubjectID), Value: value, Time: m.Time,
			Headers: []kafka.Header{{Key: intake.HeaderSignalSubmission, Value: []byte(digest)}, {Key: HeaderSignalSource, Value: []byte(source)}}}
		if at := claimed[bound.ChangeID]; !bound.CapturedAt.Equal(at) {
			adjusted++
			msg.Headers = append(msg.Headers, kafka.Header{Key: intake.HeaderClaimedCapturedAt, Value: []byte(at.UTC().Format(rfc3339Milli))})
		}
		out = append(out, msg)
	}
	if refusedErr != nil {
		return out, adjusted, ReasonRefusedGrant, refusedErr
	}
	return out, adjusted, "", nil
}

// rfc3339Milli is the HTTP intake's format of the claimed captured_at.
const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"

// deadLetter is m, whole, for its dead-letter topic, with the reason, the
// error and its coordinates, as consent-sync's consumer dead-letters.
func (c *Consumer) deadLetter(m kafka.Message, reason string, err error) kafka.Message {
	h := make([]kafka.Header, 0, len(m.Headers)+5)
	h = append(h, m.Headers...)
	h = append(h,
		kafka.Header{Key: stream.HeaderDLQReason, Value: []byte(reason)},
		kafka.Header{Key: stream.HeaderDLQError, Value: []byte(err.Error())},
		kafka.Header{Key: stream.HeaderSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: stream.HeaderSourcePart, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: stream.HeaderSourceOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Topic: m.Topic + c.opts.DLQSuffix, Key: m.Key, Value: m.Value, Headers: h}
}

// Origin tells a stream.Runner which signal record a record of Process was
// made from: a change by its HeaderSignalSource, a dead letter by its
// consentgate.source.* headers. Set it as the Runner's Origin, so that a
// change that can never be written (too large for the consent topic)
// dead-letters its signal record.
func Origin(m kafka.Message) (stream.Coordinates, bool) {
	v, ok := stream.Header(m, HeaderSignalSource)
	if !ok {
		return stream.SourceCoordinates(m)
	}
	rest, off, ok1 := cutLast(v)
	topic, part, ok2 := cutLast(rest)
	if !ok1 || !ok2 || topic == "" {
		return stream.Coordinates{}, false
	}
	p, err1 := strconv.Atoi(part)
	o, err2 := strconv.ParseInt(off, 10, 64)
	if err1 != nil || err2 != nil {
		return stream.Coordinates{}, false
	}
	return stream.Coordinates{Topic: topic, Partition: p, Offset: o}, true
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// ReaderConfig returns the consumer-group reader settings of the signals
// topic: those of input (consent-sync's, for the waits and timeouts) with
// c's topic and group, from the beginning of the topic when the group has
// no committed offset (a new group misses nothing).
func (c Config) ReaderConfig(input stream.ReaderConfig) stream.ReaderConfig {
	input.Topics = []string{c.Topic}
	input.GroupID = c.GroupID
	input.FromBeginning = true
	return input
}

// RunnerSettings are the batching settings of a signals runner.
type RunnerSettings struct {
	BatchSize    int
	Linger       time.Duration
	DrainTimeout time.Duration
	MaxBackoff   time.Duration // 0: the runner's default
	Log          *slog.Logger
}

// NewRunner returns the stream.Runner that drives c: it fetches from src
// (the signals topic's reader), writes what Process returns to sink
// (acks=all) and only then commits, dead-letters to <topic><DLQSuffix> and
// ties a refused change to its signal record with [Origin].
func (c *Consumer) NewRunner(src stream.Source, sink stream.Writer, s RunnerSettings) *stream.Runner {
	log := s.Log
	if log == nil {
		log = c.opts.Log
	}
	return &stream.Runner{Source: src, Sink: sink, Process: c.Process, BatchSize: s.BatchSize, Linger: s.Linger,
		DrainTimeout: s.DrainTimeout, MaxBackoff: s.MaxBackoff, Log: log, DLQSuffix: c.opts.DLQSuffix, Origin: Origin}
}
