package consent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/redistest"
)

var tp0 = TopicPartition{"consent.changes", 0}

func grantAt(subject string, t int64) Change {
	return Change{ChangeID: "g-" + subject + "-" + time.UnixMilli(t).Format("150405.000"), SubjectID: subject, Purpose: "marketing",
		Action: ActionGrant, LegalBasis: "CONSENT", Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(t)}
}

func freshAt(committed Offsets) *Freshness {
	f := NewFreshness(time.Minute)
	f.Set(committed, time.Now(), nil)
	return f
}

// markReplayed is what consent-sync does after a replay that reached ends.
func markReplayed(t *testing.T, st *Store, ends Offsets) {
	t.Helper()
	ctx := context.Background()
	token, err := st.BeginReplay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := st.SetWatermark(ctx, token, ends); err != nil || !ok {
		t.Fatalf("SetWatermark: %v %v", ok, err)
	}
}

func TestWatermarkGatesLookups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	f := NewFreshness(time.Minute)
	st := NewStore(srv.Client(t), redistest.PrefixFor(t)).RequireFresh(f)

	if _, err := st.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Fatalf("lookup before the committed offsets are known: %v, want ErrCold", err)
	}
	f.Set(Offsets{tp0: 5}, time.Now(), nil)
	if _, err := st.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Fatalf("lookup without a watermark: %v, want ErrCold", err)
	}
	markReplayed(t, st, Offsets{tp0: 5})
	if _, err := st.Lookup(ctx, []string{"s1"}); err != nil {
		t.Fatalf("lookup with W = committed: %v", err)
	}
	f.Set(Offsets{tp0: 6}, time.Now(), nil)
	if _, err := st.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Fatalf("lookup with W below committed: %v, want ErrCold", err)
	}
	if err := st.Advance(ctx, []Range{{tp0, 5, 8}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lookup(ctx, []string{"s1"}); err != nil {
		t.Fatalf("lookup after Advance past committed: %v", err)
	}
	// A view of consent-sync's progress that cannot be refreshed vouches
	// for nothing.
	f.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := st.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Fatalf("lookup with a stale committed view: %v, want ErrCold", err)
	}
	// Without RequireFresh nothing is gated.
	if _, err := NewStore(srv.Client(t), "other:").Lookup(ctx, []string{"s1"}); err != nil {
		t.Fatal(err)
	}
}

func TestAdvanceIsContiguous(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	st := NewStore(srv.Client(t), redistest.PrefixFor(t))
	wm := func() NodeWatermark {
		t.Helper()
		n, err := st.Watermarks(ctx)
		if err != nil || len(n) != 1 {
			t.Fatalf("Watermarks: %v %v", n, err)
		}
		return n[0]
	}
	// Without a watermark, batches raise A only.
	if err := st.Advance(ctx, []Range{{tp0, 0, 10}}); err != nil {
		t.Fatal(err)
	}
	if n := wm(); n.Valid || n.W[tp0] != 0 || n.A[tp0] != 10 {
		t.Fatalf("after Advance without a watermark: %+v", n)
	}
	// A replay that ended at 4 while the live consumer had applied up to
	// 10 leaves W at 10.
	markReplayed(t, st, Offsets{tp0: 4})
	if n := wm(); !n.Valid || n.W[tp0] != 10 {
		t.Fatalf("after the replay: %+v, want W 10", n)
	}
	// A batch that leaves a gap does not move W.
	if err := st.Advance(ctx, []Range{{tp0, 12, 20}}); err != nil {
		t.Fatal(err)
	}
	if n := wm(); n.W[tp0] != 10 || n.A[tp0] != 20 {
		t.Fatalf("after a batch with a gap: %+v, want W 10, A 20", n)
	}
	if err := st.Advance(ctx, []Range{{tp0, 10, 12}}); err != nil {
		t.Fatal(err)
	}
	if n := wm(); n.W[tp0] != 12 {
		t.Fatalf("after the contiguous batch: %+v, want W 12", n)
	}
	// Redelivered batches never move W back.
	if err := st.Advance(ctx, []Range{{tp0, 0, 3}}); err != nil {
		t.Fatal(err)
	}
	if n := wm(); n.W[tp0] != 12 || n.A[tp0] != 20 {
		t.Fatalf("after a redelivered batch: %+v", n)
	}
}

// A server restored from an older snapshot holds the consent state and the
// watermark of the snapshot: the lookup sees that it is behind what
// consent-sync committed since and fails closed, where the old warm marker
// (present in the snapshot) let it decide on the old state.
func TestWatermarkOlderSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	prefix := redistest.PrefixFor(t)
	st := NewStore(srv.Client(t), prefix)
	if _, err := st.Apply(ctx, grantAt("s1", 1000)); err != nil {
		t.Fatal(err)
	}
	markReplayed(t, st, Offsets{tp0: 1})
	srv.Snapshot(t)
	// After the snapshot: a withdrawal at offset 1 is applied and committed.
	w := Change{ChangeID: "w1", SubjectID: "s1", Purpose: "marketing", Action: ActionWithdraw, LegalBasis: "CONSENT", Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(2000)}
	if _, err := st.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := st.Advance(ctx, []Range{{tp0, 1, 2}}); err != nil {
		t.Fatal(err)
	}
	gated := NewStore(srv.Client(t), prefix).RequireFresh(freshAt(Offsets{tp0: 2}))
	if _, err := gated.Lookup(ctx, []string{"s1"}); err != nil {
		t.Fatalf("lookup before the restore: %v", err)
	}
	srv.Restart() // comes back from the snapshot: the grant, not the withdrawal
	got, err := NewStore(srv.Client(t), prefix).Lookup(ctx, []string{"s1"})
	if err != nil || got["s1"] == nil || got["s1"].Purposes["marketing"].Status != StatusGranted {
		t.Fatalf("the restored server should hold the pre-withdrawal grant (test premise): %v %v", got, err)
	}
	if _, err := gated.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Fatalf("lookup after a restore from an older snapshot: %v, want ErrCold", err)
	}
	srv.DropSnapshot(t)
	srv.Restart()
	if _, err := gated.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Fatalf("lookup after an empty restart: %v, want ErrCold", err)
	}
}

// One shard of a real Redis Cluster restarts empty while the others keep
// their data (and the old marker could live on one of them).
func TestWatermarkClusterShardLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := redistest.StartCluster(t, 3)
	rdb := cl.Client(t)
	st := NewStore(rdb, redistest.PrefixFor(t))
	keys, err := st.WatermarkKeys(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("WatermarkKeys: %v %v, want one per master", keys, err)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		m, err := rdb.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		seen[m.Options().Addr] = true
	}
	if len(seen) != 3 {
		t.Fatalf("watermark keys live on %d masters, want 3: %v", len(seen), seen)
	}
	markReplayed(t, st, Offsets{tp0: 7})
	gated := NewStore(rdb, st.prefix).RequireFresh(freshAt(Offsets{tp0: 7}))
	if _, err := gated.Lookup(ctx, []string{"a", "b", "c"}); err != nil {
		t.Fatalf("lookup on a warm cluster: %v", err)
	}
	cl.Nodes[1].Restart()
	cl.WaitOK(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := gated.Lookup(ctx, []string{"a"})
		if errors.Is(err, ErrCold) {
			break
		}
		if err == nil || time.Now().After(deadline) {
			t.Fatalf("lookup after one shard restarted empty: %v, want ErrCold", err)
		}
		time.Sleep(100 * time.Millisecond) // the client reconnects to the restarted node
	}
	ns, err := st.Watermarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	valid := 0
	for _, n := range ns {
		if n.Valid {
			valid++
		}
	}
	if valid != 2 {
		t.Fatalf("%d of 3 nodes have a valid watermark, want 2", valid)
	}
}

// A node that restarts during a replay loses the token: SetWatermark does not
// vouch for what it lost.
func TestSetWatermarkNeedsToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	st := NewStore(srv.Client(t), redistest.PrefixFor(t))
	token, err := st.BeginReplay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	if ok, err := st.SetWatermark(ctx, token, Offsets{tp0: 3}); err != nil || ok {
		t.Fatalf("SetWatermark after a restart: %v %v, want false", ok, err)
	}
	if ok, err := st.SetWatermark(ctx, "someone-else", Offsets{tp0: 3}); err != nil || ok {
		t.Fatalf("SetWatermark with another token: %v %v, want false", ok, err)
	}
	ns, err := st.Watermarks(ctx)
	if err != nil || ns[0].Valid {
		t.Fatalf("watermark after failed marks: %+v %v", ns, err)
	}
}

func TestTagForSlot(t *testing.T) {
	for _, slot := range []int{0, 1, 5460, 5461, 10922, 16383} {
		tag := tagForSlot(slot)
		if got := int(crc16([]byte(tag)) % clusterSlots); got != slot {
			t.Errorf("tag %q maps to slot %d, want %d", tag, got, slot)
		}
	}
	// Redis's own example: CLUSTER KEYSLOT "123456789" is 12739 (0x31C3).
	if crc16([]byte("123456789")) != 0x31C3 {
		t.Errorf("crc16 is not CRC-16/XMODEM")
	}
	var _ redis.UniversalClient = (*redis.ClusterClient)(nil)
}

// The enforcer's view of consent-sync's committed offsets lags by up to a
// refresh. A server restored from a snapshot during that lag holds a
// watermark equal to the committed offsets the enforcer last read, so the
// comparison alone passes the restored (pre-withdrawal) state: the lookup
// must also see that the server is not the run that set the watermark.
func TestWatermarkRestartCaughtWithAStaleCommittedView(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	prefix := redistest.PrefixFor(t)
	st := NewStore(srv.Client(t), prefix)
	if _, err := st.Apply(ctx, grantAt("s1", 1000)); err != nil {
		t.Fatal(err)
	}
	markReplayed(t, st, Offsets{tp0: 1})
	srv.Snapshot(t)
	gated := NewStore(srv.Client(t), prefix).RequireFresh(freshAt(Offsets{tp0: 1})) // the view before the next commit
	if _, err := gated.Lookup(ctx, []string{"s1"}); err != nil {
		t.Fatalf("lookup before the restore: %v", err)
	}
	srv.Restart() // from the snapshot
	if got, err := gated.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Fatalf("lookup after a restore, with a committed view the restored watermark meets: %v %v, want ErrCold", got, err)
	}
	// consent-sync's replay marks the new run; lookups resume.
	markReplayed(t, st, Offsets{tp0: 1})
	if _, err := gated.Lookup(ctx, []string{"s1"}); err != nil {
		t.Fatalf("lookup after the replay: %v", err)
	}
}
