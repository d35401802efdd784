package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/ledger"
)

// TestSubjectListsDataKeysAndErasures: `consentctl subject` prints the
// subject's data keys (when created, when destroyed, or in use) and the
// erasure markers of the keys topic, and none of another subject's; the
// export holds them and its about says what they are.
func TestSubjectListsDataKeysAndErasures(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "l.db")
	s, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	at := func(min int) time.Time { return time.Date(2026, 3, 2, 10, min, 0, 0, time.UTC) }
	const (
		old   = "0123456789abcdef0123456789abcdef"
		fresh = "fedcba9876543210fedcba9876543210"
		other = "00112233445566778899aabbccddeeff"
	)
	coord := func(off int64, min int) ledger.Coord {
		return ledger.Coord{Topic: "consent.keys", Partition: 1, Offset: off, Time: at(min)}
	}
	b := &ledger.Batch{
		DataKeys: []ledger.DataKeyEvent{
			{Coord: coord(0, 1), SubjectID: "s-1", KeyID: old},
			{Coord: coord(1, 2), SubjectID: "s-2", KeyID: other},
			{Coord: coord(3, 4), SubjectID: "s-1", KeyID: old, Destroyed: true},
			{Coord: coord(4, 5), SubjectID: "s-1", KeyID: fresh},
		},
		KeyErasures: []ledger.KeyErasure{{Coord: coord(2, 3), SubjectID: "s-1"}},
		Positions:   []ledger.Position{{Topic: "consent.keys", Partition: 1, Next: 5}},
	}
	if err := s.Ingest(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	s.Close()

	out, errOut, code := runCtl(t, map[string]string{"LEDGER_DSN": dsn}, "subject", "s-1")
	if code != 0 {
		t.Fatalf("subject: exit %d\n%s", code, errOut)
	}
	lineOf := func(sub string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, sub) {
				return l
			}
		}
		return ""
	}
	if !strings.Contains(out, "Data keys (2, 1 destroyed; key ids, never a key):") {
		t.Errorf("no data keys heading with 2 keys, 1 destroyed:\n%s", out)
	}
	if l := lineOf(old); !strings.Contains(l, "created "+ts(at(1))) || !strings.Contains(l, "destroyed "+ts(at(4))) {
		t.Errorf("the destroyed key's line %q: want its creation and destruction times\n%s", l, out)
	}
	if l := lineOf(fresh); !strings.Contains(l, "created "+ts(at(5))) || !strings.Contains(l, "in use") || strings.Contains(l, "destroyed") {
		t.Errorf("the key in use: line %q\n%s", l, out)
	}
	if strings.Contains(out, other) {
		t.Errorf("another subject's data key is listed:\n%s", out)
	}
	if !strings.Contains(out, "Erasures of the data keys (1):") || !strings.Contains(lineOf("erased: every data key before it is dead"), ts(at(3))) ||
		!strings.Contains(lineOf("erased: every data key before it is dead"), "consent.keys/1@2") {
		t.Errorf("the erasure marker is not listed with its time and place:\n%s", out)
	}
	// The sections come after the revocation notices, in order.
	if i, j, k := strings.Index(out, "Revocation notices"), strings.Index(out, "Data keys"), strings.Index(out, "Erasures of the data keys"); !(i >= 0 && i < j && j < k) {
		t.Errorf("sections out of order (%d, %d, %d):\n%s", i, j, k, out)
	}

	// A subject with none: the sections say 0.
	out, _, code = runCtl(t, map[string]string{"LEDGER_DSN": dsn}, "subject", "s-3")
	if code != 0 || !strings.Contains(out, "Data keys (0, 0 destroyed") || !strings.Contains(out, "Erasures of the data keys (0):") {
		t.Errorf("a subject without keys: exit %d\n%s", code, out)
	}

	export := filepath.Join(dir, "dsar.json")
	if _, errOut, code := runCtl(t, map[string]string{"LEDGER_DSN": dsn}, "subject", "s-1", "--export", export); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errOut)
	}
	raw, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	var x SubjectExport
	if err := json.Unmarshal(raw, &x); err != nil {
		t.Fatal(err)
	}
	if len(x.History.DataKeys) != 2 || len(x.History.KeyErasures) != 1 {
		t.Errorf("export: %d data keys, %d erasures; want 2, 1", len(x.History.DataKeys), len(x.History.KeyErasures))
	}
	for _, w := range []string{"data key", "destroyed", "data_keys", "key_erasures", "never a key"} {
		if !strings.Contains(x.About, w) {
			t.Errorf("the export's about does not mention %q: %s", w, x.About)
		}
	}
}
