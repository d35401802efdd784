package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/stream"
)

// kafkaAdmin reads partition end offsets and consumer-group commits.
type kafkaAdmin struct {
	client *kafka.Client
}

// newKafkaAdmin returns the admin client of kc's brokers (its TLS and SASL
// too).
func newKafkaAdmin(kc stream.Config) *kafkaAdmin {
	return &kafkaAdmin{client: kc.Client()}
}

func partitionList(n int) []int {
	ps := make([]int, n)
	for i := range ps {
		ps[i] = i
	}
	return ps
}

// endOffsets returns, per topic, the sum over its partitions of the end
// offset (the number of records ever written, for topics starting at 0).
func (a *kafkaAdmin) endOffsets(ctx context.Context, partitions int, topics ...string) (map[string]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range topics {
		for p := range partitions {
			req.Topics[t] = append(req.Topics[t], kafka.LastOffsetOf(p))
		}
	}
	res, err := a.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := make(map[string]int64, len(topics))
	for _, t := range topics {
		parts := res.Topics[t]
		if len(parts) != partitions {
			return nil, fmt.Errorf("list offsets of %s: %d partitions answered, want %d", t, len(parts), partitions)
		}
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("list offsets of %s/%d: %w", t, p.Partition, p.Error)
			}
			out[t] += p.LastOffset
		}
	}
	return out, nil
}

// committed returns the sum of group's committed offsets over the
// partitions of topic (a partition with no commit counts 0).
func (a *kafkaAdmin) committed(ctx context.Context, group, topic string, partitions int) (int64, error) {
	res, err := a.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: partitionList(partitions)}})
	if err != nil {
		return 0, fmt.Errorf("fetch committed offsets of group %s: %w", group, err)
	}
	if res.Error != nil {
		return 0, fmt.Errorf("fetch committed offsets of group %s: %w", group, res.Error)
	}
	var sum int64
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return 0, fmt.Errorf("fetch committed offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum, nil
}

// drainRun is how a consumer group worked through a backlog.
type drainRun struct {
	// Records is the number of records counted in the rate: those
	// committed after the first commit was seen.
	Records int64
	// Startup is the time from the start of the wait to the first commit
	// seen (process start, group join, first batch).
	Startup time.Duration
	// Busy is the time from the first commit seen to the last record
	// committed.
	Busy time.Duration
	// Total is the time from the start of the wait to the last commit.
	Total time.Duration
	// CPU is the CPU seconds (utime + stime) of each watched process over
	// the Busy window: sampled when the first commit was seen and when the
	// last one was.
	CPU map[string]float64
}

// PerSec is the steady rate: records committed per second after the first
// commit, so that process start and the group join are left out.
func (d drainRun) PerSec() float64 {
	if d.Busy <= 0 {
		return 0
	}
	return float64(d.Records) / d.Busy.Seconds()
}

// waitDrained polls group's commits on topic every 50 ms until they reach
// end, and times it. alive reports an error when the consumer died. The CPU
// time of the processes of cpu (nil: none) is read right after the poll
// that saw the first commit and after the one that saw the last, so that it
// covers the same window as the rate.
func (a *kafkaAdmin) waitDrained(ctx context.Context, group, topic string, partitions int, end int64, timeout time.Duration, alive func() error, cpu *cpuWatch) (drainRun, error) {
	start := time.Now()
	var (
		first      time.Time
		firstCount int64
		firstCPU   []int64
	)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return drainRun{}, ctx.Err()
		case <-tick.C:
		}
		if err := alive(); err != nil {
			return drainRun{}, err
		}
		if time.Since(start) > timeout {
			return drainRun{}, fmt.Errorf("group %s did not commit %d records of %s within %s", group, end, topic, timeout)
		}
		n, err := a.committed(ctx, group, topic, partitions)
		if err != nil {
			return drainRun{}, err
		}
		now := time.Now()
		if n > 0 && first.IsZero() {
			first, firstCount = now, n
			if firstCPU, err = cpu.sample(); err != nil {
				return drainRun{}, err
			}
		}
		if n >= end {
			lastCPU, err := cpu.sample()
			if err != nil {
				return drainRun{}, err
			}
			return drainRun{Records: end - firstCount, Startup: first.Sub(start), Busy: now.Sub(first), Total: now.Sub(start),
				CPU: cpu.seconds(firstCPU, lastCPU)}, nil
		}
	}
}

// percentiles of a sample, in milliseconds.
type percentiles struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p999_ms"`
	Max     float64 `json:"max_ms"`
}

// percentilesOf sorts ds and returns its nearest-rank percentiles.
func percentilesOf(ds []time.Duration) percentiles {
	if len(ds) == 0 {
		return percentiles{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		i = min(max(i, 0), len(ds)-1)
		return float64(ds[i].Microseconds()) / 1000
	}
	return percentiles{Samples: len(ds), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: at(1)}
}

// tailReader returns a reader of one partition of topic, positioned at its
// end: the benchmark's observers read only what is written from now on, and
// only one partition of each topic, a sixth (with 6 partitions) of the
// traffic keyed by subject, so that observing costs the 2-core machine
// little.
func tailReader(kc stream.Config, topic string, partition int) (*kafka.Reader, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   kc.Brokers,
		Topic:     topic,
		Partition: partition,
		MinBytes:  1,
		MaxBytes:  10 << 20,
		MaxWait:   100 * time.Millisecond,
		Dialer:    kc.Dialer(),
	})
	if err := r.SetOffset(kafka.LastOffset); err != nil {
		r.Close()
		return nil, fmt.Errorf("tail %s/%d: %w", topic, partition, err)
	}
	return r, nil
}

// isDone reports whether err only says that ctx ended or the reader closed.
func isDone(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
