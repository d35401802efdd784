package e2e

// The hot-subject scenario of the fault suite (issue 10): a few subjects
// whose consent flips between GRANT and WITHDRAW while their events flow,
// with the enforcer's local consent cache on. Knobs (make soak raises them):
//
//	FAULT_HOT_EVENTS    events of the scenario (6000)
//	FAULT_HOT_RATE      events produced per second (300)
//	FAULT_HOT_SUBJECTS  subjects whose consent flips (8)
//	FAULT_SUBJECTS      other subjects, with the static consent (48)
//	FAULT_SEED          replays the draws of a run (timings are real)

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
)

// fsHotStaleLimit is the longest a grant may still decide events after the
// withdrawal that replaced it was acknowledged (the bound).
const fsHotStaleLimit = time.Second

// fsHotChange is one consent change of a hot subject and when its produce
// call returned (acks=all): the moment the customer was told "done".
type fsHotChange struct {
	consent.Change
	acked time.Time
}

// fsHotDecision is what an audit record of a hot subject says.
type fsHotDecision struct {
	subject, eventID, stream, decision, reason, changeID string
	at                                                   time.Time // processed_at (milliseconds)
}

// TestFaultHot: events of hot subjects at a steady rate, and for each hot
// subject a flipper producing WITHDRAW and GRANT alternately for each
// purpose, every 200–500 ms per purpose, one change per produce call,
// captured_at from a monotonic clock. One flip in three is followed within
// 60 ms by a flip of the other purpose (a customer changing both), so that
// the subject changes again while its new state is being read: the race of
// a cache that keeps a state read before a change. After each such
// follow-up withdrawal, and one in ten of the others, the subject stays
// quiet for 1.5–2.5 s: under constant flips the next invalidation would
// flush a wrongly kept grant within the 1 s bound, and the check would not
// see it.
// The enforcer runs with its local consent cache on (default max age 30 s),
// which is where a lost invalidation would show: a grant served from memory
// after its withdrawal.
//
// The assertion: no event is decided under a grant (PASSED, or REDACTED
// naming a grant) more than 1 s after the WITHDRAW that replaced that grant
// was acknowledged; each decision names the change it was decided under
// (consent_change_id), and processed_at is compared with the wall-clock time
// the withdrawal's produce call returned (one machine, one clock). The
// checker of the suite accounts for every record as in the other scenarios;
// the flippers end on a GRANT, so that the checker's fold of all changes
// (the final state) is a grant for the hot subjects and their decisions are
// judged by the timed check here instead. Every withdrawal must have its
// revocation notice (rev-<change_id>).
func TestFaultHot(t *testing.T) {
	begun := time.Now()
	events := fsKnob(t, "FAULT_HOT_EVENTS", 6000)
	rate := max(1, fsKnob(t, "FAULT_HOT_RATE", 300))
	hot := make([]string, max(1, fsKnob(t, "FAULT_HOT_SUBJECTS", 8)))
	for i := range hot {
		hot[i] = fmt.Sprintf("fs-hot-%03d", i)
	}
	cold := fsSubjects(fsKnob(t, "FAULT_SUBJECTS", 48))
	telAddr := fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t))
	s := fsStart(t, fsOptions{Env: []string{
		"ENFORCER_CONSENT_CACHE_SIZE=10000", "ENFORCER_CONSENT_CACHE_MAX_AGE=30s", "ENFORCER_TELEMETRY_ADDR=" + telAddr,
	}})
	rng := fsRand(t)
	purposes := []string{"marketing", "analytics"}
	streamPurpose := map[string]string{}
	for _, st := range s.policy.Streams {
		if len(st.Purposes) != 1 {
			t.Fatalf("stream %s has purposes %v; the scenario needs one per stream", st.Topic, st.Purposes)
		}
		streamPurpose[st.Topic] = st.Purposes[0]
	}

	// captured_at from the monotonic clock: the wall time at the start plus
	// the monotonic time elapsed since, in whole milliseconds.
	epoch := time.Now()
	capturedAt := func() time.Time { return epoch.Add(time.Since(epoch)).Truncate(time.Millisecond) }
	var mu sync.Mutex
	history := map[string][]*fsHotChange{} // subject + " " + purpose, in captured_at order
	flip := func(subj string, ps []string, n int, a consent.Action, at time.Time) []consent.Change {
		var out []consent.Change
		for _, p := range ps {
			c := consent.Change{ChangeID: fmt.Sprintf("fs-hot-%s-%s-%05d-%s", strings.TrimPrefix(subj, "fs-hot-"), p, n, strings.ToLower(string(a))),
				SubjectID: subj, Purpose: p, Action: a, Source: "preference-centre", CapturedAt: at}
			if a == consent.ActionGrant {
				c.LegalBasis, c.NoticeVersion = consent.BasisConsent, "2026-01"
			}
			out = append(out, c)
		}
		return out
	}
	record := func(cs []consent.Change, acked time.Time) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			k := c.SubjectID + " " + c.Purpose
			history[k] = append(history[k], &fsHotChange{Change: c, acked: acked})
		}
	}

	// The static consent of the cold subjects and a first GRANT of every
	// hot subject, applied before any event.
	changes := fsConsentPlan(rng, cold)
	at := capturedAt()
	for _, subj := range hot {
		g := flip(subj, purposes, 0, consent.ActionGrant, at)
		changes = append(changes, g...)
		record(g, time.Now())
	}
	s.applyConsent(changes)

	// Events: seven in ten for the hot subjects.
	msgs := make([]kafka.Message, events)
	for i := range msgs {
		subj := cold[rng.IntN(len(cold))]
		if rng.IntN(10) < 7 {
			subj = hot[rng.IntN(len(hot))]
		}
		msgs[i] = s.event(fmt.Sprintf("fs-hot-ev-%06d", i), subj, i)
	}

	// The flippers, on a writer of their own so that the events' batches do
	// not delay their acknowledgements.
	cfg := stream.DefaultConfig()
	cfg.Brokers = s.stack.Brokers()
	fw := stream.NewWriter(cfg)
	defer fw.Close()
	stop := make(chan struct{})
	flipErr := make(chan error, len(hot))
	var wg sync.WaitGroup
	var flipMu sync.Mutex
	var flipped []consent.Change
	var quiets int
	for i, subj := range hot {
		r := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			produce := func(cs []consent.Change) bool {
				cm := make([]kafka.Message, len(cs))
				for j, c := range cs {
					cm[j] = s.changeMsg(c)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if err := stream.WriteAll(ctx, fw, cm, nil); err != nil {
					flipErr <- fmt.Errorf("produce a consent flip: %w", err)
					return false
				}
				record(cs, time.Now())
				flipMu.Lock()
				flipped = append(flipped, cs...)
				flipMu.Unlock()
				return true
			}
			next := map[string]consent.Action{}
			due := map[string]time.Time{}
			pause := func() time.Duration { return time.Duration(200+r.IntN(301)) * time.Millisecond }
			for _, p := range purposes {
				next[p] = consent.ActionWithdraw
				due[p] = time.Now().Add(pause())
			}
			followUp := false // the next flip follows one of the other purpose
			for n := 1; ; n++ {
				p := purposes[0]
				for _, q := range purposes {
					if due[q].Before(due[p]) {
						p = q
					}
				}
				select {
				case <-stop:
					// End on a GRANT of every purpose (see the test's doc).
					var last []consent.Change
					for _, q := range purposes {
						if next[q] == consent.ActionGrant {
							last = append(last, flip(subj, []string{q}, n, consent.ActionGrant, capturedAt())...)
						}
					}
					if len(last) > 0 {
						produce(last)
					}
					return
				case <-time.After(time.Until(due[p])):
				}
				a := next[p]
				if !produce(flip(subj, []string{p}, n, a, capturedAt())) {
					return
				}
				now := time.Now()
				due[p] = now.Add(pause())
				if a == consent.ActionWithdraw {
					next[p] = consent.ActionGrant
				} else {
					next[p] = consent.ActionWithdraw
				}
				quietSpell := a == consent.ActionWithdraw && (followUp || r.IntN(10) == 0)
				followUp = false
				switch {
				case quietSpell:
					// A quiet spell: no change of this subject for
					// 1.5-2.5 s, so that a grant kept by mistake is not
					// flushed by the subject's next invalidation before
					// the 1 s bound has passed. Every withdrawal
					// that came right after a change of the other purpose
					// has one.
					quiet := now.Add(time.Duration(1500+r.IntN(1001)) * time.Millisecond)
					for _, q := range purposes {
						if due[q].Before(quiet) {
							due[q] = quiet.Add(time.Duration(r.IntN(100)) * time.Millisecond)
						}
					}
					flipMu.Lock()
					quiets++
					flipMu.Unlock()
				case r.IntN(3) == 0:
					// Both purposes at once, as two changes: the other
					// one follows within 60 ms, while the subject's new
					// state may be being read.
					for _, q := range purposes {
						if q != p {
							due[q] = now.Add(time.Duration(r.IntN(60)) * time.Millisecond)
						}
					}
					followUp = true
				}
			}
		}()
	}
	start := time.Now()
	done := s.produceAt(msgs, rate)
	err := <-done
	close(stop)
	wg.Wait()
	close(flipErr)
	if err != nil {
		t.Fatalf("produce events: %v", err)
	}
	for err := range flipErr {
		t.Fatal(err)
	}
	t.Logf("produced %d events in %v while %d hot subjects flipped (%d changes)", len(msgs), time.Since(start).Round(time.Millisecond), len(hot), len(flipped))
	changes = append(changes, flipped...)
	s.waitCommitted(fsSyncGroup, fsChangesTopic, 2*time.Minute)
	s.waitCommitted(fsEnforcerGroup, fsEventsTopic, 3*time.Minute)
	drained := time.Now()
	t.Logf("stack and consent ready in %v; every change and event processed %v after the last event was produced",
		start.Sub(begun).Round(time.Millisecond), drained.Sub(start.Add(time.Duration(len(msgs))*time.Second/time.Duration(rate))).Round(time.Millisecond))

	// The cache was on and served lookups.
	hits, inval := fsCacheCounters(t, telAddr)
	if hits == 0 {
		t.Errorf("the enforcer's consent cache served no lookup from memory (local_hit 0): the scenario did not exercise it")
	}

	// The checker: nothing lost, nothing leaked for the cold subjects,
	// order kept, dead letters and notices sound.
	isHot := map[string]bool{}
	for _, h := range hot {
		isHot[h] = true
	}
	granted := fsFold(changes)
	streams := map[string]policy.Stream{}
	for _, st := range s.policy.Streams {
		streams[st.Topic] = st
	}
	refused := func(st policy.Stream) string {
		if st.OnMissing == policy.OnMissingRedact {
			return fsRedacted
		}
		return fsDropped
	}
	n := (&fsChecker{Broker: s.broker, Codec: s.codec, Policy: s.policy, Produced: msgs, Changes: changes,
		Expect: func(a fsAudit) []string {
			st := streams[a.Stream]
			switch {
			case isHot[a.Subject]:
				return []string{fsPassed, refused(st)} // judged by the timed check below
			case granted.all(a.Subject, st.Purposes, a.ProcessedAt):
				return []string{fsPassed}
			}
			return []string{refused(st)}
		}}).Check(t)

	// The timed check, from the audit records of the hot subjects.
	byID := map[string]int{} // change id -> index in its history
	for _, h := range history {
		for i, c := range h {
			if i > 0 && !c.CapturedAt.After(h[i-1].CapturedAt) {
				t.Fatalf("captured_at of the flips of one subject and purpose is not increasing (%v then %v)", h[i-1].CapturedAt, c.CapturedAt)
			}
			byID[c.ChangeID] = i
		}
	}
	var decisions int
	var violations, wrong []string
	firstUnder := map[string]time.Time{} // WITHDRAW id -> first decision under it
	staleMax := time.Duration(-1 << 63)  // latest decision under a grant, after its withdrawal's ack
	staleAfterAck := 0                   // decisions under a grant after its withdrawal was acked (any lag)
	var late []fsLate
	for _, d := range fsHotDecisions(t, s, isHot) {
		decisions++
		subj, purpose := d.subject, streamPurpose[d.stream]
		h := history[subj+" "+purpose]
		i, ok := byID[d.changeID]
		if !ok || h == nil || i >= len(h) || h[i].ChangeID != d.changeID {
			wrong = append(wrong, fmt.Sprintf("event %s on %s decided %s (%s) names consent change %q, which is no change of its subject and %s",
				d.eventID, d.stream, d.decision, d.reason, d.changeID, purpose))
			continue
		}
		c := h[i]
		underGrant := c.Action == consent.ActionGrant && d.decision != fsDropped
		switch {
		case d.decision == fsPassed && c.Action != consent.ActionGrant,
			d.decision != fsPassed && c.Action == consent.ActionGrant && d.reason != "granted_with_exclusions":
			wrong = append(wrong, fmt.Sprintf("event %s on %s decided %s (%s) under %s %s", d.eventID, d.stream, d.decision, d.reason, c.Action, c.ChangeID))
		}
		if c.Action == consent.ActionWithdraw {
			if f, ok := firstUnder[c.ChangeID]; !ok || d.at.Before(f) {
				firstUnder[c.ChangeID] = d.at
			}
		}
		if !underGrant || i+1 >= len(h) {
			continue
		}
		w := h[i+1] // the WITHDRAW that replaced this grant
		lag := d.at.Sub(w.acked)
		if lag > 0 {
			staleAfterAck++
		}
		staleMax = max(staleMax, lag)
		desc := func() string {
			return fmt.Sprintf("event %s on %s decided %s under grant %s at %s, %v after withdrawal %s (captured_at %s) was acknowledged at %s",
				d.eventID, d.stream, d.decision, c.ChangeID, d.at.Format("15:04:05.000"), lag.Round(time.Millisecond),
				w.ChangeID, w.CapturedAt.Format("15:04:05.000"), w.acked.Format("15:04:05.000"))
		}
		if lag > 0 {
			late = append(late, fsLate{lag, desc()})
		}
		if lag > fsHotStaleLimit {
			violations = append(violations, desc())
		}
	}
	if decisions == 0 {
		t.Fatal("no audit record of a hot subject")
	}
	var lat []time.Duration
	withdrawals, unseen := 0, 0
	for _, h := range history {
		for _, c := range h {
			if c.Action != consent.ActionWithdraw {
				continue
			}
			withdrawals++
			f, ok := firstUnder[c.ChangeID]
			if !ok {
				unseen++
				continue
			}
			lat = append(lat, f.Sub(c.acked))
		}
	}
	slices.Sort(lat)
	slices.SortFunc(late, func(a, b fsLate) int { return int(b.lag - a.lag) })
	for _, l := range late[:min(3, len(late))] {
		t.Logf("late decision under a grant: %s", l.desc)
	}
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	for i, v := range violations {
		if i == 10 {
			t.Errorf("… and %d more stale decisions", len(violations)-10)
			break
		}
		t.Errorf("stale grant: %s", v)
	}
	for i, v := range wrong {
		if i == 10 {
			t.Errorf("… and %d more", len(wrong)-10)
			break
		}
		t.Errorf("wrong: %s", v)
	}

	// Every withdrawal of a hot subject replaced a grant in log order (the
	// flips of a subject are produced one after the other, acks=all, on its
	// partition), so each must have its notice, rev-<change_id>; so must
	// every other change the topic's replay says revokes something.
	expected := fsExpectedNotices(t, s.codec, fsRead(t, s.broker.Addr, fsChangesTopic))
	notices := map[string]string{} // change id -> notice id
	for _, m := range fsRead(t, s.broker.Addr, fsRevocationsTopic) {
		rec, err := s.codec.Decode(context.Background(), m.Value)
		if err != nil {
			continue // reported by the checker
		}
		cid, _ := avrocodec.StringField(rec.Value, "change_id")
		nid, _ := avrocodec.StringField(rec.Value, "notice_id")
		notices[cid] = nid
	}
	lostNotices := 0
	for _, h := range history {
		for _, c := range h {
			if c.Action == consent.ActionWithdraw && !expected[c.ChangeID] {
				t.Errorf("withdrawal %s does not replace a grant in the consent topic's log order: the flips were not produced in order", c.ChangeID)
			}
		}
	}
	for id := range expected {
		nid, ok := notices[id]
		switch {
		case !ok:
			lostNotices++
			if lostNotices <= 5 {
				t.Errorf("lost revocation notice: change %s replaced a grant but no notice was published", id)
			}
		case nid != "rev-"+id:
			t.Errorf("revocation notice of change %s has id %q, want %q", id, nid, "rev-"+id)
		}
	}

	t.Logf("checked in %v (test %v)", time.Since(drained).Round(time.Millisecond), time.Since(begun).Round(time.Millisecond))
	t.Logf("FAULT SUMMARY %s: events sent %d, faults injected: %d hot subjects flipping GRANT/WITHDRAW of %d purposes every 200-500 ms under load with the consent cache on "+
		"(%d flips, %d of them withdrawals, %d quiet spells of 1.5-2.5 s after a withdrawal; cache: %d local hits, %d invalidations), "+
		"lost %d (+%d of %d due revocation notices; %d notices published), leaked %d, duplicated %d, dead-lettered %d; "+
		"decisions under a grant >%v after its withdrawal's ack: %d of %d hot decisions (%d after the ack at all, latest %v after it); "+
		"withdrawal acked -> first event decided under it: p50 %v, p99 %v, max %v over %d withdrawals (%d had no event decided under them) (%s)",
		t.Name(), n.Sent, len(hot), len(purposes), len(flipped), withdrawals, quiets, hits, inval,
		n.Lost, lostNotices, len(expected), len(notices), n.Leaked, n.Duplicated, n.DeadLettered,
		fsHotStaleLimit, len(violations), decisions, staleAfterAck, fsDur(staleMax),
		pct(0.5), pct(0.99), pct(1), len(lat), unseen, n)
	if n.Lost != 0 || n.Leaked != 0 || n.Wrong != 0 || n.Reordered != 0 {
		t.Errorf("%s: lost %d, leaked %d, wrong %d, reordered %d: want 0 each", t.Name(), n.Lost, n.Leaked, n.Wrong, n.Reordered)
	}
}

// fsLate is a decision under a grant after its withdrawal was acknowledged.
type fsLate struct {
	lag  time.Duration
	desc string
}

// fsDur prints a duration that may be unset (no decision at all).
func fsDur(d time.Duration) string {
	if d == time.Duration(-1<<63) {
		return "n/a"
	}
	return d.Round(time.Millisecond).String()
}

// fsHotDecisions reads consent.audit and returns the decisions about the
// hot subjects, with the consent change each names.
func fsHotDecisions(t *testing.T, s *fsStack, hot map[string]bool) []fsHotDecision {
	t.Helper()
	var out []fsHotDecision
	for _, m := range fsRead(t, s.broker.Addr, fsAuditTopic) {
		if !hot[string(m.Key)] {
			continue
		}
		a, err := fsDecodeAudit(s.codec, m)
		if err != nil {
			continue // reported by the checker
		}
		for _, x := range a.Decisions {
			out = append(out, fsHotDecision{subject: a.Subject, eventID: a.EventID, stream: x.Stream, decision: x.Decision, reason: x.Reason,
				changeID: a.ChangeIDs[x.Stream], at: a.ProcessedAt})
		}
	}
	return out
}

// fsCacheCounters scrapes the enforcer's /metrics for the consent cache's
// local hits and invalidations.
func fsCacheCounters(t *testing.T, addr string) (hits, invalidations int64) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Errorf("scrape the enforcer's metrics: %v", err)
		return 0, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	num := func(re string) int64 {
		m := regexp.MustCompile(re).FindSubmatch(b)
		if m == nil {
			return 0
		}
		f, _ := strconv.ParseFloat(string(m[1]), 64)
		return int64(f)
	}
	return num(`(?m)^consentgate_consent_lookups_subjects_total\{[^}]*result="local_hit"[^}]*\} (\S+)`),
		num(`(?m)^consentgate_consent_cache_invalidations_total\{?[^}]*\}? (\S+)`)
}
