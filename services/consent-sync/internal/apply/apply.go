// Package apply applies consent changes to the consent store. Each change is
// decoded, validated and applied with the store's atomic compare-and-set
// (newest captured_at wins), so replays and duplicates are harmless; a change
// that cannot be decoded or is invalid goes to the dead-letter topic with the
// reason. A withdrawal, a denial after a grant, or an erasure that takes
// effect yields a revocation notice for downstream systems.
//
// In replay mode (Options.Replay, used by consent-sync --rebuild) the same
// decoding, validation and compare-and-set run, but Process returns no
// records: invalid changes are only counted (they were dead-lettered when
// they were first consumed) and no revocation notices are built (they were
// published when the changes were first applied).
package apply

import (
	"context"
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

// Applier applies one change atomically.
type Applier interface {
	Apply(ctx context.Context, c consent.Change) (consent.Outcome, error)
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
	// Replay makes Process apply and count only: no dead letters and no
	// revocation notices are returned. A rebuild of the cache from the
	// topic uses it, since both were written when the changes were first
	// consumed.
	Replay bool
}

// MaxUnknownPurposes bounds the unknown purpose ids a Syncer remembers
// (and reports); beyond, they are only counted.
const MaxUnknownPurposes = 100

// Syncer processes batches of consent changes; a stream.Runner drives it.
type Syncer struct {
	opts  Options
	codec Codec
	store Applier
	now   func() time.Time

	Applied, Ignored, Invalid, UnknownPurpose, Notices atomic.Int64

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
func New(opts Options, codec Codec, store Applier) *Syncer {
	return &Syncer{opts: opts, codec: codec, store: store, now: time.Now}
}

// Process applies a batch in order and returns the notices and dead letters
// to write. A store error aborts the batch (it is retried whole, which the
// compare-and-set makes harmless).
func (s *Syncer) Process(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error) {
	var out []kafka.Message
	deadLetter := func(m kafka.Message, reason string, err error) {
		s.Invalid.Add(1)
		if !s.opts.Replay {
			out = append(out, s.deadLetter(m, reason, err))
		}
	}
	for _, m := range batch {
		rec, err := s.codec.Decode(ctx, m.Value)
		if err != nil {
			if !avrocodec.IsPermanent(err) {
				return nil, fmt.Errorf("decode: %w", err)
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
			s.UnknownPurpose.Add(1)
			s.reportUnknown(c.Purpose)
		}
		o, err := s.store.Apply(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("apply change: %w", err)
		}
		if !o.Applied {
			s.Ignored.Add(1)
			// A re-delivery of the stored change (after a crash between
			// the Redis write and the notice's acknowledgement) publishes
			// its notice again: the first may never have been written.
			// The notice id is stable, so consumers drop the repeat.
			if !(o.Redelivered || o.NoticeDue) || s.opts.Replay {
				continue
			}
		} else {
			s.Applied.Add(1)
		}
		if s.opts.Replay {
			continue
		}
		if n, ok, err := s.notice(c, o); err != nil {
			return nil, err
		} else if ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func (s *Syncer) notice(c consent.Change, o consent.Outcome) (kafka.Message, bool, error) {
	var purposes []any
	var reason string
	switch {
	case c.Action == consent.ActionErase:
		purposes = []any{}
		reason = "erasure requested: delete all data held about the subject"
	case (c.Action == consent.ActionWithdraw || c.Action == consent.ActionDeny) && ((o.Applied && o.Previous.Status == consent.StatusGranted) || o.NoticeDue):
		purposes = []any{c.Purpose}
		reason = "consent " + map[consent.Action]string{consent.ActionWithdraw: "withdrawn", consent.ActionDeny: "denied"}[c.Action] +
			": delete data received for this purpose"
	default:
		return kafka.Message{}, false, nil
	}
	v := map[string]any{
		"notice_id":  "rev-" + c.ChangeID,
		"subject_id": c.SubjectID,
		"purposes":   purposes,
		"action":     string(c.Action),
		"since":      c.CapturedAt,
		"change_id":  c.ChangeID,
		"reason":     reason,
		"issued_at":  s.now(),
	}
	b, err := s.codec.EncodeSingle(NoticeSchema, v)
	if err != nil {
		return kafka.Message{}, false, fmt.Errorf("encode revocation notice: %w", err)
	}
	s.Notices.Add(1)
	return kafka.Message{Topic: s.opts.RevocationsTopic, Key: []byte(c.SubjectID), Value: b}, true, nil
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
