package seal

import (
	"errors"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func classified(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrBadSignature) || errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrInconsistent)
}

// FuzzOpen: Open never panics, its errors are classified, and what it
// accepts is exactly the canonical text of the checkpoint it returns.
func FuzzOpen(f *testing.F) {
	signer, verifiers, _ := testKeys(f, KeyName, 1)
	witness, _, _ := testKeys(f, "witness", 2)
	for _, c := range []Checkpoint{
		{Topic: "consent.audit", Partition: 0, Base: 0, Size: 0},
		{Topic: "consent.audit", Partition: 7, Base: 12, Size: 1 << 40, Root: [32]byte{1, 2, 3}},
		{Topic: "a-b_c.d", Partition: 1<<31 - 1, Base: 1<<63 - 1, Size: 1},
	} {
		msg, err := Sign(signer, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
		n, _ := note.Open(msg, verifiers)
		co, _ := note.Sign(n, witness)
		f.Add(co)
	}
	f.Add([]byte("consentgate audit consent.audit/0\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nbase 0\n\n— consentgate-audit AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := Open(msg, verifiers)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		n, err := note.Open(msg, verifiers)
		if err != nil {
			t.Fatalf("Open accepted what note.Open refuses: %v", err)
		}
		text, err := c.Text()
		if err != nil || string(text) != n.Text {
			t.Fatalf("accepted text %q is not the canonical %q (%v)", n.Text, text, err)
		}
	})
}

// FuzzVerifyProof: VerifyProof never panics, its errors are classified,
// and a proof it accepts is of a leaf really in a tree our key signed.
func FuzzVerifyProof(f *testing.F) {
	signer, verifiers, _ := testKeys(f, KeyName, 1)
	rng := rand.New(rand.NewPCG(13, 14))
	fx := newFixture(f, rng, 20, 0, signer, verifiers)
	for _, size := range []int64{20, 13, 1} {
		msg := fx.sign(f, fx.tree, size)
		for _, i := range []int64{0, size / 2, size - 1} {
			p, err := fx.tree.Prove(fx.base+i, msg, verifiers)
			if err != nil {
				f.Fatal(err)
			}
			enc, _ := p.Encode()
			f.Add(enc)
		}
	}
	f.Add([]byte(`{"format":"consentgate-audit-inclusion-proof/v1"}`))
	f.Fuzz(func(t *testing.T, enc []byte) {
		p, c, err := VerifyProof(enc, nil, verifiers)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if c.Topic != testTopic || c.Partition != fx.partition || c.Base != fx.base || c.Size > fx.tree.Size() {
			t.Fatalf("accepted a proof against a checkpoint %+v we did not sign", c)
		}
		if root, _ := fx.tree.RootAt(c.Size); root != c.Root {
			t.Fatalf("accepted a checkpoint of a root we did not sign")
		}
		if leaf, err := fx.tree.LeafHashAt(p.Offset); err != nil || leaf != p.LeafHash {
			t.Fatalf("accepted a proof of leaf hash %x at offset %d, the leaf is %x", p.LeafHash, p.Offset, leaf)
		}
	})
}
