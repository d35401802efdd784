package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Client returns a kafka-go admin client for c.
func (c Config) Client() *kafka.Client {
	return &kafka.Client{
		Addr:      kafka.TCP(c.Brokers...),
		Timeout:   10 * time.Second,
		Transport: &kafka.Transport{ClientID: c.ClientID},
	}
}

// Committed returns the offsets consumer group has committed on every
// partition of topics: the next offset the group will read, or -1 where it
// has committed nothing.
func Committed(ctx context.Context, c Config, group string, topics []string) (map[string]map[int]int64, error) {
	client := c.Client()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("read topic metadata: %w", err)
	}
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], p.ID)
		}
	}
	for _, t := range topics {
		if _, ok := req.Topics[t]; !ok {
			return nil, fmt.Errorf("topic %s does not exist", t)
		}
	}
	resp, err := client.OffsetFetch(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("read committed offsets of group %s: %w", group, err)
	}
	if errors.Is(resp.Error, kafka.GroupIdNotFound) {
		// A group that never committed: nothing committed anywhere.
		resp.Topics = map[string][]kafka.OffsetFetchPartition{}
		for t, ps := range req.Topics {
			for _, p := range ps {
				resp.Topics[t] = append(resp.Topics[t], kafka.OffsetFetchPartition{Partition: p, CommittedOffset: -1})
			}
		}
	} else if resp.Error != nil {
		return nil, fmt.Errorf("read committed offsets of group %s: %w", group, resp.Error)
	}
	out := make(map[string]map[int]int64, len(resp.Topics))
	for t, ps := range resp.Topics {
		out[t] = make(map[int]int64, len(ps))
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("committed offset of %s/%d: %w", t, p.Partition, p.Error)
			}
			out[t][p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// ErrNotSystemOfRecord is returned by CheckKeptForever for a topic that
// the brokers may delete records from.
var ErrNotSystemOfRecord = errors.New("topic may lose records")

// CheckKeptForever checks that the brokers keep every record of topic for
// ever: cleanup.policy is "delete" only (no compaction, which would keep
// only the newest change per subject, not per purpose), and retention.ms
// and retention.bytes are -1. It returns an error matching
// ErrNotSystemOfRecord that names each setting otherwise.
func CheckKeptForever(ctx context.Context, c Config, topic string) error {
	resp, err := c.Client().DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}},
	})
	if err != nil {
		return fmt.Errorf("describe the configuration of topic %s: %w", topic, err)
	}
	if len(resp.Resources) != 1 {
		return fmt.Errorf("describe the configuration of topic %s: %d resources in the answer", topic, len(resp.Resources))
	}
	r := resp.Resources[0]
	if r.Error != nil {
		return fmt.Errorf("describe the configuration of topic %s: %w", topic, r.Error)
	}
	// The effective value of each setting is the entry of the most
	// specific source: the topic's own, then the broker's (some brokers
	// list it under the broker's name, log.*), then the default.
	seen := map[string]string{}
	rank := map[string]int{}
	for _, e := range r.ConfigEntries {
		name := strings.TrimPrefix(e.ConfigName, "log.")
		if name != "cleanup.policy" && name != "retention.ms" && name != "retention.bytes" {
			continue
		}
		src := int(e.ConfigSource)
		if src <= 0 {
			src = 100 // unknown: least specific
		}
		if old, ok := rank[name]; !ok || src < old {
			rank[name], seen[name] = src, e.ConfigValue
		}
	}
	var problems []string
	if p, ok := seen["cleanup.policy"]; !ok || strings.Contains(p, "compact") {
		problems = append(problems, fmt.Sprintf("cleanup.policy=%q (want delete)", p))
	}
	for _, k := range []string{"retention.ms", "retention.bytes"} {
		v, ok := seen[k]
		if n, err := strconv.ParseInt(v, 10, 64); !ok || err != nil || n >= 0 {
			problems = append(problems, fmt.Sprintf("%s=%q (want -1)", k, v))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: topic %s has %s", ErrNotSystemOfRecord, topic, strings.Join(problems, ", "))
	}
	return nil
}
