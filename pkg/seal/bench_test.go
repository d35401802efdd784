package seal

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkAppend1M appends 1,000,000 records of 200-byte values (leaf
// hash included) to an in-memory tree, per iteration.
func BenchmarkAppend1M(b *testing.B) {
	const n = 1_000_000
	key := []byte("subject-0001")
	value := make([]byte, 200)
	for b.Loop() {
		tree := NewTree(testTopic, 0, 0)
		for o := int64(0); o < n; o++ {
			value[0] = byte(o)
			if _, err := tree.Append(o, key, value); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/leaf")
}

// BenchmarkVerify100k verifies 100,000 records against 100 checkpoints,
// without and with the ledger's leaf hashes.
func BenchmarkVerify100k(b *testing.B) {
	signer, verifiers, _ := testKeys(b, KeyName, 1)
	rng := rand.New(rand.NewPCG(15, 16))
	f := newFixture(b, rng, 100_000, 100, signer, verifiers)
	for _, withLedger := range []bool{false, true} {
		name := "records"
		if withLedger {
			name = "records+ledger"
		}
		b.Run(name, func(b *testing.B) {
			in := Input{Topic: testTopic, Partition: f.partition, Records: RecordSlice(f.recs), Checkpoints: f.notes, Verifiers: verifiers}
			if withLedger {
				in.Ledger = f.ledger()
			}
			for b.Loop() {
				r, err := Verify(in)
				if err != nil || !r.OK() {
					b.Fatalf("%v\n%s", err, r)
				}
			}
		})
	}
}
