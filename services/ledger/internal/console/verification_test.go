package console

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/seal"
)

// TestVerificationStatesMatchAFullTree: the verification page, which
// grows a frontier tree and compares each checkpoint when the tree reaches
// its size, gives every checkpoint the state a tree of every size gives
// it: checkpoints of many sizes, sound and forged, several of one size,
// of another base, and beyond the ledger's records.
func TestVerificationStatesMatchAFullTree(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	s, err := ledger.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	const n = 150
	full := seal.NewTree("consent.audit", 0, 0)
	b := &ledger.Batch{}
	for off := int64(0); off < n; off++ {
		h := seal.LeafHash("consent.audit", 0, off, nil, []byte(fmt.Sprint(off)))
		if err := full.AppendLeafHash(off, h); err != nil {
			t.Fatal(err)
		}
		b.Audits = append(b.Audits, ledger.AuditEntry{Coord: ledger.Coord{Topic: "consent.audit", Offset: off, Time: t0}, LeafHash: h,
			Record: pageView("alice", fmt.Sprint("ev-", off), off, t0, dec("compliant.marketing", decision.Passed, "granted"))})
	}
	want := map[[2]int64]string{} // (size, first root byte) -> state
	add := func(base, size int64, root [32]byte, state string) {
		b.Checkpoints = append(b.Checkpoints, ledger.Checkpoint{AuditTopic: "consent.audit", Base: base, Size: size, Root: root, Note: []byte("n"),
			PublishedAt: t0.Add(time.Duration(len(b.Checkpoints)) * time.Second),
			Coord:       ledger.Coord{Topic: "consent.audit.checkpoints", Offset: int64(len(b.Checkpoints)), Time: t0}})
		want[[2]int64{size, int64(root[0])}] = state
	}
	for size := int64(0); size <= n+3; size++ {
		switch {
		case size > n:
			add(0, size, [32]byte{byte(size)}, cpMissing)
		case rng.IntN(4) == 0:
			continue
		default:
			root, err := full.RootAt(size)
			if err != nil {
				t.Fatal(err)
			}
			add(0, size, root, cpVerified)
			if rng.IntN(5) == 0 {
				forged := root
				forged[0] ^= 1
				add(0, size, forged, cpMismatch)
			}
		}
	}
	add(3, 7, [32]byte{0xaa}, cpOther)
	if err := s.Ingest(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, &fixture{store: s}, nil)
	pv, err := e.con.verifyPartition(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Records != n || pv.Verified || pv.Unsealed != 0 {
		t.Errorf("records %d, verified %v, unsealed %d", pv.Records, pv.Verified, pv.Unsealed)
	}
	if len(pv.Checkpoints) != len(want) {
		t.Fatalf("%d checkpoints shown, want %d", len(pv.Checkpoints), len(want))
	}
	for _, row := range pv.Checkpoints {
		if w := want[[2]int64{row.Size, int64(row.Root[0])}]; row.State != w {
			t.Errorf("checkpoint of base %d size %d: %q, want %q", row.Base, row.Size, row.State, w)
		}
	}
}
