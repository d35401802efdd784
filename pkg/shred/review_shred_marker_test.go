package shred

import (
	"errors"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// A ring that has read a subject's erasure marker still hands out a brand
// new data key for that subject (no grant after the erasure is known to
// the ring: Keys takes none). The new key sits at a higher offset than the
// marker, so the marker does not kill it and no shredder ever destroys it:
// whatever the enforcer encrypts under it stays readable for ever. The
// enforcer's only guard is its consent lookup (MayHaveKey), which is read
// before Keys and may predate the erasure (lookup, then consent-sync
// applies the ERASE and writes the marker, then Keys; or the consent
// cache's invalidation not yet delivered). README: "An erased subject gets
// no new key".
func TestReviewShredKeyMadeAfterAnErasureMarkerSurvivesIt(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	enforcer := openRing(t, ringConfig(b, kek))
	sync := openRing(t, ringConfig(b, nil))
	const subject = "subject-erased-4711"

	c1 := encrypt(t, mustKeys(t, enforcer, subject)[subject], "alice@example.com", false)
	if err := sync.Erase(tctx(t), subject, testErasure("chg-erase-1")); err != nil {
		t.Fatal(err)
	}
	// Wait until the enforcer's ring has read the marker.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := enforcer.DecryptString(tctx(t), c1)
		if errors.Is(err, ErrErased) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the enforcer's ring never read the marker: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The consent lookup of this batch was read before the erasure: the
	// enforcer asks for the subject's key.
	ks, err := enforcer.Keys(tctx(t), []string{subject})
	if err != nil || ks[subject] == nil {
		return // refused: nothing published under a key the erasure misses
	}
	c2 := encrypt(t, ks[subject], "alice@example.com", false)

	reader := openRing(t, ringConfig(b, kek))
	if got, err := reader.DecryptString(tctx(t), c2); err == nil {
		t.Fatalf("a ring that had read the subject's erasure marker gave it a new data key %v, which the marker does not kill: "+
			"ciphertext published after the erasure decrypts for ever (%q)", ks[subject], got)
	}
}
