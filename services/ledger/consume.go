package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

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
	Positions(ctx context.Context, topic string) (map[int32]int64, error)
	Ingest(ctx context.Context, b *ledger.Batch) error
}

// Consumer reads every partition of its topics from the positions the
// store holds and writes the records with their positions in one
// transaction per batch, so the ledger holds every record once: a crash
// between a read and its transaction reads the record again, and a record
// already stored is left as it is. It uses no consumer group: the store's
// positions are the only offsets.
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
	LastIngest                    time.Time
	LastError                     string
	Partitions                    int
}

// Stats returns a copy of the counters.
func (c *Consumer) Stats() ConsumerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
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
	kinds := map[string]ledger.TopicKind{}
	next := map[tp]int64{}
	for _, t := range c.Topics {
		kinds[t.Name] = t.Kind
		pos, err := c.Store.Positions(ctx, t.Name)
		if err != nil {
			return fmt.Errorf("read positions of %s: %w", t.Name, err)
		}
		for p, o := range pos {
			next[tp{t.Name, p}] = o
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
			if started[k] {
				continue
			}
			started[k] = true
			from := next[k]
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
		c.mu.Unlock()
		return nil
	}
	if err := discover(); err != nil {
		return err
	}
	tick := time.NewTicker(c.Refresh)
	defer tick.Stop()
	for {
		var first kafka.Message
		select {
		case <-ctx.Done():
			select {
			case err := <-errc:
				return err
			default:
				return ctx.Err()
			}
		case <-tick.C:
			if err := discover(); err != nil {
				return err
			}
			continue
		case first = <-msgs:
		}
		b, err := c.collect(ctx, first, msgs, kinds, next)
		if len(b.Positions) > 0 {
			if ierr := c.Store.Ingest(ctx, b); ierr != nil {
				return fmt.Errorf("ingest: %w", ierr)
			}
			for _, p := range b.Positions {
				next[tp{p.Topic, p.Partition}] = p.Next
			}
			c.count(b)
			if c.Ingested != nil {
				c.Ingested(b)
			}
		}
		if err != nil {
			return err
		}
	}
}

// collect decodes first and what follows it within Linger (up to
// BatchSize records) into a batch with the positions after them. A
// transient decoding failure ends the batch before that record and is
// returned with it.
func (c *Consumer) collect(ctx context.Context, first kafka.Message, msgs <-chan kafka.Message, kinds map[string]ledger.TopicKind, next map[tp]int64) (*ledger.Batch, error) {
	b := &ledger.Batch{}
	pos := map[tp]int64{}
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
			c.Log.Warn("records skipped: not on the topic when the ledger read it", "topic", m.Topic, "partition", k.partition, "from", want, "to", m.Offset-1)
		}
		pos[k] = m.Offset + 1
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
		b.Positions = append(b.Positions, ledger.Position{Topic: k.topic, Partition: k.partition, Next: pos[k]})
	}
	return b, err
}

func (c *Consumer) count(b *ledger.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Batches++
	c.stats.Records += int64(len(b.Changes) + len(b.Audits) + len(b.Notices) + len(b.DeadLetters) + len(b.Undecodable) + len(b.Checkpoints))
	c.stats.Undecodable += int64(len(b.Undecodable))
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

// read sends the records of one partition from offset from on.
func (c *Consumer) read(ctx context.Context, k tp, from int64, out chan<- kafka.Message) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.Brokers, Dialer: c.Dialer, Topic: k.topic, Partition: int(k.partition),
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	start := from
	if start == 0 {
		start = kafka.FirstOffset
	}
	if err := r.SetOffset(start); err != nil {
		return fmt.Errorf("%s/%d: set offset %d: %w", k.topic, k.partition, from, err)
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s/%d: %w", k.topic, k.partition, err)
		}
		select {
		case out <- m:
		case <-ctx.Done():
			return nil
		}
	}
}
