package seal_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/consentgate/consentgate/pkg/seal"
)

// The sealer's side (a consumer of consent.audit, one Tree per partition)
// and consentctl's (verify, prove), end to end.
func Example() {
	// Keys: once, with crypto/rand; here a fixed seed for the example.
	skey, vkey, _ := seal.GenerateKey(rand.NewChaCha8([32]byte{}))
	signer, _ := seal.ParseSigner([]byte(skey))
	verifiers, _ := seal.ParseVerifiers([]byte(vkey))

	// Sealer: append each record in offset order, checkpoint now and then.
	var records []seal.Record
	var checkpoints [][]byte
	tree := seal.NewTree("consent.audit", 0, 0)
	for o := int64(0); o < 10; o++ {
		r := seal.Record{Offset: o, Key: []byte(fmt.Sprint("subject-", o)), Value: []byte{byte(o)}}
		records = append(records, r)
		if _, err := tree.Append(r.Offset, r.Key, r.Value); err != nil { // the hash goes to the ledger
			panic(err)
		}
		if o == 3 || o == 8 {
			c, _ := tree.Checkpoint()
			note, _ := seal.Sign(signer, c) // to consent.audit.checkpoints and the ledger
			checkpoints = append(checkpoints, note)
		}
	}
	fmt.Printf("%s", checkpoints[1][:len("consentgate audit consent.audit/0\n9\n")])

	// consentctl verify: a copy where offset 5 was altered.
	records[5].Value = []byte("forged")
	report, _ := seal.Verify(seal.Input{Topic: "consent.audit", Partition: 0,
		Records: seal.RecordSlice(records), Checkpoints: checkpoints, Verifiers: verifiers})
	fmt.Print(report)

	// consentctl prove: offset 2 against the first checkpoint; verified
	// offline by whoever holds the record.
	proof, _ := tree.Prove(2, checkpoints[0], verifiers)
	encoded, _ := proof.Encode()
	_, c, err := seal.VerifyProof(encoded, &records[2], verifiers)
	fmt.Println("offset 2 in the tree of size", c.Size, "error:", err)
	// Output:
	// consentgate audit consent.audit/0
	// 9
	// FAILED consent.audit/0: 10 records from offset 0, 9 sealed by 2 of 2 checkpoints; 1 errors, 2 warnings
	// ERROR altered consent.audit/0 offsets 4..8 checkpoint #1: the records do not hash to the root of checkpoint #1 (size 9); the first altered record is in this range
	// WARNING unchecked consent.audit/0 checkpoint #0 and #1: no tree at hand has the root of the checkpoint of size 9
	// WARNING unsealed consent.audit/0 offset 9: 1 records after the last checkpoint are not sealed yet
	// offset 2 in the tree of size 4 error: <nil>
}
