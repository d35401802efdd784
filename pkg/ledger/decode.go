package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TopicKind is what a topic holds, and so which table its records go to.
type TopicKind int

// Kinds of topics the ledger reads.
const (
	HoldsUnknown TopicKind = iota
	HoldsChanges
	HoldsAudit
	HoldsNotices
	HoldsDeadLetters
	HoldsCheckpoints
	// HoldsKeys: the keys topic of crypto-shredding (consent.keys). Only
	// the Kafka keys and timestamps of its records are read: a value
	// (a wrapped data key) is never decoded nor kept (see AddKeyRecord).
	HoldsKeys
)

func (k TopicKind) String() string {
	switch k {
	case HoldsChanges:
		return "consent changes"
	case HoldsAudit:
		return "audit"
	case HoldsNotices:
		return "revocation notices"
	case HoldsDeadLetters:
		return "dead letters"
	case HoldsCheckpoints:
		return "checkpoints"
	case HoldsKeys:
		return "data keys"
	}
	return "unknown"
}

// Schema full names of the records the ledger decodes.
const (
	ChangeSchema = "consentgate.consent.ConsentChange"
	NoticeSchema = "consentgate.consent.RevocationNotice"
)

// Decoder turns the records of the ledger's topics into rows of a Batch.
type Decoder struct {
	// Codec decodes consent changes and notices (single-object or, with a
	// registry, Confluent framing); audit records are read with their
	// writer schema from its catalog (audit.Read).
	Codec *avrocodec.Codec
	// LeafHash gives an audit record's leaf hash (seal.LeafHash); nil
	// leaves it zero.
	LeafHash func(topic string, partition int32, offset int64, key, value []byte) [32]byte
	// Checkpoint parses a record of the checkpoints topic (a signed note)
	// into a Checkpoint, checking its signature; nil makes such records
	// undecodable.
	Checkpoint func(note []byte) (Checkpoint, error)
}

// ErrTransient wraps a decoding failure after which the same bytes may
// decode (a schema registry out of reach): the record must not be stored as
// undecodable and its position must not advance.
var ErrTransient = errors.New("transient decoding failure")

// Add decodes m, a record of a topic of kind k, into b. A record that does
// not decode becomes an Undecodable row (nothing of its bytes is kept); only
// a transient failure is returned (wrapping ErrTransient), and b is then
// unchanged.
func (d *Decoder) Add(ctx context.Context, b *Batch, k TopicKind, m kafka.Message) error {
	c := Coord{Topic: m.Topic, Partition: int32(m.Partition), Offset: m.Offset, Time: m.Time.UTC()}
	bad := func(err error) error {
		u := Undecodable{Coord: c, Error: err.Error()}
		if k == HoldsAudit && d.LeafHash != nil {
			h := d.LeafHash(m.Topic, int32(m.Partition), m.Offset, m.Key, m.Value)
			u.LeafHash = h[:]
		}
		b.Undecodable = append(b.Undecodable, u)
		return nil
	}
	switch k {
	case HoldsAudit:
		r, err := audit.Read(d.Codec.Catalog(), m.Value)
		if err != nil {
			return bad(err)
		}
		e := AuditEntry{Coord: c, Record: *r}
		if d.LeafHash != nil {
			e.LeafHash = d.LeafHash(m.Topic, int32(m.Partition), m.Offset, m.Key, m.Value)
		}
		b.Audits = append(b.Audits, e)
	case HoldsChanges:
		rec, err := d.Codec.Decode(ctx, m.Value)
		if err != nil {
			if !avrocodec.IsPermanent(err) {
				return fmt.Errorf("%w: %w", ErrTransient, err)
			}
			return bad(err)
		}
		if rec.Schema.FullName != ChangeSchema {
			return bad(fmt.Errorf("record has schema %s, want %s", rec.Schema.FullName, ChangeSchema))
		}
		ch, err := consent.ChangeFromNative(rec.Value)
		if err != nil {
			return bad(err)
		}
		b.Changes = append(b.Changes, ConsentChange{
			Coord: c, ChangeID: ch.ChangeID, SubjectID: ch.SubjectID, Purpose: ch.Purpose,
			Action: string(ch.Action), LegalBasis: string(ch.LegalBasis), ExcludedCategories: ch.ExcludedCategories,
			Source: ch.Source, NoticeVersion: ch.NoticeVersion, CapturedAt: ch.CapturedAt.UTC(), ExpiresAt: decodeUTC(ch.ExpiresAt),
		})
	case HoldsNotices:
		rec, err := d.Codec.Decode(ctx, m.Value)
		if err != nil {
			if !avrocodec.IsPermanent(err) {
				return fmt.Errorf("%w: %w", ErrTransient, err)
			}
			return bad(err)
		}
		if rec.Schema.FullName != NoticeSchema {
			return bad(fmt.Errorf("record has schema %s, want %s", rec.Schema.FullName, NoticeSchema))
		}
		n, err := noticeFromNative(rec.Value)
		if err != nil {
			return bad(err)
		}
		n.Coord = c
		b.Notices = append(b.Notices, n)
	case HoldsDeadLetters:
		dl := DeadLetter{Coord: c, SourcePartition: -1, SourceOffset: -1}
		dl.Reason, _ = stream.Header(m, stream.HeaderDLQReason)
		dl.Error, _ = stream.Header(m, stream.HeaderDLQError)
		dl.EventID, _ = stream.Header(m, stream.HeaderEventID)
		if src, ok := stream.SourceCoordinates(m); ok {
			dl.SourceTopic, dl.SourcePartition, dl.SourceOffset = src.Topic, int32(src.Partition), src.Offset
		} else if t, ok := stream.Header(m, stream.HeaderSourceTopic); ok {
			dl.SourceTopic = t
		}
		if dl.Reason == "" {
			dl.Reason = "unknown"
		}
		b.DeadLetters = append(b.DeadLetters, dl)
	case HoldsCheckpoints:
		if d.Checkpoint == nil {
			return bad(errors.New("no checkpoint verifier configured"))
		}
		cp, err := d.Checkpoint(m.Value)
		if err != nil {
			return bad(err)
		}
		cp.Coord = c
		b.Checkpoints = append(b.Checkpoints, cp)
	case HoldsKeys:
		AddKeyRecord(b, c, m.Key, m.Value == nil)
	default:
		return bad(fmt.Errorf("topic %s is not one the ledger reads", m.Topic))
	}
	return nil
}

// Kafka key prefixes of the keys topic.
const (
	dataKeyPrefix = "key:"
	erasedPrefix  = "erased:"
)

// AddKeyRecord adds to b what the ledger keeps of a record of the keys
// topic at c, from its Kafka key alone (tombstone: its value is null):
//
//   - "key:<32 hex digits>:<subject>" with a value: the data key's
//     creation; a tombstone: its destruction (DataKeys);
//   - "erased:<subject>" with a value: the subject's erasure marker
//     (KeyErasures); its tombstone is ignored;
//   - anything else: counted in b.UnknownKeys, nothing kept.
//
// The value is never looked at beyond being null or not: it holds the
// wrapped data key.
func AddKeyRecord(b *Batch, c Coord, key []byte, tombstone bool) {
	k := string(key)
	switch {
	case strings.HasPrefix(k, dataKeyPrefix):
		rest := k[len(dataKeyPrefix):]
		if len(rest) < 34 || rest[32] != ':' || !isHex(rest[:32]) {
			b.UnknownKeys++
			return
		}
		b.DataKeys = append(b.DataKeys, DataKeyEvent{Coord: c, KeyID: strings.ToLower(rest[:32]), SubjectID: rest[33:], Destroyed: tombstone})
	case strings.HasPrefix(k, erasedPrefix) && len(k) > len(erasedPrefix):
		if !tombstone {
			b.KeyErasures = append(b.KeyErasures, KeyErasure{Coord: c, SubjectID: k[len(erasedPrefix):]})
		}
	default:
		b.UnknownKeys++
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

func noticeFromNative(v map[string]any) (Notice, error) {
	var n Notice
	var missing []string
	str := func(name string) string {
		s, ok := avrocodec.Unwrap(v[name]).(string)
		if !ok {
			missing = append(missing, name)
		}
		return s
	}
	n.NoticeID = str("notice_id")
	n.SubjectID = str("subject_id")
	n.Action = str("action")
	n.ChangeID = str("change_id")
	n.Reason = str("reason")
	for _, name := range []string{"since", "issued_at"} {
		t, ok := v[name].(interface{ UnixMilli() int64 })
		if !ok {
			missing = append(missing, name)
			continue
		}
		if name == "since" {
			n.Since = time.UnixMilli(t.UnixMilli()).UTC()
		} else {
			n.IssuedAt = time.UnixMilli(t.UnixMilli()).UTC()
		}
	}
	if list, ok := v["purposes"].([]any); ok {
		for _, p := range list {
			if s, ok := p.(string); ok {
				n.Purposes = append(n.Purposes, s)
			}
		}
	} else {
		missing = append(missing, "purposes")
	}
	if len(missing) > 0 {
		return Notice{}, fmt.Errorf("revocation notice: missing or mistyped fields %s", strings.Join(missing, ", "))
	}
	return n, nil
}

// DeadLetterTopic reports whether topic is a dead-letter topic for suffix
// (".dlq" by default).
func DeadLetterTopic(topic, suffix string) bool {
	return suffix != "" && strings.HasSuffix(topic, suffix) && len(topic) > len(suffix)
}

// decodeUTC is t in UTC, the zero time kept zero.
func decodeUTC(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
