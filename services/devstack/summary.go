package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// summary reads the audit, dead-letter and revocation topics and prints a
// line per purpose stream: how many events passed, were redacted or dropped.
type summary struct {
	r       *kafka.Reader
	codec   *avrocodec.Codec
	streams []string
	started time.Time

	mu        sync.Mutex
	counts    map[string]map[string]int64 // stream -> decision -> n
	dlq       int64
	notices   int64
	lastPrint time.Time
}

func newSummary(kc stream.Config, pol *policy.Policy) (*summary, error) {
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	s := &summary{codec: avrocodec.New(cat, nil), counts: map[string]map[string]int64{}, started: time.Now()}
	for _, st := range pol.Streams {
		s.streams = append(s.streams, st.Topic)
		s.counts[st.Topic] = map[string]int64{}
	}
	// A new consumer group that reads from the start and counts only
	// records written since this run started: nothing is missed while the
	// group is still joining.
	s.r = kafka.NewReader(kafka.ReaderConfig{
		Brokers:        kc.Brokers,
		Dialer:         kc.Dialer(),
		GroupID:        fmt.Sprintf("consentgate-devstack-summary-%d", time.Now().UnixNano()),
		GroupTopics:    []string{"consent.audit", "customer.events.dlq", "consent.revocations"},
		StartOffset:    kafka.FirstOffset,
		MaxWait:        200 * time.Millisecond,
		CommitInterval: time.Second,
	})
	return s, nil
}

func (s *summary) run(ctx context.Context, every time.Duration) error {
	defer s.r.Close()
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.print()
			}
		}
	}()
	for {
		m, err := s.r.ReadMessage(ctx)
		if err != nil {
			return nil
		}
		if m.Time.Before(s.started) {
			continue
		}
		switch m.Topic {
		case "customer.events.dlq":
			s.mu.Lock()
			s.dlq++
			s.mu.Unlock()
		case "consent.revocations":
			s.mu.Lock()
			s.notices++
			s.mu.Unlock()
		default:
			rec, err := s.codec.Decode(ctx, m.Value)
			if err != nil {
				continue
			}
			s.count(rec.Value)
		}
	}
}

// count adds the decisions of one audit record (version 2: one record per
// input event, one decision per stream; a dead-lettered event has none and
// is counted from the dead-letter topic).
func (s *summary) count(audit map[string]any) {
	decisions, _ := audit["decisions"].([]any)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range decisions {
		dm, _ := d.(map[string]any)
		stream, _ := dm["stream"].(string)
		decision, _ := dm["decision"].(string)
		if s.counts[stream] == nil {
			s.counts[stream] = map[string]int64{}
			s.streams = append(s.streams, stream)
		}
		s.counts[stream][decision]++
	}
}

func (s *summary) print() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] dead letters %d, revocation notices %d\n", time.Since(s.started).Round(time.Second), s.dlq, s.notices)
	streams := slices.Clone(s.streams)
	slices.Sort(streams)
	for _, st := range streams {
		c := s.counts[st]
		fmt.Fprintf(&b, "  %-28s passed %7d   redacted %7d   dropped %7d\n", st, c["PASSED"], c["REDACTED"], c["DROPPED"])
	}
	fmt.Print(b.String())
}
