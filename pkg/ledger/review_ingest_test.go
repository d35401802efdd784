package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// randomText is n bytes of random letters and digits: text that neither
// storeText quotes nor PostgreSQL's index compression shrinks much.
func randomText(r *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// TestReviewIngestStoresOverLongStrings: a WITHDRAW whose change id is
// 3000 bytes long is applied by consent-sync (under its bounded id,
// consent.BoundRestrictiveID), and any producer may write a record with
// a long subject id, policy version, stream or source topic to the
// ledger's topics. A record the database refuses for good stops the
// consumer on that batch for ever (it retries the same batch): no record
// of any partition after it reaches the ledger. Every such record must be
// ingested, and the WITHDRAW must decide the subject's purpose in the
// ledger as it does in the consent store.
func TestReviewIngestStoresOverLongStrings(t *testing.T) {
	codec := decodeCodec(t)
	dec := &Decoder{Codec: codec}
	r := rand.New(rand.NewPCG(7, 11))
	longID := randomText(r, 3000)
	cases := []struct {
		name   string
		record func(subject string, off int64) (TopicKind, kafka.Message)
	}{
		{"a WITHDRAW with a 3000-byte change id", func(subject string, off int64) (TopicKind, kafka.Message) {
			c := consent.Change{ChangeID: longID, SubjectID: subject, Purpose: "marketing", Action: consent.ActionWithdraw, CapturedAt: t0}
			if err := c.BoundRestrictiveID().Validate(); err != nil {
				t.Fatalf("consent-sync refuses the change: %v", err)
			}
			b, err := codec.EncodeSingle(ChangeSchema, c.Native())
			if err != nil {
				t.Fatal(err)
			}
			return HoldsChanges, kafka.Message{Topic: "consent.changes", Offset: off, Value: b, Time: t0}
		}},
		{"a change with a 3000-byte subject id", func(_ string, off int64) (TopicKind, kafka.Message) {
			c := consent.Change{ChangeID: "c-long-subject", SubjectID: longID, Purpose: "marketing", Action: consent.ActionDeny, CapturedAt: t0}
			b, err := codec.EncodeSingle(ChangeSchema, c.Native())
			if err != nil {
				t.Fatal(err)
			}
			return HoldsChanges, kafka.Message{Topic: "consent.changes", Offset: off, Value: b, Time: t0}
		}},
		{"an audit record with a 3000-byte policy version, stream and source topic", func(subject string, off int64) (TopicKind, kafka.Message) {
			a := auditRecord(subject, "ev-long", "customer.events", 0, off, t0, decision.Passed)
			a.PolicyVersion, a.SourceTopic, a.Decisions[0].Stream = longID, longID+"t", longID+"s"
			b, err := codec.EncodeSingle(audit.Schema, auditNativeV2(&a))
			if err != nil {
				t.Fatal(err)
			}
			return HoldsAudit, kafka.Message{Topic: "consent.audit", Offset: off, Value: b, Time: t0}
		}},
		{"a dead letter with a 3000-byte source topic", func(_ string, off int64) (TopicKind, kafka.Message) {
			return HoldsDeadLetters, kafka.Message{Topic: "customer.events.dlq", Offset: off, Time: t0, Headers: []kafka.Header{
				{Key: "consentgate.dlq.reason", Value: []byte("undecodable")}, {Key: "consentgate.source.topic", Value: []byte(longID)}}}
		}},
	}
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				subject := fmt.Sprintf("subject-long-%d", i)
				k, m := tc.record(subject, int64(i))
				var batch Batch
				if err := dec.Add(ctx, &batch, k, m); err != nil {
					t.Fatal(err)
				}
				batch.Positions = []Position{{Topic: m.Topic, Partition: 0, Next: m.Offset + 1, Last: RecordHash(m)}}
				if err := s.Ingest(ctx, &batch); err != nil {
					t.Fatalf("the ledger cannot store the record, and so no record after it: %.300v", err)
				}
				if k != HoldsChanges || i != 0 {
					return
				}
				h, err := s.Subject(ctx, subject)
				if err != nil {
					t.Fatal(err)
				}
				bounded := consent.BoundChangeID(longID)
				if len(h.Purposes) != 1 || h.Purposes[0].Status != StatusWithdrawn || h.Purposes[0].ChangeID != bounded {
					t.Errorf("the ledger says %+v, the consent store: withdrawn by %.30s…", h.Purposes, bounded)
				}
			})
		}
	})
}

// TestReviewIngestAuditRecordOfYearOne: an audit record whose processed_at
// is 0001-01-01T00:00:00Z (-62135596800000 ms, a valid Avro long; Go reads
// it as the zero time) is decoded, and then refused by Ingest ("has no
// processed_at") on every try: the consumer stops on it for good.
func TestReviewIngestAuditRecordOfYearOne(t *testing.T) {
	codec := decodeCodec(t)
	dec := &Decoder{Codec: codec}
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := auditRecord("subject-year-one", "ev-1", "customer.events", 0, 0, time.UnixMilli(-62135596800000).UTC(), decision.Passed)
		b, err := codec.EncodeSingle(audit.Schema, auditNativeV2(&a))
		if err != nil {
			t.Fatal(err)
		}
		m := kafka.Message{Topic: "consent.audit", Value: b, Time: t0}
		var batch Batch
		if err := dec.Add(ctx, &batch, HoldsAudit, m); err != nil {
			t.Fatal(err)
		}
		batch.Positions = []Position{{Topic: m.Topic, Next: 1, Last: RecordHash(m)}}
		if err := s.Ingest(ctx, &batch); err != nil {
			t.Fatalf("the ledger cannot store the record, and so no record after it: %v", err)
		}
		h, err := s.Subject(ctx, "subject-year-one")
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Audits)+len(h.Changes) == 0 && len(batch.Audits) == 1 {
			t.Errorf("the audit record the decoder read is not in the subject's history")
		}
	})
}

// TestReviewSubjectFindsRowsStoredBeforeQuoting: an SQLite ledger written
// before strings were stored quoted (storeText) holds a subject id with a
// NUL or bytes that are not UTF-8 as it is: SQLite's TEXT took it. After
// the upgrade the rows of that subject are looked up by the quoted form
// only: the subject's history misses the DENY stored before, and says the
// GRANT ingested since decides, while the consent store (which applied
// both) says denied.
func TestReviewSubjectFindsRowsStoredBeforeQuoting(t *testing.T) {
	ctx := context.Background()
	s, _ := backends[0].open(t)
	for _, subject := range []string{"s\x00old", "s-\xffold"} {
		t.Run(fmt.Sprintf("%q", subject), func(t *testing.T) {
			// The row as the previous release's Ingest wrote it.
			if _, err := s.db.ExecContext(ctx, `INSERT INTO consent_changes (topic, partition_id, record_offset, record_time, change_id, subject_id,
purpose, action, legal_basis, excluded_categories, source, notice_version, captured_at, expires_at)
VALUES ('consent.changes', 0, ?, ?, 'c-deny', ?, 'marketing', 'DENY', '', '[]', '', '', ?, NULL)`,
				int64(len(subject)), t0.Add(time.Hour).UnixMilli(), subject, t0.Add(time.Hour).UnixMilli()); err != nil {
				t.Fatal(err)
			}
			grant := ConsentChange{Coord: Coord{Topic: "consent.changes", Offset: 100 + int64(len(subject)), Time: t0}, ChangeID: "c-grant",
				SubjectID: subject, Purpose: "marketing", Action: "GRANT", LegalBasis: "CONSENT", Source: "web", NoticeVersion: "n1", CapturedAt: t0}
			if err := s.Ingest(ctx, &Batch{Changes: []ConsentChange{grant}}); err != nil {
				t.Fatal(err)
			}
			h, err := s.Subject(ctx, subject)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Changes) != 2 || len(h.Purposes) != 1 || h.Purposes[0].Status != StatusDenied {
				t.Errorf("the history holds %d changes and says %+v; want both changes and marketing denied by c-deny", len(h.Changes), h.Purposes)
			}
		})
	}
}

// oddChange makes c's ids and dates odd: change ids with a NUL, bytes that
// are not UTF-8, a leading U+2400 (the ledger's mark of quoted strings), of
// 3000 bytes (over PostgreSQL's index bound) or quoting to more than the
// index bound; captured_at at, around and far beyond MaxCapturedAt, with
// and without a record timestamp.
func oddChange(r *rand.Rand, c consent.Change, recorded time.Time) (consent.Change, time.Time) {
	ids := []string{c.ChangeID, "\x00", "a\x00", "a\x00b", "\xff", "a\xff", "\u2400\"a\"", "\u2400", "\u2400a",
		strings.Repeat("\x00", 300) + "1", strings.Repeat("\x00", 300) + "2", strings.Repeat("b", 3000) + "1", strings.Repeat("b", 3000) + "2",
		strings.Repeat("\x01", 250)}
	if r.IntN(2) == 0 {
		c.ChangeID = ids[r.IntN(len(ids))]
	}
	if r.IntN(3) == 0 {
		dates := []time.Time{consent.MaxCapturedAt, consent.MaxCapturedAt.Add(-time.Millisecond), consent.MaxCapturedAt.Add(time.Millisecond),
			time.UnixMilli(1 << 53).UTC(), time.UnixMilli(1<<53 + 1).UTC(), consent.MaxCapturedAt.AddDate(5000, 0, 0)}
		c.CapturedAt = dates[r.IntN(len(dates))]
		c.ExpiresAt = time.Time{}
		switch r.IntN(3) {
		case 0:
			recorded = time.Time{}
		case 1:
			recorded = consent.MaxCapturedAt.Add(-time.Duration(r.IntN(3)) * time.Millisecond)
		}
	}
	return c, recorded
}

// TestReviewPropertyWinnerIsWhatRedisHoldsForOddStringsAndFarDates is
// TestReviewPropertyWinnerIsWhatRedisHolds with odd subject and change ids
// and far dates (oddChange), on both backends: for every purpose the
// ledger names the status, deciding change (as the ledger stores its id)
// and captured_at that the consent store holds.
func TestReviewPropertyWinnerIsWhatRedisHoldsForOddStringsAndFarDates(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	codec := decodeCodec(t)
	dec := &Decoder{Codec: codec}
	r0 := t0.Add(time.Hour)
	now := r0.Add(time.Hour)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REVIEW_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	for bi, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ls, _ := be.open(t, WithClock(func() time.Time { return now }))
			rng := rand.New(rand.NewPCG(seed, uint64(bi)))
			g := &changeGen{rnd: rng}
			iterations := 200
			if testing.Short() {
				iterations = 40
			}
			var offset int64
			failures := 0
			for it := range iterations {
				store := consent.NewStore(rdb, fmt.Sprintf("%s%s%d:", redistest.PrefixFor(t), be.name, it))
				subject := []string{fmt.Sprintf("subject-%d", it), fmt.Sprintf("s\x00%d", it), fmt.Sprintf("s\xff%d", it),
					fmt.Sprintf("\u2400\"s%d\"", it)}[rng.IntN(4)]
				var msgs []kafka.Message
				var trace []string
				for range 1 + rng.IntN(10) {
					c, recorded := g.one(subject, r0)
					c, recorded = oddChange(rng, c, recorded)
					b, err := codec.EncodeSingle(ChangeSchema, c.Native())
					if err != nil {
						t.Fatal(err)
					}
					msgs = append(msgs, kafka.Message{Topic: "consent.changes", Offset: offset, Key: []byte(subject), Value: b, Time: recorded})
					offset++
					trace = append(trace, fmt.Sprintf("%s %.20q/%q captured %d ms recorded %d ms", c.Action, c.ChangeID, c.Purpose,
						c.CapturedAt.UnixMilli(), recorded.UnixMilli()))
				}
				var batch Batch
				for _, m := range msgs {
					consumeChange(ctx, t, codec, store, m)
					if err := dec.Add(ctx, &batch, HoldsChanges, m); err != nil {
						t.Fatal(err)
					}
				}
				if err := ls.Ingest(ctx, &batch); err != nil {
					t.Fatalf("seed %d: ingest: %.300v", seed, err)
				}
				h, err := ls.Subject(ctx, subject)
				if err != nil {
					t.Fatal(err)
				}
				states, err := store.Lookup(ctx, []string{subject})
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]PurposeOutcome{}
				for _, p := range h.Purposes {
					got[p.Purpose] = p
				}
				var diffs []string
				for _, p := range []string{"p", "q", "r"} {
					v := states[subject].Check(p, now)
					want := string(v.Reason)
					if v.Reason == consent.ReasonGranted {
						want = StatusGranted
					}
					po, listed := got[p]
					switch {
					case v.Reason == consent.ReasonNeverAsked || v.Reason == consent.ReasonUnknownSubject:
						if listed {
							diffs = append(diffs, fmt.Sprintf("purpose %s: the ledger says %s by %.30q, the store has nothing", p, po.Status, po.ChangeID))
						}
					case !listed:
						if v.Reason != consent.ReasonErased {
							diffs = append(diffs, fmt.Sprintf("purpose %s: the ledger lists nothing, the store says %s by %.30q", p, want, v.ChangeID))
						}
					case po.Status != want || (v.ChangeID != "" && po.ChangeID != storeText(v.ChangeID)) || !po.CapturedAt.Equal(v.CapturedAt):
						diffs = append(diffs, fmt.Sprintf("purpose %s: the ledger says %s by %.30q at %d ms, the store %s by %.30q (stored as %.30q) at %d ms",
							p, po.Status, po.ChangeID, po.CapturedAt.UnixMilli(), want, v.ChangeID, storeText(v.ChangeID), v.CapturedAt.UnixMilli()))
					}
				}
				if len(diffs) > 0 {
					failures++
					t.Errorf("seed %d, history %d, subject %q: the ledger and the consent store disagree:\n  %s\nrecords:\n  %s",
						seed, it, subject, strings.Join(diffs, "\n  "), strings.Join(trace, "\n  "))
					if failures >= 3 {
						t.FailNow()
					}
				}
			}
		})
	}
}
