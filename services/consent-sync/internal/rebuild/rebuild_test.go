package rebuild

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
	"github.com/consentgate/consentgate/services/consent-sync/internal/apply"
)

func TestPartitionDone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		p       Partition
		next    int64
		done    bool
		records int64
	}{
		{"empty partition is done at once", Partition{First: 0, End: 0}, 0, true, 0},
		{"empty after retention", Partition{First: 40, End: 40}, 40, true, 0},
		{"nothing read yet", Partition{First: 0, End: 10}, 0, false, 10},
		{"last record not yet applied", Partition{First: 0, End: 10}, 9, false, 10},
		{"last record applied", Partition{First: 0, End: 10}, 10, true, 10},
		{"records produced after start are not waited for", Partition{First: 5, End: 10}, 12, true, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.p.Done(tc.next); got != tc.done {
				t.Errorf("Done(%d) = %v, want %v", tc.next, got, tc.done)
			}
			if got := tc.p.Records(); got != tc.records {
				t.Errorf("Records() = %d, want %d", got, tc.records)
			}
		})
	}
}

// TestRunStopsAtStartWatermarks replays a topic with three partitions (one
// of them empty) against a real broker and redis-server: Run returns once
// the records present at start are applied, without waiting for those
// produced afterwards, and counts invalid records without dead-lettering.
func TestRunStopsAtStartWatermarks(t *testing.T) {
	t.Parallel()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 3})
	const topic = "rebuild.test"
	broker.CreateTopics(t, 3, topic)
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	prefix := redistest.PrefixFor(t)

	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	w := stream.NewWriter(kc)
	defer w.Close()

	t0 := time.UnixMilli(1_790_000_000_000)
	change := func(i int, subject string) kafka.Message {
		c := consent.Change{ChangeID: fmt.Sprintf("c%04d", i), SubjectID: subject, Purpose: "marketing", Action: consent.ActionGrant,
			LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: t0.Add(time.Duration(i) * time.Millisecond)}
		b, err := codec.EncodeSingle(apply.ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Topic: topic, Partition: -1, Key: []byte(subject), Value: b}
	}
	// Explicit partitions: 0 and 1 get records, 2 stays empty.
	var msgs []kafka.Message
	for i := range 120 {
		m := change(i, fmt.Sprintf("s%d", i%7))
		msgs = append(msgs, m)
	}
	msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte("junk"), Value: []byte("junk")})
	pw := &kafka.Writer{Addr: kafka.TCP(broker.Addr), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return int(m.Key[len(m.Key)-1]) % 2 })}
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.WriteAll(ctx, pw, msgs, nil); err != nil {
		t.Fatal(err)
	}

	s := apply.New(apply.Options{RevocationsTopic: "consent.revocations", DLQSuffix: ".dlq", Replay: true}, codec, consent.NewStore(rdb, prefix))
	opts := Options{Kafka: kc, Topics: []string{topic}, BatchSize: 16, Progress: 50 * time.Millisecond}
	opts.afterTargets = func() {
		// Produced after the watermarks were read: not part of this rebuild.
		if err := stream.WriteAll(ctx, pw, []kafka.Message{change(500, "late"), change(501, "late")}, nil); err != nil {
			t.Error(err)
		}
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	sum, err := Run(ctx, log, opts, s.Process, Counters{Applied: &s.Applied, Ignored: &s.Ignored, Invalid: &s.Invalid, UnknownPurpose: &s.UnknownPurpose})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Partitions != 3 || sum.Target != 121 || sum.Records != 121 || sum.Applied != 120 || sum.Invalid != 1 {
		t.Errorf("summary %+v, want 3 partitions, 121 records, 120 applied, 1 invalid", sum)
	}
	n, err := rdb.Exists(context.Background(), prefix+"consent:{late}").Result()
	if err != nil || n != 0 {
		t.Errorf("a change produced after the start was applied (%d, %v)", n, err)
	}

	exist, err := ExistingKeys(context.Background(), rdb, prefix)
	if err != nil || !exist {
		t.Errorf("ExistingKeys after the rebuild = %v, %v; want true", exist, err)
	}
	exist, err = ExistingKeys(context.Background(), rdb, prefix+"other*:")
	if err != nil || exist {
		t.Errorf("ExistingKeys of an unused prefix = %v, %v; want false", exist, err)
	}

	// Interrupted: an error matching ErrInterrupted, never success.
	ictx, icancel := context.WithCancel(context.Background())
	icancel()
	if _, err := Run(ictx, log, opts, s.Process, Counters{Applied: &s.Applied, Ignored: &s.Ignored, Invalid: &s.Invalid, UnknownPurpose: &s.UnknownPurpose}); err == nil {
		t.Error("a cancelled rebuild returned no error")
	} else if !errors.Is(err, ErrInterrupted) {
		t.Errorf("cancelled rebuild: %v", err)
	}

	// A topic that does not exist is an error naming the setting.
	if _, err := Targets(context.Background(), kc, []string{"no.such.topic"}); err == nil {
		t.Error("Targets of a missing topic returned no error")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
