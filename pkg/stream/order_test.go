package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestWriteAllKeepsOrderPerKeyWhenTheBrokerRefusesABatchAsTooLarge: the
// writer's BatchBytes (8 KiB) is above the topic's max.message.bytes (4 KiB),
// as with the defaults (KAFKA_BATCH_BYTES 4 MiB, a broker's 1 MiB). Five
// records of 3 KiB with one key go to one partition; kafka-go packs them in
// produce batches of two (6 KiB), the broker refuses those and accepts the
// last record alone. WriteEach then writes the refused records again one at
// a time, after the accepted one: the topic must still hold them in the
// order given, since the Runner promises outputs in input order per key.
func TestWriteAllKeepsOrderPerKeyWhenTheBrokerRefusesABatchAsTooLarge(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: []string{"wo.out"}, MaxMessageBytes: 4096})
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	cfg.BatchBytes = 8192
	w := stream.NewWriter(cfg)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msgs []kafka.Message
	var want []string
	for i := range 5 {
		v := fmt.Sprintf("r%d:", i)
		msgs = append(msgs, kafka.Message{Topic: "wo.out", Key: []byte("subject"), Value: append([]byte(v), bytes.Repeat([]byte("x"), 3000)...)})
		want = append(want, v)
	}
	if err := stream.WriteAll(ctx, w, msgs, nil); err != nil {
		t.Fatalf("WriteAll: %v (every record fits the topic on its own)", err)
	}
	var got []string
	for _, m := range b.ReadAll(t, "wo.out", 500*time.Millisecond, 10*time.Second) {
		got = append(got, string(m.Value[:3]))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("topic holds %q, want %q: records of one key reordered", got, want)
	}
}
