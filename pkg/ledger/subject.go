package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// SubjectHistory is everything the ledger holds about one subject: what a
// data subject access request answers.
type SubjectHistory struct {
	SubjectID string `json:"subject_id"`
	// AsOf is the time expiry was judged at.
	AsOf time.Time `json:"as_of"`
	// Changes: every consent change, in time order (captured_at, then
	// change id), each marked won or lost and why.
	Changes []ChangeOutcome `json:"changes"`
	// Purposes: the current consent per purpose, by purpose.
	Purposes []PurposeOutcome `json:"purposes"`
	// Audits: every audit record about the subject, by processed_at
	// (then audit coordinates).
	Audits []AuditView `json:"audits"`
	// Notices: every revocation notice, by issued_at (then coordinates).
	Notices []NoticeView `json:"notices"`
	// DataKeys: every data key of the subject the ledger read on the keys
	// topic (crypto-shredding), by creation time (unknown first), then key
	// id: when it was created and when it was destroyed. The ledger keeps
	// what it read: compaction removes key records and tombstones from the
	// topic, not from here. Never the key itself.
	DataKeys []DataKeyView `json:"data_keys"`
	// KeyErasures: every erasure marker of the subject on the keys topic,
	// in time order: from each, the subject's keys before it are dead and
	// are destroyed (tombstoned) by the shredder.
	KeyErasures []KeyErasureView `json:"key_erasures"`
	// Timeline merges them all in time order (a data key appears twice:
	// created, destroyed).
	Timeline []TimelineEntry `json:"timeline"`
}

// DataKeyView is one data key of a subject: where its records are on the
// keys topic and when it was created and destroyed (the records' Kafka
// timestamps). Nil for what the ledger did not read: CreatedAt of a key
// whose record was compacted away before the ledger read it, DestroyedAt
// of a key not (yet) destroyed.
type DataKeyView struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// KeyID is the key id of the ciphertext envelopes (32 hex digits).
	KeyID           string     `json:"key_id"`
	CreatedAt       *time.Time `json:"created_at"`
	CreatedOffset   *int64     `json:"created_offset"`
	DestroyedAt     *time.Time `json:"destroyed_at"`
	DestroyedOffset *int64     `json:"destroyed_offset"`
}

// KeyErasureView is an erasure marker of the keys topic: At is its Kafka
// timestamp.
type KeyErasureView struct {
	Coords Coords    `json:"coords"`
	At     time.Time `json:"at"`
}

// AuditView is one audit record as the ledger returns it.
type AuditView struct {
	Audit            Coords           `json:"audit"`
	RecordVersion    int              `json:"record_version"`
	EventID          string           `json:"event_id,omitempty"`
	SubjectID        string           `json:"subject_id,omitempty"`
	Outcome          string           `json:"outcome"`
	DeadLetterReason string           `json:"dead_letter_reason,omitempty"`
	EventSchema      string           `json:"event_schema,omitempty"`
	PolicyVersion    string           `json:"policy_version"`
	Source           Coords           `json:"source"`
	ProcessedAt      time.Time        `json:"processed_at"`
	Decisions        []StreamDecision `json:"decisions"`
}

// NoticeView is one revocation notice.
type NoticeView struct {
	Coords   Coords    `json:"coords"`
	NoticeID string    `json:"notice_id"`
	Purposes []string  `json:"purposes"`
	Action   string    `json:"action"`
	Since    time.Time `json:"since"`
	ChangeID string    `json:"change_id"`
	Reason   string    `json:"reason"`
	IssuedAt time.Time `json:"issued_at"`
}

// Timeline entry kinds.
const (
	KindConsentChange = "consent_change"
	KindAudit         = "audit"
	KindNotice        = "notice"
	// KindKeysErased is an erasure marker of the keys topic; Index points
	// into KeyErasures.
	KindKeysErased = "keys_erased"
	// KindKeyCreated and KindKeyDestroyed are a data key's creation and
	// destruction; Index points into DataKeys, Ref is the key id.
	KindKeyCreated   = "data_key_created"
	KindKeyDestroyed = "data_key_destroyed"
)

// TimelineEntry is one line of a subject's timeline. Index points into
// the Changes, Audits, Notices, DataKeys or KeyErasures of the history, by
// Kind.
type TimelineEntry struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Index   int       `json:"index"`
	Ref     string    `json:"ref"`
	Summary string    `json:"summary"`
}

// Subject returns the history of subjectID. A subject the ledger knows
// nothing of has an empty history (not an error).
func (s *Store) Subject(ctx context.Context, subjectID string) (*SubjectHistory, error) {
	stored := s.textForms(subjectID) // as the ledger stores it
	h := &SubjectHistory{SubjectID: subjectID, AsOf: s.now().UTC(), Changes: []ChangeOutcome{}, Purposes: []PurposeOutcome{},
		Audits: []AuditView{}, Notices: []NoticeView{}, DataKeys: []DataKeyView{}, KeyErasures: []KeyErasureView{}, Timeline: []TimelineEntry{}}
	changes, err := s.subjectChanges(ctx, subjectID, stored)
	if err != nil {
		return nil, fmt.Errorf("ledger: subject: changes: %w", err)
	}
	h.Changes, h.Purposes = Resolve(changes, h.AsOf)
	if h.Changes == nil {
		h.Changes = []ChangeOutcome{}
	}
	if h.Purposes == nil {
		h.Purposes = []PurposeOutcome{}
	}
	if h.Audits, err = s.audits(ctx, "WHERE "+inForms("subject_id", stored)+" ORDER BY processed_at, topic, partition_id, record_offset", stored...); err != nil {
		return nil, fmt.Errorf("ledger: subject: audits: %w", err)
	}
	if h.Notices, err = s.subjectNotices(ctx, stored); err != nil {
		return nil, fmt.Errorf("ledger: subject: notices: %w", err)
	}
	if h.DataKeys, err = s.subjectKeys(ctx, stored); err != nil {
		return nil, fmt.Errorf("ledger: subject: data keys: %w", err)
	}
	if h.KeyErasures, err = s.subjectKeyErasures(ctx, stored); err != nil {
		return nil, fmt.Errorf("ledger: subject: key erasures: %w", err)
	}
	for i, c := range h.Changes {
		sum := c.Action
		if c.Purpose != "" {
			sum += " " + c.Purpose
		}
		if c.Won {
			sum += ": in effect"
		} else {
			sum += ": " + c.Why
		}
		if c.Expired {
			sum += " (expired)"
		}
		h.Timeline = append(h.Timeline, TimelineEntry{Time: c.CapturedAt, Kind: KindConsentChange, Index: i, Ref: c.ChangeID, Summary: sum})
	}
	for i, a := range h.Audits {
		var sum string
		if a.Outcome == "DEAD_LETTERED" {
			sum = "dead-lettered: " + a.DeadLetterReason
		} else {
			parts := make([]string, 0, len(a.Decisions))
			for _, d := range a.Decisions {
				parts = append(parts, d.Stream+" "+d.Decision+" ("+d.Reason+")")
			}
			sum = strings.Join(parts, "; ")
		}
		h.Timeline = append(h.Timeline, TimelineEntry{Time: a.ProcessedAt, Kind: KindAudit, Index: i, Ref: a.EventID, Summary: sum})
	}
	for i, n := range h.Notices {
		sum := n.Action + " " + strings.Join(n.Purposes, ",") + " (" + n.Reason + ")"
		h.Timeline = append(h.Timeline, TimelineEntry{Time: n.IssuedAt, Kind: KindNotice, Index: i, Ref: n.NoticeID, Summary: sum})
	}
	for i, e := range h.KeyErasures {
		h.Timeline = append(h.Timeline, TimelineEntry{Time: e.At, Kind: KindKeysErased, Index: i,
			Ref:     fmt.Sprintf("%s/%d@%d", e.Coords.Topic, e.Coords.Partition, e.Coords.Offset),
			Summary: "erasure marker on the keys topic: the subject's data keys before it are dead"})
	}
	for i, k := range h.DataKeys {
		if k.CreatedAt != nil {
			h.Timeline = append(h.Timeline, TimelineEntry{Time: *k.CreatedAt, Kind: KindKeyCreated, Index: i, Ref: k.KeyID,
				Summary: fmt.Sprintf("data key created (%s/%d@%d)", k.Topic, k.Partition, *k.CreatedOffset)})
		}
		if k.DestroyedAt != nil {
			sum := fmt.Sprintf("data key destroyed (tombstone %s/%d@%d): its ciphertexts can no longer be decrypted", k.Topic, k.Partition, *k.DestroyedOffset)
			if k.CreatedAt == nil {
				sum += "; its creation was not read by the ledger"
			}
			h.Timeline = append(h.Timeline, TimelineEntry{Time: *k.DestroyedAt, Kind: KindKeyDestroyed, Index: i, Ref: k.KeyID, Summary: sum})
		}
	}
	kindOrder := map[string]int{KindConsentChange: 0, KindNotice: 1, KindAudit: 2, KindKeyCreated: 3, KindKeysErased: 4, KindKeyDestroyed: 5}
	slices.SortStableFunc(h.Timeline, func(a, b TimelineEntry) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]), cmp.Compare(a.Index, b.Index))
	})
	return h, nil
}

// textForms are the forms in which the ledger may hold the string s: as
// storeText stores it, and, when that differs, s as it is, which is how
// the ledger stored it before storeText (SQLite took any bytes; PostgreSQL
// only valid UTF-8 without NUL, the only raw form looked up there), so
// that the rows of an id written before and after the upgrade are found
// together.
func (s *Store) textForms(v string) []any {
	stored := storeText(v)
	if stored == v || (s.pool != nil && (!utf8.ValidString(v) || strings.ContainsRune(v, 0))) {
		return []any{stored}
	}
	return []any{stored, v}
}

// inForms is the condition that col holds one of forms.
func inForms(col string, forms []any) string {
	if len(forms) == 1 {
		return col + " = ?"
	}
	return col + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(forms)), ", ") + ")"
}

// canonText is the stored string t as storeText stores it now: a row
// written before storeText holds its strings as they are.
func canonText(t string) string {
	if _, ok := boundedText(t); ok {
		return t
	}
	return storeText(loadText(t))
}

func (s *Store) subjectChanges(ctx context.Context, subjectID string, stored []any) ([]ChangeOutcome, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT topic, partition_id, record_offset, change_id, purpose, action, legal_basis,
excluded_categories, source, notice_version, captured_at, expires_at, record_time
FROM consent_changes WHERE `+inForms("subject_id", stored)+` ORDER BY COALESCE(captured_at, 0), change_id, topic, partition_id, record_offset`), stored...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ChangeOutcome
	for rows.Next() {
		c := ChangeOutcome{subject: subjectID}
		var excl string
		var captured, expires, recorded sql.NullInt64
		if err := rows.Scan(&c.Source.Topic, &c.Source.Partition, &c.Source.Offset, &c.ChangeID, &c.Purpose, &c.Action, &c.LegalBasis,
			&excl, &c.ChangeSource, &c.NoticeVersion, &captured, &expires, &recorded); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(excl), &c.ExcludedCategories); err != nil {
			return nil, fmt.Errorf("excluded_categories of change at %s/%d/%d: %w", c.Source.Topic, c.Source.Partition, c.Source.Offset, err)
		}
		for _, f := range []*string{&c.ChangeID, &c.Purpose, &c.Action, &c.LegalBasis, &c.ChangeSource, &c.NoticeVersion} {
			*f = canonText(*f)
		}
		for i, e := range c.ExcludedCategories {
			c.ExcludedCategories[i] = canonText(e)
		}
		c.CapturedAt, c.RecordTime = fromMS(captured), fromMS(recorded)
		if expires.Valid {
			e := fromMS(expires)
			c.ExpiresAt = &e
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

const auditCols = `topic, partition_id, record_offset, record_version, event_id, subject_id, outcome, dead_letter_reason,
event_schema, policy_version, source_topic, source_partition, source_offset, processed_at, decisions`

// audits returns the audit records a WHERE … ORDER BY clause selects.
func (s *Store) audits(ctx context.Context, where string, args ...any) ([]AuditView, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q("SELECT "+auditCols+" FROM audit_records "+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []AuditView{}
	for rows.Next() {
		var a AuditView
		var at int64
		var ds string
		if err := rows.Scan(&a.Audit.Topic, &a.Audit.Partition, &a.Audit.Offset, &a.RecordVersion, &a.EventID, &a.SubjectID, &a.Outcome,
			&a.DeadLetterReason, &a.EventSchema, &a.PolicyVersion, &a.Source.Topic, &a.Source.Partition, &a.Source.Offset, &at, &ds); err != nil {
			return nil, err
		}
		a.ProcessedAt = time.UnixMilli(at).UTC()
		if err := json.Unmarshal([]byte(ds), &a.Decisions); err != nil {
			return nil, fmt.Errorf("decisions of audit record %s/%d/%d: %w", a.Audit.Topic, a.Audit.Partition, a.Audit.Offset, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *Store) subjectNotices(ctx context.Context, stored []any) ([]NoticeView, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT topic, partition_id, record_offset, notice_id, purposes, action, since, change_id,
reason, issued_at FROM revocation_notices WHERE `+inForms("subject_id", stored)+` ORDER BY COALESCE(issued_at, 0), topic, partition_id, record_offset`), stored...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []NoticeView{}
	for rows.Next() {
		var n NoticeView
		var purposes string
		var since, issued sql.NullInt64
		if err := rows.Scan(&n.Coords.Topic, &n.Coords.Partition, &n.Coords.Offset, &n.NoticeID, &purposes, &n.Action, &since, &n.ChangeID,
			&n.Reason, &issued); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(purposes), &n.Purposes); err != nil {
			return nil, fmt.Errorf("purposes of notice at %s/%d/%d: %w", n.Coords.Topic, n.Coords.Partition, n.Coords.Offset, err)
		}
		n.Since, n.IssuedAt = fromMS(since), fromMS(issued)
		out = append(out, n)
	}
	return out, rows.Err()
}

func (s *Store) subjectKeys(ctx context.Context, stored []any) ([]DataKeyView, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT topic, partition_id, key_id, created_at, created_offset, destroyed_at, destroyed_offset
FROM data_keys WHERE `+inForms("subject_id", stored)+` ORDER BY CASE WHEN created_at IS NULL THEN 0 ELSE 1 END, created_at, key_id, topic, partition_id`), stored...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []DataKeyView{}
	for rows.Next() {
		var k DataKeyView
		var created, createdOff, destroyed, destroyedOff sql.NullInt64
		if err := rows.Scan(&k.Topic, &k.Partition, &k.KeyID, &created, &createdOff, &destroyed, &destroyedOff); err != nil {
			return nil, err
		}
		k.CreatedAt, k.CreatedOffset = optTime(created, createdOff), optInt(createdOff)
		k.DestroyedAt, k.DestroyedOffset = optTime(destroyed, destroyedOff), optInt(destroyedOff)
		out = append(out, k)
	}
	return out, rows.Err()
}

// optTime is the time of a record the ledger read (off valid): its
// timestamp, the zero time when the record had none; nil when not read.
func optTime(at, off sql.NullInt64) *time.Time {
	if !off.Valid {
		return nil
	}
	t := fromMS(at)
	return &t
}

func optInt(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	n := v.Int64
	return &n
}

func (s *Store) subjectKeyErasures(ctx context.Context, stored []any) ([]KeyErasureView, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT topic, partition_id, record_offset, record_time FROM key_erasures WHERE `+
		inForms("subject_id", stored)+` ORDER BY COALESCE(record_time, 0), topic, partition_id, record_offset`), stored...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []KeyErasureView{}
	for rows.Next() {
		var e KeyErasureView
		var at sql.NullInt64
		if err := rows.Scan(&e.Coords.Topic, &e.Coords.Partition, &e.Coords.Offset, &at); err != nil {
			return nil, err
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
