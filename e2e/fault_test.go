package e2e

// The fault suite (issue 6): break things while data flows, then account for
// every record with the checker of fault_checker_test.go. Sizes come from
// environment knobs; `make soak` raises them:
//
//	FAULT_EVENTS    events per kill/restart scenario (5000)
//	FAULT_KILLS     kill -9 per kill scenario (3)
//	FAULT_RATE      events produced per second (500)
//	FAULT_SUBJECTS  subjects of the static consent (48)
//	FAULT_CHANGES   consent changes of the consent-sync kill scenario (3000)
//	FAULT_BROKER_RESTARTS  broker restarts (1)
//	FAULT_SEED      replays a run (the seed is logged)
//
// Every scenario logs one "FAULT SUMMARY" line: events sent, faults
// injected, lost, leaked, duplicated, dead-lettered.
//
// The scenarios that use a broker and Redis run on the e2e stack that
// CONSENTGATE_E2E_STACK chooses (e2e/stack: the devbroker and redis-server
// processes, or Apache Kafka and Redis containers when a Docker engine
// answers); the first lines of each test's log say which.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/e2e/stack"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// fsRun is the common shape of the kill and restart scenarios: static
// consent first, then events at a steady rate while fault(elapsed window)
// breaks things, then the checker.
func fsRun(t *testing.T, s *fsStack, rng *rand.Rand, prefix string, inject func(window time.Duration) string) {
	t.Helper()
	events := fsKnob(t, "FAULT_EVENTS", 5000)
	rate := max(1, fsKnob(t, "FAULT_RATE", 500))
	subjects := fsSubjects(fsKnob(t, "FAULT_SUBJECTS", 48))
	changes := fsConsentPlan(rng, subjects)
	s.applyConsent(changes)
	msgs := s.events(rng, prefix, events, subjects)
	window := time.Duration(events) * time.Second / time.Duration(rate)
	start := time.Now()
	done := s.produceAt(msgs, rate)
	faults := inject(window)
	if err := <-done; err != nil {
		t.Fatalf("produce events: %v", err)
	}
	t.Logf("produced %d events in %v", len(msgs), time.Since(start).Round(time.Millisecond))
	s.waitCommitted(fsEnforcerGroup, fsEventsTopic, 3*time.Minute)
	if ev := s.ghosts[fsEnforcerGroup].Evictions; ev > 0 {
		faults += fmt.Sprintf(" (+%d eviction(s) of ghost group members the devbroker kept)", ev)
	}
	n := (&fsChecker{Broker: s.broker, Codec: s.codec, Policy: s.policy, Produced: msgs, Changes: changes}).Check(t)
	fsSummary(t, t.Name(), faults, n)
}

// TestFaultKillEnforcer kills -9 the only enforcer at random points while
// events flow, restarting it each time: every event is decided (re-deliveries
// allowed), nothing passes without consent, order per subject is kept.
func TestFaultKillEnforcer(t *testing.T) {
	s := fsStart(t, fsOptions{})
	rng := fsRand(t)
	fsRun(t, s, rng, "fs-kill", func(window time.Duration) string {
		k := &fsKiller{s: s, rng: rng}
		start := time.Now()
		for _, at := range fsSchedule(rng, fsKnob(t, "FAULT_KILLS", 3), window/10, window, 2*time.Second) {
			time.Sleep(time.Until(start.Add(at)))
			k.killEnforcer(0)
		}
		return fmt.Sprintf("%d kill -9 of the enforcer", k.kills)
	})
}

// TestFaultKillEnforcerGroup runs two enforcers in one consumer group and
// kills -9 one or the other at random points, so that partitions move
// between them while they die.
func TestFaultKillEnforcerGroup(t *testing.T) {
	s := fsStart(t, fsOptions{Enforcers: 2})
	rng := fsRand(t)
	fsRun(t, s, rng, "fs-group", func(window time.Duration) string {
		k := &fsKiller{s: s, rng: rng}
		start := time.Now()
		for _, at := range fsSchedule(rng, fsKnob(t, "FAULT_KILLS", 3), window/10, window, 2*time.Second) {
			time.Sleep(time.Until(start.Add(at)))
			k.killEnforcer(rng.IntN(2))
		}
		return fmt.Sprintf("%d kill -9 of one of two enforcers in a group", k.kills)
	})
}

// TestFaultBrokerRestart restarts the broker mid-run with its log kept:
// producers and both services reconnect and carry on, and the checker
// finds nothing lost.
//
// On the local stack the devbroker process restarts with its data
// directory; brokertest.Options has no switch for the devbroker's --sync
// flag (fsync every produced batch), so it runs without sync writes and the
// restart is a clean stop (SIGTERM), which flushes the log. On the
// container stack the Kafka container is stopped (SIGTERM: a controlled
// shutdown) and started again on the same published port.
func TestFaultBrokerRestart(t *testing.T) {
	s := fsStart(t, fsOptions{RestartableBroker: true})
	rng := fsRand(t)
	fsRun(t, s, rng, "fs-broker", func(window time.Duration) string {
		start := time.Now()
		n := 0
		for _, at := range fsSchedule(rng, fsKnob(t, "FAULT_BROKER_RESTARTS", 1), window/5, window*4/5, 5*time.Second) {
			time.Sleep(time.Until(start.Add(at)))
			s.stack.RestartBroker(t)
			n++
		}
		return fmt.Sprintf("%d %s broker restart(s) with the log kept", n, s.stack.Name())
	})
}

// TestFaultKillConsentSync kills -9 consent-sync at random points during
// bursts of consent changes (duplicates, captured_at out of order and tied,
// expiries, erasures and late changes), restarting it each time. In the end
// Redis must equal a consent-sync --rebuild of the topic into a fresh
// prefix, hash for hash, and every revocation notice that the changes call
// for must have been published.
func TestFaultKillConsentSync(t *testing.T) {
	cs := fsCSStart(t, 3)
	rng := fsRand(t)
	nChanges := fsKnob(t, "FAULT_CHANGES", 3000)
	kills := fsKnob(t, "FAULT_KILLS", 3)
	live := "live:" + redistest.PrefixFor(t)
	group := "fs-cs-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	env := cs.env(live, group, "CONSENT_SYNC_FROM_BEGINNING=true")
	incarnation := 0
	startSync := func() *proctest.Proc {
		p := proctest.Start(t, fmt.Sprintf("consent-sync#%d", incarnation), cs.bin, env)
		incarnation++
		if err := p.WaitFor(`"msg":"syncing consent"`, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		return p
	}
	proc := startSync()

	changes := csChanges(nChanges)
	msgs := make([]kafka.Message, len(changes))
	for i, c := range changes {
		msgs[i] = cs.changeMsg(t, c)
	}
	// Bursts of 250 changes, produced from a goroutine; kills land at random
	// points while consent-sync works through them.
	done := make(chan error, 1)
	window := time.Duration(len(msgs)/250+1) * 400 * time.Millisecond
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := 0; i < len(msgs); i += 250 {
			if err := stream.WriteAll(ctx, cs.writer, msgs[i:min(i+250, len(msgs))], nil); err != nil {
				done <- err
				return
			}
			time.Sleep(400 * time.Millisecond)
		}
		done <- nil
	}()
	start := time.Now()
	killed := 0
	for _, at := range fsSchedule(rng, kills, window/10, window, time.Second) {
		time.Sleep(time.Until(start.Add(at)))
		proc.Kill()
		killed++
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		proc = startSync()
	}
	if err := <-done; err != nil {
		t.Fatalf("produce changes: %v", err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	ghosts := &fsGhosts{t: t, addr: cs.broker.Addr, group: group, live: func() int { return 1 }, off: !fsDevbroker(cs.stack)}
	for {
		ghosts.poll()
		if proc.Exited() {
			t.Errorf("consent-sync exited on its own (code %d):\n%s", proc.ExitCode(), fsTail(proc.Output(), 6))
			proc = startSync()
		}
		ok, state, err := fsCommitted(cs.broker.Addr, group, csChangesTopic)
		if err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consent-sync did not commit the end of %s within 3m: %v %v; group state: %s", csChangesTopic, state, err, fsDescribeGroup(cs.broker.Addr, group))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := proc.Stop(30 * time.Second); err != nil {
		t.Errorf("consent-sync did not stop cleanly: %v", err)
	}
	want := cs.dump(t, live)

	fresh := "rebuilt:" + redistest.PrefixFor(t)
	rb := proctest.Start(t, "consent-sync-rebuild", cs.bin, cs.env(fresh, "fs-unused-group"), "--rebuild")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	err := rb.Wait(ctx)
	cancel()
	if err != nil || rb.ExitCode() != 0 {
		t.Fatalf("consent-sync --rebuild: exit %d (%v), want 0", rb.ExitCode(), err)
	}
	got := cs.dump(t, fresh)
	differ := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || !reflect.DeepEqual(g, w) {
			differ++
			if differ <= 5 {
				t.Errorf("key %s: live %v, rebuilt %v", k, w, g)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			differ++
			t.Errorf("key %s only in the rebuilt state", k)
		}
	}
	if len(want) == 0 {
		t.Fatal("the live consent-sync stored nothing")
	}

	// Revocation notices: every one the changes call for, replayed per
	// partition in log order (which is what consent-sync applies), must be
	// published. Precautionary notices (late_change, state_incomplete) may
	// be published too, but only for changes that take consent away.
	input := fsRead(t, cs.broker.Addr, csChangesTopic)
	expected := fsExpectedNotices(t, cs.codec, input)
	restrictive := map[string]bool{}
	for _, m := range input {
		if rec, err := cs.codec.Decode(context.Background(), m.Value); err == nil {
			if c, err := consent.ChangeFromNative(rec.Value); err == nil && c.Action != consent.ActionGrant {
				restrictive[c.ChangeID] = true
			}
		}
	}
	published := map[string]int{}
	dups := 0
	for _, m := range fsRead(t, cs.broker.Addr, "consent.revocations") {
		rec, err := cs.codec.Decode(context.Background(), m.Value)
		if err != nil {
			t.Errorf("undecodable revocation notice: %v", err)
			continue
		}
		id, _ := avrocodec.StringField(rec.Value, "change_id")
		if published[id] > 0 {
			dups++
		}
		published[id]++
		if !expected[id] && !restrictive[id] {
			t.Errorf("revocation notice for change %s, which is not a WITHDRAW, DENY or ERASE", id)
		}
	}
	lostNotices := 0
	for id := range expected {
		if published[id] == 0 {
			lostNotices++
			if lostNotices <= 5 {
				t.Errorf("lost revocation notice: change %s took effect but no notice was published", id)
			}
		}
	}
	t.Logf("FAULT SUMMARY %s: consent changes sent %d, faults injected: %d kill -9 of consent-sync (+%d ghost-member evictions), lost %d (state keys differing from the rebuild: %d of %d; revocation notices lost: %d of %d), leaked 0 (n/a), duplicated %d (notices), dead-lettered 0",
		t.Name(), len(msgs), killed, ghosts.Evictions, differ+lostNotices, differ, len(want), lostNotices, len(expected), dups)
}

// fsCS is the consent-sync stack of the consent-sync scenarios: the
// csStack of consentsync_test.go on the e2e stack (either kind).
type fsCS struct {
	*csStack
	stack stack.Stack
}

// fsCSStart is csStart on the e2e stack: every topic with partitions
// partitions, consent.changes.dlq created at start.
func fsCSStart(t *testing.T, partitions int) *fsCS {
	t.Helper()
	st := stack.Start(t, stack.Options{Partitions: partitions, Topics: []string{csChangesTopic + ".dlq"}})
	s := &fsCS{stack: st, csStack: &csStack{
		broker: st.Broker(),
		redis:  st.LocalRedis(),
		rdb:    st.RedisClient(t),
		bin:    proctest.Build(t, "services/consent-sync"),
	}}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	s.codec = avrocodec.New(cat, nil)
	cfg := stream.DefaultConfig()
	cfg.Brokers = st.Brokers()
	s.writer = stream.NewWriter(cfg)
	t.Cleanup(func() { s.writer.Close() })
	if s.policy, err = filepath.Abs("testdata/policy.yaml"); err != nil {
		t.Fatal(err)
	}
	return s
}

// env is csStack.env with the e2e stack's addresses (csStack.env reads
// Redis' address from the redis-server process, which the container stack
// does not have).
func (s *fsCS) env(prefix, group string, extra ...string) []string {
	return append([]string{
		"KAFKA_BROKERS=" + strings.Join(s.stack.Brokers(), ","),
		"REDIS_ADDR=" + s.stack.RedisAddr(),
		"POLICY_FILE=" + s.policy,
		"CONSENT_KEY_PREFIX=" + prefix,
		"CONSENT_SYNC_GROUP_ID=" + group,
		"CONSENT_SYNC_SESSION_TIMEOUT=6s",
	}, extra...)
}

// fsExpectedNotices replays the consent topic, partition by partition in
// log order, through the store's rules (newest captured_at wins, ties to
// the greater change id, erasure tombstones) and returns the change ids that
// must yield a revocation notice: every erasure that takes effect, and every
// withdrawal or denial that replaces a grant.
func fsExpectedNotices(t *testing.T, codec *avrocodec.Codec, input []kafka.Message) map[string]bool {
	t.Helper()
	type entry struct {
		at int64
		id string
		a  consent.Action
	}
	newer := func(t1 int64, c1 string, t2 int64, c2 string) bool {
		if t1 != t2 {
			return t1 > t2
		}
		return c1 > c2
	}
	state := map[string]map[string]entry{} // subject -> purpose ("!erased" for the tombstone)
	out := map[string]bool{}
	for _, m := range input { // fsRead returns each partition in log order
		rec, err := codec.Decode(context.Background(), m.Value)
		if err != nil {
			continue
		}
		c, err := consent.ChangeFromNative(rec.Value)
		if err != nil || c.Validate() != nil {
			continue
		}
		st := state[c.SubjectID]
		if st == nil {
			st = map[string]entry{}
			state[c.SubjectID] = st
		}
		at := c.CapturedAt.UnixMilli()
		if tomb, ok := st[consent.TombstoneField]; ok && !newer(at, c.ChangeID, tomb.at, tomb.id) {
			continue
		}
		if c.Action == consent.ActionErase {
			for p, e := range st {
				if p != consent.TombstoneField && !newer(e.at, e.id, at, c.ChangeID) {
					delete(st, p)
				}
			}
			st[consent.TombstoneField] = entry{at, c.ChangeID, c.Action}
			out[c.ChangeID] = true
			continue
		}
		cur, ok := st[c.Purpose]
		if ok && !newer(at, c.ChangeID, cur.at, cur.id) {
			continue
		}
		st[c.Purpose] = entry{at, c.ChangeID, c.Action}
		if (c.Action == consent.ActionWithdraw || c.Action == consent.ActionDeny) && ok && cur.a == consent.ActionGrant {
			out[c.ChangeID] = true
		}
	}
	return out
}

// TestFaultConsentSyncCrashAfterApply reproduces deterministically the
// window the random kills of TestFaultKillConsentSync can only hit by luck:
// consent-sync has applied a withdrawal to Redis but the revocation notice
// is not acknowledged yet (here: its topic does not exist yet, so the
// produce is retried) when it is killed -9. The restarted consent-sync
// re-reads the withdrawal from the uncommitted offset; the notice must still
// be published: downstream systems rely on it to delete what they hold.
func TestFaultConsentSyncCrashAfterApply(t *testing.T) {
	cs := fsCSStart(t, 1)
	prefix := redistest.PrefixFor(t)
	const revocations = "fs.revocations.late"
	env := cs.env(prefix, "fs-cs-crash", "CONSENT_SYNC_FROM_BEGINNING=true", "REVOCATIONS_TOPIC="+revocations)
	proc := proctest.Start(t, "consent-sync", cs.bin, env)
	if err := proc.WaitFor(`"msg":"syncing consent"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	grant := consent.Change{ChangeID: "fs-crash-grant", SubjectID: "fs-crash-subject", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-09", CapturedAt: now.Add(-time.Minute)}
	withdraw := consent.Change{ChangeID: "fs-crash-withdraw", SubjectID: "fs-crash-subject", Purpose: "marketing", Action: consent.ActionWithdraw,
		Source: "preference-centre", CapturedAt: now}
	store := consent.NewStore(cs.rdb, prefix)
	waitStatus := func(want consent.Status) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			st, err := store.Lookup(context.Background(), []string{grant.SubjectID})
			if err == nil && st[grant.SubjectID] != nil && st[grant.SubjectID].Purposes["marketing"].Status == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("consent-sync did not store %s within 30s", want)
	}
	cs.produce(t, []kafka.Message{cs.changeMsg(t, grant)})
	waitStatus(consent.StatusGranted)
	cs.produce(t, []kafka.Message{cs.changeMsg(t, withdraw)})
	waitStatus(consent.StatusWithdrawn) // applied to Redis; the notice cannot be written yet
	if err := proc.WaitFor("produce failed, retrying", 30*time.Second); err != nil {
		t.Fatalf("consent-sync did not try to publish the notice: %v", err)
	}
	proc.Kill()
	cs.stack.CreateTopics(t, 1, revocations)
	proc = proctest.Start(t, "consent-sync#1", cs.bin, env)
	if err := proc.WaitFor(`"msg":"syncing consent"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	cs.waitCommitted(t, "fs-cs-crash", csChangesTopic, 60*time.Second)
	notices := fsRead(t, cs.broker.Addr, revocations)
	t.Logf("FAULT SUMMARY %s: consent changes sent 2, faults injected: 1 kill -9 of consent-sync between the Redis apply and the notice ack, lost %d (revocation notices), leaked 0, duplicated %d, dead-lettered 0",
		t.Name(), max(0, 1-len(notices)), max(0, len(notices)-1))
	if len(notices) == 0 {
		t.Errorf("the revocation notice of a withdrawal was lost: consent-sync applied the withdrawal to Redis, was killed before the notice was acknowledged, " +
			"and after the restart the re-delivered withdrawal counts as already applied (Store.Apply: not newer than itself), so no notice is ever published " +
			"(services/consent-sync/internal/apply/apply.go, Process: `if !o.Applied { continue }` before s.notice)")
	}
}

// TestFaultRedisOutage kills Redis (the redis-server process, or the Redis
// container) mid-run and starts it again empty, as a cache restart would.
//
// How the enforcer knows the cache is warm again (README, Rebuild): a
// rebuild that reached the end of the consent topic sets the warm marker
// <prefix>consent:!warm. An empty Redis has no marker; the enforcer reads it
// in the same round trip as its lookups and, while it is missing, pauses
// failing closed ("consent state is behind the consent topic"), exactly as while Redis is
// down. The live consent-sync notices the missing marker within a second,
// rebuilds the state from the topic and sets the marker; the enforcer then
// resumes. (Before that change an empty Redis made every subject
// unknown_subject: denied, so no leak, but granted events were lost to their
// streams until a manual rebuild.)
//
// The test asserts: events before the outage decided per the consent topic;
// none decided while Redis is down or cold; the events held meanwhile decided
// per the consent topic, and only after consent-sync marked the state warm;
// a manual `consent-sync --rebuild --rebuild-force` over the live state
// changes nothing; no leak, no loss.
func TestFaultRedisOutage(t *testing.T) {
	s := fsStart(t, fsOptions{})
	rng := fsRand(t)
	per := max(50, fsKnob(t, "FAULT_EVENTS", 5000)/10)
	subjects := fsSubjects(fsKnob(t, "FAULT_SUBJECTS", 48))
	changes := fsConsentPlan(rng, subjects)
	s.applyConsent(changes)
	var all []kafka.Message
	phase := func(name string) []kafka.Message {
		m := s.events(rng, "fs-redis-"+name, per, subjects)
		all = append(all, m...)
		return m
	}
	produce := func(m []kafka.Message) {
		t.Helper()
		if err := s.produce(m); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}

	produce(phase("A"))
	s.waitCommitted(fsEnforcerGroup, fsEventsTopic, 2*time.Minute)

	s.stack.StopRedis(t)
	time.Sleep(500 * time.Millisecond)
	outageStart := time.Now()
	produce(phase("B"))
	time.Sleep(5 * time.Second)
	view := &pipeline{broker: s.broker, codec: s.codec}
	for _, a := range view.auditRecords(t) {
		if strings.HasPrefix(a.eventID, "fs-redis-B") {
			t.Errorf("event %s was decided (%s) while Redis was down", a.eventID, a.decision)
		}
	}
	for _, topic := range fsOutputs {
		for _, m := range fsRead(t, s.broker.Addr, topic) {
			if id, _ := stream.Header(m, "consentgate.event_id"); strings.HasPrefix(id, "fs-redis-B") {
				t.Errorf("event %s reached %s while Redis was down", id, topic)
			}
		}
	}
	if !strings.Contains(s.enforcers[0].Output(), "fail closed") {
		t.Error("the enforcer did not report pausing fail-closed while Redis was down")
	}
	s.stack.RestartRedis(t) // empty: persistence is off
	restarted := time.Now()
	t.Logf("redis down for %v, restarted empty", restarted.Sub(outageStart).Round(time.Millisecond))
	s.waitCommitted(fsEnforcerGroup, fsEventsTopic, 2*time.Minute)
	warmAt := fsLastLogTime(t, s.sync, "consent state replayed from the topic and the watermark set")
	if !warmAt.After(restarted.Add(-time.Second)) {
		t.Errorf("consent-sync did not rebuild and mark the state warm after the empty restart (last at %v)", warmAt)
	}
	if !strings.Contains(s.enforcers[0].Output(), "consent state is behind the consent topic") {
		t.Error("the enforcer did not report pausing on the cold (empty) Redis")
	}
	produce(phase("C"))
	s.waitCommitted(fsEnforcerGroup, fsEventsTopic, 2*time.Minute)

	rb := proctest.Start(t, "consent-sync-rebuild", s.syncBin, s.env, "--rebuild", "--rebuild-force")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err := rb.Wait(ctx)
	cancel()
	if err != nil || rb.ExitCode() != 0 {
		t.Fatalf("consent-sync --rebuild --rebuild-force: exit %d (%v), want 0", rb.ExitCode(), err)
	}
	produce(phase("D"))
	s.waitCommitted(fsEnforcerGroup, fsEventsTopic, 2*time.Minute)

	granted := fsFold(changes)
	c := &fsChecker{Broker: s.broker, Codec: s.codec, Policy: s.policy, Produced: all, Changes: changes,
		Expect: func(a fsAudit) []string {
			if strings.HasPrefix(a.EventID, "fs-redis-B") && a.ProcessedAt.Before(warmAt) {
				return nil // decided before the state was back
			}
			for _, st := range s.policy.Streams {
				if st.Topic != a.Stream {
					continue
				}
				switch {
				case granted.all(a.Subject, st.Purposes, a.ProcessedAt):
					return []string{fsPassed}
				case st.OnMissing == policy.OnMissingRedact:
					return []string{fsRedacted}
				}
			}
			return []string{fsDropped}
		}}
	n := c.Check(t)
	fsSummary(t, t.Name(), fmt.Sprintf("redis ("+s.stack.Name()+") killed for %v and restarted empty (consent-sync rebuilt it in %v), then a manual consent-sync --rebuild --rebuild-force",
		restarted.Sub(outageStart).Round(100*time.Millisecond), warmAt.Sub(restarted).Round(10*time.Millisecond)), n)
}

// fsLastLogTime returns the time of the last JSON log line of p whose msg
// starts with msg (the zero time when there is none).
func fsLastLogTime(t *testing.T, p *proctest.Proc, msg string) time.Time {
	t.Helper()
	var last time.Time
	for _, line := range strings.Split(p.Output(), "\n") {
		var m struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && strings.HasPrefix(m.Msg, msg) {
			last = m.Time
		}
	}
	return last
}

// TestFaultPoisonInput mixes hostile records into the event and consent
// topics between good ones: each gets its documented outcome (a dead letter
// with the original bytes and a reason; a huge or keyless event is decided
// like any other) and the pipeline keeps going.
func TestFaultPoisonInput(t *testing.T) {
	s := fsStart(t, fsOptions{})
	rng := fsRand(t)
	subjects := fsSubjects(12)
	changes := fsConsentPlan(rng, subjects)
	good := consent.Change{ChangeID: "fs-poison-ok", SubjectID: "fs-subj-000", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "2026-01", CapturedAt: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
	changes = append(changes, good)
	// Consent side: garbage, a GRANT without purpose, a record of another
	// schema; each is dead-lettered, and the valid change after them applies.
	poisonChange := func(kind string, m kafka.Message) kafka.Message {
		m.Headers = append(m.Headers, kafka.Header{Key: fsPoisonHeader, Value: []byte(kind)})
		return m
	}
	noPurpose := s.changeMsg(consent.Change{ChangeID: "fs-poison-nopurpose", SubjectID: "fs-subj-001", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "cookie-banner", NoticeVersion: "2026-01", CapturedAt: time.Now()})
	changeMsgs := []kafka.Message{
		poisonChange("change-garbage", kafka.Message{Topic: fsChangesTopic, Key: []byte("fs-subj-002"), Value: []byte("\xc3\x01\x00garbage")}),
		poisonChange("change-no-purpose", noPurpose),
		poisonChange("change-wrong-schema", kafka.Message{Topic: fsChangesTopic, Key: []byte("fs-subj-003"), Value: s.eventValue("x", "fs-subj-003", 1, "l")}),
		poisonChange("change-long-id", s.changeMsg(consent.Change{ChangeID: "fs-poison-" + strings.Repeat("c", 300<<10), SubjectID: "fs-subj-002",
			Purpose: "marketing", Action: consent.ActionGrant, LegalBasis: consent.BasisConsent, Source: "cookie-banner", NoticeVersion: "2026-01",
			CapturedAt: time.Now()})),
	}
	if err := s.produce(changeMsgs); err != nil {
		t.Fatal(err)
	}
	changeMsgs = append(changeMsgs, s.applyConsent(changes)...)

	events := func(from, n int) []kafka.Message {
		out := make([]kafka.Message, n)
		for i := range out {
			out[i] = s.event(fmt.Sprintf("fs-poison-%04d", from+i), subjects[rng.IntN(len(subjects))], from+i)
		}
		return out
	}
	poison := func(kind string, key, value []byte) kafka.Message {
		return kafka.Message{Topic: fsEventsTopic, Key: key, Value: value, Headers: []kafka.Header{{Key: fsPoisonHeader, Value: []byte(kind)}, {Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}}
	}
	valid := s.eventValue("fs-poison-trunc", "fs-subj-004", 9, "https://shop.example/t")
	random := make([]byte, 300)
	for i := range random {
		random[i] = byte(rng.IntN(256))
	}
	huge := s.eventValue("fs-poison-huge", "fs-subj-000", 10, "https://shop.example/"+strings.Repeat("h", 900<<10))
	unknownFP := append([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, valid[10:]...)
	confluent := append([]byte{0, 0, 0, 0, 42}, valid[10:]...)
	var msgs []kafka.Message
	msgs = append(msgs, events(0, 100)...)
	msgs = append(msgs,
		poison("random", []byte("fs-subj-001"), random),
		poison("truncated", []byte("fs-subj-004"), valid[:len(valid)/2]),
		poison("unknown-fingerprint", []byte("fs-subj-005"), unknownFP),
		poison("confluent-no-registry", []byte("fs-subj-006"), confluent),
		poison("empty", []byte("fs-subj-007"), nil),
		kafka.Message{Topic: fsEventsTopic, Key: []byte("fs-subj-000"), Value: huge},
		kafka.Message{Topic: fsEventsTopic, Key: nil, Value: s.eventValue("fs-poison-nokey", "fs-subj-000", 11, "https://shop.example/k")},
		poison("no-subject", []byte("fs-subj-008"), s.eventValue("fs-poison-nosubject", "", 12, "https://shop.example/s")),
		poison("no-event-id", []byte("fs-subj-009"), s.eventValue("", "fs-subj-009", 13, "https://shop.example/e")),
		// Hostile ids: a 300 KiB event id and a 200 KiB subject id (short
		// key), which no audit record could carry.
		poison("long-ids", []byte("k"), s.eventValue("fs-poison-"+strings.Repeat("i", 300<<10), "fs-subj-"+strings.Repeat("s", 200<<10), 14,
			"https://shop.example/l")),
	)
	msgs = append(msgs, events(100, 100)...)
	for _, m := range msgs {
		if err := s.produce([]kafka.Message{m}); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	s.waitCommitted(fsEnforcerGroup, fsEventsTopic, 2*time.Minute)
	c := &fsChecker{Broker: s.broker, Codec: s.codec, Policy: s.policy, Produced: msgs, Changes: changes, ChangeMsgs: changeMsgs,
		DLQReasons: map[string]string{
			"random": "undecodable", "truncated": "undecodable", "unknown-fingerprint": "undecodable",
			"confluent-no-registry": "undecodable", "empty": "undecodable",
			"no-subject": "missing_subject_id", "no-event-id": "missing_event_id", "long-ids": "id_too_long",
			"change-garbage": "undecodable", "change-no-purpose": "invalid_change", "change-wrong-schema": "wrong_schema",
			"change-long-id": "invalid_change",
		}}
	n := c.Check(t)
	// The huge event passed (its subject granted marketing) and the keyless
	// one was decided by the subject in its value.
	mk := fsRead(t, s.broker.Addr, "compliant.marketing")
	var hugeOut, nokeyOut bool
	for _, m := range mk {
		id, _ := stream.Header(m, "consentgate.event_id")
		hugeOut = hugeOut || id == "fs-poison-huge" && len(m.Value) == len(huge)
		nokeyOut = nokeyOut || id == "fs-poison-nokey" && len(m.Key) == 0
	}
	if !hugeOut || !nokeyOut {
		t.Errorf("on compliant.marketing: huge event %v, keyless event %v; want both passed", hugeOut, nokeyOut)
	}
	dlq := fsRead(t, s.broker.Addr, fsEventsDLQ)
	for _, d := range dlq {
		if e, _ := stream.Header(d, "consentgate.dlq.error"); strings.Contains(e, "fs-subj") {
			t.Errorf("a dead letter's error text carries a subject id: %q", e)
		}
		if p, _ := stream.Header(d, fsPoisonHeader); p == "unknown-fingerprint" {
			if e, _ := stream.Header(d, "consentgate.dlq.error"); !strings.Contains(e, "fingerprint") {
				t.Errorf("unknown-fingerprint dead letter says %q, want it to name the fingerprint", e)
			}
		}
	}
	if n.DeadLettered != 12 {
		t.Errorf("%d inputs dead-lettered, want 12 (8 events, 4 consent changes)", n.DeadLettered)
	}
	fsSummary(t, t.Name(), "12 hostile records (garbage, truncated, unknown fingerprint, Confluent frame without registry, empty, no subject, no event id, "+
		"300 KiB event id with 200 KiB subject id, garbage/invalid/wrong-schema/300 KiB change id changes) plus a 900 KiB event and a keyless event", n)
	for _, p := range append(s.enforcers, s.sync) {
		if strings.Contains(p.Output(), "fs-subj-") {
			t.Errorf("%s logged a subject id", p.Name)
		}
	}
}

// TestFaultFutureCapturedAtChange sends a GRANT whose captured_at lies
// centuries ahead, then a WITHDRAW captured now. Newest captured_at wins, so
// unless the absurd change is rejected (dead-lettered as invalid) it wins for
// ever: the withdrawal, and every later change of that purpose, is ignored,
// and the subject's events keep reaching the purpose stream. The issue asks
// for such changes to be rejected with a reason.
func TestFaultFutureCapturedAtChange(t *testing.T) {
	s := fsStart(t, fsOptions{})
	future := consent.Change{ChangeID: "fs-future-grant", SubjectID: "fs-future", Purpose: "marketing", Action: consent.ActionGrant,
		LegalBasis: consent.BasisConsent, Source: "cookie-banner", NoticeVersion: "2026-01", CapturedAt: time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)}
	withdraw := consent.Change{ChangeID: "fs-future-withdraw", SubjectID: "fs-future", Purpose: "marketing", Action: consent.ActionWithdraw,
		Source: "preference-centre", CapturedAt: time.Now()}
	fm := s.changeMsg(future)
	fm.Headers = []kafka.Header{{Key: fsPoisonHeader, Value: []byte("future")}}
	if err := s.produce([]kafka.Message{fm}); err != nil {
		t.Fatal(err)
	}
	changeMsgs := append([]kafka.Message{fm}, s.applyConsent([]consent.Change{withdraw})...)
	msgs := []kafka.Message{s.event("fs-future-evt", "fs-future", 1)}
	if err := s.produce(msgs); err != nil {
		t.Fatal(err)
	}
	s.waitCommitted(fsEnforcerGroup, fsEventsTopic, time.Minute)
	c := &fsChecker{Broker: s.broker, Codec: s.codec, Policy: s.policy, Produced: msgs, Changes: []consent.Change{withdraw},
		ChangeMsgs: changeMsgs, DLQReasons: map[string]string{"future": "invalid_change"}}
	n := c.Check(t)
	rejected := false
	for _, d := range fsRead(t, s.broker.Addr, fsChangesDLQ) {
		if p, _ := stream.Header(d, fsPoisonHeader); p == "future" {
			rejected = true
		}
	}
	if !rejected {
		t.Errorf("a consent change captured in the year 2999 was accepted, not dead-lettered as invalid_change: it outranks every real change " +
			"(pkg/consent/change.go, Change.Validate checks captured_at only against the epoch)")
	}
	fsSummary(t, t.Name(), "1 consent change with captured_at in the year 2999", n)
}

// TestFaultBadPolicyStopsEnforcer starts the enforcer on a policy with an
// error: it must exit 1 at once, naming the file and the line.
func TestFaultBadPolicyStopsEnforcer(t *testing.T) {
	t.Parallel()
	bad, err := filepath.Abs("testdata/fault_bad_policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for i, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "publish_anyway") {
			line = i + 1
		}
	}
	p := proctest.Start(t, "enforcer", proctest.Build(t, "services/enforcer"), []string{
		"KAFKA_BROKERS=127.0.0.1:1", "REDIS_ADDR=127.0.0.1:1", "POLICY_FILE=" + bad,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = p.Wait(ctx)
	want := fmt.Sprintf("fault_bad_policy.yaml:%d:", line)
	if p.ExitCode() != 1 || !strings.Contains(p.Output(), want) || !strings.Contains(p.Output(), "on_missing_consent") {
		t.Errorf("enforcer on a bad policy: exit %d, want 1 and a message naming %q and the bad key:\n%s", p.ExitCode(), want, p.Output())
	}
}
