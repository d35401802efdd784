package ledger

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/schemas"
)

// fixture builds batches with dense audit, change and notice offsets.
type fixture struct {
	b    Batch
	offs map[string]int64
}

func newFixture() *fixture { return &fixture{offs: map[string]int64{}} }

func (f *fixture) coord(topic string) Coord {
	o := f.offs[topic]
	f.offs[topic]++
	return Coord{Topic: topic, Partition: 0, Offset: o, Time: t0}
}

func (f *fixture) change(subject, id, purpose, action string, at time.Duration, expires time.Duration) {
	// Recorded when captured: the record's timestamp is the intake's
	// receive time, which the clock rule holds captured_at to.
	co := f.coord("consent.changes")
	co.Time = t0.Add(at)
	c := ConsentChange{Coord: co, ChangeID: id, SubjectID: subject, Purpose: purpose, Action: action,
		LegalBasis: "CONSENT", Source: "web", NoticeVersion: "n1", CapturedAt: t0.Add(at)}
	if action == "ERASE" {
		c.LegalBasis = ""
	}
	if expires != 0 {
		c.ExpiresAt = t0.Add(expires)
	}
	f.b.Changes = append(f.b.Changes, c)
}

func (f *fixture) audit(r audit.Record) {
	f.b.Audits = append(f.b.Audits, AuditEntry{Coord: f.coord("consent.audit"), Record: r})
}

func (f *fixture) ingest(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Ingest(context.Background(), &f.b); err != nil {
		t.Fatal(err)
	}
}

func catalog(t testing.TB) *avrocodec.Catalog {
	t.Helper()
	c, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSubject(t *testing.T) {
	now := t0.Add(10 * time.Hour)
	eachBackend(t, func(t *testing.T, s *Store) {
		f := newFixture()
		f.change("alice", "c4", "marketing", "GRANT", 6*time.Hour, 0)
		f.change("alice", "c1", "marketing", "GRANT", time.Hour, 0)
		f.change("alice", "c3", "analytics", "GRANT", time.Hour, 3*time.Hour)
		f.change("alice", "c2", "marketing", "DENY", 2*time.Hour, 0)
		f.change("alice", "e1", "", "ERASE", 5*time.Hour, 0)
		f.change("bob", "b1", "marketing", "DENY", time.Hour, 0)
		f.audit(auditRecord("alice", "ev1", "customer.events", 1, 41, t0.Add(90*time.Minute), decision.Passed, decision.Redacted))
		f.audit(audit.Record{Version: 2, SubjectID: "alice", Outcome: audit.DeadLettered, DeadLetterReason: "missing_event_id",
			EventSchema: "consentgate.events.PageView", PolicyVersion: "p1", SourceTopic: "customer.events", SourcePartition: 0,
			SourceOffset: 7, ProcessedAt: t0.Add(7 * time.Hour)})
		f.audit(auditRecord("bob", "ev2", "customer.events", 0, 8, t0.Add(time.Hour), decision.Passed))
		f.b.Notices = append(f.b.Notices,
			Notice{Coord: f.coord("consent.revocations"), NoticeID: "n1", SubjectID: "alice", Purposes: []string{"marketing"}, Action: "DENY",
				Since: t0.Add(2 * time.Hour), ChangeID: "c2", Reason: "grant_replaced", IssuedAt: t0.Add(121 * time.Minute)},
			Notice{Coord: f.coord("consent.revocations"), NoticeID: "n2", SubjectID: "bob", Action: "ERASE", IssuedAt: t0})
		f.ingest(t, s)

		h, err := s.Subject(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		var changes []string
		for _, c := range h.Changes {
			changes = append(changes, fmt.Sprintf("%s won=%v lost=%s to=%s expired=%v erased=%v", c.ChangeID, c.Won, c.Lost, c.LostTo, c.Expired, c.ErasedPurposes))
		}
		wantChanges := []string{
			"c1 won=false lost=superseded to=c4 expired=false erased=[]",
			"c3 won=false lost=erased to=e1 expired=true erased=[]",
			"c2 won=false lost=superseded to=c4 expired=false erased=[]",
			"e1 won=true lost= to= expired=false erased=[analytics]",
			"c4 won=true lost= to= expired=false erased=[]",
		}
		if !reflect.DeepEqual(changes, wantChanges) {
			t.Errorf("changes:\n%s\nwant\n%s", strings.Join(changes, "\n"), strings.Join(wantChanges, "\n"))
		}
		var purposes []string
		for _, p := range h.Purposes {
			purposes = append(purposes, p.Purpose+" "+p.Status+" "+p.ChangeID)
		}
		if want := []string{"analytics erased e1", "marketing granted c4"}; !reflect.DeepEqual(purposes, want) {
			t.Errorf("purposes %v, want %v", purposes, want)
		}
		if len(h.Audits) != 2 || h.Audits[0].EventID != "ev1" || h.Audits[1].Outcome != "DEAD_LETTERED" {
			t.Fatalf("audits %+v", h.Audits)
		}
		a := h.Audits[0]
		wantA := AuditView{Audit: Coords{"consent.audit", 0, 0}, RecordVersion: 2, EventID: "ev1", SubjectID: "alice", Outcome: "DECIDED",
			EventSchema: "consentgate.events.PageView", PolicyVersion: "p1", Source: Coords{"customer.events", 1, 41},
			ProcessedAt: t0.Add(90 * time.Minute), Decisions: decisionsOf(&f.b.Audits[0].Record)}
		if !reflect.DeepEqual(a, wantA) {
			t.Errorf("audit\n%+v\nwant\n%+v", a, wantA)
		}
		if d := a.Decisions[1]; d.Decision != "REDACTED" || d.Reason != "granted_with_exclusions" || d.TreatedFields[0] != "ip_address" ||
			d.Consents[0].ChangeID != "c1" || *d.Consents[0].CapturedAt != t0.UnixMilli() {
			t.Errorf("decision %+v", d)
		}
		if len(h.Notices) != 1 || h.Notices[0].NoticeID != "n1" || !h.Notices[0].IssuedAt.Equal(t0.Add(121*time.Minute)) {
			t.Errorf("notices %+v", h.Notices)
		}
		var tl []string
		for _, e := range h.Timeline {
			tl = append(tl, fmt.Sprintf("%s %s %s: %s", e.Time.Sub(t0), e.Kind, e.Ref, e.Summary))
		}
		wantTL := []string{
			"1h0m0s consent_change c1: GRANT marketing: superseded by c4 captured later",
			"1h0m0s consent_change c3: GRANT analytics: erased by e1 (expired)",
			"1h30m0s audit ev1: compliant.s0 PASSED (granted); compliant.s1 REDACTED (granted_with_exclusions)",
			"2h0m0s consent_change c2: DENY marketing: superseded by c4 captured later",
			"2h1m0s notice n1: DENY marketing (grant_replaced)",
			"5h0m0s consent_change e1: ERASE: in effect",
			"6h0m0s consent_change c4: GRANT marketing: in effect",
			"7h0m0s audit : dead-lettered: missing_event_id",
		}
		if !reflect.DeepEqual(tl, wantTL) {
			t.Errorf("timeline:\n%s\nwant\n%s", strings.Join(tl, "\n"), strings.Join(wantTL, "\n"))
		}
		empty, err := s.Subject(context.Background(), "nobody")
		if err != nil || len(empty.Changes)+len(empty.Audits)+len(empty.Notices)+len(empty.Timeline) != 0 {
			t.Errorf("unknown subject: %+v, %v", empty, err)
		}
	}, WithClock(func() time.Time { return now }))
}

func TestBreach(t *testing.T) {
	cat := catalog(t)
	eachBackend(t, func(t *testing.T, s *Store) {
		f := newFixture()
		r := auditRecord("alice", "e1", "customer.events", 0, 1, t0.Add(time.Hour), decision.Passed, decision.Redacted, decision.Dropped)
		f.audit(r)
		f.audit(auditRecord("alice", "e2", "customer.events", 0, 2, t0.Add(2*time.Hour), decision.Passed))
		r = auditRecord("bob", "e3", "other.events", 0, 3, t0.Add(3*time.Hour), decision.Passed, decision.Redacted)
		r.Decisions[1].TreatedFields = []string{"geo", "ip_address", "user_agent"}
		f.audit(r)
		f.audit(auditRecord("carol", "e4", "customer.events", 0, 4, t0.Add(30*time.Hour), decision.Passed))
		f.audit(audit.Record{Version: 2, SubjectID: "dave", Outcome: audit.DeadLettered, DeadLetterReason: "undecodable", PolicyVersion: "p1",
			SourceTopic: "customer.events", SourceOffset: 5, ProcessedAt: t0.Add(time.Hour)})
		r = auditRecord("erin", "e6", "customer.events", 0, 6, t0.Add(4*time.Hour), decision.Passed)
		r.EventSchema = "consentgate.events.Nope"
		f.audit(r)
		f.ingest(t, s)

		rep, err := s.Breach(context.Background(), BreachQuery{Streams: []string{"compliant.s0", "compliant.s1"}, From: t0, To: t0.Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Subjects != 3 || rep.Events != 4 || rep.Outputs != 6 ||
			!reflect.DeepEqual(rep.PerStream, map[string]int64{"compliant.s0": 4, "compliant.s1": 2}) ||
			!reflect.DeepEqual(rep.PerDecision, map[string]int64{"PASSED": 4, "REDACTED": 2}) {
			t.Errorf("counts: subjects %d events %d outputs %d per stream %v per decision %v", rep.Subjects, rep.Events, rep.Outputs, rep.PerStream, rep.PerDecision)
		}
		got := renderBreach(rep)
		all := "user.behavior.browsing:passed:%[1]d/0 user.device:passed:%[1]d/0 user.device.cookie_id:passed:%[1]d/0 user.device.ip_address:passed:%[1]d/0 " +
			"user.device.user_agent:passed:%[1]d/0 user.id:passed:%[1]d/0 user.location.approximate:passed:%[1]d/0"
		want := []string{
			"alice compliant.s0 2 1h0m0s-2h0m0s [consentgate.events.PageView] [] map[PASSED:2] " + fmt.Sprintf(all, 2) + " unknown=[]",
			"alice compliant.s1 1 1h0m0s-1h0m0s [consentgate.events.PageView] [ip_address] map[REDACTED:1] " +
				"user.behavior.browsing:passed:1/0 user.device:passed:1/0 user.device.cookie_id:passed:1/0 user.device.ip_address:redacted:0/1 " +
				"user.device.user_agent:passed:1/0 user.id:passed:1/0 user.location.approximate:passed:1/0 unknown=[]",
			"bob compliant.s0 1 3h0m0s-3h0m0s [consentgate.events.PageView] [] map[PASSED:1] " + fmt.Sprintf(all, 1) + " unknown=[]",
			"bob compliant.s1 1 3h0m0s-3h0m0s [consentgate.events.PageView] [geo ip_address user_agent] map[REDACTED:1] " +
				"user.behavior.browsing:passed:1/0 user.device:passed:1/0 user.device.cookie_id:passed:1/0 user.device.ip_address:redacted:0/1 " +
				"user.device.user_agent:redacted:0/1 user.id:passed:1/0 user.location.approximate:redacted:0/1 unknown=[]",
			"erin compliant.s0 1 4h0m0s-4h0m0s [consentgate.events.Nope] [] map[PASSED:1]  unknown=[consentgate.events.Nope]",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("breach:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}

		rep, err = s.Breach(context.Background(), BreachQuery{Topics: []string{"other.events"}, From: t0, To: t0.Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Subjects != 1 || rep.Events != 1 || rep.Outputs != 2 || rep.BySubject[0].SubjectID != "bob" {
			t.Errorf("topic filter: %+v", rep)
		}
		// [From, To): an output exactly at To is out, one at From in.
		rep, err = s.Breach(context.Background(), BreachQuery{From: t0.Add(2 * time.Hour), To: t0.Add(3 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Outputs != 1 || rep.BySubject[0].SubjectID != "alice" {
			t.Errorf("window bounds: %+v", rep)
		}
		if _, err := s.Breach(context.Background(), BreachQuery{From: t0, To: t0}); err == nil {
			t.Error("an empty window was accepted")
		}
	}, WithCatalog(cat))
}

func renderBreach(rep *BreachReport) []string {
	var out []string
	for _, bs := range rep.BySubject {
		for _, st := range bs.Streams {
			var cats []string
			for _, c := range st.Categories {
				cats = append(cats, fmt.Sprintf("%s:%s:%d/%d", c.Category, c.How, c.PassedEvents, c.RedactedEvents))
			}
			out = append(out, fmt.Sprintf("%s %s %d %s-%s %v %v %v %s unknown=%v", bs.SubjectID, st.Stream, st.Events, st.First.Sub(t0), st.Last.Sub(t0),
				st.EventSchemas, st.TreatedFields, st.Decisions, strings.Join(cats, " "), st.UnknownSchemas))
		}
	}
	return out
}

func TestCompleteness(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		f := newFixture()
		at := t0
		add := func(part int32, off int64, outcomes ...decision.Outcome) {
			at = at.Add(time.Second)
			f.audit(auditRecord("alice", fmt.Sprintf("e%d-%d", part, off), "customer.events", part, off, at, outcomes...))
		}
		for _, off := range []int64{0, 1, 2} {
			add(0, off, decision.Passed)
		}
		add(0, 2, decision.Passed) // a restart: same decisions
		add(0, 5, decision.Passed)
		add(0, 6, decision.Passed)
		add(0, 6, decision.Dropped) // differing copies
		add(0, 6, decision.Passed)
		add(1, 10, decision.Passed)
		add(1, 11, decision.Passed)
		f.audit(auditRecord("alice", "x", "other.events", 0, 3, at, decision.Passed))
		f.ingest(t, s)

		rep, err := s.Completeness(context.Background(), "customer.events", map[int32]OffsetRange{0: {0, 8}, 1: {10, 12}, 2: {0, 3}})
		if err != nil {
			t.Fatal(err)
		}
		want := &CompletenessReport{SourceTopic: "customer.events", Complete: false, Partitions: []PartitionCompleteness{
			{Partition: 0, Expected: &OffsetRange{0, 8}, Audited: OffsetRange{0, 7}, Records: 8, Offsets: 5,
				Gaps: []OffsetRange{{3, 5}, {7, 8}}, MissingOffsets: 3, Duplicates: []Duplicate{{2, 2, true}, {6, 3, false}}, Disagreeing: 1},
			{Partition: 1, Expected: &OffsetRange{10, 12}, Audited: OffsetRange{10, 12}, Records: 2, Offsets: 2,
				Gaps: []OffsetRange{}, Duplicates: []Duplicate{}, Complete: true},
			{Partition: 2, Expected: &OffsetRange{0, 3}, Gaps: []OffsetRange{{0, 3}}, MissingOffsets: 3, Duplicates: []Duplicate{}},
		}}
		if !reflect.DeepEqual(rep, want) {
			t.Errorf("completeness\n%+v\nwant\n%+v", rep, want)
		}
		rep, err = s.Completeness(context.Background(), "customer.events", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Partitions) != 2 || !reflect.DeepEqual(rep.Partitions[0].Gaps, []OffsetRange{{3, 5}}) || rep.Partitions[0].Expected != nil ||
			!rep.Partitions[1].Complete || rep.Complete {
			t.Errorf("without expected ranges: %+v", rep)
		}
		// Agreeing duplicates alone leave a partition complete.
		rep, err = s.Completeness(context.Background(), "other.events", map[int32]OffsetRange{0: {3, 4}})
		if err != nil || !rep.Complete {
			t.Errorf("other.events: %+v, %v", rep, err)
		}
	})
}

func TestPolicies(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		f := newFixture()
		r := auditRecord("a", "e1", "customer.events", 0, 1, t0.Add(2*time.Hour), decision.Passed, decision.Dropped)
		f.audit(r)
		f.audit(auditRecord("a", "e2", "customer.events", 0, 2, t0.Add(time.Hour), decision.Passed, decision.Dropped))
		r = auditRecord("a", "e3", "customer.events", 0, 3, t0.Add(3*time.Hour), decision.Passed, decision.Dropped, decision.Redacted)
		r.PolicyVersion = "p2"
		f.audit(r)
		f.audit(audit.Record{Version: 2, Outcome: audit.DeadLettered, DeadLetterReason: "undecodable", PolicyVersion: "p2",
			SourceTopic: "customer.events", SourceOffset: 4, ProcessedAt: t0.Add(4 * time.Hour)})
		f.ingest(t, s)
		got, err := s.Policies(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := []PolicyUse{
			{PolicyVersion: "p1", First: t0.Add(time.Hour), Last: t0.Add(2 * time.Hour), Records: 2, Streams: []string{"compliant.s0", "compliant.s1"}},
			{PolicyVersion: "p2", First: t0.Add(3 * time.Hour), Last: t0.Add(4 * time.Hour), Records: 2,
				Streams: []string{"compliant.s0", "compliant.s1", "compliant.s2"}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("policies\n%+v\nwant\n%+v", got, want)
		}
	})
}
