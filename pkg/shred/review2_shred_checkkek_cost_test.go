package shred

import (
	"testing"
	"time"
)

// KeysKnowing calls CheckKEK whenever a batch needs a new key (every batch
// with a subject seen for the first time), and CheckKEK counts the KEK id of
// every alive key in the ring, holding the ring's mutex (readers, Key,
// decryptions and other Keys calls wait). Its cost grows with the size of
// the keys topic: with a million subjects, some 0.4-0.5 s per such batch here
// (with or without -race), where the answer (this KEK holds the id of the
// topic's keys) does not change from one batch to the next.
func TestReview2ShredCheckKEKCostGrowsWithTheKeysTopic(t *testing.T) {
	kek := testKEK(t)
	id := kek.IDs()[0]
	cost := func(n int) time.Duration {
		r := &Ring{cfg: RingConfig{KEK: kek}, keys: make(map[[16]byte]*keyRec, n)}
		for i := 0; i < n; i++ {
			var k [16]byte
			k[0], k[1], k[2], k[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
			r.keys[k] = &keyRec{kekID: id}
		}
		best := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			if err := r.CheckKEK(); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	small, large := cost(1000), cost(1_000_000)
	if large > 100*small+10*time.Millisecond {
		t.Fatalf("CheckKEK takes %v with 1000 alive keys and %v with 1,000,000, under the ring's mutex, on every batch that makes a key",
			small, large)
	}
}
