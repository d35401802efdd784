package stream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

func TestCheckKeptForever(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	conn, err := kafka.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.CreateTopics(
		kafka.TopicConfig{Topic: "kept", NumPartitions: 1, ReplicationFactor: 1},
		kafka.TopicConfig{Topic: "timed", NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "86400000"}}},
		kafka.TopicConfig{Topic: "sized", NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.bytes", ConfigValue: "1073741824"}}},
		kafka.TopicConfig{Topic: "compacted", NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}},
	); err != nil {
		t.Fatal(err)
	}
	if err := stream.CheckKeptForever(ctx, cfg, "kept"); err != nil {
		t.Errorf("a topic kept for ever: %v", err)
	}
	for topic, want := range map[string]string{"timed": "retention.ms", "sized": "retention.bytes", "compacted": "cleanup.policy"} {
		err := stream.CheckKeptForever(ctx, cfg, topic)
		if !errors.Is(err, stream.ErrNotSystemOfRecord) || !strings.Contains(err.Error(), want) {
			t.Errorf("topic %s: %v, want ErrNotSystemOfRecord naming %s", topic, err, want)
		}
	}
}

func TestCommitted(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	b.CreateTopics(t, 2, "changes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	got, err := stream.Committed(ctx, cfg, "g", []string{"changes"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got["changes"]) != 2 || got["changes"][0] != -1 || got["changes"][1] != -1 {
		t.Fatalf("nothing committed: %v", got)
	}
	if _, err := cfg.Client().OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: "g", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{"changes": {{Partition: 1, Offset: 42}}}}); err != nil {
		t.Fatal(err)
	}
	got, err = stream.Committed(ctx, cfg, "g", []string{"changes"})
	if err != nil || got["changes"][1] != 42 || got["changes"][0] != -1 {
		t.Fatalf("after a commit of 42 on partition 1: %v %v", got, err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}
