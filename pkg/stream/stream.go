// Package stream holds the Kafka plumbing that every service shares, built on
// segmentio/kafka-go with its known pitfalls handled:
//
//   - kafka.Writer's zero RequiredAcks means acks=none; writers made here use
//     acks=all, and a BatchTimeout short enough that synchronous writes do
//     not wait a second per call;
//   - kafka.NewReader panics on bad settings; ReaderConfig.Validate checks
//     them first and says what to set;
//   - a synchronous WriteMessages fails as a whole or per message
//     (kafka.WriteErrors); WriteAll retries only the messages that failed;
//   - a record that can never be written (larger than BatchBytes, which
//     kafka-go refuses before sending with a kafka.MessageTooLargeError, or
//     refused by the broker as too large or invalid) is set aside by
//     WriteEach instead of being retried for ever: the Runner replaces it
//     with a dead letter.
//
// Offsets are committed by the caller, synchronously, only after every
// record derived from them is acknowledged (CommitInterval is 0).
package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/kafkaconn"
)

// Config is the Kafka part of a service's configuration.
type Config struct {
	Brokers          []string
	ClientID         string
	AutoCreateTopics bool
	WriteTimeout     time.Duration
	BatchBytes       int
	// Security is how every client connects: TLS and SASL
	// (KAFKA_TLS*, KAFKA_SASL_*); the zero value is plain TCP.
	Security kafkaconn.Config
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Brokers:      []string{"127.0.0.1:9092"},
		WriteTimeout: 10 * time.Second,
		BatchBytes:   4 << 20,
	}
}

// Validate reports every problem at once, each with what to set.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers: set KAFKA_BROKERS (comma-separated host:port)"))
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndex(b, ":"); i <= 0 || i == len(b)-1 {
			errs = append(errs, fmt.Errorf("broker %q is not host:port: fix KAFKA_BROKERS", b))
		}
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("write timeout must be positive: set KAFKA_WRITE_TIMEOUT, e.g. 10s"))
	}
	if c.BatchBytes < 1024 {
		errs = append(errs, errors.New("batch bytes below 1024: set KAFKA_BATCH_BYTES, e.g. 4194304"))
	}
	errs = append(errs, c.Security.Validate())
	return errors.Join(errs...)
}

// NewWriter returns a writer for any topic (the topic is set per message),
// acks=all, partitioned by key with the same murmur2 hash that the Java
// client uses, so a subject's records land on the same partition whichever
// client wrote them.
func NewWriter(c Config) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers...),
		Balancer:     &kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		// kafka-go allocates a []Message of BatchSize for every partition
		// batch of every write: 10000 made the garbage collector take
		// half the enforcer's CPU. A larger write is split in batches.
		BatchSize:              1000,
		BatchBytes:             int64(c.BatchBytes),
		WriteTimeout:           c.WriteTimeout,
		ReadTimeout:            c.WriteTimeout,
		MaxAttempts:            3,
		AllowAutoTopicCreation: c.AutoCreateTopics,
		Transport:              c.Transport(),
	}
}

// ReaderConfig is a consumer-group reader's configuration.
type ReaderConfig struct {
	Topics         []string
	GroupID        string
	MaxWait        time.Duration
	SessionTimeout time.Duration
	FromBeginning  bool
}

// Validate checks what kafka.NewReader would otherwise panic on.
func (r ReaderConfig) Validate(prefix string) error {
	var errs []error
	if len(r.Topics) == 0 {
		errs = append(errs, fmt.Errorf("no input topics: set %sTOPICS", prefix))
	}
	for _, t := range r.Topics {
		if t == "" || strings.ContainsAny(t, " ,/") {
			errs = append(errs, fmt.Errorf("bad topic name %q: fix %sTOPICS", t, prefix))
		}
	}
	if r.GroupID == "" {
		errs = append(errs, fmt.Errorf("empty consumer group: set %sGROUP_ID", prefix))
	}
	if r.MaxWait < time.Millisecond {
		errs = append(errs, fmt.Errorf("max wait below 1ms: set %sMAX_WAIT, e.g. 250ms", prefix))
	}
	if r.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("session timeout below 1s: set %sSESSION_TIMEOUT, e.g. 10s", prefix))
	}
	return errors.Join(errs...)
}

// NewReader returns a consumer-group reader that commits only when told to.
func NewReader(c Config, r ReaderConfig) *kafka.Reader {
	start := kafka.LastOffset
	if r.FromBeginning {
		start = kafka.FirstOffset
	}
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           c.Brokers,
		GroupID:           r.GroupID,
		GroupTopics:       r.Topics,
		MinBytes:          1,
		MaxBytes:          10 << 20,
		MaxWait:           r.MaxWait,
		ReadBatchTimeout:  r.MaxWait + 5*time.Second,
		CommitInterval:    0,
		StartOffset:       start,
		SessionTimeout:    r.SessionTimeout,
		HeartbeatInterval: r.SessionTimeout / 5,
		RebalanceTimeout:  r.SessionTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    500 * time.Millisecond,
		Dialer:            c.Dialer(),
	})
}

// Fetcher is the part of kafka.Reader that FetchBatch needs.
type Fetcher interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
}

// FetchBatch blocks for the first message, then takes whatever else arrives
// within linger, up to max messages. It returns what it has when ctx ends
// after the first message.
func FetchBatch(ctx context.Context, r Fetcher, max int, linger time.Duration) ([]kafka.Message, error) {
	first, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{first}
	lctx, cancel := context.WithTimeout(ctx, linger)
	defer cancel()
	for len(batch) < max {
		m, err := r.FetchMessage(lctx)
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// Writer is the part of kafka.Writer that WriteAll needs.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Reasons a record can never be written as it is (Rejected.Reason, and the
// consentgate.dlq.reason of the dead letter that replaces it).
const (
	// ReasonTooLarge: the record is larger than the writer's BatchBytes
	// (kafka-go refuses it before sending) or than the topic's
	// max.message.bytes (the broker answers MESSAGE_TOO_LARGE or
	// RECORD_LIST_TOO_LARGE).
	ReasonTooLarge = "record_too_large"
	// ReasonInvalid: the broker refused the record itself (INVALID_RECORD,
	// e.g. a record without a key on a compacted topic).
	ReasonInvalid = "record_invalid"
)

// Rejection classifies a write error: it reports the reason when the error
// means that the record will never be accepted as it is, however often it is
// retried, and false for errors worth retrying. A broker's size error
// applies to a whole produce batch, so it condemns a record only when the
// record was written alone (WriteEach sees to that).
func Rejection(err error) (reason string, permanent bool) {
	switch {
	case err == nil:
		return "", false
	case errors.Is(err, kafka.MessageSizeTooLarge), errors.Is(err, kafka.RecordListTooLarge):
		return ReasonTooLarge, true // also kafka.MessageTooLargeError, which wraps the former
	case errors.Is(err, kafka.InvalidRecord):
		return ReasonInvalid, true
	}
	return "", false
}

// Rejected is a record that can never be written as it is.
type Rejected struct {
	Index  int    // position in the records given to WriteEach
	Reason string // ReasonTooLarge or ReasonInvalid
	Err    error  // why: sizes, limits and broker error codes, never payload
}

// RejectedError is WriteAll's error when records were refused for good; the
// other records were written.
type RejectedError struct {
	Rejected []Rejected
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%d records can never be written (first: %s: %v)", len(e.Rejected), e.Rejected[0].Reason, e.Rejected[0].Err)
}

// WriteAll writes msgs and retries, with backoff, only the messages the
// brokers did not acknowledge, until all are acknowledged or ctx ends. onRetry
// (may be nil) is told about each failed attempt, for logs and metrics.
// Records that can never be written (see WriteEach) are not retried: the
// others are written and a *RejectedError names the refused ones.
func WriteAll(ctx context.Context, w Writer, msgs []kafka.Message, onRetry func(failed int, err error)) error {
	rejected, err := WriteEach(ctx, w, msgs, onRetry)
	if err != nil {
		return err
	}
	if len(rejected) > 0 {
		return &RejectedError{Rejected: rejected}
	}
	return nil
}

// WriteEach writes msgs like WriteAll, retrying transient failures until
// every record is acknowledged or refused for good, and returns the refused
// ones (in msgs order) instead of retrying them for ever:
//
//   - kafka-go refuses a record larger than the writer's BatchBytes before
//     sending anything (kafka.MessageTooLargeError, not kafka.WriteErrors);
//     that record is set aside and the others are written;
//   - a broker's MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE or INVALID_RECORD
//     fails every record of the produce batch it was in, so those records
//     are written again one at a time, in order, and only a record refused
//     on its own is set aside.
//
// Records of one partition are acknowledged in msgs order, retries and
// records written again included: msgs is written in chunks no larger than
// one of the writer's produce batches (a *kafka.Writer, or a Writer that
// implements BatchLimiter), each done before the next. A Writer of unknown
// limits gets msgs at once, and order then holds only while no produce
// batch of a partition fails when a later one of the same partition
// succeeds.
//
// The error is non-nil only when ctx ended first.
func WriteEach(ctx context.Context, w Writer, msgs []kafka.Message, onRetry func(failed int, err error)) ([]Rejected, error) {
	var rejected []Rejected
	for start := 0; start < len(msgs); {
		end := chunkEnd(w, msgs, start)
		r, err := writeChunk(ctx, w, msgs[start:end], onRetry)
		for _, x := range r {
			x.Index += start
			rejected = append(rejected, x)
		}
		if err != nil {
			return rejected, err
		}
		start = end
	}
	return rejected, nil
}

// chunkEnd returns the end of the chunk of msgs that starts at start: at
// most as many records and bytes as one of w's produce batches holds, so
// that kafka-go makes at most one produce batch per partition of a chunk.
// With two, the first could fail (refused as too large, or out of retries)
// while the second is acknowledged, and writing the first again would put
// its records after the second's: out of order per key. A chunk is done
// (every record acknowledged or set aside) before the next is written. A
// writer whose limits are unknown gets everything in one chunk.
func chunkEnd(w Writer, msgs []kafka.Message, start int) int {
	records, bytes, ok := batchLimits(w)
	if !ok {
		return len(msgs)
	}
	end, n := start, int64(0)
	for end < len(msgs) && end-start < records {
		n += int64(batchedBytes(msgs[end]))
		if end > start && n > bytes {
			break
		}
		end++
	}
	return end
}

// BatchLimiter is what a Writer that wraps a *kafka.Writer implements to
// tell WriteEach the largest produce batch it makes (kafka.Writer's
// BatchSize and BatchBytes), so that WriteEach keeps order per key (see
// chunkEnd).
type BatchLimiter interface {
	BatchLimits() (records int, bytes int64)
}

// BatchLimitsOf returns the largest produce batch w makes (records, bytes),
// or false when w does not tell (see BatchLimiter).
func BatchLimitsOf(w Writer) (records int, bytes int64, ok bool) { return batchLimits(w) }

func batchLimits(w Writer) (int, int64, bool) {
	switch w := w.(type) {
	case *kafka.Writer:
		records, bytes := w.BatchSize, w.BatchBytes
		if records <= 0 {
			records = 100 // kafka-go's defaults
		}
		if bytes <= 0 {
			bytes = 1048576
		}
		return records, bytes, true
	case BatchLimiter:
		records, bytes := w.BatchLimits()
		return records, bytes, records > 0 && bytes > 0
	}
	return 0, 0, false
}

// batchedBytes is at least what kafka-go counts of m against BatchBytes.
func batchedBytes(m kafka.Message) int {
	n := 32 + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}

// writeChunk is WriteEach for one chunk.
func writeChunk(ctx context.Context, w Writer, msgs []kafka.Message, onRetry func(failed int, err error)) ([]Rejected, error) {
	backoff := 50 * time.Millisecond
	pending := make([]int, len(msgs))
	for i := range pending {
		pending[i] = i
	}
	var rejected []Rejected
	buf := make([]kafka.Message, 0, len(msgs))
	for len(pending) > 0 {
		buf = buf[:0]
		for _, i := range pending {
			buf = append(buf, msgs[i])
		}
		err := w.WriteMessages(ctx, buf...)
		if err == nil {
			break
		}
		var tooLarge kafka.MessageTooLargeError
		if errors.As(err, &tooLarge) {
			// Refused before anything was sent: set the record aside and
			// write the others at once.
			if j := indexOf(buf, tooLarge.Message); j >= 0 {
				rejected = append(rejected, Rejected{Index: pending[j], Reason: ReasonTooLarge, Err: clientTooLarge(buf[j])})
				pending = append(pending[:j:j], pending[j+1:]...)
				continue
			}
			// Not found (a Writer that copies records): find it alone.
			all := make(kafka.WriteErrors, len(buf))
			for j := range all {
				all[j] = tooLarge
			}
			err = all
		}
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			var retry []int
			var first error
			for j, e := range werrs {
				if e == nil {
					continue
				}
				reason, permanent := Rejection(e)
				if permanent && len(pending) > 1 {
					// The error may be another record's: try it alone.
					e = writeOne(ctx, w, msgs[pending[j]])
					if e == nil {
						continue
					}
					reason, permanent = Rejection(e)
				}
				if permanent {
					rejected = append(rejected, Rejected{Index: pending[j], Reason: reason, Err: refusal(msgs[pending[j]], e)})
					continue
				}
				retry = append(retry, pending[j])
				if first == nil {
					first = e
				}
			}
			pending = retry
			err = first
			if len(pending) == 0 {
				break
			}
		}
		if onRetry != nil {
			onRetry(len(pending), err)
		}
		select {
		case <-ctx.Done():
			return rejected, fmt.Errorf("write %d records: %w (last error: %v)", len(pending), ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	slices.SortFunc(rejected, func(a, b Rejected) int { return a.Index - b.Index })
	return rejected, nil
}

// writeOne writes m alone and returns its own error.
func writeOne(ctx context.Context, w Writer, m kafka.Message) error {
	err := w.WriteMessages(ctx, m)
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == 1 {
		return werrs[0]
	}
	return err
}

// indexOf finds m, a copy of one of msgs, by the identity of its slices. Two
// records sharing key, value and headers have the same size, so the first
// match is the one kafka-go found too large first.
func indexOf(msgs []kafka.Message, m kafka.Message) int {
	for i := range msgs {
		if msgs[i].Topic == m.Topic && sameBytes(msgs[i].Key, m.Key) && sameBytes(msgs[i].Value, m.Value) &&
			len(msgs[i].Headers) == len(m.Headers) && (len(m.Headers) == 0 || &msgs[i].Headers[0] == &m.Headers[0]) {
			return i
		}
	}
	return -1
}

func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// recordBytes is about what kafka-go counts against BatchBytes.
func recordBytes(m kafka.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// tooLargeError is kafka-go's client-side refusal, said plainly (its own
// text is the broker's).
type tooLargeError struct {
	topic string
	bytes int
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("record of about %d bytes for %s is larger than the writer's batch bytes (KAFKA_BATCH_BYTES): refused before sending", e.bytes, e.topic)
}

func (e *tooLargeError) Unwrap() error { return kafka.MessageSizeTooLarge }

func clientTooLarge(m kafka.Message) error {
	return &tooLargeError{topic: m.Topic, bytes: recordBytes(m)}
}

// refusal says which record a broker refused, by topic and size.
func refusal(m kafka.Message, err error) error {
	var tl kafka.MessageTooLargeError
	if errors.As(err, &tl) {
		return clientTooLarge(m)
	}
	return fmt.Errorf("record of about %d bytes for %s refused by the broker: %w", recordBytes(m), m.Topic, err)
}

// Header returns the value of the first header named key.
func Header(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// Flags declares the Kafka settings (KAFKA_*) on s.
func (c *Config) Flags(s *envflag.Set) {
	s.List(&c.Brokers, "kafka-brokers", "KAFKA_BROKERS", "Kafka bootstrap brokers, comma-separated host:port")
	s.String(&c.ClientID, "kafka-client-id", "KAFKA_CLIENT_ID", "client id sent to the brokers")
	s.Bool(&c.AutoCreateTopics, "kafka-auto-create-topics", "KAFKA_AUTO_CREATE_TOPICS", "ask the brokers to create missing output topics")
	s.Duration(&c.WriteTimeout, "kafka-write-timeout", "KAFKA_WRITE_TIMEOUT", "deadline of one produce request")
	s.Int(&c.BatchBytes, "kafka-batch-bytes", "KAFKA_BATCH_BYTES", "largest produce request, in bytes")
	c.Security.Flags(s)
}

// Flags declares the consumer settings on s; prefix names the service's
// variables, such as "ENFORCER_" for ENFORCER_TOPICS.
func (r *ReaderConfig) Flags(s *envflag.Set, prefix string) {
	s.List(&r.Topics, "input-topics", prefix+"TOPICS", "topics to consume, comma-separated")
	s.String(&r.GroupID, "group-id", prefix+"GROUP_ID", "consumer group of this service's instances")
	s.Duration(&r.MaxWait, "max-wait", prefix+"MAX_WAIT", "longest a fetch waits for new records")
	s.Duration(&r.SessionTimeout, "session-timeout", prefix+"SESSION_TIMEOUT", "consumer-group session timeout")
	s.Bool(&r.FromBeginning, "from-beginning", prefix+"FROM_BEGINNING", "a new group starts at the oldest record (else the newest)")
}

// Ping checks that a broker of c answers, within ctx: a readiness probe.
// A failed authentication or TLS handshake says what to check
// (kafkaconn.Explain).
func Ping(ctx context.Context, c Config) error {
	d := c.Dialer()
	var errs []error
	for _, b := range c.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			// A metadata request, not only ApiVersions, which a broker
			// answers before SASL authentication too.
			if dl, ok := ctx.Deadline(); ok {
				_ = conn.SetDeadline(dl)
			}
			_, err = conn.Brokers()
			conn.Close()
			if err == nil {
				return nil
			}
		}
		errs = append(errs, c.Security.Hint(kafkaconn.Explain(err)))
	}
	return fmt.Errorf("no broker answers: %w", errors.Join(errs...))
}

// CheckSecurity connects to c's brokers once, within 10 s, when c has TLS
// or SASL, and returns the error when the brokers refused the TLS
// handshake or the authentication (matching kafkaconn.ErrSecurity, saying
// what to check): a setting to fix, which should stop start-up. A broker
// that cannot be reached is not an error here: it may come later, and the
// readiness probe (Ping) tells.
func CheckSecurity(ctx context.Context, c Config) error {
	if !c.Security.Enabled() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := Ping(ctx, c)
	if errors.Is(err, kafkaconn.ErrSecurity) {
		return fmt.Errorf("connect to the Kafka brokers (KAFKA_BROKERS): %w", err)
	}
	return nil
}
