package shred

import (
	"errors"
	"testing"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// KeysKnowing checks the caller's erasure only against a marker the ring
// has read: a subject whose consent state knows erasure e1 but whose ring
// has no marker e1 yet (consent-sync writes the tombstone to Redis first
// and the marker after it; the ring reads it some time later; or the
// marker never came) is handed its key from before the erasure. Here the
// subject's state knows e1 and holds a grant newer than e1 (a late ERASE:
// captured before a grant it arrived after), so the enforcer encrypts
// consented data under the pre-erasure key; when the marker e1 is read,
// that key dies, and with it data the subject consented to after its
// erasure. Had the marker never been written, the pre-erasure key (and all
// the data under it the erasure was meant to reach) would live on.
func TestReview2ShredKeyFromBeforeAKnownErasureIsHandedOut(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	enforcer := openRing(t, ringConfig(b, kek))
	syncer := openRing(t, ringConfig(b, nil))
	const subject = "subject-late-erase-1"
	before := mustKeys(t, enforcer, subject)[subject]

	// The consent state now holds erasure e1 (and a newer grant): the
	// enforcer asks, knowing e1; the marker is not in the topic yet.
	ks, err := enforcer.KeysKnowing(tctx(t), map[string]Erasure{subject: testErasure("e1")})
	if err != nil {
		return // refused until the ring has read e1: nothing encrypted under a doomed key
	}
	got := ks[subject]
	c := encrypt(t, got, "consented-after-erasure@example.com", false)
	if err := syncer.Erase(tctx(t), subject, testErasure("e1")); err != nil {
		t.Fatal(err)
	}
	fresh := openRing(t, ringConfig(b, kek))
	if _, derr := fresh.DecryptString(tctx(t), c); errors.Is(derr, ErrErased) {
		t.Fatalf("KeysKnowing(erased by e1) returned the key from before e1 (same key: %v) while the ring had not read marker e1: "+
			"data encrypted for the subject's grant after e1 is unreadable once the marker is read", got.ID == before.ID)
	}
}
