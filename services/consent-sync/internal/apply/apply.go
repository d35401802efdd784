// Package apply applies consent changes to the consent store. Each change is
// decoded, validated and applied with the store's atomic compare-and-set
// (newest captured_at wins), so replays and duplicates are harmless; a change
// that cannot be decoded or is invalid goes to the dead-letter topic with the
// reason.
//
// A WITHDRAW, DENY or ERASE that owes a revocation notice (it replaced a
// grant, erased, arrived late, or was applied while the state was not known
// to be complete: see consent.NoticeReason) gets one, built from the store's
// notice outbox; the entry is cleared once the brokers acknowledged the
// notice ([Syncer.Sink]), and offsets are committed only after that, so a
// crash never loses a notice: the redelivered change finds its entry.
//
// In replay mode (Options.Replay, used by consent-sync --rebuild) the same
// decoding, validation and compare-and-set run (outbox entries included),
// but Process returns no records: invalid changes are only counted (they
// were dead-lettered when they were first consumed) and no revocation
// notices are built (they were published when the changes were first
// applied, or will be when the live service delivers them again).
package apply

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/pkg/telemetry"
)

// ChangeSchema and NoticeSchema are the full names of the schemas read and
// written here.
const (
	ChangeSchema = "consentgate.consent.ConsentChange"
	NoticeSchema = "consentgate.consent.RevocationNotice"
)

// Dead-letter headers.
const (
	HeaderDLQReason    = "consentgate.dlq.reason"
	HeaderDLQError     = "consentgate.dlq.error"
	HeaderSourceTopic  = "consentgate.source.topic"
	HeaderSourcePart   = "consentgate.source.partition"
	HeaderSourceOffset = "consentgate.source.offset"
)

// Codec decodes changes and encodes notices.
type Codec interface {
	Decode(ctx context.Context, data []byte) (*avrocodec.Record, error)
	EncodeSingle(fullName string, value map[string]any) ([]byte, error)
}

// Store is the consent store as the Syncer uses it; *consent.Store fits.
type Store interface {
	// ApplyWith applies one change atomically and returns, with the
	// outcome, the notice the change owes (its outbox entry), if any.
	ApplyWith(ctx context.Context, c consent.Change, opts consent.ApplyOptions) (consent.Outcome, error)
	// AckNotice removes a change's outbox entry once its notice is
	// acknowledged by the brokers.
	AckNotice(ctx context.Context, subject, changeID string) error
	// StateGeneration returns "" when the state is not known to be
	// complete for the batch's offsets (the state watermark), else a value
	// that changes when a replay completes.
	StateGeneration(ctx context.Context, ranges []consent.Range) (string, error)
}

// Options configure a Syncer.
type Options struct {
	RevocationsTopic string
	DLQSuffix        string
	// KnownPurposes, when not nil, lists the policy's purposes; changes
	// for other purposes are still applied (the topic is the record) but
	// counted as UnknownPurpose so operators see them.
	KnownPurposes map[string]bool
	// MaxClockSkew is the bound of the clock rule,
	// consent.Change.BoundCapturedAt, against the record's timestamp
	// (consent.DefaultMaxClockSkew when zero): a GRANT dated further ahead
	// is dead-lettered as invalid, a restrictive change is applied at the
	// bound.
	MaxClockSkew time.Duration
	// OnUnknownPurpose, when set, is called once per process for each of
	// the first MaxUnknownPurposes purpose ids outside KnownPurposes (to
	// log it; the id comes from the topic's producers: untrusted).
	OnUnknownPurpose func(purpose string)
	// Keys (optional) destroys the data keys of an erased subject
	// (crypto-shredding, package shred): for every ERASE it consumes
	// (not in replay mode), Process marks the subject erased in the keys
	// topic before it returns the batch's records, so the runner commits
	// the change only once the mark is written. Nil: erasures destroy no
	// keys.
	Keys Eraser
	// Replay makes Process apply and count only: no dead letters and no
	// revocation notices are returned. A rebuild of the cache from the
	// topic uses it, since both were written when the changes were first
	// consumed.
	Replay bool
}

// Eraser marks a subject's data keys erased by an ERASE (*shred.Ring and
// consent-sync's keyShredder fit). It returns only once the mark is
// durably written (acks=all); marking an erasure again is harmless (it
// kills only keys made without knowing it).
type Eraser interface {
	Erase(ctx context.Context, subject string, e shred.Erasure) error
}

// MaxUnknownPurposes bounds the unknown purpose ids a Syncer remembers
// (and reports); beyond, they are only counted.
const MaxUnknownPurposes = 100

// Syncer processes batches of consent changes; a stream.Runner drives it.
type Syncer struct {
	opts  Options
	codec Codec
	store Store
	now   func() time.Time

	Applied, Ignored, Invalid, UnknownPurpose, Notices atomic.Int64
	// KeyErasures counts the subjects whose data keys were marked erased.
	KeyErasures atomic.Int64
	// NoticeAckErrors counts outbox entries that could not be removed
	// after their notice was acknowledged (Redis unavailable). Such an
	// entry only makes a redelivery of its change publish the notice again
	// (same notice id); it expires after consent.NoticeMemory.
	NoticeAckErrors atomic.Int64

	unknownMu   sync.Mutex
	unknownSeen map[string]bool
}

func (s *Syncer) maxSkew() time.Duration {
	if s.opts.MaxClockSkew > 0 {
		return s.opts.MaxClockSkew
	}
	return consent.DefaultMaxClockSkew
}

func (s *Syncer) reportUnknown(purpose string) {
	if s.opts.OnUnknownPurpose == nil {
		return
	}
	s.unknownMu.Lock()
	defer s.unknownMu.Unlock()
	if s.unknownSeen[purpose] || len(s.unknownSeen) >= MaxUnknownPurposes {
		return // the purposes remembered are bounded; the counter goes on
	}
	if s.unknownSeen == nil {
		s.unknownSeen = map[string]bool{}
	}
	s.unknownSeen[purpose] = true
	s.opts.OnUnknownPurpose(purpose)
}

// Observe exports the Syncer's counters as metrics on m: consent changes by
// result (applied, ignored, invalid, unknown_purpose) and revocation
// notices published.
func (s *Syncer) Observe(m metric.Meter) error {
	changes, err := m.Int64ObservableCounter(telemetry.MetricChanges, metric.WithDescription("consent changes consumed, by result"))
	if err != nil {
		return err
	}
	notices, err := m.Int64ObservableCounter(telemetry.MetricRevocations, metric.WithDescription("revocation notices published"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for result, c := range map[string]*atomic.Int64{"applied": &s.Applied, "ignored": &s.Ignored, "invalid": &s.Invalid, "unknown_purpose": &s.UnknownPurpose} {
			o.ObserveInt64(changes, c.Load(), metric.WithAttributes(attribute.String("result", result)))
		}
		o.ObserveInt64(notices, s.Notices.Load())
		return nil
	}, changes, notices)
	return err
}

// New returns a Syncer.
func New(opts Options, codec Codec, store Store) *Syncer {
	return &Syncer{opts: opts, codec: codec, store: store, now: time.Now}
}

// counts are one pass's additions to the Syncer's counters; they are added
// once the batch is done, since a pass may be redone.
type counts struct{ applied, ignored, invalid, unknown, notices, erasures int64 }

// Process applies a batch in order and returns the notices and dead letters
// to write. A store error aborts the batch (it is retried whole, which the
// compare-and-set makes harmless).
//
// Revocation notices come from the store's outbox: the script that applies a
// WITHDRAW, DENY or ERASE records there the notice it owes (see
// consent.NoticeReason), and every apply of a change, first or redelivered,
// returns the change's entry while it is there. Process builds the notice
// from that entry, never from the current state, with the stable notice id
// "rev-" + change id. The entry is removed only when the brokers have
// acknowledged the notice (see [Syncer.Sink]); the runner commits a batch's
// offsets only after that, so a crash before the acknowledgement means the
// change is delivered again and finds its entry.
//
// Whether the state is complete: outside replay mode, Process reads the state
// watermark (pkg/consent) before and after the batch. When some Redis node has
// none, or one below the batch's first offsets (Redis lost data, or came back
// from an older snapshot, and the replay has not finished), every WITHDRAW, DENY and ERASE
// owes a notice (state_incomplete): the grant it ends may not be replayed
// yet, and will then be ignored as older. When it differs after (lost or
// rebuilt during the batch), the batch is applied again with that rule.
func (s *Syncer) Process(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error) {
	if s.opts.Replay {
		return s.finish(s.pass(ctx, batch, false))
	}
	ranges := consent.BatchRanges(func(i int) (string, int, int64) { return batch[i].Topic, batch[i].Partition, batch[i].Offset }, len(batch))
	gen, err := s.store.StateGeneration(ctx, ranges)
	if err != nil {
		return nil, fmt.Errorf("check that the consent state is complete: %w", err)
	}
	incomplete := gen == ""
	out, n, err := s.pass(ctx, batch, incomplete)
	if err != nil || incomplete {
		return s.finish(out, n, err)
	}
	after, err := s.store.StateGeneration(ctx, ranges)
	if err != nil {
		return nil, fmt.Errorf("check that the consent state is complete: %w", err)
	}
	if after != gen {
		return s.finish(s.pass(ctx, batch, true))
	}
	return s.finish(out, n, nil)
}

func (s *Syncer) finish(out []kafka.Message, n counts, err error) ([]kafka.Message, error) {
	if err != nil {
		return nil, err
	}
	s.Applied.Add(n.applied)
	s.Ignored.Add(n.ignored)
	s.Invalid.Add(n.invalid)
	s.UnknownPurpose.Add(n.unknown)
	s.Notices.Add(n.notices)
	s.KeyErasures.Add(n.erasures)
	return out, nil
}

// pass applies batch once; incomplete says the state is not known to be
// complete.
func (s *Syncer) pass(ctx context.Context, batch []kafka.Message, incomplete bool) ([]kafka.Message, counts, error) {
	var out []kafka.Message
	var n counts
	deadLetter := func(m kafka.Message, reason string, err error) {
		n.invalid++
		if !s.opts.Replay {
			out = append(out, s.deadLetter(m, reason, err))
		}
	}
	for _, m := range batch {
		rec, err := s.codec.Decode(ctx, m.Value)
		if err != nil {
			if !avrocodec.IsPermanent(err) {
				return nil, n, fmt.Errorf("decode: %w", err)
			}
			deadLetter(m, "undecodable", err)
			continue
		}
		if rec.Schema.FullName != ChangeSchema {
			deadLetter(m, "wrong_schema", fmt.Errorf("record has schema %s, want %s", rec.Schema.FullName, ChangeSchema))
			continue
		}
		c, err := consent.ChangeFromNative(rec.Value)
		if err == nil {
			// A change taking consent away is applied whatever the
			// length of its id (under a bounded one derived from it).
			c = c.BoundRestrictiveID()
			err = c.Validate()
		}
		if err == nil {
			c, err = c.BoundCapturedAt(m.Time, s.maxSkew())
		}
		if err != nil {
			deadLetter(m, "invalid_change", err)
			continue
		}
		if s.opts.KnownPurposes != nil && c.Purpose != "" && !s.opts.KnownPurposes[c.Purpose] {
			n.unknown++
			s.reportUnknown(c.Purpose)
		}
		o, err := s.store.ApplyWith(ctx, c, consent.ApplyOptions{StateIncomplete: incomplete})
		if err != nil {
			return nil, n, fmt.Errorf("apply change: %w", err)
		}
		if o.Applied {
			n.applied++
		} else {
			n.ignored++
		}
		if c.Action == consent.ActionErase && !s.opts.Replay && s.opts.Keys != nil {
			// Every ERASE consumed marks its subject's data keys, applied
			// or not, owing its notice or not, before the batch's
			// records are returned (so before its commit): a crash in
			// between, or an outbox entry gone, never leaves an erasure
			// unmarked. A mark again, or of a late, older erasure, kills
			// only keys made without knowing it, which the newer erasure
			// kills anyway.
			if err := s.opts.Keys.Erase(ctx, c.SubjectID, shred.Erasure{At: c.CapturedAt, ChangeID: c.ChangeID}); err != nil {
				return nil, n, fmt.Errorf("mark the erased subject's data keys: %w", err)
			}
			n.erasures++
		}
		// In replay mode the store records the outbox entries all the
		// same (a change above the live service's committed offset may
		// owe a notice that was never acknowledged, and its redelivery
		// finds the entry), but nothing is published here.
		if s.opts.Replay || !o.NoticeDue {
			continue
		}
		msg, err := s.notice(c.SubjectID, o.Notice)
		if err != nil {
			return nil, n, err
		}
		out = append(out, msg)
		n.notices++
	}
	return out, n, nil
}

// NoticeID is the notice id of the revocation notice owed by change
// changeID: the same on every redelivery.
func NoticeID(changeID string) string { return "rev-" + changeID }

// noticeReason is the reason field of a notice: what happened, the reason
// code in parentheses when the notice is a precaution, and what downstream
// must do.
func noticeReason(n consent.Notice) string {
	what := map[consent.Action]string{consent.ActionWithdraw: "consent withdrawn", consent.ActionDeny: "consent denied",
		consent.ActionErase: "erasure requested"}[n.Action]
	todo := "delete data received for this purpose"
	if n.Action == consent.ActionErase {
		todo = "delete all data held about the subject"
	}
	switch n.Reason {
	case consent.NoticeLate:
		what += " (" + string(n.Reason) + ": a newer change was applied first; a grant may have been in effect before this change)"
	case consent.NoticeStateIncomplete:
		what += " (" + string(n.Reason) + ": applied while the consent state was being rebuilt; the grant it ends may not be known)"
	}
	return what + ": " + todo
}

func (s *Syncer) notice(subject string, n consent.Notice) (kafka.Message, error) {
	purposes := []any{}
	if n.Action != consent.ActionErase {
		purposes = []any{n.Purpose}
	}
	v := map[string]any{
		"notice_id":  NoticeID(n.ChangeID),
		"subject_id": subject,
		"purposes":   purposes,
		"action":     string(n.Action),
		"since":      n.CapturedAt,
		"change_id":  n.ChangeID,
		"reason":     noticeReason(n),
		"issued_at":  s.now(),
	}
	b, err := s.codec.EncodeSingle(NoticeSchema, v)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode revocation notice: %w", err)
	}
	return kafka.Message{Topic: s.opts.RevocationsTopic, Key: []byte(subject), Value: b}, nil
}

// Writer is the producer side the runner writes with; stream.Writer and
// *kafka.Writer fit it.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Sink wraps w, the runner's writer: once the brokers have acknowledged a
// revocation notice (acks=all), the notice's outbox entry is removed. It is
// never removed before, so a crash in between leaves it for the change's
// redelivery (the runner commits offsets only after the write). A removal
// that fails (Redis unavailable) is counted in NoticeAckErrors, not
// retried: the entry then only makes a redelivery publish the notice again,
// with the same notice id.
func (s *Syncer) Sink(w Writer) Writer { return &ackingWriter{s: s, w: w} }

type ackingWriter struct {
	s *Syncer
	w Writer
}

// BatchLimits passes on the wrapped writer's produce batch limits, so that
// stream.WriteEach keeps order per key through this wrapper too (0, 0 when
// they are unknown: WriteEach then writes everything at once).
func (a *ackingWriter) BatchLimits() (records int, bytes int64) {
	records, bytes, _ = stream.BatchLimitsOf(a.w)
	return records, bytes
}

func (a *ackingWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	err := a.w.WriteMessages(ctx, msgs...)
	var werrs kafka.WriteErrors
	partial := errors.As(err, &werrs) && len(werrs) == len(msgs)
	if err != nil && !partial {
		return err
	}
	for i, m := range msgs {
		if m.Topic != a.s.opts.RevocationsTopic || (partial && werrs[i] != nil) {
			continue
		}
		a.s.ack(ctx, m)
	}
	return err
}

// ack removes the outbox entry of an acknowledged notice.
func (s *Syncer) ack(ctx context.Context, m kafka.Message) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rec, err := s.codec.Decode(actx, m.Value)
	if err != nil {
		s.NoticeAckErrors.Add(1)
		return
	}
	subject, _ := avrocodec.StringField(rec.Value, "subject_id")
	changeID, _ := avrocodec.StringField(rec.Value, "change_id")
	if subject == "" || changeID == "" || s.store.AckNotice(actx, subject, changeID) != nil {
		s.NoticeAckErrors.Add(1)
	}
}

func (s *Syncer) deadLetter(m kafka.Message, reason string, err error) kafka.Message {
	h := make([]kafka.Header, 0, len(m.Headers)+5)
	h = append(h, m.Headers...)
	h = append(h,
		kafka.Header{Key: HeaderDLQReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderDLQError, Value: []byte(err.Error())},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderSourcePart, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Topic: m.Topic + s.opts.DLQSuffix, Key: m.Key, Value: m.Value, Headers: h}
}
