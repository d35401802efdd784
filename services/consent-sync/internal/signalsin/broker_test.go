package signalsin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/pkg/stream"
)

// world is a broker with the signals topic, its dead letters and the
// consent topic (one partition each), and what a test needs around it.
type world struct {
	broker *brokertest.Broker
	kc     stream.Config
	codec  *avrocodec.Codec
	w      *kafka.Writer
}

func newWorld(t *testing.T, o brokertest.Options) *world {
	t.Helper()
	o.Partitions = 1
	b := brokertest.Start(t, o)
	b.CreateTopics(t, 1, signalsTopic, signalsTopic+".dlq", changesTopic)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{b.Addr}
	kc.WriteTimeout = 2 * time.Second
	w := stream.NewWriter(kc)
	t.Cleanup(func() { w.Close() })
	return &world{broker: b, kc: kc, codec: newCodec(t), w: w}
}

// produce writes signal records (acks=all) with the given timestamps.
func (wd *world) produce(t *testing.T, msgs ...kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range msgs {
		msgs[i].Topic, msgs[i].Partition, msgs[i].Offset = signalsTopic, 0, 0
	}
	if err := stream.WriteAll(ctx, wd.w, msgs, nil); err != nil {
		t.Fatal(err)
	}
}

func readerConfig(group string) stream.ReaderConfig {
	return Config{Topic: signalsTopic, GroupID: group}.ReaderConfig(stream.ReaderConfig{MaxWait: 100 * time.Millisecond, SessionTimeout: 6 * time.Second})
}

// committed returns the group's committed offset of the signals topic's
// partition 0 (-1: none).
func (wd *world) committed(t *testing.T, group string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(wd.broker.Addr), Timeout: 5 * time.Second}
	resp, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{signalsTopic: {0}}})
	if err != nil {
		return -2 // the broker may be restarting: not committed as far as we know
	}
	for _, p := range resp.Topics[signalsTopic] {
		if p.Partition == 0 && p.Error == nil {
			return p.CommittedOffset
		}
	}
	return -1
}

// running is a signals runner at work.
type running struct {
	runner *stream.Runner
	cancel context.CancelFunc // ends Run's context (SIGTERM)
	stop   func() error       // cancel and wait for Run
}

// run starts a runner of a new Consumer on src, writing to sink.
func (wd *world) run(t *testing.T, src stream.Source, sink stream.Writer) (*Consumer, *running) {
	t.Helper()
	c := newConsumer(t, wd.codec)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := c.NewRunner(src, sink, RunnerSettings{BatchSize: 100, Linger: 20 * time.Millisecond, DrainTimeout: 2 * time.Second,
		MaxBackoff: 300 * time.Millisecond, Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return c, &running{runner: r, cancel: cancel, stop: stop}
}

// until polls cond for up to 30 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// changeIDs decodes the consent topic's records.
func (wd *world) changes(t *testing.T) ([]kafka.Message, []string) {
	t.Helper()
	msgs := wd.broker.ReadAll(t, changesTopic, 300*time.Millisecond, 10*time.Second)
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = decodeChange(t, wd.codec, m).ChangeID
	}
	return msgs, ids
}

func wantIDs(t *testing.T, bodies ...string) []string {
	t.Helper()
	var ids []string
	for _, b := range bodies {
		cs, err := signals.Changes(devPolicy(t), submission(t, b))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			ids = append(ids, c.ChangeID)
		}
	}
	return ids
}

// TestConsumerOnBroker runs the consumer against a real broker process:
// the deciding record's changes reach the consent topic (key, the record's
// timestamp, the intake's header), the malformed and undecodable records
// reach the dead-letter topic whole with their reasons, the record that
// decides nothing produces nothing, and the group's offset moves past all
// of them; a stop drains and commits.
func TestConsumerOnBroker(t *testing.T) {
	t.Parallel()
	wd := newWorld(t, brokertest.Options{})
	badTCF := submission(t, gpcJSON)
	badTCF.Signals = append(badTCF.Signals, signals.Signal{Type: "tcf", Value: "CPxx!!"})
	wd.produce(t,
		record(0, "sig-subject-1", encode(t, wd.codec, submission(t, decidingJSON)), received),
		record(0, "sig-subject-2", encode(t, wd.codec, submission(t, nothingJSON)), received),
		record(0, "sig-subject-3", encode(t, wd.codec, badTCF), received),
		record(0, "junk", []byte("\xc3\x01not avro"), received),
	)
	const group = "signals-on-broker"
	r := stream.NewReader(wd.kc, readerConfig(group))
	defer r.Close()
	c, run := wd.run(t, r, wd.w)
	until(t, "the group committed all 4 records", func() bool { return wd.committed(t, group) == 4 })
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	msgs, ids := wd.changes(t)
	if want := wantIDs(t, decidingJSON); !slices.Equal(ids, want) {
		t.Fatalf("consent topic holds %v, want %v", ids, want)
	}
	for i, m := range msgs {
		if string(m.Key) != "sig-subject-1" || !m.Time.Equal(received) || len(header(m, "consentgate.intake.signal_submission")) != 16 ||
			header(m, HeaderSignalSource) != "consent.signals/0/0" {
			t.Errorf("change %d: key %q time %v headers %v", i, m.Key, m.Time, m.Headers)
		}
	}
	letters := wd.broker.ReadAll(t, signalsTopic+".dlq", 300*time.Millisecond, 10*time.Second)
	if len(letters) != 2 {
		t.Fatalf("%d dead letters, want 2", len(letters))
	}
	for i, want := range []struct {
		reason string
		offset string
		value  []byte
	}{{ReasonMalformedSignal, "2", encode(t, wd.codec, badTCF)}, {ReasonUndecodable, "3", []byte("\xc3\x01not avro")}} {
		m := letters[i]
		if header(m, stream.HeaderDLQReason) != want.reason || header(m, stream.HeaderSourceOffset) != want.offset ||
			string(m.Value) != string(want.value) || header(m, "producer-trace") != "abc" {
			t.Errorf("dead letter %d: reason %q offset %q value %q headers %v", i, header(m, stream.HeaderDLQReason), header(m, stream.HeaderSourceOffset), m.Value, m.Headers)
		}
	}
	if c.Ignored.Load() != 1 || c.Decided.Load() != 1 || c.DeadLettered.Load() != 2 {
		t.Errorf("counters: ignored %d decided %d dead-lettered %d", c.Ignored.Load(), c.Decided.Load(), c.DeadLettered.Load())
	}
}

// noCommit is the signals reader of a process that dies between writing
// a batch's changes and committing it: every commit fails.
type noCommit struct {
	*kafka.Reader
}

func (n *noCommit) CommitMessages(context.Context, ...kafka.Message) error {
	return errors.New("test: the process died before the commit")
}

// TestRedeliveryMakesTheSameChangeIDs: a first process writes the changes
// but never commits; the next one gets the records again and produces the
// same changes, change ids included, and commits.
func TestRedeliveryMakesTheSameChangeIDs(t *testing.T) {
	t.Parallel()
	wd := newWorld(t, brokertest.Options{})
	wd.produce(t,
		record(0, "sig-subject-1", encode(t, wd.codec, submission(t, decidingJSON)), received),
		record(0, "sig-subject-3", encode(t, wd.codec, submission(t, gpcJSON)), received),
	)
	const group = "signals-redelivery"
	want := wantIDs(t, decidingJSON, gpcJSON)

	first := &noCommit{Reader: stream.NewReader(wd.kc, readerConfig(group))}
	_, run := wd.run(t, first, wd.w)
	until(t, "the first process wrote both records' changes", func() bool { return run.runner.Records.Load() == 2 })
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	first.Close()
	if got := wd.committed(t, group); got >= 0 {
		t.Fatalf("committed offset %d after a process that never committed", got)
	}
	if _, ids := wd.changes(t); !slices.Equal(ids, want) {
		t.Fatalf("after the first process the consent topic holds %v, want %v", ids, want)
	}

	second := stream.NewReader(wd.kc, readerConfig(group))
	defer second.Close()
	_, run2 := wd.run(t, second, wd.w)
	until(t, "the second process committed both records", func() bool { return wd.committed(t, group) == 2 })
	if err := run2.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, ids := wd.changes(t); !slices.Equal(ids, append(slices.Clone(want), want...)) {
		t.Fatalf("after the redelivery the consent topic holds %v, want %v twice", ids, want)
	}
}

// brokerDown stops the broker at the first write of the runner, then
// passes every write on (they fail until the broker is back).
type brokerDown struct {
	t      *testing.T
	b      *brokertest.Broker
	w      stream.Writer
	once   sync.Once
	down   chan struct{}
	failed chan struct{}
	nfail  int
	mu     sync.Mutex
}

func (d *brokerDown) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	d.once.Do(func() {
		if err := d.b.Proc.Stop(10 * time.Second); err != nil {
			d.t.Errorf("stop the broker: %v", err)
		}
		close(d.down)
	})
	err := d.w.WriteMessages(ctx, msgs...)
	if err != nil {
		d.mu.Lock()
		if d.nfail++; d.nfail == 2 {
			close(d.failed)
		}
		d.mu.Unlock()
	}
	return err
}

// TestBrokerDownPausesAndNeverSkips: the broker goes away while a batch's
// changes are written: nothing is committed while it is down (the runner
// retries the write), and once it is back the changes are written and the
// offset committed.
func TestBrokerDownPausesAndNeverSkips(t *testing.T) {
	t.Parallel()
	wd := newWorld(t, brokertest.Options{DataDir: t.TempDir()})
	wd.produce(t, record(0, "sig-subject-1", encode(t, wd.codec, submission(t, decidingJSON)), received))
	const group = "signals-broker-down"
	r := stream.NewReader(wd.kc, readerConfig(group))
	defer r.Close()
	sink := &brokerDown{t: t, b: wd.broker, w: wd.w, down: make(chan struct{}), failed: make(chan struct{})}
	_, run := wd.run(t, r, sink)
	select {
	case <-sink.failed:
	case <-time.After(30 * time.Second):
		t.Fatal("the runner did not try to write twice with the broker down")
	}
	if n := run.runner.Batches.Load(); n != 0 {
		t.Fatalf("%d batches committed with the broker down", n)
	}
	if run.runner.Retries.Load() == 0 {
		t.Error("no retry counted")
	}
	wd.broker.Restart()
	until(t, "the group committed the record after the broker came back", func() bool { return wd.committed(t, group) == 1 })
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	_, ids := wd.changes(t)
	want := wantIDs(t, decidingJSON)
	// A write the broker took before it went down may be there twice:
	// the same change ids, applied once.
	got := slices.Compact(slices.Sorted(slices.Values(ids)))
	if !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("consent topic holds %v, want %v", ids, want)
	}
}

// gate holds the first write until released.
type gate struct {
	w       stream.Writer
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gate) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.w.WriteMessages(ctx, msgs...)
}

// TestStopDrainsAndCommits: a stop (SIGTERM) while a batch is being written
// lets the batch finish: its changes are written and its offsets
// committed before Run returns.
func TestStopDrainsAndCommits(t *testing.T) {
	t.Parallel()
	wd := newWorld(t, brokertest.Options{})
	wd.produce(t,
		record(0, "sig-subject-1", encode(t, wd.codec, submission(t, decidingJSON)), received),
		record(0, "sig-subject-3", encode(t, wd.codec, submission(t, gpcJSON)), received),
	)
	const group = "signals-drain"
	r := stream.NewReader(wd.kc, readerConfig(group))
	defer r.Close()
	g := &gate{w: wd.w, entered: make(chan struct{}), release: make(chan struct{})}
	_, run := wd.run(t, r, g)
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the runner never wrote")
	}
	run.cancel()
	close(g.release)
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := wd.committed(t, group); got != 2 {
		t.Fatalf("committed offset %d after the drain, want 2", got)
	}
	if _, ids := wd.changes(t); !slices.Equal(ids, wantIDs(t, decidingJSON, gpcJSON)) {
		t.Fatalf("consent topic holds %v", ids)
	}
}
