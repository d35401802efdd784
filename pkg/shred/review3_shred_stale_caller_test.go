package shred

import (
	"errors"
	"testing"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// KeysKnowing hands a caller any key made knowing at least the caller's
// erasure (k.known >= want), so a caller whose consent state is OLDER
// than an erasure gets a key made knowing that erasure, which the
// erasure's marker does not kill.
//
// A late ERASE e1 (captured before a grant G it arrived after) is in the
// consent store; consent-sync has not written marker e1 yet (it applies to
// Redis first, then marks). Enforcer A's fresh state knows e1 (and G), so
// it makes key K(e1). Enforcer B decides on a cached state from before e1
// (it still holds the purpose grant e1 deleted) and asks knowing no
// erasure: it gets K(e1) (the newest key that knows "at least nothing"),
// and encrypts data the erasure was meant to reach. Marker e1 then kills
// only keys made knowing less than e1: K(e1) lives on, and the ciphertext
// decided on pre-erasure state still decrypts after the erasure. The
// window of "an enforcer that has not read the marker" is meant to lose
// data, never leak it (pkg/shred doc).
func TestReview3ShredStaleCallerGetsAKeyTheErasureSpares(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	enforcerA := openRing(t, ringConfig(b, kek))
	enforcerB := openRing(t, ringConfig(b, kek))
	syncer := openRing(t, ringConfig(b, nil))
	const subject = "subject-stale-caller-1"
	e1 := testErasure("e1")

	// Before e1: the subject's key, made knowing no erasure.
	_ = mustKeys(t, enforcerB, subject)

	// A knows e1 (fresh state); the marker is not written yet.
	ka, err := enforcerA.KeysKnowing(tctx(t), map[string]Erasure{subject: e1})
	if err != nil {
		t.Fatal(err)
	}
	if err := enforcerB.WaitCaughtUp(tctx(t)); err != nil {
		t.Fatal(err)
	}

	// B's state predates e1: it knows no erasure.
	kb, err := enforcerB.Keys(tctx(t), []string{subject})
	if errors.Is(err, ErrStaleErasure) {
		return // refused: fine
	}
	if err != nil {
		t.Fatal(err)
	}
	c := encrypt(t, kb[subject], "decided-on-pre-erasure-state@example.com", false)

	if err := syncer.Erase(tctx(t), subject, e1); err != nil {
		t.Fatal(err)
	}
	fresh := openRing(t, ringConfig(b, kek))
	if got, derr := fresh.DecryptString(tctx(t), c); derr == nil {
		t.Fatalf("a caller knowing no erasure was handed key %x made knowing e1 (A's key: %v); the ciphertext it made "+
			"for a decision on pre-erasure state still decrypts after marker e1 (%d bytes): the erasure missed it",
			kb[subject].ID, kb[subject].ID == ka[subject].ID, len(got))
	} else if !errors.Is(derr, ErrErased) {
		t.Fatal(derr)
	}
}
