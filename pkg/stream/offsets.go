package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/topicread"
)

// Client returns a kafka-go admin client for c, with a Transport of its
// own: its metadata is fresh (a Transport caches the topics it knows for
// MetadataTTL, 6 s, so that a shared one does not see a topic created in
// the meantime).
func (c Config) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 10 * time.Second, Transport: c.Transport()}
}

// sharedClient is Client with the Transport shared by every client of the
// same client id and security settings, for frequent calls (the enforcer
// reads committed offsets five times a second), which then reuse
// connections instead of a TLS handshake and a SASL exchange each. Its
// topics are those the brokers had up to 6 s ago.
func (c Config) sharedClient() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 10 * time.Second, Transport: c.sharedTransport()}
}

// Dialer returns the kafka-go Dialer of c's readers and kafka.Conn: its
// client id, TLS and SASL (see kafkaconn.Config.Dialer).
func (c Config) Dialer() *kafka.Dialer { return c.Security.Dialer(c.ClientID) }

// Transport returns a new kafka-go Transport for a writer or kafka.Client
// of c: its client id, TLS and SASL.
func (c Config) Transport() *kafka.Transport { return c.Security.Transport(c.ClientID) }

// TopicReader returns a topicread.Client of c's brokers that connects as
// c says; timeout bounds each request (0 is 10 s). Its Transport is shared
// (as kafka-go's DefaultTransport, which a topicread.Client without one
// uses): it sees a new topic within 6 s.
func (c Config) TopicReader(timeout time.Duration) *topicread.Client {
	return &topicread.Client{Brokers: c.Brokers, Dialer: c.Dialer(), Transport: c.sharedTransport(), Timeout: timeout}
}

// Explain returns err, an error of a client of c, with what to check when
// it is a failed TLS handshake or SASL authentication (matching
// kafkaconn.ErrSecurity; see kafkaconn.Diagnose), or when a plain client
// was closed by a broker that may require TLS or SASL.
func (c Config) Explain(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	return kafkaconn.Diagnose(ctx, c.Dialer(), c.Brokers, err)
}

type transportKey struct {
	clientID string
	security kafkaconn.Config
}

var transports sync.Map // transportKey → *kafka.Transport

func (c Config) sharedTransport() *kafka.Transport {
	k := transportKey{c.ClientID, c.Security}
	if t, ok := transports.Load(k); ok {
		return t.(*kafka.Transport)
	}
	t, _ := transports.LoadOrStore(k, c.Transport())
	return t.(*kafka.Transport)
}

// Committed returns the offsets consumer group has committed on every
// partition of topics: the next offset the group will read, or -1 where it
// has committed nothing.
func Committed(ctx context.Context, c Config, group string, topics []string) (map[string]map[int]int64, error) {
	client := c.sharedClient()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("read topic metadata: %w", c.Explain(ctx, err))
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
		return nil, fmt.Errorf("read committed offsets of group %s: %w", group, c.Explain(ctx, err))
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
		return fmt.Errorf("describe the configuration of topic %s: %w", topic, c.Explain(ctx, err))
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
