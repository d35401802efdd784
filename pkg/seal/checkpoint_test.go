package seal

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestSignOpen(t *testing.T) {
	signer, verifiers, _ := testKeys(t, KeyName, 1)
	c := Checkpoint{Topic: "consent.audit", Partition: 3, Base: 120, Size: 42, Root: tlog.RecordHash([]byte("x"))}
	msg, err := Sign(signer, c)
	if err != nil {
		t.Fatal(err)
	}
	text, sigs, _ := strings.Cut(string(msg), "\n\n")
	want := "consentgate audit consent.audit/3\n42\n" + c.Root.String() + "\nbase 120"
	if text != want {
		t.Fatalf("note text\n%s\nwant\n%s", text, want)
	}
	if !strings.HasPrefix(sigs, "— consentgate-audit ") {
		t.Fatalf("signature line %q", sigs)
	}
	got, err := Open(msg, verifiers)
	if err != nil || got != c {
		t.Fatalf("Open = %+v, %v; want %+v", got, err, c)
	}

	// A second (witness) signature by a key we do not know is fine.
	witness, _, _ := testKeys(t, "witness", 2)
	n, err := note.Open(msg, verifiers)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, witness)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Open(cosigned, verifiers); err != nil || got != c {
		t.Fatalf("Open of a cosigned note = %+v, %v", got, err)
	}
}

func TestOpenRejects(t *testing.T) {
	signer, verifiers, _ := testKeys(t, KeyName, 1)
	other, _, _ := testKeys(t, KeyName, 3) // same name, another key
	root := tlog.RecordHash([]byte("x")).String()
	good := "consentgate audit consent.audit/0\n5\n" + root + "\nbase 0\n"
	signText := func(text string) []byte {
		msg, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	goodMsg := signText(good)
	flipped := bytes.Clone(goodMsg)
	flipped[len(flipped)-5] ^= 'A' ^ 'B'
	byOther, _ := note.Sign(&note.Note{Text: good}, other)
	textChanged := bytes.Replace(goodMsg, []byte("\n5\n"), []byte("\n6\n"), 1)

	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"signed by another key", byOther, ErrUnknownKey},
		{"signature altered", flipped, ErrBadSignature},
		{"text altered after signing", textChanged, ErrBadSignature},
		{"no signature", []byte(good), ErrMalformed},
		{"garbage", []byte("\x00\x01"), ErrMalformed},
		{"too large", append(bytes.Repeat([]byte("a"), MaxNoteSize), goodMsg...), ErrMalformed},
		{"extra line", signText(good + "more\n"), ErrMalformed},
		{"no base line", signText("consentgate audit consent.audit/0\n5\n" + root + "\n"), ErrMalformed},
		{"base line misspelt", signText("consentgate audit consent.audit/0\n5\n" + root + "\nBase 0\n"), ErrMalformed},
		{"other origin", signText("go.sum database tree\n5\n" + root + "\nbase 0\n"), ErrMalformed},
		{"no partition", signText("consentgate audit consent.audit\n5\n" + root + "\nbase 0\n"), ErrMalformed},
		{"negative partition", signText("consentgate audit consent.audit/-1\n5\n" + root + "\nbase 0\n"), ErrMalformed},
		{"leading zero partition", signText("consentgate audit consent.audit/01\n5\n" + root + "\nbase 0\n"), ErrMalformed},
		{"partition too large", signText("consentgate audit consent.audit/2147483648\n5\n" + root + "\nbase 0\n"), ErrMalformed},
		{"bad topic", signText("consentgate audit consent audit/0\n5\n" + root + "\nbase 0\n"), ErrMalformed},
		{"empty topic", signText("consentgate audit /0\n5\n" + root + "\nbase 0\n"), ErrMalformed},
		{"size with sign", signText("consentgate audit consent.audit/0\n+5\n" + root + "\nbase 0\n"), ErrMalformed},
		{"size with leading zero", signText("consentgate audit consent.audit/0\n05\n" + root + "\nbase 0\n"), ErrMalformed},
		{"size too large", signText("consentgate audit consent.audit/0\n9223372036854775808\n" + root + "\nbase 0\n"), ErrMalformed},
		{"short root", signText("consentgate audit consent.audit/0\n5\nAAAA\nbase 0\n"), ErrMalformed},
		{"root without padding", signText("consentgate audit consent.audit/0\n5\n" + strings.TrimRight(root, "=") + "\nbase 0\n"), ErrMalformed},
		{"negative base", signText("consentgate audit consent.audit/0\n5\n" + root + "\nbase -1\n"), ErrMalformed},
		{"base with space", signText("consentgate audit consent.audit/0\n5\n" + root + "\nbase  0\n"), ErrMalformed},
	} {
		if _, err := Open(tc.msg, verifiers); !errors.Is(err, tc.want) {
			t.Errorf("%s: Open = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Open(goodMsg, verifiers); err != nil {
		t.Fatalf("the good note: %v", err)
	}
	if _, err := Open(goodMsg, nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open with no verifiers = %v", err)
	}
}

func TestSignRefusesBadCheckpoints(t *testing.T) {
	signer, _, _ := testKeys(t, KeyName, 1)
	for _, c := range []Checkpoint{
		{Topic: "", Partition: 0},
		{Topic: "a/b", Partition: 0},
		{Topic: "t", Partition: -1},
		{Topic: "t", Size: -1},
		{Topic: "t", Base: -1},
	} {
		if _, err := Sign(signer, c); err == nil {
			t.Errorf("Sign(%+v) succeeded", c)
		}
	}
	if _, err := Sign(nil, Checkpoint{Topic: "t"}); err == nil {
		t.Error("Sign with no signer succeeded")
	}
}

func TestKeys(t *testing.T) {
	skey, vkey, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(skey, "PRIVATE+KEY+"+KeyName+"+") || !strings.HasPrefix(vkey, KeyName+"+") {
		t.Fatalf("keys not named %s", KeyName)
	}
	s, err := ParseSigner([]byte("\n  " + skey + "\n"))
	if err != nil || s.Name() != KeyName {
		t.Fatalf("ParseSigner: %v", err)
	}
	v, err := ParseVerifiers([]byte("# the audit key, rotated 2026-01\n\n" + vkey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := Sign(s, Checkpoint{Topic: "t", Size: 0, Root: tlog.Hash{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(msg, v); err != nil {
		t.Fatal(err)
	}
	secret := strings.SplitN(skey, "+", 5)[4] // the base64 key, which may hold a +
	for _, bad := range []string{skey[:len(skey)-2], vkey, "", "PRIVATE+KEY+x+00000000+" + secret} {
		_, err := ParseSigner([]byte(bad))
		if err == nil {
			t.Errorf("ParseSigner(%.12q...) succeeded", bad)
			continue
		}
		if strings.Contains(err.Error(), secret[:10]) || strings.Contains(err.Error(), "PRIVATE+KEY") && strings.Contains(err.Error(), KeyName+"+") {
			t.Errorf("ParseSigner's error shows the key: %v", err)
		}
	}
	if _, err := ParseVerifiers([]byte(vkey + "\n" + skey)); err == nil || strings.Contains(err.Error(), secret[:10]) {
		t.Errorf("ParseVerifiers with a private key: %v", err)
	}
	if _, err := ParseVerifiers([]byte("# nothing\n")); err == nil {
		t.Error("ParseVerifiers of no key succeeded")
	}
}

func TestCheckConsistency(t *testing.T) {
	tree := NewTree(testTopic, 0, 5)
	fork := NewTree(testTopic, 0, 5)
	for o := int64(5); o < 30; o++ {
		tree.Append(o, nil, []byte{byte(o)})
		v := []byte{byte(o)}
		if o == 12 {
			v = []byte("rewritten")
		}
		fork.Append(o, nil, v)
	}
	cp := func(tr *Tree, n int64) Checkpoint {
		root, err := tr.RootAt(n)
		if err != nil {
			t.Fatal(err)
		}
		return Checkpoint{Topic: testTopic, Base: 5, Size: n, Root: root}
	}
	for old := int64(0); old <= 25; old++ {
		for n := max(old, 1); n <= 25; n++ {
			var proof tlog.TreeProof
			if old > 0 && old < n {
				var err error
				if proof, err = tree.ProveTree(old, n); err != nil {
					t.Fatal(err)
				}
			}
			if err := CheckConsistency(cp(tree, old), cp(tree, n), proof); err != nil {
				t.Fatalf("%d in %d: %v", old, n, err)
			}
			// The forked tree differs from leaf 7 on: its checkpoints from
			// size 8 are not consistent with the original's.
			if old >= 8 {
				fproof := proof
				if old < n {
					fproof, _ = fork.ProveTree(old, n)
				}
				if err := CheckConsistency(cp(tree, old), cp(fork, n), fproof); !errors.Is(err, ErrInconsistent) {
					t.Fatalf("fork %d in %d: %v", old, n, err)
				}
			}
		}
	}
	a, b := cp(tree, 10), cp(tree, 20)
	proof, _ := tree.ProveTree(10, 20)
	other := b
	other.Base = 6
	if err := CheckConsistency(a, other, proof); !errors.Is(err, ErrInconsistent) {
		t.Errorf("different bases: %v", err)
	}
	other = b
	other.Partition = 1
	if err := CheckConsistency(a, other, proof); !errors.Is(err, ErrInconsistent) {
		t.Errorf("different partitions: %v", err)
	}
	if err := CheckConsistency(b, a, proof); !errors.Is(err, ErrInconsistent) {
		t.Errorf("size decreasing: %v", err)
	}
}
