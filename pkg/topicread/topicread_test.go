package topicread

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

func TestPartitionsOffsetsAndRead(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 2})
	b.CreateTopics(t, 2, "read.test")
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for i := range 40 {
		msgs = append(msgs, kafka.Message{Topic: "read.test", Key: []byte(fmt.Sprint("k", i%5)), Value: []byte(fmt.Sprint(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := &Client{Brokers: []string{b.Addr}}
	parts, err := c.Partitions(ctx, "read.test")
	if err != nil || len(parts) != 2 || parts[0] != 0 || parts[1] != 1 {
		t.Fatalf("Partitions: %v %v", parts, err)
	}
	if _, err := c.Partitions(ctx, "no.such.topic"); err == nil {
		t.Fatal("a missing topic has partitions")
	}
	offs, err := c.Offsets(ctx, "read.test")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for p, r := range offs {
		if r.First != 0 {
			t.Errorf("partition %d starts at %d", p, r.First)
		}
		total += r.End
		var got []int64
		if err := c.Read(ctx, "read.test", p, 0, r.End, func(m kafka.Message) error { got = append(got, m.Offset); return nil }); err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != r.End {
			t.Errorf("partition %d: read %d records of %d", p, len(got), r.End)
		}
		for i, o := range got {
			if o != int64(i) {
				t.Fatalf("partition %d: record %d has offset %d", p, i, o)
			}
		}
		// A range inside, and one past the end (returns after Idle).
		var mid []int64
		if err := c.Read(ctx, "read.test", p, 1, 3, func(m kafka.Message) error { mid = append(mid, m.Offset); return nil }); err != nil || len(mid) != 2 {
			t.Errorf("partition %d range 1..3: %v %v", p, mid, err)
		}
	}
	if total != 40 {
		t.Errorf("offsets cover %d records, want 40", total)
	}
	Idle = 300 * time.Millisecond
	began := time.Now()
	var past int
	if err := c.Read(ctx, "read.test", 0, offs[0].End, offs[0].End+5, func(kafka.Message) error { past++; return nil }); err != nil || past != 0 {
		t.Errorf("read past the end: %d records, %v", past, err)
	}
	if time.Since(began) > 10*time.Second {
		t.Errorf("read past the end took %s", time.Since(began))
	}
}
