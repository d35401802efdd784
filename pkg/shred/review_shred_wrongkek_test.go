package shred

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// An enforcer instance started with another KEK than the rest (a file
// made anew on one host, the old key dropped from the file too early) reads
// the keys topic to its end and reports ready, although it can unwrap none
// of the keys there; and it goes on to create keys for new subjects under
// its own KEK. Every other instance then fails on those subjects for ever
// (Keys errors: their batches are retried without end), and every
// consumer's decryption with the deployment's KEK fails: ciphertext has
// been published under keys that only a stray KEK opens. Nothing at start
// compares the KEK ids in the topic with the ones the process holds.
func TestReviewShredRingWithAForeignKEKIsReadyAndWritesKeys(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	good := openRing(t, ringConfig(b, testKEK(t)))
	mustKeys(t, good, "subject-existing-1", "subject-existing-2")

	stray := openRing(t, ringConfig(b, testKEK(t))) // openRing checks Ready: nil
	ks, err := stray.Keys(tctx(t), []string{"subject-new-1"})
	if err != nil {
		return // refused: nothing written under the stray KEK
	}
	c := encrypt(t, ks["subject-new-1"], "new@example.com", false)

	// The deployment's instances (once they have read the stray key) and
	// consumers.
	if err := good.WaitCaughtUp(tctx(t)); err != nil {
		t.Fatal(err)
	}
	_, kerr := good.Keys(tctx(t), []string{"subject-new-1"})
	_, derr := openRing(t, ringConfig(b, good.cfg.KEK)).DecryptString(tctx(t), c)
	t.Fatalf("a ring whose KEK unwraps none of the topic's keys was ready and wrote a key for a new subject: "+
		"the other instances' Keys for it fail (%v) and its ciphertext does not decrypt with the deployment's KEK (%v)", kerr, derr)
}
