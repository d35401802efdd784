package seal

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestProveEveryLeafAgainstEveryLaterCheckpoint: a proof of every sealed
// record verifies offline against every checkpoint that covers it, with the
// record's bytes and without; it fails for a modified record.
func TestProveEveryLeafAgainstEveryLaterCheckpoint(t *testing.T) {
	signer, verifiers, _ := testKeys(t, KeyName, 1)
	rng := rand.New(rand.NewPCG(9, 10))
	for range 8 {
		f := newFixture(t, rng, 1+rng.IntN(60), 1+rng.IntN(5), signer, verifiers)
		for k, msg := range f.notes {
			size := f.sizes[k]
			for i := range size {
				rec := f.recs[i]
				p, err := f.tree.Prove(rec.Offset, msg, verifiers)
				if err != nil {
					t.Fatal(err)
				}
				enc, err := p.Encode()
				if err != nil {
					t.Fatal(err)
				}
				got, c, err := VerifyProof(enc, &rec, verifiers)
				if err != nil {
					t.Fatalf("leaf %d of %d: %v", i, size, err)
				}
				if c.Size != size || got.Offset != rec.Offset || got.Index != i {
					t.Fatalf("VerifyProof = %+v, %+v", got, c)
				}
				if _, _, err := VerifyProof(enc, nil, verifiers); err != nil {
					t.Fatalf("leaf %d of %d without the record: %v", i, size, err)
				}
				for _, bad := range modifiedRecords(rec) {
					if _, _, err := VerifyProof(enc, &bad, verifiers); !errors.Is(err, ErrInconsistent) {
						t.Fatalf("a modified record %+v verifies: %v", bad, err)
					}
				}
			}
			// Offsets outside the checkpoint get no proof.
			for _, o := range []int64{f.base - 1, f.base + size} {
				if _, err := f.tree.Prove(o, msg, verifiers); err == nil {
					t.Fatalf("a proof of offset %d against a checkpoint of %d..%d", o, f.base, f.base+size-1)
				}
			}
		}
	}
}

func modifiedRecords(r Record) []Record {
	var out []Record
	v := append(bytes.Clone(r.Value), 'x')
	out = append(out, Record{r.Offset, r.Key, v})
	out = append(out, Record{r.Offset + 1, r.Key, r.Value})
	if r.Key == nil {
		out = append(out, Record{r.Offset, []byte{}, r.Value})
	} else {
		out = append(out, Record{r.Offset, nil, r.Value})
	}
	if r.Value == nil {
		out = append(out, Record{r.Offset, r.Key, []byte{}})
	} else if len(r.Value) > 0 {
		v := bytes.Clone(r.Value)
		v[0] ^= 0x80
		out = append(out, Record{r.Offset, r.Key, v})
	}
	return out
}

func TestVerifyProofRejectsTampering(t *testing.T) {
	signer, verifiers, _ := testKeys(t, KeyName, 1)
	other, _, _ := testKeys(t, KeyName, 5)
	rng := rand.New(rand.NewPCG(11, 12))
	f := newFixture(t, rng, 40, 0, signer, verifiers)
	msg := f.sign(t, f.tree, 40)
	rec := f.recs[17]
	p, err := f.tree.Prove(rec.Offset, msg, verifiers)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := p.Encode()
	if _, _, err := VerifyProof(enc, &rec, verifiers); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(enc), string(rec.Key)) && len(rec.Key) > 0 {
		t.Fatal("the proof shows the record's key")
	}
	edit := func(change func(p *Proof)) []byte {
		q := *p
		q.Hashes = append([]tlog.Hash{}, p.Hashes...)
		change(&q)
		b, err := q.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c, _ := Open(msg, verifiers)
	byOther, _ := Sign(other, c)
	c2 := c
	c2.Root[0] ^= 1
	wrongRoot, _ := Sign(signer, c2)
	for _, tc := range []struct {
		name string
		enc  []byte
		want error
	}{
		{"a proof hash changed", edit(func(q *Proof) { q.Hashes[0][3] ^= 1 }), ErrInconsistent},
		{"a proof hash dropped", edit(func(q *Proof) { q.Hashes = q.Hashes[1:] }), ErrInconsistent},
		{"another index", edit(func(q *Proof) { q.Index++; q.Offset++ }), ErrInconsistent},
		{"index and offset disagree", edit(func(q *Proof) { q.Index++ }), ErrInconsistent},
		{"another tree size", edit(func(q *Proof) { q.TreeSize-- }), ErrInconsistent},
		{"another leaf hash", edit(func(q *Proof) { q.LeafHash[0] ^= 1 }), ErrInconsistent},
		{"another partition", edit(func(q *Proof) { q.Partition++ }), ErrInconsistent},
		{"checkpoint by another key", edit(func(q *Proof) { q.Checkpoint = string(byOther) }), ErrUnknownKey},
		{"checkpoint of another root", edit(func(q *Proof) { q.Checkpoint = string(wrongRoot) }), ErrInconsistent},
		{"checkpoint text altered", edit(func(q *Proof) { q.Checkpoint = strings.Replace(q.Checkpoint, "\n40\n", "\n41\n", 1) }), ErrBadSignature},
		{"another format", edit(func(q *Proof) { q.Format = "v2" }), ErrMalformed},
		{"an unknown field", bytes.Replace(enc, []byte(`{`), []byte(`{"x":1,`), 1), ErrMalformed},
		{"data after the proof", append(bytes.Clone(enc), "{}"...), ErrMalformed},
		{"not JSON", []byte("proof"), ErrMalformed},
		{"too large", bytes.Repeat([]byte(" "), MaxProofSize+1), ErrMalformed},
	} {
		if _, _, err := VerifyProof(tc.enc, &rec, verifiers); !errors.Is(err, tc.want) {
			t.Errorf("%s: VerifyProof = %v, want %v", tc.name, err, tc.want)
		}
	}
	// The tree refuses to prove against a checkpoint it disagrees with.
	if _, err := f.tree.Prove(rec.Offset, wrongRoot, verifiers); !errors.Is(err, ErrInconsistent) {
		t.Errorf("Prove against a checkpoint of another root = %v", err)
	}
	if _, err := f.tree.Prove(rec.Offset, byOther, verifiers); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Prove against a checkpoint by another key = %v", err)
	}
	var fields map[string]any
	if err := json.Unmarshal(enc, &fields); err != nil || fields["format"] != ProofFormat || fields["leaf_hash"] == nil {
		t.Errorf("encoded proof %s", enc)
	}
}
