package consent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/redistest"
)

// eventually retries f while the client reconnects to a restarted server.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func withdrawAt(subject, id string, t int64) Change {
	return Change{ChangeID: id, SubjectID: subject, Purpose: "marketing", Action: ActionWithdraw, LegalBasis: "CONSENT",
		Source: "test", NoticeVersion: "v1", CapturedAt: time.UnixMilli(t)}
}

// Redis acknowledges a write and then loses it (a crash with AOF
// appendfsync everysec, a restart from the last RDB, a failover to a replica
// that had not received it) while consent-sync is in the middle of a batch.
// The watermark, written before the batch, is not lost, so it is still
// contiguous with the batch, and Advance raised it over the lost write: the
// enforcer then decided on the grant the lost withdrawal ended.
func TestAdvanceAfterRestartMidBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	prefix := redistest.PrefixFor(t)
	st := NewStore(srv.Client(t), prefix)
	if _, err := st.Apply(ctx, grantAt("s1", 1000)); err != nil {
		t.Fatal(err)
	}
	markReplayed(t, st, Offsets{tp0: 10})
	srv.Snapshot(t) // what the server will come back with

	// The batch [10, 12): offset 10 withdraws s1's grant, offset 11 is
	// about s2. Between them the server restarts and loses offset 10.
	if _, err := st.Apply(ctx, withdrawAt("s1", "w1", 2000)); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	eventually(t, "apply offset 11", func() error { _, err := st.Apply(ctx, grantAt("s2", 3000)); return err })
	eventually(t, "advance", func() error { return st.Advance(ctx, []Range{{tp0, 10, 12}}) })

	// consent-sync commits 12.
	gated := NewStore(srv.Client(t), prefix).RequireFresh(freshAt(Offsets{tp0: 12}))
	got, err := gated.Lookup(ctx, []string{"s1"})
	if errors.Is(err, ErrCold) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Fatalf("lookup after a restart lost offset 10 of the batch: status %q (the withdrawn grant), want ErrCold",
		got["s1"].Purposes["marketing"].Status)
}

// A replay's token is written at its start; a snapshot taken during the
// replay holds it. A server that comes back from that snapshot has lost the
// replay's later writes but still holds the token, so SetWatermark marked
// it complete.
func TestSetWatermarkAfterRestoreWithToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	prefix := redistest.PrefixFor(t)
	st := NewStore(srv.Client(t), prefix)

	token, err := st.BeginReplay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, grantAt("s1", 1000)); err != nil { // offset 0
		t.Fatal(err)
	}
	srv.Snapshot(t)
	if _, err := st.Apply(ctx, withdrawAt("s1", "w1", 2000)); err != nil { // offset 1, lost
		t.Fatal(err)
	}
	srv.Restart()
	eventually(t, "apply offset 2", func() error { _, err := st.Apply(ctx, grantAt("s2", 3000)); return err })
	var ok bool
	eventually(t, "set watermark", func() error { ok, err = st.SetWatermark(ctx, token, Offsets{tp0: 3}); return err })
	if ok {
		t.Fatal("SetWatermark after the server came back from a snapshot taken during the replay: true, want false (offset 1 is lost)")
	}
	gated := NewStore(srv.Client(t), prefix).RequireFresh(freshAt(Offsets{tp0: 3}))
	if _, err := gated.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Fatalf("lookup: %v, want ErrCold", err)
	}
}

// Two consent-sync instances (scaled out in one group) both see a node
// behind and both replay. Each BeginReplay overwrote the other's token, so
// the first to finish found "the node lost its data", replayed again from
// the beginning and overwrote the other's token in turn: with replays of
// similar length neither ever marked the node, and the enforcers stayed
// paused for good.
func TestConcurrentReplaysBothMark(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	st := NewStore(srv.Client(t), redistest.PrefixFor(t))
	a, err := st.BeginReplay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.BeginReplay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := st.SetWatermark(ctx, a, Offsets{tp0: 5}); err != nil || !ok {
		t.Fatalf("SetWatermark of the first replay while a second one runs: %v %v, want true (nothing was lost)", ok, err)
	}
	if ok, err := st.SetWatermark(ctx, b, Offsets{tp0: 6}); err != nil || !ok {
		t.Fatalf("SetWatermark of the second replay: %v %v, want true", ok, err)
	}
	ns, err := st.Watermarks(ctx)
	if err != nil || !ns[0].Valid || ns[0].W[tp0] != 6 {
		t.Fatalf("watermark: %+v %v, want valid, W 6", ns, err)
	}
}

// After a restore from an older snapshot, the node's watermark on the
// partition of the batch being applied can still cover the batch's first
// offset while the partition of the subject's earlier grant lost changes (a
// subject's changes are on several partitions after partitions were added,
// or on several consent topics). StateGeneration looked only at the batch's
// partitions, called the state complete, and the withdrawal, finding no
// grant, owed no notice; the replay then ignored the older grant.
func TestStateGenerationAfterRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	st := NewStore(srv.Client(t), redistest.PrefixFor(t))
	tp1 := TopicPartition{tp0.Topic, 1}
	markReplayed(t, st, Offsets{tp0: 0, tp1: 0})
	srv.Snapshot(t)
	if _, err := st.Apply(ctx, grantAt("s1", 1000)); err != nil { // p0 offset 0, lost
		t.Fatal(err)
	}
	if err := st.Advance(ctx, []Range{{tp0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	srv.Restart()

	batch := []Range{{tp1, 0, 1}} // p1 offset 0: s1 withdraws
	var gen string
	eventually(t, "state generation", func() (err error) { gen, err = st.StateGeneration(ctx, batch); return err })
	o, err := st.ApplyWith(ctx, withdrawAt("s1", "w1", 2000), ApplyOptions{StateIncomplete: gen == ""})
	if err != nil {
		t.Fatal(err)
	}
	if !o.NoticeDue {
		t.Fatalf("withdrawal applied on a node restored from an older snapshot (StateGeneration %q): no notice owed; "+
			"the replay will ignore the older grant and no notice is ever published", gen)
	}
}
