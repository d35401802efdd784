package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/ledger"
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

func runReview(t *testing.T, args ...string) (int, string, string) {
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
	if code, out, errs := runReview(t, "verify", "--from-file", path, "--verifier-keys-file", keys); code != 0 {
		t.Fatalf("the intact export does not verify: exit %d\n%s%s", code, out, errs)
	}
	path, keys = exportFixture(t, 5, func(l exportLine) bool { return !(l.Kind == "record" && l.Partition == 1) })
	code, out, errs := runReview(t, "verify", "--from-file", path, "--verifier-keys-file", keys)
	if code != 2 {
		t.Fatalf("an export without the records of partition 1 gave exit %d, want 2 (verification failed)\n%s%s", code, out, errs)
	}
	if !bytes.Contains([]byte(out), []byte("missing consent.audit/1 offsets 0..4")) {
		t.Errorf("the report does not name partition 1's missing records:\n%s", out)
	}
}

// TestReviewVerifyWithLedgerFailsOnATruncatedExport: a backup cut after
// offset 4, with the checkpoints sealing later records left out, verifies
// on its own (nothing in it says more existed); with --ledger the ledger's
// checkpoints of the partition say so and verify must fail.
func TestReviewVerifyWithLedgerFailsOnATruncatedExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	skey, vkey, err := seal.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	tree := seal.NewTree("consent.audit", 0, 0)
	var lines []exportLine
	var notes [][]byte
	b := &ledger.Batch{}
	for o := int64(0); o < 10; o++ {
		key, value := []byte(fmt.Sprintf("k-%d", o)), []byte(fmt.Sprintf("v-%d", o))
		h, err := tree.Append(o, key, value)
		if err != nil {
			t.Fatal(err)
		}
		b.Undecodable = append(b.Undecodable, ledger.Undecodable{Coord: ledger.Coord{Topic: "consent.audit", Offset: o}, Error: "test", LeafHash: h[:]})
		lines = append(lines, exportLine{Kind: "record", Topic: "consent.audit", Offset: o, Key: key, Value: value})
		if o == 4 || o == 9 {
			cp, err := tree.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			msg, err := seal.Sign(signer, cp)
			if err != nil {
				t.Fatal(err)
			}
			notes = append(notes, msg)
			b.Checkpoints = append(b.Checkpoints, ledger.Checkpoint{AuditTopic: "consent.audit", Base: 0, Size: cp.Size, Root: cp.Root, Note: msg,
				Coord: ledger.Coord{Topic: "consent.audit.checkpoints", Offset: int64(len(notes) - 1)}})
			lines = append(lines, exportLine{Kind: "checkpoint", Topic: "consent.audit.checkpoints", Offset: int64(len(notes) - 1), Value: msg})
		}
	}
	dsn := "sqlite:" + filepath.Join(dir, "ledger.db")
	store, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Ingest(ctx, b); err != nil {
		t.Fatal(err)
	}
	store.Close()
	keys := filepath.Join(dir, "audit-seal.pub")
	if err := os.WriteFile(keys, []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name string, ls []exportLine) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, l := range ls {
			if err := enc.Encode(l); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("full.jsonl", lines)
	if code, out, errs := runReview(t, "verify", "--from-file", full, "--verifier-keys-file", keys, "--ledger", "--dsn", dsn); code != 0 {
		t.Fatalf("the whole export does not verify against the ledger: exit %d\n%s%s", code, out, errs)
	}
	cut := write("cut.jsonl", lines[:6]) // records 0..4 and the checkpoint of size 5
	code, out, errs := runReview(t, "verify", "--from-file", cut, "--verifier-keys-file", keys, "--ledger", "--dsn", dsn)
	if code != 2 {
		t.Fatalf("an export cut after offset 4 verified against a ledger sealed to offset 9: exit %d, want 2\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "missing consent.audit/0 offsets 5..9") {
		t.Errorf("the report does not name offsets 5..9 as missing:\n%s", out)
	}
}
