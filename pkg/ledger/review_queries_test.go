package ledger

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// consumerApply is what consent-sync's consumer does with one record of
// consent.changes (services/consent-sync/internal/apply, Process): bound a
// restrictive change's id, validate, apply the clock rule against the
// record's timestamp, then apply to the store; a change refused on the way
// is dead-lettered and never applied.
func consumerApply(ctx context.Context, t *testing.T, store *consent.Store, c consent.Change, recordTime time.Time) {
	t.Helper()
	c = c.BoundRestrictiveID()
	err := c.Validate()
	if err == nil {
		c, err = c.BoundCapturedAt(recordTime, consent.DefaultMaxClockSkew)
	}
	if err != nil {
		if !errors.Is(err, consent.ErrInvalidChange) {
			t.Fatal(err)
		}
		return // dead-lettered: invalid_change
	}
	if _, err := store.Apply(ctx, c); err != nil {
		t.Fatal(err)
	}
}

// TestReviewSubjectWinnerIsWhatTheConsumerApplies: the ledger's subject
// history must name, per purpose, the status and change the pipeline's
// consent store holds after consent-sync consumed the same records of
// consent.changes. The consumer moves a GRANT dated after its record's
// timestamp back to that timestamp (and dead-letters one dated beyond the
// skew), dead-letters an invalid change, and bounds the id of a restrictive
// change that is too long; the ledger must not rank the raw records.
func TestReviewSubjectWinnerIsWhatTheConsumerApplies(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	store := consent.NewStore(srv.Client(t), redistest.PrefixFor(t))
	const sid = "subject-clock"
	r0 := t0.Add(time.Hour)
	type rec struct {
		c    consent.Change
		time time.Time
	}
	grant := func(id, purpose string, captured, recorded time.Time) rec {
		return rec{consent.Change{ChangeID: id, SubjectID: sid, Purpose: purpose, Action: consent.ActionGrant, LegalBasis: consent.BasisConsent,
			Source: "web", NoticeVersion: "n1", CapturedAt: captured}, recorded}
	}
	restrict := func(id, purpose string, a consent.Action, captured, recorded time.Time) rec {
		return rec{consent.Change{ChangeID: id, SubjectID: sid, Purpose: purpose, Action: a, CapturedAt: captured}, recorded}
	}
	badExpiry := grant("g-bad-expiry", "p", r0, r0)
	badExpiry.c.ExpiresAt = r0
	recs := []rec{
		// A grant dated 10 minutes after it reached the pipeline counts as
		// made at receipt, so the DENY 5 minutes later wins.
		grant("g-ahead", "m", r0.Add(10*time.Minute), r0),
		restrict("d-later", "m", consent.ActionDeny, r0.Add(5*time.Minute), r0.Add(5*time.Minute)),
		// A grant dated an hour ahead is refused (dead letter).
		grant("g-far-ahead", "n", r0.Add(time.Hour), r0),
		// An invalid grant (expires_at not after captured_at) is refused.
		badExpiry,
		// A WITHDRAW with an over-long id is applied under a bounded id.
		restrict(strings.Repeat("w", 300), "q", consent.ActionWithdraw, r0, r0),
	}
	for _, r := range recs {
		consumerApply(ctx, t, store, r.c, r.time)
	}
	states, err := store.Lookup(ctx, []string{sid})
	if err != nil {
		t.Fatal(err)
	}
	now := r0.Add(3 * time.Hour)

	ls, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	var b Batch
	for i, r := range recs {
		c := r.c
		b.Changes = append(b.Changes, ConsentChange{Coord: Coord{Topic: "consent.changes", Offset: int64(i), Time: r.time},
			ChangeID: c.ChangeID, SubjectID: c.SubjectID, Purpose: c.Purpose, Action: string(c.Action), LegalBasis: string(c.LegalBasis),
			Source: c.Source, NoticeVersion: c.NoticeVersion, CapturedAt: c.CapturedAt, ExpiresAt: c.ExpiresAt})
	}
	if err := ls.Ingest(ctx, &b); err != nil {
		t.Fatal(err)
	}
	h, err := ls.Subject(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]PurposeOutcome{}
	for _, p := range h.Purposes {
		got[p.Purpose] = p
	}
	for _, p := range []string{"m", "n", "p", "q"} {
		v := states[sid].Check(p, now)
		want := string(v.Reason)
		if v.Reason == consent.ReasonGranted {
			want = StatusGranted
		}
		po, ok := got[p]
		status := po.Status
		if !ok {
			status = string(consent.ReasonNeverAsked)
		}
		if status != want || po.ChangeID != v.ChangeID {
			t.Errorf("purpose %s: the ledger says %s by %.20q, the pipeline's consent store %s by %.20q", p, status, po.ChangeID, want, v.ChangeID)
		}
	}
	// Every refused change is marked lost, as never applied.
	for _, c := range h.Changes {
		switch c.ChangeID {
		case "g-far-ahead", "g-bad-expiry", "g-ahead":
			if c.Won {
				t.Errorf("change %s is marked won; the pipeline did not apply it so", c.ChangeID)
			}
		}
	}
}

// TestReviewCompletenessOfAnUnauditedTopicIsNotComplete: a topic the
// ledger holds no audit record of (a mistyped --topic, an enforcer that
// never audited, a ledger that has not consumed the audit) must not be
// reported complete: nothing shows that any input offset was audited.
func TestReviewCompletenessOfAnUnauditedTopicIsNotComplete(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		f := newFixture()
		f.audit(auditRecord("alice", "ev1", "customer.events", 0, 0, t0, "PASSED"))
		f.ingest(t, s)
		for _, topic := range []string{"customer.event", "orders"} {
			rep, err := s.Completeness(context.Background(), topic, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Complete {
				t.Errorf("topic %s without any audit record is reported complete: %+v", topic, rep)
			}
		}
		rep, err := s.Completeness(context.Background(), "customer.events", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Complete {
			t.Errorf("customer.events, audited at offset 0, not complete: %+v", rep)
		}
	})
}

// TestReviewSubjectErrorHoldsNoPartOfTheID: a subject id that is not
// valid UTF-8 (typed or pasted into the console or consentctl) must get no
// error that holds a byte of it: PostgreSQL's "invalid byte sequence"
// error quotes the bytes, and consentctl prints errors to stderr, the
// console to its log. Since the ledger stores such strings quoted
// (storeText), the id is looked up on both backends: no error at all, and
// its records are found.
func TestReviewSubjectErrorHoldsNoPartOfTheID(t *testing.T) {
	id := "caf\xe9-\xd8\x42-secret"
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		b := &Batch{Audits: benchAudits(0, 1, 1)}
		b.Audits[0].Record.SubjectID = id
		b.Positions = []Position{{Topic: "consent.audit", Partition: 0, Next: 1}}
		if err := s.Ingest(ctx, b); err != nil {
			t.Fatalf("ingest of a record of that subject: %v", err)
		}
		h, err := s.Subject(ctx, id)
		if err != nil {
			for _, part := range []string{"0xe9", "0xd8", "caf", "secret", "\xe9"} {
				if strings.Contains(strings.ToLower(err.Error()), part) {
					t.Errorf("the error holds %q of the subject id: %v", part, err)
				}
			}
			t.Fatalf("subject lookup: %v", err)
		}
		if len(h.Audits) != 1 {
			t.Fatalf("%d audit records of the subject, want 1", len(h.Audits))
		}
	})
}

// TestReviewPoliciesListEveryStreamOfVersion1Records: a version 1 audit
// record holds one stream's decision (one record per event and stream), so
// the first and last record of a policy version do not name its streams:
// every stream its records decided must be listed (the console's breach
// form offers the streams of Policies).
func TestReviewPoliciesListEveryStreamOfVersion1Records(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		f := newFixture()
		for i, stream := range []string{"compliant.a", "compliant.b", "compliant.c", "compliant.a"} {
			r := auditRecord("alice", fmt.Sprintf("ev%d", i), "customer.events", 0, int64(i), t0.Add(time.Duration(i)*time.Minute), "PASSED")
			r.Version = 1
			r.Decisions[0].Stream = stream
			f.audit(r)
		}
		f.ingest(t, s)
		ps, err := s.Policies(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 || strings.Join(ps[0].Streams, ",") != "compliant.a,compliant.b,compliant.c" {
			t.Errorf("policies = %+v, want p1 with compliant.a, compliant.b, compliant.c", ps)
		}
	})
}
