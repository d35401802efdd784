package consent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/redis/go-redis/v9"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// change builds a valid change; ms is captured_at as milliseconds after t0.
func change(id, subject, purpose string, a Action, ms int64) Change {
	c := Change{
		ChangeID: id, SubjectID: subject, Purpose: purpose, Action: a,
		LegalBasis: BasisConsent, Source: "test", NoticeVersion: "v1",
		CapturedAt: t0.Add(time.Duration(ms) * time.Millisecond),
	}
	if a == ActionErase {
		c.Purpose = ""
	}
	return c
}

func TestApplyOrdering(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)

	const subj = "subject-secret-7"
	g := func(id string, ms int64) Change { return change(id, subj, "ads", ActionGrant, ms) }
	d := func(id string, ms int64) Change { return change(id, subj, "ads", ActionDeny, ms) }
	e := func(id string, ms int64) Change { return change(id, subj, "", ActionErase, ms) }
	type step struct {
		c            Change
		applied      bool
		erased       bool
		prevChangeID string // "" : zero Previous
	}
	tests := []struct {
		name  string
		steps []step
		want  map[string]Reason // purpose -> reason of Check after all steps
		by    map[string]string // purpose -> deciding change id
	}{
		{"newer wins", []step{{g("a", 0), true, false, ""}, {d("b", 1), true, false, "a"}},
			map[string]Reason{"ads": ReasonDenied}, map[string]string{"ads": "b"}},
		{"older ignored", []step{{d("b", 1), true, false, ""}, {g("a", 0), false, false, "b"}},
			map[string]Reason{"ads": ReasonDenied}, map[string]string{"ads": "b"}},
		{"duplicate ignored", []step{{g("a", 0), true, false, ""}, {g("a", 0), false, false, "a"}},
			map[string]Reason{"ads": ReasonGranted}, map[string]string{"ads": "a"}},
		{"tie: greater change id wins, applied second", []step{{d("a", 0), true, false, ""}, {g("b", 0), true, false, "a"}},
			map[string]Reason{"ads": ReasonGranted}, map[string]string{"ads": "b"}},
		{"tie: smaller change id ignored, applied second", []step{{g("b", 0), true, false, ""}, {d("a", 0), false, false, "b"}},
			map[string]Reason{"ads": ReasonGranted}, map[string]string{"ads": "b"}},
		{"tie compares change ids byte-wise", []step{{g("a", 0), true, false, ""}, {d("B", 0), false, false, "a"}},
			map[string]Reason{"ads": ReasonGranted}, map[string]string{"ads": "a"}},
		{"comparison is in whole milliseconds", []step{
			{func() Change { c := g("a", 0); c.CapturedAt = c.CapturedAt.Add(900 * time.Microsecond); return c }(), true, false, ""},
			{d("b", 0), true, false, "a"}},
			map[string]Reason{"ads": ReasonDenied}, map[string]string{"ads": "b"}},
		{"erase then late older change ignored", []step{{e("z", 10), true, true, ""}, {g("a", 5), false, false, ""}},
			map[string]Reason{"ads": ReasonErased}, map[string]string{"ads": "z"}},
		{"erase then change with equal time and smaller id ignored", []step{{e("m", 10), true, true, ""}, {g("a", 10), false, false, ""}},
			map[string]Reason{"ads": ReasonErased}, map[string]string{"ads": "m"}},
		{"erase then newer grant applies", []step{{g("a", 0), true, false, ""}, {e("z", 10), true, true, ""}, {g("b", 11), true, false, ""}},
			map[string]Reason{"ads": ReasonGranted, "email": ReasonErased}, map[string]string{"ads": "b", "email": "z"}},
		{"late erase keeps purposes changed after it", []step{
			{g("a", 20), true, false, ""},
			{change("b", subj, "email", ActionGrant, 1), true, false, ""},
			{e("z", 10), true, true, ""}},
			map[string]Reason{"ads": ReasonGranted, "email": ReasonErased}, map[string]string{"ads": "a", "email": "z"}},
		{"older erase after newer erase ignored", []step{{e("z", 10), true, true, ""}, {e("y", 5), false, false, ""}},
			map[string]Reason{"ads": ReasonErased}, map[string]string{"ads": "z"}},
		{"newer erase replaces tombstone", []step{{e("y", 5), true, true, ""}, {g("a", 7), true, false, ""}, {e("z", 10), true, true, ""}},
			map[string]Reason{"ads": ReasonErased}, map[string]string{"ads": "z"}},
		{"withdraw after grant", []step{{g("a", 0), true, false, ""}, {change("w", subj, "ads", ActionWithdraw, 3), true, false, "a"}},
			map[string]Reason{"ads": ReasonWithdrawn, "email": ReasonNeverAsked}, map[string]string{"ads": "w"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			st := NewStore(rdb, redistest.PrefixFor(t))
			for i, s := range tt.steps {
				out, err := st.Apply(ctx, s.c)
				if err != nil {
					t.Fatalf("step %d: Apply: %v", i, err)
				}
				if out.Applied != s.applied || out.Erased != s.erased || out.Previous.ChangeID != s.prevChangeID {
					t.Fatalf("step %d: Outcome{Applied:%v Erased:%v Previous:%q}, want {%v %v %q}",
						i, out.Applied, out.Erased, out.Previous.ChangeID, s.applied, s.erased, s.prevChangeID)
				}
			}
			states, err := st.Lookup(ctx, []string{subj})
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			for purpose, want := range tt.want {
				v := states[subj].Check(purpose, t0.Add(time.Hour))
				if v.Reason != want || v.ChangeID != tt.by[purpose] {
					t.Errorf("Check(%q) = %s by %q, want %s by %q", purpose, v.Reason, v.ChangeID, want, tt.by[purpose])
				}
			}
		})
	}
}

func TestApplyStoresEveryField(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st := NewStore(redistest.Start(t).Client(t), redistest.PrefixFor(t))
	c := validGrant()
	c.CapturedAt = c.CapturedAt.Add(123456 * time.Microsecond)
	if out, err := st.Apply(ctx, c); err != nil || !out.Applied {
		t.Fatalf("Apply = %+v, %v", out, err)
	}
	states, err := st.Lookup(ctx, []string{c.SubjectID, "nobody"})
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if _, ok := states["nobody"]; ok || len(states) != 1 {
		t.Fatalf("Lookup returned %d states, want only the stored subject", len(states))
	}
	want, _ := PurposeStateOf(c)
	if want.CapturedAt != t0.Add(123*time.Millisecond) {
		t.Fatalf("PurposeStateOf did not truncate to ms: %v", want.CapturedAt)
	}
	got := states[c.SubjectID]
	if got.SubjectID != c.SubjectID || !reflect.DeepEqual(got.Purposes, map[string]PurposeState{c.Purpose: want}) {
		t.Errorf("stored state %+v\nwant purpose %+v", got, want)
	}
	if !got.ErasedAt.IsZero() || got.ErasedBy != "" {
		t.Errorf("unexpected tombstone %v %q", got.ErasedAt, got.ErasedBy)
	}
}

func TestApplyRejectsInvalid(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rdb := redistest.Start(t).Client(t)
	st := NewStore(rdb, redistest.PrefixFor(t))
	c := validGrant()
	c.ChangeID = ""
	_, err := st.Apply(ctx, c)
	if !errors.Is(err, ErrInvalidChange) {
		t.Fatalf("Apply(invalid) = %v, want ErrInvalidChange", err)
	}
	if n, _ := rdb.Exists(ctx, st.Key(c.SubjectID)).Result(); n != 0 {
		t.Fatal("invalid change was stored")
	}
}

func TestCorruptStateFailsClosed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const subj = "subject-secret-9"
	tests := []struct {
		name, field, value string
	}{
		{"purpose not json", "ads", "garbage"},
		{"purpose unknown status", "ads", `{"s":"perhaps","c":"x","t":1}`},
		{"purpose without time", "ads", `{"s":"granted","c":"x"}`},
		{"tombstone not json", TombstoneField, "{"},
		{"unknown reserved field", "!future", `{"c":"x","t":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			st := NewStore(rdb, redistest.PrefixFor(t))
			if err := rdb.HSet(ctx, st.Key(subj), tt.field, tt.value).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := st.Lookup(ctx, []string{subj})
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Field != tt.field || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Lookup error = %v, want *CorruptError for field %q", err, tt.field)
			}
			if strings.Contains(err.Error(), subj) {
				t.Errorf("error %q leaks the subject id", err)
			}
		})
	}
	t.Run("apply over corrupt purpose", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t)
		st := NewStore(rdb, redistest.PrefixFor(t))
		rdb.HSet(ctx, st.Key(subj), "ads", "garbage")
		_, err := st.Apply(ctx, change("a", subj, "ads", ActionGrant, 1))
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Field != "ads" {
			t.Fatalf("Apply error = %v, want *CorruptError for ads", err)
		}
	})
	t.Run("erase over corrupt tombstone", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t)
		st := NewStore(rdb, redistest.PrefixFor(t))
		rdb.HSet(ctx, st.Key(subj), TombstoneField, "garbage")
		_, err := st.Apply(ctx, change("a", subj, "", ActionErase, 1))
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Field != TombstoneField {
			t.Fatalf("Apply error = %v, want *CorruptError for the tombstone", err)
		}
	})
}

func TestStoreRedisDown(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.Start(t)
	st := NewStore(redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1}), redistest.PrefixFor(t))
	srv.Stop()
	if _, err := st.Lookup(ctx, []string{"s"}); err == nil || errors.Is(err, ErrCorrupt) {
		t.Errorf("Lookup with Redis down = %v, want a transient error", err)
	}
	if _, err := st.Apply(ctx, change("a", "s", "ads", ActionGrant, 1)); err == nil || errors.Is(err, ErrCorrupt) {
		t.Errorf("Apply with Redis down = %v, want a transient error", err)
	}
	srv.Restart()
	if _, err := st.Apply(ctx, change("a", "s", "ads", ActionGrant, 1)); err != nil {
		t.Errorf("Apply after restart (script reloaded): %v", err)
	}
}

// countingHook counts the commands and pipelines a client sends.
type countingHook struct{ cmds, pipelines, pipelinedCmds atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines.Add(1)
		h.pipelinedCmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func TestLookupBatchIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.Start(t)
	prefix := redistest.PrefixFor(t)
	writer := NewStore(srv.Client(t), prefix)
	const n = 1000
	subjects := make([]string, 0, n+10)
	for i := range n {
		s := fmt.Sprintf("subject-%04d", i)
		subjects = append(subjects, s)
		if _, err := writer.Apply(ctx, change("c", s, "ads", ActionGrant, int64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		subjects = append(subjects, fmt.Sprintf("unknown-%d", i), subjects[i]) // absent ones and duplicates
	}

	rdb := srv.Client(t)
	// Open a pipeline connection first (go-redis keeps a pool for
	// pipelines): its handshake (HELLO, CLIENT SETINFO) is not part of the
	// lookup.
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { return p.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	hook := &countingHook{}
	rdb.AddHook(hook)
	states, err := NewStore(rdb, prefix).Lookup(ctx, subjects)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if len(states) != n {
		t.Errorf("Lookup returned %d states, want %d", len(states), n)
	}
	if p, c := hook.pipelines.Load(), hook.cmds.Load(); p != 1 || c != 0 {
		t.Errorf("Lookup used %d pipelines and %d single commands, want 1 and 0", p, c)
	}
	if got := hook.pipelinedCmds.Load(); got != n+10 {
		t.Errorf("pipeline held %d commands, want %d (one per distinct subject)", got, n+10)
	}
	if v := states["subject-0999"].Check("ads", t0); !v.Allowed {
		t.Errorf("subject-0999: %+v, want granted", v)
	}

	hook.pipelines.Store(0)
	if got, err := NewStore(rdb, prefix).Lookup(ctx, nil); err != nil || len(got) != 0 || hook.pipelines.Load() != 0 {
		t.Errorf("Lookup(nil) = %v, %v after %d pipelines; want empty, nil, no round trip", got, err, hook.pipelines.Load())
	}
}

// reference computes the state a set of changes must leave, without any
// order: per purpose the maximum change, kept only if newer than the maximum
// erasure. It is deliberately a different algorithm from the Lua script.
func reference(changes []Change) map[string]*State {
	type key struct{ subject, purpose string }
	best := map[key]Change{}
	erase := map[string]Change{}
	subjects := map[string]bool{}
	after := func(a, b Change) bool {
		return newer(a.CapturedAt.UnixMilli(), a.ChangeID, b.CapturedAt.UnixMilli(), b.ChangeID)
	}
	for _, c := range changes {
		subjects[c.SubjectID] = true
		if c.Action == ActionErase {
			if cur, ok := erase[c.SubjectID]; !ok || after(c, cur) {
				erase[c.SubjectID] = c
			}
			continue
		}
		k := key{c.SubjectID, c.Purpose}
		if cur, ok := best[k]; !ok || after(c, cur) {
			best[k] = c
		}
	}
	out := map[string]*State{}
	for s := range subjects {
		st := &State{SubjectID: s, Purposes: map[string]PurposeState{}}
		e, erased := erase[s]
		if erased {
			st.ErasedAt, st.ErasedBy = msTime(e.CapturedAt.UnixMilli()), e.ChangeID
		}
		for k, c := range best {
			if k.subject == s && (!erased || after(c, e)) {
				st.Purposes[k.purpose], _ = PurposeStateOf(c)
			}
		}
		if len(st.Purposes) > 0 || erased {
			out[s] = st
		}
	}
	return out
}

// TestConcurrentAppliersConverge applies the same set of changes in random
// orders from two goroutines with two separate clients, many times, and
// checks that the stored state always equals the reference.
func TestConcurrentAppliersConverge(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clients := []*redis.Client{srv.Client(t), srv.Client(t)}
	subjects := []string{"s1", "s2", "s3"}
	purposes := []string{"ads", "email", "analytics"}
	actions := []Action{ActionGrant, ActionDeny, ActionWithdraw, ActionGrant, ActionErase}
	iterations := 200
	if testing.Short() {
		iterations = 20
	}
	for it := range iterations {
		rng := rand.New(rand.NewPCG(uint64(it), 42))
		var changes []Change
		for i := range 40 {
			a := actions[rng.IntN(len(actions))]
			// Few distinct milliseconds, so ties on captured_at are common;
			// ids with mixed case exercise the byte-wise tie break.
			id := fmt.Sprintf("%c%02d", "aBcD"[rng.IntN(4)], i)
			c := change(id, subjects[rng.IntN(len(subjects))], purposes[rng.IntN(len(purposes))], a, int64(rng.IntN(6)))
			if a == ActionGrant && rng.IntN(3) == 0 {
				c.ExpiresAt = c.CapturedAt.Add(time.Hour)
				c.ExcludedCategories = []string{"user.health.*"}
			}
			changes = append(changes, c)
			if rng.IntN(5) == 0 {
				changes = append(changes, c) // delivered twice
			}
		}
		want := reference(changes)

		ctx := testCtx(t)
		prefix := redistest.PrefixFor(t)
		order := rng.Perm(len(changes))
		var wg sync.WaitGroup
		errs := make(chan error, len(clients))
		for w, rdb := range clients {
			st := NewStore(rdb, prefix)
			wg.Go(func() {
				for i := w; i < len(order); i += len(clients) {
					if _, err := st.Apply(ctx, changes[order[i]]); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("iteration %d: Apply: %v", it, err)
		}
		got, err := NewStore(clients[0], prefix).Lookup(ctx, subjects)
		if err != nil {
			t.Fatalf("iteration %d: Lookup: %v", it, err)
		}
		if !reflect.DeepEqual(got, want) {
			for _, s := range subjects {
				if !reflect.DeepEqual(got[s], want[s]) {
					t.Errorf("iteration %d, subject %s:\n got %+v\nwant %+v", it, s, got[s], want[s])
				}
			}
			t.FailNow()
		}
	}
}

func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	st := NewStore(redistest.Start(b).Client(b), redistest.PrefixFor(b))
	c := validGrant()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c.SubjectID = fmt.Sprintf("subject-%d", i%1000)
		c.CapturedAt = t0.Add(time.Duration(i) * time.Millisecond)
		if _, err := st.Apply(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup100(b *testing.B) {
	ctx := context.Background()
	st := NewStore(redistest.Start(b).Client(b), redistest.PrefixFor(b))
	subjects := make([]string, 100)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("subject-%d", i)
		for j, p := range []string{"ads", "email", "analytics"} {
			c := validGrant()
			c.SubjectID, c.Purpose, c.ChangeID = subjects[i], p, fmt.Sprint(j)
			if _, err := st.Apply(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		states, err := st.Lookup(ctx, subjects)
		if err != nil || len(states) != len(subjects) {
			b.Fatalf("Lookup = %d states, %v", len(states), err)
		}
	}
}

// TestOutboxOutlivesOvertaking: a withdrawal that replaced a grant owes a
// notice until the notice is acknowledged, whatever is stored later (finding
// 6 of issue 10).
func TestOutboxOutlivesOvertaking(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := testCtx(t)
	st := NewStore(srv.Client(t), redistest.PrefixFor(t))
	const subj = "subject-secret-9"
	for _, c := range []Change{
		change("g1", subj, "ads", ActionGrant, 0),
		change("w1", subj, "ads", ActionWithdraw, 10),
		change("g2", subj, "ads", ActionGrant, 20),
	} {
		if _, err := st.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	out, err := st.Apply(ctx, change("w1", subj, "ads", ActionWithdraw, 10))
	if err != nil {
		t.Fatal(err)
	}
	if !out.NoticeDue {
		t.Fatalf("redelivered w1 after g2 overtook it: %+v, want NoticeDue (its notice was never acknowledged)", out)
	}
}

// TestOutboxReasons checks which changes record a notice in the outbox, with
// which reason, that the first reason stays, and that AckNotice clears it.
func TestOutboxReasons(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	type step struct {
		c          Change
		incomplete bool
		due        NoticeReason // "" : no notice due
	}
	const subj = "subject-secret-11"
	g := func(id string, ms int64) Change { return change(id, subj, "ads", ActionGrant, ms) }
	w := func(id string, ms int64) Change { return change(id, subj, "ads", ActionWithdraw, ms) }
	d := func(id string, ms int64) Change { return change(id, subj, "ads", ActionDeny, ms) }
	e := func(id string, ms int64) Change { return change(id, subj, "", ActionErase, ms) }
	tests := []struct {
		name  string
		steps []step
	}{
		{"withdrawal of a grant", []step{{g("a", 0), false, ""}, {w("b", 1), false, NoticeGrantReplaced}, {w("b", 1), false, NoticeGrantReplaced}}},
		{"denial of a grant", []step{{g("a", 0), false, ""}, {d("b", 1), false, NoticeGrantReplaced}}},
		{"denial never asked, state complete", []step{{d("b", 1), false, ""}, {d("b", 1), false, ""}}},
		{"withdrawal of a denial", []step{{d("a", 0), false, ""}, {w("b", 1), false, ""}}},
		{"state incomplete", []step{{d("a", 0), false, ""}, {w("b", 1), true, NoticeStateIncomplete}}},
		{"redelivered while incomplete", []step{{w("b", 1), false, ""}, {w("b", 1), true, NoticeStateIncomplete}}},
		{"grants never owe", []step{{g("a", 0), true, ""}, {g("a", 0), true, ""}}},
		{"late withdrawal", []step{{g("a", 0), false, ""}, {g("c", 5), false, ""}, {w("b", 1), false, NoticeLate}}},
		{"overtaken keeps its first reason", []step{{g("a", 0), false, ""}, {w("b", 1), false, NoticeGrantReplaced}, {g("c", 5), false, ""},
			{w("b", 1), true, NoticeGrantReplaced}}},
		{"withdrawal older than the erasure", []step{{e("z", 5), false, NoticeErased}, {w("b", 1), false, NoticeLate}}},
		{"erasure", []step{{e("z", 5), false, NoticeErased}, {e("z", 5), false, NoticeErased}, {e("y", 1), false, NoticeLate}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			st := NewStore(rdb, redistest.PrefixFor(t))
			for i, s := range tt.steps {
				out, err := st.ApplyWith(ctx, s.c, ApplyOptions{StateIncomplete: s.incomplete})
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if out.NoticeDue != (s.due != "") || out.Notice.Reason != s.due {
					t.Fatalf("step %d (%s): NoticeDue %v reason %q, want %q", i, s.c.ChangeID, out.NoticeDue, out.Notice.Reason, s.due)
				}
				if !out.NoticeDue {
					continue
				}
				want := Notice{ChangeID: s.c.ChangeID, Action: s.c.Action, Purpose: s.c.Purpose, CapturedAt: s.c.CapturedAt.UTC(), Reason: s.due}
				if !reflect.DeepEqual(out.Notice, want) {
					t.Fatalf("step %d: notice %+v, want %+v", i, out.Notice, want)
				}
				if ttl := rdb.PTTL(ctx, st.OutboxKey(subj)).Val(); ttl <= 0 || ttl > NoticeMemory {
					t.Fatalf("step %d: outbox TTL %v, want (0, %v]", i, ttl, NoticeMemory)
				}
			}
			last := tt.steps[len(tt.steps)-1].c
			if err := st.AckNotice(ctx, subj, last.ChangeID); err != nil {
				t.Fatal(err)
			}
			if n := rdb.HExists(ctx, st.OutboxKey(subj), last.ChangeID).Val(); n {
				t.Fatal("AckNotice left the entry")
			}
		})
	}
}
