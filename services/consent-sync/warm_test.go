package main

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/consent"
)

func TestBehind(t *testing.T) {
	p0, p1 := consent.TopicPartition{Topic: "c", Partition: 0}, consent.TopicPartition{Topic: "c", Partition: 1}
	committed := consent.Offsets{p0: 10, p1: -1}
	node := func(valid bool, w0 int64) consent.NodeWatermark {
		return consent.NodeWatermark{Valid: valid, W: consent.Offsets{p0: w0}}
	}
	restarted := func(n consent.NodeWatermark) consent.NodeWatermark {
		n.MarkedRun, n.RunID = "run1", "run2"
		return n
	}
	for _, tc := range []struct {
		name  string
		nodes []consent.NodeWatermark
		need  bool
		from0 int64
	}{
		{"all current", []consent.NodeWatermark{node(true, 10), node(true, 12)}, false, 10},
		{"one node behind", []consent.NodeWatermark{node(true, 12), node(true, 4)}, true, 4},
		{"one node without a watermark", []consent.NodeWatermark{node(true, 12), node(false, 0)}, true, 0},
		{"nothing committed, no watermark", []consent.NodeWatermark{node(false, 0)}, true, 0},
		// A server that restarted since its watermark was set may have
		// lost acknowledged writes above it: replay from it.
		{"one node restarted", []consent.NodeWatermark{node(true, 12), restarted(node(true, 10))}, true, 10},
	} {
		need, from := behind(tc.nodes, committed)
		if need != tc.need || from[p0] != tc.from0 {
			t.Errorf("%s: need %v from %d, want %v from %d", tc.name, need, from[p0], tc.need, tc.from0)
		}
	}
}
