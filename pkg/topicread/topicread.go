// Package topicread reads a topic's partitions as they are at one moment:
// which partitions exist, the offsets each holds, and every record of a
// partition in an offset range. consentctl uses it to recompute the audit's
// Merkle trees from the topic and to learn the input topics' offsets for
// completeness. It uses no consumer group and commits nothing.
package topicread

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/kafkaconn"
)

// Client reads topics from brokers.
type Client struct {
	Brokers []string
	// Dialer and Transport connect (TLS, SASL); nil: plain TCP. Set
	// both, from the same kafkaconn.Config (stream.Config.TopicReader
	// does): a failed authentication or TLS handshake is explained
	// through the Dialer (kafkaconn.Diagnose).
	Dialer    *kafka.Dialer
	Transport kafka.RoundTripper
	// Timeout bounds each request; 0 is 10 s.
	Timeout time.Duration
}

func (c *Client) client() *kafka.Client {
	t := c.Timeout
	if t == 0 {
		t = 10 * time.Second
	}
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: t, Transport: c.Transport}
}

// explain says what to check when err is a failed TLS handshake or SASL
// authentication.
func (c *Client) explain(ctx context.Context, err error) error {
	return kafkaconn.Diagnose(ctx, c.Dialer, c.Brokers, err)
}

// ErrNoTopic is returned for a topic the brokers do not know.
var ErrNoTopic = errors.New("no such topic")

// Partitions lists the partitions of topic, in order.
func (c *Client) Partitions(ctx context.Context, topic string) ([]int32, error) {
	m, err := c.PartitionsOf(ctx, []string{topic})
	if err != nil {
		return nil, err
	}
	parts, ok := m[topic]
	if !ok {
		return nil, fmt.Errorf("%s: %w", topic, ErrNoTopic)
	}
	return parts, nil
}

// PartitionsOf lists the partitions of each of topics that exists, in
// order, in one metadata request; a topic the brokers do not know is left
// out of the map.
func (c *Client) PartitionsOf(ctx context.Context, topics []string) (map[string][]int32, error) {
	md, err := c.client().Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", strings.Join(topics, ", "), c.explain(ctx, err))
	}
	out := make(map[string][]int32, len(md.Topics))
	for _, t := range md.Topics {
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				continue
			}
			return nil, fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
		parts := make([]int32, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			parts = append(parts, int32(p.ID))
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		out[t.Name] = parts
	}
	return out, nil
}

// Range is the offsets a partition holds: [First, End).
type Range struct {
	First, End int64
}

// Offsets returns the range of offsets every partition of topic holds now.
func (c *Client) Offsets(ctx context.Context, topic string) (map[int32]Range, error) {
	parts, err := c.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(int(p)), kafka.LastOffsetOf(int(p)))
	}
	res, err := c.client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, c.explain(ctx, err))
	}
	out := make(map[int32]Range, len(parts))
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[int32(po.Partition)] = Range{First: po.FirstOffset, End: po.LastOffset}
	}
	for _, p := range parts {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("offsets of %s/%d: not in the answer", topic, p)
		}
	}
	return out, nil
}

// Idle is how long Read waits for the next record before it takes the
// partition as read: offsets before to that hold no record (a transaction
// marker, a compacted record) do not make it wait forever.
var Idle = 3 * time.Second

// Read calls fn with every record of the partition from offset from up to
// (not including) offset to, in the order the broker returns them, and
// stops at the first error fn returns. It returns when the record at to-1
// was read, or a record at or after to, or when none came for Idle.
func (c *Client) Read(ctx context.Context, topic string, partition int32, from, to int64, fn func(kafka.Message) error) error {
	if from >= to {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.Brokers, Dialer: c.Dialer, Topic: topic, Partition: int(partition),
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return fmt.Errorf("%s/%d: set offset %d: %w", topic, partition, from, err)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, Idle)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("read %s/%d: %w", topic, partition, c.explain(ctx, err))
		}
		if m.Offset >= to {
			return nil
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset == to-1 {
			return nil
		}
	}
}
