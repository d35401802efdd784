package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/consentgate/consentgate/pkg/seal"
	"golang.org/x/mod/sumdb/note"
)

// exportFixture writes an audit export of two audit partitions of n
// records each, each sealed by one checkpoint, keeping only the lines keep
// accepts, and returns its path and the verifier key file.
func exportFixture(t *testing.T, n int, keep func(l exportLine) bool) (string, string) {
	t.Helper()
	dir := t.TempDir()
	skey, vkey, err := seal.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	var lines []exportLine
	for p := int32(0); p < 2; p++ {
		tree := seal.NewTree("consent.audit", p, 0)
		for o := int64(0); o < int64(n); o++ {
			key, value := []byte(fmt.Sprintf("k-%d-%d", p, o)), []byte(fmt.Sprintf("v-%d-%d", p, o))
			if _, err := tree.Append(o, key, value); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, exportLine{Kind: "record", Topic: "consent.audit", Partition: p, Offset: o, Key: key, Value: value})
		}
		cp, err := tree.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		msg, err := seal.Sign(signer, cp)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, exportLine{Kind: "checkpoint", Topic: "consent.audit.checkpoints", Partition: 0, Offset: int64(p), Value: msg})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, l := range lines {
		if keep == nil || keep(l) {
			if err := enc.Encode(l); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "audit-seal.pub")
	if err := os.WriteFile(keys, []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, keys
}

func runCtl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}, args)
	return code, out.String(), errb.String()
}

// TestReviewVerifyFromFileFailsWhenAPartitionIsDroppedWhole: an export
// from which every record of one sealed audit partition was removed must
// not verify: its checkpoints say the partition held records.
func TestReviewVerifyFromFileFailsWhenAPartitionIsDroppedWhole(t *testing.T) {
	path, keys := exportFixture(t, 5, nil)
	if code, out, errs := runCtl(t, "verify", "--from-file", path, "--verifier-keys-file", keys); code != 0 {
		t.Fatalf("the intact export does not verify: exit %d\n%s%s", code, out, errs)
	}
	path, keys = exportFixture(t, 5, func(l exportLine) bool { return !(l.Kind == "record" && l.Partition == 1) })
	code, out, errs := runCtl(t, "verify", "--from-file", path, "--verifier-keys-file", keys)
	if code != 2 {
		t.Fatalf("an export without the records of partition 1 gave exit %d, want 2 (verification failed)\n%s%s", code, out, errs)
	}
	if !bytes.Contains([]byte(out), []byte("missing consent.audit/1 offsets 0..4")) {
		t.Errorf("the report does not name partition 1's missing records:\n%s", out)
	}
}
