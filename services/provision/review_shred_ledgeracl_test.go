package main

import (
	"slices"
	"testing"
)

// The ledger reads the keys topic by default (LEDGER_KEYS_TOPIC,
// consent.keys) to record when each data key was created and destroyed:
// the evidence that an erasure destroyed the subject's keys. The plan
// gives the ledger's principal no READ on the keys topic, so with ACLs on
// the ledger cannot read it and that evidence is never recorded.
func TestReviewShredLedgerMayReadTheKeysTopic(t *testing.T) {
	p := derive(t, twoStreams, testConfig(nil))
	lines := aclLines(p, "User:ledger")
	if !slices.Contains(lines, "READ TOPIC consent.keys") {
		t.Fatalf("the ledger's ACLs %v lack READ TOPIC consent.keys, which it reads by default (LEDGER_KEYS_TOPIC)", lines)
	}
}
