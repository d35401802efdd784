package e2e

// The harness of the fault suite (issue 6): a broker and a Redis (the e2e
// stack, e2e/stack: the devbroker and redis-server processes, or Apache
// Kafka and Redis containers), consent-sync and one or more enforcers as
// real processes, a producer of known events and consent changes, and the
// knobs that size a run. The checker is in fault_checker_test.go, the scenarios in
// fault_test.go.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/e2e/stack"
	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// Topics of the fault suite (the services' defaults).
const (
	fsEventsTopic      = "customer.events"
	fsEventsDLQ        = "customer.events.dlq"
	fsChangesTopic     = "consent.changes"
	fsChangesDLQ       = "consent.changes.dlq"
	fsAuditTopic       = "consent.audit"
	fsRevocationsTopic = "consent.revocations"
	fsPolicyFile       = "testdata/fault_policy.yaml"
	fsEnforcerGroup    = "fs-enforcer"
	fsSyncGroup        = "fs-consent-sync"
	fsPoisonHeader     = "fs-poison" // kind of a hostile input record, kept by dead letters
)

// fsOutputs are the output topics of testdata/fault_policy.yaml.
var fsOutputs = []string{"compliant.marketing", "compliant.analytics"}

// fsKnob reads an integer knob of the suite from the environment (make soak
// raises them), falling back to def.
func fsKnob(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q is not a non-negative number", name, v)
	}
	return n
}

// fsRand returns the random source of a scenario, seeded from FAULT_SEED or
// the clock, and logs the seed so that a failing run can be replayed.
func fsRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FAULT_SEED=%q is not a number", v)
		}
		seed = s
	}
	t.Logf("random seed %d (set FAULT_SEED=%d to replay)", seed, seed)
	return rand.New(rand.NewPCG(seed, 0x5eed))
}

// fsOptions size a stack.
type fsOptions struct {
	Partitions        int  // of every topic; default 4
	Enforcers         int  // enforcer instances in the group; default 1
	RestartableBroker bool // the broker keeps its log across a restart
	Env               []string
}

// fsStack is one running pipeline of the fault suite.
type fsStack struct {
	t        *testing.T
	stack    stack.Stack
	broker   *brokertest.Broker // stack.Broker()
	rdb      *redis.Client
	prefix   string
	codec    *avrocodec.Codec
	policy   *policy.Policy
	writer   *kafka.Writer
	env      []string
	enfBin   string
	syncBin  string
	restarts map[string]int
	ghosts   map[string]*fsGhosts // by consumer group

	mu        sync.Mutex
	enforcers []*proctest.Proc
	sync      *proctest.Proc
}

// fsStart starts the e2e stack (the broker and Redis), consent-sync and
// the enforcers on testdata/fault_policy.yaml. Both groups start from the
// beginning of their topics, so that nothing produced before a (re)join is
// skipped.
func fsStart(t *testing.T, o fsOptions) *fsStack {
	t.Helper()
	if o.Partitions == 0 {
		o.Partitions = 4
	}
	if o.Enforcers == 0 {
		o.Enforcers = 1
	}
	st := stack.Start(t, stack.Options{Partitions: o.Partitions, RestartableBroker: o.RestartableBroker, Topics: append([]string{fsChangesDLQ}, fsOutputs...)})
	s := &fsStack{
		t:        t,
		stack:    st,
		broker:   st.Broker(),
		prefix:   redistest.PrefixFor(t),
		enfBin:   proctest.Build(t, "services/enforcer"),
		syncBin:  proctest.Build(t, "services/consent-sync"),
		restarts: map[string]int{},
	}
	s.rdb = st.RedisClient(t)
	s.ghosts = map[string]*fsGhosts{
		fsEnforcerGroup: {t: t, addr: s.broker.Addr, group: fsEnforcerGroup, live: func() int { return len(s.enforcers) }, off: !fsDevbroker(st)},
		fsSyncGroup:     {t: t, addr: s.broker.Addr, group: fsSyncGroup, live: func() int { return 1 }, off: !fsDevbroker(st)},
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	s.codec = avrocodec.New(cat, nil)
	pf, err := filepath.Abs(fsPolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	if s.policy, err = policy.Load(pf); err != nil {
		t.Fatal(err)
	}
	cfg := stream.DefaultConfig()
	cfg.Brokers = st.Brokers()
	s.writer = stream.NewWriter(cfg)
	t.Cleanup(func() { s.writer.Close() })
	s.env = append([]string{
		"KAFKA_BROKERS=" + strings.Join(st.Brokers(), ","),
		"REDIS_ADDR=" + st.RedisAddr(),
		"POLICY_FILE=" + pf,
		"CONSENT_KEY_PREFIX=" + s.prefix,
		"ENFORCER_GROUP_ID=" + fsEnforcerGroup,
		"CONSENT_SYNC_GROUP_ID=" + fsSyncGroup,
		"ENFORCER_SESSION_TIMEOUT=6s",
		"CONSENT_SYNC_SESSION_TIMEOUT=6s",
		"ENFORCER_FROM_BEGINNING=true",
		"CONSENT_SYNC_FROM_BEGINNING=true",
	}, o.Env...)
	s.startSync()
	s.enforcers = make([]*proctest.Proc, o.Enforcers)
	for i := range s.enforcers {
		s.startEnforcer(i)
	}
	return s
}

// start launches one incarnation of a service and waits for its ready line.
func (s *fsStack) start(name, bin, ready string, extraEnv ...string) *proctest.Proc {
	s.t.Helper()
	s.mu.Lock()
	n := s.restarts[name]
	s.restarts[name]++
	s.mu.Unlock()
	label := name
	if n > 0 {
		label = fmt.Sprintf("%s#%d", name, n)
	}
	p := proctest.Start(s.t, label, bin, append(slices.Clone(s.env), extraEnv...))
	if err := p.WaitFor(`"msg":"`+ready+`"`, 60*time.Second); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *fsStack) startEnforcer(i int) {
	s.t.Helper()
	p := s.start(fmt.Sprintf("enforcer-%d", i), s.enfBin, "enforcing")
	s.mu.Lock()
	s.enforcers[i] = p
	s.mu.Unlock()
}

func (s *fsStack) startSync() {
	s.t.Helper()
	p := s.start("consent-sync", s.syncBin, "syncing consent")
	s.mu.Lock()
	s.sync = p
	s.mu.Unlock()
}

// checkAlive reports every service that exited on its own (a crash the
// suite did not inject) and restarts it, so that the run can be checked to
// the end.
func (s *fsStack) checkAlive() {
	s.t.Helper()
	for i, p := range s.enforcers {
		if p.Exited() {
			s.t.Errorf("%s exited on its own with code %d (not a fault the suite injected); last output:\n%s", p.Name, p.ExitCode(), fsTail(p.Output(), 6))
			s.startEnforcer(i)
		}
	}
	if s.sync.Exited() {
		s.t.Errorf("%s exited on its own with code %d; last output:\n%s", s.sync.Name, s.sync.ExitCode(), fsTail(s.sync.Output(), 6))
		s.startSync()
	}
}

// fsTail returns the last n lines of out.
func fsTail(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// produce writes msgs with acks=all, retrying what the broker did not
// acknowledge (as stream.WriteAll does) for up to two minutes.
func (s *fsStack) produce(msgs []kafka.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return stream.WriteAll(ctx, s.writer, msgs, nil)
}

// produceAt writes msgs in chunks at about rate records per second from a
// goroutine, and sends the outcome (nil once all are acknowledged) on the
// returned channel.
func (s *fsStack) produceAt(msgs []kafka.Message, rate int) <-chan error {
	done := make(chan error, 1)
	chunk := max(1, rate/20)
	go func() {
		start := time.Now()
		for i := 0; i < len(msgs); i += chunk {
			if err := s.produce(msgs[i:min(i+chunk, len(msgs))]); err != nil {
				done <- err
				return
			}
			if d := time.Until(start.Add(time.Duration(i+chunk) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		done <- nil
	}()
	return done
}

// changeMsg encodes a consent change like an upstream producer does.
func (s *fsStack) changeMsg(c consent.Change) kafka.Message {
	s.t.Helper()
	b, err := s.codec.EncodeSingle("consentgate.consent.ConsentChange", c.Native())
	if err != nil {
		s.t.Fatalf("encode change: %v", err)
	}
	return kafka.Message{Topic: fsChangesTopic, Key: []byte(c.SubjectID), Value: b}
}

// event encodes an e-mail click of subject: every field that a redacted
// copy must lose carries a non-empty value.
func (s *fsStack) event(id, subject string, seq int) kafka.Message {
	s.t.Helper()
	return kafka.Message{Topic: fsEventsTopic, Key: []byte(subject), Value: s.eventValue(id, subject, seq, "https://shop.example/p/"+strconv.Itoa(seq))}
}

func (s *fsStack) eventValue(id, subject string, seq int, link string) []byte {
	s.t.Helper()
	b, err := s.codec.EncodeSingle("consentgate.events.EmailEngagement", map[string]any{
		"event_id": id, "subject_id": subject, "occurred_at": time.UnixMilli(1_790_000_000_000 + int64(seq)).UTC(),
		"email": subject + "@mail.example", "campaign_id": "cmp-" + strconv.Itoa(seq%7), "message_id": "msg-" + strconv.Itoa(seq),
		"action": "CLICK", "link_url": map[string]any{"string": link},
		"user_agent": map[string]any{"string": "Mozilla/5.0 (fault suite)"}, "ip_address": map[string]any{"string": "198.51.100." + strconv.Itoa(seq%250+1)},
	})
	if err != nil {
		s.t.Fatalf("encode event: %v", err)
	}
	return b
}

// events returns n events of ids prefix-000000... spread over subjects in a
// shuffled but reproducible order.
func (s *fsStack) events(rng *rand.Rand, prefix string, n int, subjects []string) []kafka.Message {
	s.t.Helper()
	out := make([]kafka.Message, n)
	for i := range out {
		out[i] = s.event(fmt.Sprintf("%s-%06d", prefix, i), subjects[rng.IntN(len(subjects))], i)
	}
	return out
}

// fsSubjects names n subjects.
func fsSubjects(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("fs-subj-%03d", i)
	}
	return out
}

// fsConsentPlan returns the static consent of subjects, in a shuffled order:
// grants (some duplicated), denials and withdrawals that arrive before the
// grant they override, grants that expired long ago, ties in the same
// millisecond, and subjects never asked. The checker folds the same list to
// know each subject's consent.
func fsConsentPlan(rng *rand.Rand, subjects []string) []consent.Change {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []consent.Change
	add := func(c consent.Change) {
		if c.Action == consent.ActionGrant {
			c.LegalBasis, c.NoticeVersion = consent.BasisConsent, "2026-01"
		}
		if c.Source == "" {
			c.Source = "preference-centre"
		}
		out = append(out, c)
	}
	for i, subj := range subjects {
		at := base.Add(time.Duration(i) * time.Second)
		id := func(kind string) string { return fmt.Sprintf("fs-%s-%s", kind, subj) }
		switch i % 4 {
		case 0: // granted, twice (a duplicate)
			g := consent.Change{ChangeID: id("m-grant"), SubjectID: subj, Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: at}
			add(g)
			add(g)
		case 1: // granted, then denied later: the denial wins whatever the order
			add(consent.Change{ChangeID: id("m-deny"), SubjectID: subj, Purpose: "marketing", Action: consent.ActionDeny, CapturedAt: at.Add(time.Hour)})
			add(consent.Change{ChangeID: id("m-grant"), SubjectID: subj, Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: at})
		case 2: // a grant that expired long ago
			add(consent.Change{ChangeID: id("m-grant"), SubjectID: subj, Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: at, ExpiresAt: at.Add(24 * time.Hour)})
		case 3: // a tie in the same millisecond: the greater change id (the grant) wins
			add(consent.Change{ChangeID: id("m-a-deny"), SubjectID: subj, Purpose: "marketing", Action: consent.ActionDeny, CapturedAt: at})
			add(consent.Change{ChangeID: id("m-b-grant"), SubjectID: subj, Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: at})
		}
		switch i % 3 {
		case 0: // granted until far in the future
			add(consent.Change{ChangeID: id("a-grant"), SubjectID: subj, Purpose: "analytics", Action: consent.ActionGrant, CapturedAt: at, ExpiresAt: base.AddDate(80, 0, 0)})
		case 1: // withdrawn: the withdrawal is captured after the grant
			add(consent.Change{ChangeID: id("a-withdraw"), SubjectID: subj, Purpose: "analytics", Action: consent.ActionWithdraw, CapturedAt: at.Add(2 * time.Hour)})
			add(consent.Change{ChangeID: id("a-grant"), SubjectID: subj, Purpose: "analytics", Action: consent.ActionGrant, CapturedAt: at.Add(time.Hour)})
		case 2: // never asked about analytics
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// applyConsent produces changes and waits until consent-sync has committed
// them all, so that the consent every event is decided under is known.
func (s *fsStack) applyConsent(changes []consent.Change) []kafka.Message {
	s.t.Helper()
	msgs := make([]kafka.Message, len(changes))
	for i, c := range changes {
		msgs[i] = s.changeMsg(c)
	}
	if err := s.produce(msgs); err != nil {
		s.t.Fatalf("produce consent changes: %v", err)
	}
	s.waitCommitted(fsSyncGroup, fsChangesTopic, 2*time.Minute)
	return msgs
}

// waitCommitted waits until group has committed the high watermark of every
// non-empty partition of topic: every record there has been processed and
// its outputs acknowledged.
func (s *fsStack) waitCommitted(group, topic string, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	ghosts := s.ghosts[group]
	for time.Now().Before(deadline) {
		s.checkAlive()
		if ghosts != nil {
			ghosts.poll()
		}
		ok, state, err := fsCommitted(s.broker.Addr, group, topic)
		if err == nil && ok {
			return
		}
		last = fmt.Sprint(state, err)
		time.Sleep(250 * time.Millisecond)
	}
	s.t.Fatalf("group %s did not commit the end of %s within %s (partition: [committed, high watermark] %s); group state: %s",
		group, topic, timeout, last, fsDescribeGroup(s.broker.Addr, group))
}

// fsDescribeGroup describes a consumer group's members and assignments, for
// the failure message of a run that stalled.
func fsDescribeGroup(addr, group string) string {
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(res.Groups) != 1 {
		return fmt.Sprintf("describe failed: %v", err)
	}
	g := res.Groups[0]
	out := fmt.Sprintf("state %s, %d members:", g.GroupState, len(g.Members))
	for _, m := range g.Members {
		out += fmt.Sprintf(" [%s %s %v]", m.ClientID, m.ClientHost, m.MemberAssignments.Topics)
	}
	return out
}

// fsCommitted reports whether group has committed the high watermark of
// every non-empty partition of topic, and the per-partition state.
func fsCommitted(addr, group, topic string) (bool, map[int][2]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return false, nil, err
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return false, nil, fmt.Errorf("metadata of %s: %+v", topic, meta.Topics)
	}
	var ids []int
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		ids = append(ids, p.ID)
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return false, nil, err
	}
	res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return false, nil, err
	}
	committed := map[int]int64{}
	for _, p := range res.Topics[topic] {
		committed[p.Partition] = p.CommittedOffset
	}
	state := map[int][2]int64{}
	ok := true
	for _, p := range offs.Topics[topic] {
		state[p.Partition] = [2]int64{committed[p.Partition], p.LastOffset}
		if p.LastOffset > 0 && committed[p.Partition] != p.LastOffset {
			ok = false
		}
	}
	return ok, state, nil
}

// killer kills -9 and restarts processes of a stack at random points.
type fsKiller struct {
	s     *fsStack
	rng   *rand.Rand
	kills int
}

// killEnforcer kills -9 enforcer i and starts a new one in its place after
// a random pause of up to a second.
func (k *fsKiller) killEnforcer(i int) {
	k.s.t.Helper()
	k.s.enforcers[i].Kill()
	k.kills++
	time.Sleep(time.Duration(k.rng.IntN(1000)) * time.Millisecond)
	k.s.startEnforcer(i)
}

// fsGhosts works around a defect of the devbroker's kfake: a consumer-group
// member killed at some points of a rebalance (seen when a member dies while
// its JoinGroup is parked) loses its session timer and stays in the group
// for ever, Stable, holding partitions no one consumes. A real Kafka broker
// expires it after the session timeout. When a group stays Stable with more
// members than live processes for longer than ghostAfter, poll asks the
// broker to remove every member (LeaveGroup); the live ones get
// UNKNOWN_MEMBER_ID on their next heartbeat and rejoin, the ghosts are gone.
// Evictions are counted and reported in the scenario's summary. On the
// container stack (Apache Kafka) the workaround is off: a member that
// outlived its session there would be a finding, not a defect to hide.
type fsGhosts struct {
	t         *testing.T
	addr      string
	group     string
	live      func() int
	off       bool
	since     time.Time
	Evictions int
}

// fsDevbroker reports whether st's broker is the devbroker (kfake).
func fsDevbroker(st stack.Stack) bool { return st.Name() == string(stack.KindLocal) }

// ghostAfter is well past the session timeout (6s) the suite uses.
const ghostAfter = 20 * time.Second

func (g *fsGhosts) poll() {
	if g.off {
		return
	}
	client := &kafka.Client{Addr: kafka.TCP(g.addr), Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{g.group}})
	if err != nil || len(res.Groups) != 1 {
		return // no observation: keep the clock running
	}
	if len(res.Groups[0].Members) <= g.live() {
		g.since = time.Time{}
		return
	}
	if g.since.IsZero() {
		g.since = time.Now()
		return
	}
	if time.Since(g.since) < ghostAfter {
		return
	}
	var members []kafka.LeaveGroupRequestMember
	for _, m := range res.Groups[0].Members {
		members = append(members, kafka.LeaveGroupRequestMember{ID: m.MemberID})
	}
	g.t.Logf("devbroker defect: group %s Stable with %d members for %v but %d live processes; evicting them all so the live ones rejoin",
		g.group, len(members), time.Since(g.since).Round(time.Second), g.live())
	if _, err := client.LeaveGroup(ctx, &kafka.LeaveGroupRequest{GroupID: g.group, Members: members}); err != nil {
		g.t.Logf("evict stale members of %s: %v", g.group, err)
		return
	}
	g.Evictions++
	g.since = time.Time{}
}

// schedule returns n sorted random instants within (lo, hi), at least gap
// apart when the window allows.
func fsSchedule(rng *rand.Rand, n int, lo, hi, gap time.Duration) []time.Duration {
	if n == 0 {
		return nil
	}
	span := hi - lo - time.Duration(n-1)*gap
	if span < 0 {
		gap, span = 0, hi-lo
	}
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(rng.Int64N(int64(span) + 1))
	}
	slices.Sort(out)
	for i := range out {
		out[i] += lo + time.Duration(i)*gap
	}
	return out
}

// fsRead returns every record of topic up to the high watermarks it sees
// first, reading the partitions in parallel (each in log order, partitions
// in id order). Unlike a read until the topic goes quiet, it knows where the
// end is.
func fsRead(t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatalf("offsets of %s: %v", topic, err)
	}
	parts := offs.Topics[topic]
	slices.SortFunc(parts, func(a, b kafka.PartitionOffsets) int { return a.Partition - b.Partition })
	out := make([][]kafka.Message, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		if p.LastOffset <= p.FirstOffset {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.Partition,
				MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			if err := r.SetOffset(p.FirstOffset); err != nil {
				errs[i] = err
				return
			}
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					errs[i] = fmt.Errorf("partition %d at %d of %d: %w", p.Partition, len(out[i]), p.LastOffset, err)
					return
				}
				out[i] = append(out[i], m)
				if m.Offset >= p.LastOffset-1 {
					return
				}
			}
		}()
	}
	wg.Wait()
	var all []kafka.Message
	for i := range parts {
		if errs[i] != nil {
			t.Fatalf("read %s: %v", topic, errs[i])
		}
		all = append(all, out[i]...)
	}
	return all
}
