// Package stream holds the Kafka plumbing that every service shares, built on
// segmentio/kafka-go with its known pitfalls handled:
//
//   - kafka.Writer's zero RequiredAcks means acks=none; writers made here use
//     acks=all, and a BatchTimeout short enough that synchronous writes do
//     not wait a second per call;
//   - kafka.NewReader panics on bad settings; ReaderConfig.Validate checks
//     them first and says what to set;
//   - a synchronous WriteMessages fails as a whole or per message
//     (kafka.WriteErrors); WriteAll retries only the messages that failed.
//
// Offsets are committed by the caller, synchronously, only after every
// record derived from them is acknowledged (CommitInterval is 0).
package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/envflag"
)

// Config is the Kafka part of a service's configuration.
type Config struct {
	Brokers          []string
	ClientID         string
	AutoCreateTopics bool
	WriteTimeout     time.Duration
	BatchBytes       int
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
		Transport:              &kafka.Transport{ClientID: c.ClientID},
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
		Dialer:            &kafka.Dialer{ClientID: c.ClientID, Timeout: 10 * time.Second, DualStack: true},
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

// WriteAll writes msgs and retries, with backoff, only the messages the
// brokers did not acknowledge, until all are acknowledged or ctx ends. onRetry
// (may be nil) is told about each failed attempt, for logs and metrics.
func WriteAll(ctx context.Context, w Writer, msgs []kafka.Message, onRetry func(failed int, err error)) error {
	backoff := 50 * time.Millisecond
	pending := msgs
	for len(pending) > 0 {
		err := w.WriteMessages(ctx, pending...)
		if err == nil {
			return nil
		}
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			var retry []kafka.Message
			var first error
			for i, e := range werrs {
				if e != nil {
					retry = append(retry, pending[i])
					if first == nil {
						first = e
					}
				}
			}
			pending = retry
			err = first
			if len(pending) == 0 {
				return nil
			}
		}
		if onRetry != nil {
			onRetry(len(pending), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("write %d records: %w (last error: %v)", len(pending), ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	return nil
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
func Ping(ctx context.Context, c Config) error {
	var d kafka.Dialer
	var errs []error
	for _, b := range c.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.ApiVersions()
			conn.Close()
			if err == nil {
				return nil
			}
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("no broker answers: %w", errors.Join(errs...))
}
