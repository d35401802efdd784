package shred

import (
	"errors"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// The keys topic loses its records while an enforcer's ring runs (the
// topic deleted and created again, the cluster replaced by an empty one:
// here a broker without a data directory restarted). The ring's readers
// now sit past the partitions' end; Ready reports it, but Keys goes on
// handing out the keys it holds in memory, which are in no topic any more:
// ciphertext published under them can never be decrypted (a fresh ring,
// consentctl decrypt, the restarted enforcer all take the unknown key id
// for a destroyed one). "The key is written with acks=all before any
// ciphertext under it is published" no longer holds.
func TestReviewShredKeysServedAfterTheTopicLostThem(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	r := openRing(t, ringConfig(b, kek))
	const subject = "subject-before-loss-1"
	mustKeys(t, r, subject)

	b.Restart() // in memory: every topic comes back empty

	var (
		ks  map[string]*DataKey
		err error
	)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ks, err = r.Keys(tctx(t), []string{subject})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return // refused: nothing published under a key the topic lacks
	}
	c := encrypt(t, ks[subject], "before@example.com", false)
	fresh := openRing(t, ringConfig(b, kek))
	if _, derr := fresh.DecryptString(tctx(t), c); errors.Is(derr, ErrErased) {
		t.Fatalf("after the keys topic lost its records the ring still gave out %v (ready: %v); "+
			"its ciphertext is under a key no topic holds and reads as erased for ever", ks[subject], r.Ready())
	}
}
