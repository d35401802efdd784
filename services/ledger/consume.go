package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/topicread"
)

// Topic is a topic the ledger reads, and what it holds.
type Topic struct {
	Name string
	Kind ledger.TopicKind
}

// Store is the part of the ledger store the consumer writes through.
type Store interface {
	Resume(ctx context.Context, topic string) (map[int32]ledger.Position, error)
	Holds(ctx context.Context) ([]ledger.Hold, error)
	Hold(ctx context.Context, h ledger.Hold) error
	Ingest(ctx context.Context, b *ledger.Batch) error
}

// Consumer reads every partition of its topics from the positions the
// store holds and writes the records with their positions in one
// transaction per batch, so the ledger holds every record once: a crash
// between a read and its transaction reads the record again, and a record
// already stored is left as it is. It uses no consumer group: the store's
// positions are the only offsets.
//
// A partition whose offsets started again (its topic deleted and created
// again, the ledger pointed at another cluster with the same topic names,
// a leader that lost records) is not taken for the one the ledger read:
// before it reads a partition on from a stored position, and again each
// time the reader reconnects or finds its offset past the partition's end,
// the consumer checks that the partition still reaches the position and
// that the record before it is the one it read (its ledger.RecordHash,
// stored with the position). When not, the partition is held (stored in
// ledger_holds, logged, listed in ConsumerStats.Held, and the service not
// ready): the ledger reads nothing more of it, the other partitions go on,
// and a restart does not lift it.
type Consumer struct {
	Brokers []string
	// Dialer connects the readers and the metadata requests (TLS, SASL);
	// nil is a plain TCP connection.
	Dialer    *kafka.Dialer
	Transport kafka.RoundTripper
	Topics    []Topic
	Store     Store
	Decoder   *ledger.Decoder
	// BatchSize is the most records per transaction; Linger how long a
	// batch waits for more after its first record.
	BatchSize int
	Linger    time.Duration
	// Refresh is how often partitions (and topics created later, such as
	// dead-letter topics) are looked for.
	Refresh time.Duration
	Log     *slog.Logger
	// Ingested, when set, is called after each committed transaction with
	// the batch written (the sealer wakes on audit records).
	Ingested func(b *ledger.Batch)

	mu    sync.Mutex
	stats ConsumerStats
}

// ConsumerStats are the consumer's counters since start.
type ConsumerStats struct {
	Batches, Records, Undecodable int64
	// UnknownKeys counts the records of the keys topic with a Kafka key
	// the ledger does not know: skipped, nothing of them stored.
	UnknownKeys int64
	LastIngest  time.Time
	// LastError is what ended the last session; cleared once a new
	// session has reached the brokers.
	LastError string
	// Partitions are the partitions being read.
	Partitions int
	// Held are the partitions the ledger does not read, with the reason
	// (the stored holds, those of earlier runs too).
	Held []ledger.Hold
}

// Stats returns a copy of the counters.
func (c *Consumer) Stats() ConsumerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.Held = append([]ledger.Hold(nil), c.stats.Held...)
	return st
}

// holdAction is what the operator of a held partition must do; it goes
// into the log with the reason.
const holdAction = "the ledger's rows of this partition are the records it read before: keep this database as their record. " +
	"If the topic was deleted and created again, or the cluster replaced, start a new ledger database (LEDGER_DSN) for the new partition; " +
	"if the ledger was pointed at the wrong cluster, point it back. Then release the hold (consentctl release --topic T --partition N --reason ...) and restart the ledger: " +
	"it checks the partition again and holds it again if it still differs"

// setHolds makes the stored holds the consumer's, and logs each the first
// time it sees it.
func (c *Consumer) setHolds(holds []ledger.Hold) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range holds {
		if !c.logged(h) {
			c.Log.Error("partition held: the ledger reads nothing of it", "topic", h.Topic, "partition", h.Partition,
				"position", h.Next, "held_at", h.At.Format(time.RFC3339), "reason", h.Reason, "action", holdAction)
		}
	}
	c.stats.Held = append([]ledger.Hold(nil), holds...)
}

// logged reports whether h is among the holds already reported (c.mu held).
func (c *Consumer) logged(h ledger.Hold) bool {
	for _, o := range c.stats.Held {
		if o.Topic == h.Topic && o.Partition == h.Partition {
			return true
		}
	}
	return false
}

// hold stores that the consumer no longer reads k and why.
func (c *Consumer) hold(ctx context.Context, k tp, next int64, reason string) error {
	h := ledger.Hold{Topic: k.topic, Partition: k.partition, Next: next, Reason: reason, At: time.Now().UTC()}
	if err := c.Store.Hold(ctx, h); err != nil {
		return fmt.Errorf("hold %s/%d: %w", k.topic, k.partition, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logged(h) {
		return nil
	}
	c.Log.Error("partition held: the ledger reads nothing more of it", "topic", k.topic, "partition", k.partition,
		"position", next, "reason", reason, "action", holdAction)
	c.stats.Held = append(c.stats.Held, h)
	sort.Slice(c.stats.Held, func(i, j int) bool {
		a, b := c.stats.Held[i], c.stats.Held[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	return nil
}

// Run consumes until ctx ends. A failed session (a broker or the database
// out of reach, a record that cannot be decoded yet) ends every reader and
// starts again from the store's positions after a backoff, so nothing is
// skipped and nothing is written twice.
func (c *Consumer) Run(ctx context.Context) error {
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	for {
		before := c.Stats().Batches
		err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if c.Stats().Batches > before {
			backoff = minBackoff // the session made progress: not a persistent failure
		}
		c.mu.Lock()
		c.stats.LastError = err.Error()
		c.mu.Unlock()
		c.Log.Warn("ledger consumer restarting from the stored positions", "error", err.Error(), "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

type tp struct {
	topic     string
	partition int32
}

func (c *Consumer) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	holds, err := c.Store.Holds(ctx)
	if err != nil {
		return fmt.Errorf("read the held partitions: %w", err)
	}
	c.setHolds(holds)
	held := map[tp]bool{}
	for _, h := range holds {
		held[tp{h.Topic, h.Partition}] = true
	}
	kinds := map[string]ledger.TopicKind{}
	resume := map[tp]ledger.Position{}
	next := map[tp]int64{}
	for _, t := range c.Topics {
		kinds[t.Name] = t.Kind
		pos, err := c.Store.Resume(ctx, t.Name)
		if err != nil {
			return fmt.Errorf("read positions of %s: %w", t.Name, err)
		}
		for p, o := range pos {
			resume[tp{t.Name, p}] = o
			next[tp{t.Name, p}] = o.Next
		}
	}
	msgs := make(chan kafka.Message, 4*c.BatchSize)
	errc := make(chan error, 1)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		cancel()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	started := map[tp]bool{}
	discover := func() error {
		parts, err := c.partitions(ctx)
		if err != nil {
			return err
		}
		for _, k := range parts {
			if started[k] || held[k] {
				continue
			}
			started[k] = true
			from := resume[k]
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.read(ctx, k, from, msgs); err != nil && ctx.Err() == nil {
					fail(err)
				}
			}()
		}
		c.mu.Lock()
		c.stats.Partitions = len(started)
		// The brokers answered: whatever ended an earlier session is
		// over, and readiness must not keep reporting it while no
		// record comes (an idle night after a broker restart).
		c.stats.LastError = ""
		c.mu.Unlock()
		return nil
	}
	if err := discover(); err != nil {
		return err
	}
	tick := time.NewTicker(c.Refresh)
	defer tick.Stop()

	// One writer commits the batches in order while the next one is read
	// and decoded. The collector moves next on at the hand-over (collect
	// skips what a batch in flight holds); a failed transaction ends the
	// session, which starts again from the store's positions. The session
	// returns only once the writer has stopped, so that no transaction of
	// it commits after the next session has read the positions.
	work := make(chan handoff, 1)
	var writerErr error
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for h := range work {
			if writerErr != nil {
				continue // drain: nothing after a failed batch is written
			}
			if err := c.write(ctx, h); err != nil {
				writerErr = err
				cancel()
			}
		}
	}()
	finish := func(err error) error {
		close(work)
		<-writerDone
		if writerErr != nil {
			return writerErr
		}
		return err
	}
	for {
		var first kafka.Message
		select {
		case <-ctx.Done():
			select {
			case err := <-errc:
				return finish(err)
			default:
				return finish(ctx.Err())
			}
		case <-tick.C:
			if err := discover(); err != nil {
				return finish(err)
			}
			continue
		case first = <-msgs:
		}
		b, err := c.collect(ctx, first, msgs, kinds, next)
		if len(b.Positions) > 0 {
			h := handoff{b: b, prev: make(map[tp]int64, len(b.Positions))}
			for _, p := range b.Positions {
				k := tp{p.Topic, p.Partition}
				h.prev[k] = next[k]
				next[k] = p.Next
			}
			select {
			case work <- h:
			case <-ctx.Done():
				return finish(ctx.Err())
			}
		}
		if err != nil {
			return finish(err)
		}
	}
}

// handoff is a batch for the writer, with the positions its partitions
// had before it (the store's, once the batches before it committed).
type handoff struct {
	b    *ledger.Batch
	prev map[tp]int64
}

// write commits one batch with its positions and reports it.
func (c *Consumer) write(ctx context.Context, h handoff) error {
	if err := c.Store.Ingest(ctx, h.b); err != nil {
		// The store refuses a partition whose rows could collide with the
		// batch's (its position removed or lowered while its rows stayed,
		// or held by another ledger process): that partition is held, and
		// the next session reads the others.
		var pe *ledger.PartitionError
		if errors.As(err, &pe) {
			k := tp{pe.Topic, pe.Partition}
			if herr := c.hold(ctx, k, h.prev[k], pe.Reason); herr != nil {
				return herr
			}
		}
		return fmt.Errorf("ingest: %w", err)
	}
	c.count(h.b)
	if c.Ingested != nil {
		c.Ingested(h.b)
	}
	return nil
}

// collect decodes first and what follows it within Linger (up to
// BatchSize records) into a batch with the positions after them. A
// transient decoding failure ends the batch before that record and is
// returned with it.
func (c *Consumer) collect(ctx context.Context, first kafka.Message, msgs <-chan kafka.Message, kinds map[string]ledger.TopicKind, next map[tp]int64) (*ledger.Batch, error) {
	b := &ledger.Batch{}
	pos := map[tp]int64{}
	last := map[tp]kafka.Message{}
	add := func(m kafka.Message) error {
		k := tp{m.Topic, int32(m.Partition)}
		want := max(next[k], pos[k])
		if m.Offset < want {
			return nil // already stored (read again after a restart)
		}
		if err := c.Decoder.Add(ctx, b, kinds[m.Topic], m); err != nil {
			return err
		}
		if m.Offset > want {
			// The reader skipped offsets: kafka-go moves to the first
			// offset of a partition without a word when the one asked for
			// was deleted (retention, DeleteRecords) before the ledger read
			// it. Nothing of those records can be stored; the ledger keeps
			// that they were never read, by coordinates, as an undecodable
			// record at the first of them (no leaf hash: the sealer does
			// not seal over the gap).
			msg := fmt.Sprintf("offsets %d..%d were not on the topic when the ledger read it (deleted by retention or DeleteRecords, or compacted, before it was read): not in the ledger", want, m.Offset-1)
			b.Undecodable = append(b.Undecodable, ledger.Undecodable{Coord: ledger.Coord{Topic: m.Topic, Partition: k.partition, Offset: want}, Error: msg})
			// On the keys topic (compacted) gaps are the rule, not news.
			lvl := slog.LevelWarn
			if kinds[m.Topic] == ledger.HoldsKeys {
				lvl = slog.LevelInfo
			}
			c.Log.Log(ctx, lvl, "records skipped: not on the topic when the ledger read it", "topic", m.Topic, "partition", k.partition, "from", want, "to", m.Offset-1)
		}
		pos[k] = m.Offset + 1
		last[k] = m
		return nil
	}
	err := add(first)
	timer := time.NewTimer(c.Linger)
	defer timer.Stop()
	for n := 1; err == nil && n < c.BatchSize; n++ {
		select {
		case m := <-msgs:
			err = add(m)
			continue
		case <-timer.C:
		case <-ctx.Done():
		}
		break
	}
	keys := make([]tp, 0, len(pos))
	for k := range pos {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].partition < keys[j].partition
	})
	for _, k := range keys {
		b.Positions = append(b.Positions, ledger.Position{Topic: k.topic, Partition: k.partition, Next: pos[k], Last: ledger.RecordHash(last[k])})
	}
	return b, err
}

func (c *Consumer) count(b *ledger.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Batches++
	c.stats.Records += int64(len(b.Changes) + len(b.Audits) + len(b.Notices) + len(b.DeadLetters) + len(b.Undecodable) + len(b.Checkpoints) +
		len(b.DataKeys) + len(b.KeyErasures))
	c.stats.Undecodable += int64(len(b.Undecodable))
	if b.UnknownKeys > 0 {
		c.stats.UnknownKeys += int64(b.UnknownKeys)
		// The count only: a Kafka key may hold a subject id.
		c.Log.Warn("records of the keys topic with a Kafka key the ledger does not know were skipped (not stored)", "records", b.UnknownKeys)
	}
	c.stats.LastIngest = time.Now()
}

// partitions lists the partitions of the consumer's topics that exist;
// a topic not created yet is looked for again at the next refresh.
func (c *Consumer) partitions(ctx context.Context) ([]tp, error) {
	names := make([]string, len(c.Topics))
	for i, t := range c.Topics {
		names[i] = t.Name
	}
	cl := &topicread.Client{Brokers: c.Brokers, Dialer: c.Dialer, Transport: c.Transport}
	byTopic, err := cl.PartitionsOf(ctx, names)
	if err != nil {
		return nil, err
	}
	var out []tp
	for _, name := range names {
		for _, p := range byTopic[name] {
			out = append(out, tp{name, p})
		}
	}
	return out, nil
}

// errReread ends a partition's reader whose partition must be checked
// again before it reads on: it reconnected, or found its offset past the
// partition's end.
var errReread = errors.New("the partition must be checked again")

// holdError is a partition that is not the one the ledger read.
type holdError struct{ reason string }

func (e *holdError) Error() string { return e.reason }

// read sends the records of one partition from position from on. Before
// it reads, and again whenever the reader reconnects or finds its offset
// past the partition's end, it checks the partition against the position
// it has reached (check); a partition that fails the check is held and
// read no more, and read returns nil.
func (c *Consumer) read(ctx context.Context, k tp, from ledger.Position, out chan<- kafka.Message) error {
	cur := from
	for {
		start, verify, err := c.check(ctx, k, cur)
		if err == nil {
			err = c.readFrom(ctx, k, start, verify, &cur, out)
			if errors.Is(err, errReread) {
				c.Log.Info("checking the partition again before reading on", "topic", k.topic, "partition", k.partition,
					"position", cur.Next, "why", err.Error())
				continue
			}
		}
		var he *holdError
		if errors.As(err, &he) {
			return c.hold(ctx, k, cur.Next, he.reason)
		}
		return err
	}
}

// check tells where the reader of k starts from position cur, and whether
// the first record it reads is the one at cur.Next-1, read again to compare
// with cur.Last. It fails with a *holdError when the partition ends before
// cur.Next. When the record before cur.Next cannot be compared (no hash
// stored, or the record gone from the topic by retention, DeleteRecords or
// compaction) it says so in a warning and reads on: what it reads next is
// the partition's, and the records gone before it was read are recorded as
// such (collect).
func (c *Consumer) check(ctx context.Context, k tp, cur ledger.Position) (start int64, verify bool, err error) {
	if cur.Next == 0 {
		return 0, false, nil
	}
	first, end, err := c.offsets(ctx, k)
	if err != nil {
		return 0, false, err
	}
	if end < cur.Next {
		return 0, false, &holdError{fmt.Sprintf("the partition ends at offset %d, before the ledger's position %d: its offsets started again "+
			"(the topic deleted and created again, another cluster with the same topic name, or a leader that lost records)", end, cur.Next)}
	}
	switch {
	case cur.Last == nil:
		c.Log.Warn("cannot check that the partition is the one the ledger read: its position was stored without the hash of its last record "+
			"(before ledger migration 3); reading on", "topic", k.topic, "partition", k.partition, "position", cur.Next)
		return cur.Next, false, nil
	case first > cur.Next-1:
		c.Log.Warn("cannot check that the partition is the one the ledger read: the record before its position is no longer on the topic "+
			"(retention or DeleteRecords); reading on", "topic", k.topic, "partition", k.partition, "position", cur.Next, "first_offset", first)
		return cur.Next, false, nil
	}
	return cur.Next - 1, true, nil
}

// offsets returns the first offset of partition k and its end (the offset
// of the next record written).
func (c *Consumer) offsets(ctx context.Context, k tp) (first, end int64, err error) {
	cl := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 10 * time.Second, Transport: c.Transport}
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		k.topic: {kafka.FirstOffsetOf(int(k.partition)), kafka.LastOffsetOf(int(k.partition))}}})
	if err != nil {
		return 0, 0, fmt.Errorf("offsets of %s/%d: %w", k.topic, k.partition, kafkaconn.Diagnose(ctx, c.Dialer, c.Brokers, err))
	}
	for _, po := range res.Topics[k.topic] {
		if int32(po.Partition) != k.partition {
			continue
		}
		if po.Error != nil {
			return 0, 0, fmt.Errorf("offsets of %s/%d: %w", k.topic, k.partition, po.Error)
		}
		return po.FirstOffset, po.LastOffset, nil
	}
	return 0, 0, fmt.Errorf("offsets of %s/%d: not in the answer", k.topic, k.partition)
}

// readFrom reads partition k from offset start on and sends its records,
// moving *cur past each one sent. With verify, the record at start is the
// one before *cur: it is compared with cur.Last and not sent. It returns
// errReread when the reader connected again after its first record (a
// broker restarted or replaced, the partition moved or deleted) or found
// its offset past the partition's end: kafka-go's reader goes on by itself
// in both cases, from an offset that may not mean what it meant.
func (c *Consumer) readFrom(ctx context.Context, k tp, start int64, verify bool, cur *ledger.Position, out chan<- kafka.Message) error {
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var pastEnd atomic.Bool
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.Brokers, Dialer: c.Dialer, Topic: k.topic, Partition: int(k.partition),
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
		// At a (re)connection, an offset past the partition's end is an
		// error rather than retried without end ...
		OffsetOutOfRangeError: true,
		// ... but while connected, kafka-go v0.4.51 retries it and only
		// logs (reader.go: "the kafka reader is reading passed the last
		// offset ..."), and reads on once the partition is long enough.
		ErrorLogger: kafka.LoggerFunc(func(format string, _ ...any) {
			if strings.HasPrefix(format, "the kafka reader is reading passed the last offset") {
				pastEnd.Store(true)
				rcancel()
			}
		}),
	})
	defer r.Close()
	from := start
	if from == 0 {
		from = kafka.FirstOffset
	}
	if err := r.SetOffset(from); err != nil {
		return fmt.Errorf("%s/%d: set offset %d: %w", k.topic, k.partition, start, err)
	}
	var dials, connected int64
	firstRecord := true
	var last kafka.Message
	sent := false
	defer func() {
		if sent {
			*cur = ledger.Position{Topic: k.topic, Partition: k.partition, Next: last.Offset + 1, Last: ledger.RecordHash(last)}
		}
	}()
	for {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pastEnd.Load() {
				return fmt.Errorf("%w: its offset is past the partition's end", errReread)
			}
			if errors.Is(err, kafka.OffsetOutOfRange) {
				return fmt.Errorf("%w: at a reconnection its offset was past the partition's end", errReread)
			}
			return fmt.Errorf("read %s/%d: %w", k.topic, k.partition, err)
		}
		// Stats counts since its last call; the dials before the first
		// record are those of the connection that read it.
		dials += r.Stats().Dials
		if firstRecord {
			firstRecord = false
			connected = dials
			if verify {
				switch {
				case m.Offset == start:
					if !bytes.Equal(ledger.RecordHash(m), cur.Last) {
						return &holdError{fmt.Sprintf("the record at offset %d is not the one the ledger read there: the partition's offsets "+
							"started again (the topic deleted and created again, or another cluster with the same topic name)", start)}
					}
					continue // stored already
				case m.Offset < start:
					return fmt.Errorf("read %s/%d: asked for offset %d, got %d", k.topic, k.partition, start, m.Offset)
				default:
					c.Log.Warn("cannot check that the partition is the one the ledger read: the record before its position is no longer "+
						"on the topic (compacted or deleted); reading on", "topic", k.topic, "partition", k.partition, "position", cur.Next)
				}
			}
		} else if dials > connected || pastEnd.Load() {
			// m is not sent: it is read again after the check.
			return fmt.Errorf("%w: it connected again after its first record", errReread)
		}
		select {
		case out <- m:
			last, sent = m, true
		case <-ctx.Done():
			return nil
		}
	}
}
