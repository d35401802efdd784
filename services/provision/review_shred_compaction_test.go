package main

import (
	"testing"
)

// The README says an erasure's tombstones let "compaction remove the key
// material from the brokers". The keys topic is planned compacted with no
// bound on when that happens: no max.compaction.lag.ms (KIP-354), no
// segment.ms, no min.cleanable.dirty.ratio. The brokers' defaults leave the
// active segment (segment.ms 7 days, segment.bytes 1 GiB: a small keys
// topic stays in one segment for a week) uncompacted, and a topic whose
// records are mostly live keys may never pass the default dirty ratio of
// 0.5: the wrapped data keys of erased subjects stay on the brokers (and in
// any raw copy of the topic) without limit, decryptable with the KEK by
// whoever reads the topic without honouring the markers.
func TestReviewShredKeysTopicBoundsWhenCompactionRemovesKeys(t *testing.T) {
	p := derive(t, twoStreams, testConfig(nil))
	var found bool
	for _, tp := range p.Topics {
		if tp.Name != "consent.keys" {
			continue
		}
		found = true
		if tp.Configs["cleanup.policy"] != "compact" {
			t.Fatalf("keys topic cleanup.policy %q", tp.Configs["cleanup.policy"])
		}
		if tp.Configs["max.compaction.lag.ms"] == "" {
			t.Errorf("keys topic configs %v: no max.compaction.lag.ms, so nothing bounds how long a destroyed data key's record stays on the brokers", tp.Configs)
		}
	}
	if !found {
		t.Fatal("no keys topic in the plan")
	}
}
