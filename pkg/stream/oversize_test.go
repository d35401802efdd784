package stream_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// dlqSink writes through the real writer and remembers which source offsets
// have an acknowledged dead letter (or reference) on a dead-letter topic.
type dlqSink struct {
	w stream.Writer

	mu    sync.Mutex
	acked map[string]bool // "topic/partition/offset" of the input
}

func (s *dlqSink) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	err := s.w.WriteMessages(ctx, msgs...)
	werrs, _ := err.(kafka.WriteErrors)
	if err != nil && len(werrs) != len(msgs) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range msgs {
		if werrs != nil && werrs[i] != nil {
			continue
		}
		if _, ok := stream.Header(m, "consentgate.dlq.reason"); !ok {
			continue
		}
		tp, _ := stream.Header(m, "consentgate.source.topic")
		p, _ := stream.Header(m, "consentgate.source.partition")
		o, _ := stream.Header(m, "consentgate.source.offset")
		s.acked[tp+"/"+p+"/"+o] = true
	}
	return err
}

// dlqSource records commits and, for the inputs in mustHaveDLQ, every
// commit that came before their dead letter was acknowledged.
type dlqSource struct {
	*kafka.Reader
	sink        *dlqSink
	mustHaveDLQ map[string]bool // input values

	mu         sync.Mutex
	committed  map[string]bool // "partition/offset"
	violations []string
}

func (s *dlqSource) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	s.sink.mu.Lock()
	for _, m := range msgs {
		c := fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)
		if s.mustHaveDLQ[string(m.Value)] && !s.sink.acked[c] {
			s.violations = append(s.violations, c)
		}
	}
	s.sink.mu.Unlock()
	if err := s.Reader.CommitMessages(ctx, msgs...); err != nil {
		return err
	}
	s.mu.Lock()
	for _, m := range msgs {
		s.committed[fmt.Sprintf("%d/%d", m.Partition, m.Offset)] = true
	}
	s.mu.Unlock()
	return nil
}

// TestRunnerDeadLettersRecordsThatCanNeverBeWritten: among 300 inputs on
// three partitions, two produce records that can never be written, once
// refused by kafka-go before sending (the writer's BatchBytes) and once by
// the broker (MESSAGE_TOO_LARGE from a small message.max.bytes). Input A's
// output grew by a header past the limit, but A itself fits: A goes to the
// dead-letter topic with its original key, value and headers, the reason and
// its coordinates. Input B is too large even as a dead letter, and so is its
// audit-like record (no source headers, tied to B by its event id; the
// Runner has no Deferred here, so it is an ordinary record: a Deferred one
// would stop the Runner, see TestRunnerStopsWhenADeferredRecordIsRefused):
// one reference record without payload stands for both, with B's
// coordinates, size and SHA-256. Every other record is written once, every input offset
// is committed, and A's and B's only after their dead letter was
// acknowledged. Input C's dead letter, made by the processor, is refused
// too: a dead letter is never dead-lettered again, C gets a reference.
// Before the fix the runner retried the refused batch for
// ever and nothing after it was committed.
func TestRunnerDeadLettersRecordsThatCanNeverBeWritten(t *testing.T) {
	const limit = 64 << 10
	for _, mode := range []string{"client", "broker"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			opts := brokertest.Options{Partitions: 3, Topics: []string{"ov.out", "ov.audit", "ov.in.dlq"}}
			if mode == "broker" {
				opts.MaxMessageBytes = limit
			}
			b := brokertest.Start(t, opts)
			// The input topic takes records the other topics refuse.
			b.CreateTopicsWithConfig(t, 3, map[string]string{"max.message.bytes": strconv.Itoa(4 << 20)}, "ov.in")
			cfg := stream.DefaultConfig()
			cfg.Brokers = []string{b.Addr}
			pw := stream.NewWriter(cfg) // the test's producer: default 4 MiB
			defer pw.Close()
			if mode == "client" {
				cfg.BatchBytes = limit
			}
			w := stream.NewWriter(cfg) // the runner's
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()

			const n, iA, iB, iC = 300, 100, 200, 250
			bigA := bytes.Repeat([]byte("a"), 40<<10) // fits; its output does not
			bigB := bytes.Repeat([]byte("b"), 100<<10)
			bigC := bytes.Repeat([]byte("c"), 100<<10) // dead-lettered by the processor
			in := make([]kafka.Message, n)
			for i := range in {
				in[i] = kafka.Message{Topic: "ov.in", Key: []byte(fmt.Sprintf("k%d", i%13)), Value: []byte(fmt.Sprintf("v%04d", i)),
					Headers: []kafka.Header{{Key: "origin", Value: []byte("test")}}}
			}
			in[iA].Key, in[iA].Value = []byte("keyA"), bigA
			in[iB].Key, in[iB].Value = []byte("keyB"), bigB
			in[iC].Key, in[iC].Value = []byte("keyC"), bigC
			if err := stream.WriteAll(ctx, pw, in, nil); err != nil {
				t.Fatal(err)
			}

			rc := stream.ReaderConfig{Topics: []string{"ov.in"}, GroupID: "ov-group", MaxWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, FromBeginning: true}
			sink := &dlqSink{w: w, acked: map[string]bool{}}
			src := &dlqSource{Reader: stream.NewReader(cfg, rc), sink: sink, committed: map[string]bool{},
				mustHaveDLQ: map[string]bool{string(bigA): true, string(bigB): true, string(bigC): true}}
			runner := &stream.Runner{
				Source: src, Sink: sink, BatchSize: 40, Linger: 5 * time.Millisecond, DrainTimeout: 2 * time.Second,
				MaxBackoff: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
					var out []kafka.Message
					for _, m := range batch {
						id := []byte(fmt.Sprintf("e-%d-%d", m.Partition, m.Offset))
						h := append([]kafka.Header(nil), m.Headers...)
						h = append(h, kafka.Header{Key: "consentgate.event_id", Value: id},
							kafka.Header{Key: "consentgate.source.topic", Value: []byte(m.Topic)},
							kafka.Header{Key: "consentgate.source.partition", Value: []byte(strconv.Itoa(m.Partition))},
							kafka.Header{Key: "consentgate.source.offset", Value: []byte(strconv.FormatInt(m.Offset, 10))})
						audit := kafka.Message{Topic: "ov.audit", Key: m.Key, Value: []byte("audit"), Headers: []kafka.Header{{Key: "consentgate.event_id", Value: id}}}
						switch {
						case bytes.Equal(m.Value, bigA):
							h = append(h, kafka.Header{Key: "grown", Value: bytes.Repeat([]byte("g"), 30<<10)})
						case bytes.Equal(m.Value, bigB):
							audit.Value = bytes.Repeat([]byte("x"), 80<<10)
						case bytes.Equal(m.Value, bigC):
							dl := kafka.Message{Topic: "ov.in.dlq", Key: m.Key, Value: m.Value, Headers: append(h,
								kafka.Header{Key: "consentgate.dlq.reason", Value: []byte("undecodable")})}
							out = append(out, dl, audit)
							continue
						}
						out = append(out, kafka.Message{Topic: "ov.out", Key: m.Key, Value: m.Value, Headers: h}, audit)
					}
					return out, nil
				},
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- runner.Run(rctx) }()
			deadline := time.Now().Add(20 * time.Second)
			for runner.Records.Load() < n && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			committed := runner.Records.Load()
			stop()
			runErr := <-done
			src.Close()
			if committed < n {
				t.Fatalf("runner stalled: %d of %d input records committed after 20s (%d retries; Run: %v)", committed, n, runner.Retries.Load(), runErr)
			}
			if runErr != nil {
				t.Fatalf("runner: %v", runErr)
			}
			if len(src.violations) > 0 {
				t.Errorf("inputs committed before their dead letter was acknowledged: %v", src.violations)
			}
			if got := len(src.committed); got != n {
				t.Errorf("%d input offsets committed, want %d", got, n)
			}

			// Every other record exactly once; A and B have no output.
			out := b.ReadAll(t, "ov.out", 500*time.Millisecond, 20*time.Second)
			count := map[string]int{}
			for _, m := range out {
				count[string(m.Value)]++
			}
			for i := range n {
				want := 1
				if i == iA || i == iB || i == iC {
					want = 0
				}
				if c := count[string(in[i].Value)]; c != want {
					t.Errorf("input %d has %d outputs, want %d", i, c, want)
				}
			}
			if audits := b.ReadAll(t, "ov.audit", 500*time.Millisecond, 20*time.Second); len(audits) != n-1 {
				t.Errorf("%d audit-like records, want %d (all but B's, which is not Deferred: B's reference stands for it)", len(audits), n-1)
			}

			// Find A's and B's coordinates in the input topic.
			coords := map[string]string{}
			for _, m := range b.ReadAll(t, "ov.in", 500*time.Millisecond, 20*time.Second) {
				switch {
				case bytes.Equal(m.Value, bigA):
					coords["A"] = fmt.Sprintf("%d/%d", m.Partition, m.Offset)
				case bytes.Equal(m.Value, bigB):
					coords["B"] = fmt.Sprintf("%d/%d", m.Partition, m.Offset)
				case bytes.Equal(m.Value, bigC):
					coords["C"] = fmt.Sprintf("%d/%d", m.Partition, m.Offset)
				}
			}
			dlq := b.ReadAll(t, "ov.in.dlq", 500*time.Millisecond, 20*time.Second)
			if len(dlq) != 3 {
				t.Fatalf("%d records on the dead-letter topic, want 3 (A's dead letter, B's and C's references)", len(dlq))
			}
			hdr := func(m kafka.Message, k string) string { v, _ := stream.Header(m, k); return v }
			for _, m := range dlq {
				if r := hdr(m, "consentgate.dlq.reason"); r != "record_too_large" {
					t.Errorf("dead letter reason %q, want record_too_large", r)
				}
				if hdr(m, "consentgate.dlq.error") == "" {
					t.Error("dead letter without consentgate.dlq.error")
				}
				if tp := hdr(m, "consentgate.source.topic"); tp != "ov.in" {
					t.Errorf("dead letter source topic %q, want ov.in", tp)
				}
				at := hdr(m, "consentgate.source.partition") + "/" + hdr(m, "consentgate.source.offset")
				switch {
				case bytes.Equal(m.Value, bigA):
					if at != coords["A"] {
						t.Errorf("A's dead letter names %s, A is at %s", at, coords["A"])
					}
					if string(m.Key) != "keyA" || hdr(m, "origin") != "test" {
						t.Errorf("A's dead letter lost the input's key or headers: key %q, headers %v", m.Key, m.Headers)
					}
					if hdr(m, "grown") != "" {
						t.Error("A's dead letter carries the grown output's header, want the input's")
					}
					if got := hdr(m, "consentgate.dlq.undelivered_topics"); got != "ov.out" {
						t.Errorf("A's dead letter: undelivered topics %q, want ov.out", got)
					}
					if got, want := hdr(m, "consentgate.event_id"), "e-"+strings.ReplaceAll(coords["A"], "/", "-"); got != want {
						t.Errorf("A's dead letter: event id %q, want %q", got, want)
					}
				case len(m.Value) == 0 && at == coords["C"]:
					// C's own dead letter was refused: never a dead letter of
					// a dead letter, a reference.
					if got := hdr(m, "consentgate.dlq.undelivered_topics"); got != "ov.in.dlq" {
						t.Errorf("C's reference: undelivered topics %q, want ov.in.dlq", got)
					}
					sum := sha256.Sum256(bigC)
					if hdr(m, "consentgate.dlq.reference") != "true" || hdr(m, "consentgate.dlq.value_sha256") != hex.EncodeToString(sum[:]) {
						t.Errorf("C's reference: headers %v", m.Headers)
					}
				case len(m.Value) == 0:
					if at != coords["B"] {
						t.Errorf("B's reference names %s, B is at %s", at, coords["B"])
					}
					if len(m.Key) != 0 || hdr(m, "origin") != "" {
						t.Errorf("B's reference carries payload: key %q, headers %v", m.Key, m.Headers)
					}
					sum := sha256.Sum256(bigB)
					if got := hdr(m, "consentgate.dlq.value_sha256"); got != hex.EncodeToString(sum[:]) {
						t.Errorf("B's reference: sha256 %q", got)
					}
					if got := hdr(m, "consentgate.dlq.value_bytes"); got != strconv.Itoa(len(bigB)) {
						t.Errorf("B's reference: value bytes %q, want %d", got, len(bigB))
					}
					if got := hdr(m, "consentgate.dlq.undelivered_topics"); got != "ov.audit,ov.out" {
						t.Errorf("B's reference: undelivered topics %q, want ov.audit,ov.out", got)
					}
					if got := hdr(m, "consentgate.dlq.reference"); got != "true" {
						t.Errorf("B's reference: consentgate.dlq.reference %q, want true", got)
					}
				default:
					t.Errorf("unexpected dead letter of %d bytes with headers %v", len(m.Value), m.Headers)
				}
			}
		})
	}
}

// TestRunnerStopsWhenEvenAReferenceIsRefused: with a writer whose
// BatchBytes is too small even for a reference record, the runner does not
// commit past the input and does not loop: Run returns the error by itself
// and the input's offset stays uncommitted.
func TestRunnerStopsWhenEvenAReferenceIsRefused(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Topics: []string{"rf.in", "rf.out", "rf.in.dlq"}})
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	pw := stream.NewWriter(cfg)
	defer pw.Close()
	cfg.BatchBytes = 200 // below what a reference record needs
	w := stream.NewWriter(cfg)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in := make([]kafka.Message, 10)
	for i := range in {
		in[i] = kafka.Message{Topic: "rf.in", Value: []byte(fmt.Sprintf("v%04d", i))}
	}
	in[5].Value = bytes.Repeat([]byte("z"), 1000)
	if err := stream.WriteAll(ctx, pw, in, nil); err != nil {
		t.Fatal(err)
	}
	rc := stream.ReaderConfig{Topics: []string{"rf.in"}, GroupID: "rf-group", MaxWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, FromBeginning: true}
	sink := &dlqSink{w: w, acked: map[string]bool{}}
	src := &dlqSource{Reader: stream.NewReader(cfg, rc), sink: sink, committed: map[string]bool{}, mustHaveDLQ: map[string]bool{string(in[5].Value): true}}
	defer src.Close()
	runner := &stream.Runner{
		Source: src, Sink: sink, BatchSize: 1, Linger: time.Millisecond, DrainTimeout: time.Second, Depth: -1,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Process: func(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
			m := batch[0]
			return []kafka.Message{{Topic: "rf.out", Value: m.Value, Headers: []kafka.Header{
				{Key: "consentgate.source.topic", Value: []byte(m.Topic)},
				{Key: "consentgate.source.partition", Value: []byte(strconv.Itoa(m.Partition))},
				{Key: "consentgate.source.offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
			}}}, nil
		},
	}
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("runner still running 30s after a reference was refused: want it stopped")
	}
	if err == nil || !strings.Contains(err.Error(), "uncommitted") || !strings.Contains(err.Error(), "references refused") {
		t.Fatalf("Run returned %v, want the refused reference, offsets uncommitted", err)
	}
	if len(src.violations) > 0 {
		t.Errorf("committed without a dead letter: %v", src.violations)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	for c := range src.committed {
		if c >= "0/5" {
			t.Errorf("offset %s committed; want nothing from the refused input on", c)
		}
	}
	if len(src.committed) != 5 {
		t.Errorf("%d offsets committed, want the 5 before the refused input", len(src.committed))
	}
}

// TestWriteAllSetsAsideWhatCanNeverBeWritten: WriteAll (used by the intake
// and tools) no longer retries a refused record for ever: the others are
// written and a *RejectedError names the refused one, whether kafka-go
// (BatchBytes) or the broker (message.max.bytes) refused it.
func TestWriteAllSetsAsideWhatCanNeverBeWritten(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"client", "broker"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			opts := brokertest.Options{Partitions: 1, Topics: []string{"wa.out"}}
			cfg := stream.DefaultConfig()
			if mode == "broker" {
				opts.MaxMessageBytes = 4096
			} else {
				cfg.BatchBytes = 4096
			}
			b := brokertest.Start(t, opts)
			cfg.Brokers = []string{b.Addr}
			w := stream.NewWriter(cfg)
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			msgs := []kafka.Message{
				{Topic: "wa.out", Value: []byte("first")},
				{Topic: "wa.out", Value: bytes.Repeat([]byte("x"), 8192)},
				{Topic: "wa.out", Value: []byte("last")},
			}
			err := stream.WriteAll(ctx, w, msgs, nil)
			var rerr *stream.RejectedError
			if !errors.As(err, &rerr) || len(rerr.Rejected) != 1 || rerr.Rejected[0].Index != 1 || rerr.Rejected[0].Reason != stream.ReasonTooLarge {
				t.Fatalf("WriteAll returned %v, want record 1 rejected as too large", err)
			}
			if !strings.Contains(err.Error(), "wa.out") || strings.Contains(err.Error(), "xxxx") {
				t.Errorf("error %q should name the topic and size, never the payload", err)
			}
			var got []string
			for _, m := range b.ReadAll(t, "wa.out", 500*time.Millisecond, 10*time.Second) {
				got = append(got, string(m.Value))
			}
			if strings.Join(got, " ") != "first last" {
				t.Errorf("topic holds %q, want the two other records in order", got)
			}
		})
	}
}

func TestRejection(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		err       error
		reason    string
		permanent bool
	}{
		{"client-side too large", kafka.MessageTooLargeError{}, stream.ReasonTooLarge, true},
		{"broker too large", kafka.MessageSizeTooLarge, stream.ReasonTooLarge, true},
		{"broker too large, wrapped", fmt.Errorf("%w: The message is too large.", kafka.MessageSizeTooLarge), stream.ReasonTooLarge, true},
		{"record list too large", kafka.RecordListTooLarge, stream.ReasonTooLarge, true},
		{"invalid record", kafka.InvalidRecord, stream.ReasonInvalid, true},
		{"not leader", kafka.NotLeaderForPartition, "", false},
		{"not enough replicas", kafka.NotEnoughReplicas, "", false},
		{"unknown topic", kafka.UnknownTopicOrPartition, "", false},
		{"timeout", context.DeadlineExceeded, "", false},
		{"network", io.ErrUnexpectedEOF, "", false},
		{"nil", nil, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			reason, permanent := stream.Rejection(c.err)
			if reason != c.reason || permanent != c.permanent {
				t.Errorf("Rejection(%v) = %q, %v; want %q, %v", c.err, reason, permanent, c.reason, c.permanent)
			}
		})
	}
}

func TestSourceCoordinates(t *testing.T) {
	t.Parallel()
	h := func(kv ...string) kafka.Message {
		var m kafka.Message
		for i := 0; i < len(kv); i += 2 {
			m.Headers = append(m.Headers, kafka.Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return m
	}
	const st, sp, so = "consentgate.source.topic", "consentgate.source.partition", "consentgate.source.offset"
	for _, c := range []struct {
		name string
		m    kafka.Message
		want stream.Coordinates
		ok   bool
	}{
		{"all three", h(st, "in", sp, "2", so, "41"), stream.Coordinates{Topic: "in", Partition: 2, Offset: 41}, true},
		{"no offset", h(st, "in", sp, "2"), stream.Coordinates{}, false},
		{"bad partition", h(st, "in", sp, "x", so, "1"), stream.Coordinates{}, false},
		{"none", h("other", "1"), stream.Coordinates{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, ok := stream.SourceCoordinates(c.m)
			if ok != c.ok || (ok && got != c.want) {
				t.Errorf("SourceCoordinates = %+v, %v; want %+v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}
