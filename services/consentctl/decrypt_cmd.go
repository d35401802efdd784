package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// decryptedRecord is one line of consentctl decrypt's output.
type decryptedRecord struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	EventID   string `json:"event_id,omitempty"`
	Schema    string `json:"schema"`
	Value     any    `json:"value"`
	// Decrypted and Erased are field paths: decrypted, and holding
	// ciphertext whose subject was erased (its key destroyed).
	Decrypted []string `json:"decrypted,omitempty"`
	Erased    []string `json:"erased,omitempty"`
}

func cmdDecrypt(ctx context.Context, e *env, args []string) error {
	fs := e.flags("decrypt", "--brokers B --topic T [--partition N] [--offset N] [--max N] (CONSENT_KEK_FILE)")
	brokers := fs.String("brokers", e.getenv("KAFKA_BROKERS"), "Kafka brokers, comma-separated (env KAFKA_BROKERS)")
	topic := fs.String("topic", "", "the topic to read, e.g. compliant.marketing (required)")
	partition := fs.Int("partition", -1, "read only this partition")
	offset := fs.Int64("offset", -1, "start at this offset (with --partition); default: the first")
	maxRecords := fs.Int("max", 100, "stop after this many records; 0 reads to the end")
	keysTopic := fs.String("keys-topic", envOr(e, "KEYS_TOPIC", shred.DefaultTopic), "the keys topic (env KEYS_TOPIC)")
	kekFile := fs.String("kek-file", e.getenv(shred.EnvKEKFile), "file of the key-encryption keys (env CONSENT_KEK_FILE; or CONSENT_KEK inline)")
	schemasDir := fs.String("schemas-dir", e.getenv("SCHEMAS_DIR"), "folder of .avsc files to decode with instead of the built-in ones (env SCHEMAS_DIR)")
	var kf kafkaFlags
	kf.add(fs, e)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *brokers == "" || *topic == "" {
		fs.Usage()
		return errors.New("--brokers and --topic are required")
	}
	if *offset >= 0 && *partition < 0 {
		return errors.New("--offset needs --partition")
	}
	if *maxRecords < 0 {
		return errors.New("--max must be 0 (to the end) or more")
	}
	settings := shred.Settings{Topic: *keysTopic, KEKFile: *kekFile, KEK: e.getenv(shred.EnvKEK)}
	if *kekFile != "" {
		settings.KEK = ""
	}
	if !settings.HasKEK() {
		return errors.New("no key-encryption key: set CONSENT_KEK_FILE (or --kek-file) to the file the enforcer's CONSENT_KEK_FILE names")
	}
	kek, err := settings.LoadKEK()
	if err != nil {
		return err
	}
	client, err := kf.client(*brokers)
	if err != nil {
		return err
	}
	cat, err := loadCatalog(*schemasDir)
	if err != nil {
		return err
	}
	codec := avrocodec.New(cat, nil)
	ring, err := shred.OpenRing(ctx, shred.RingConfig{Brokers: client.Brokers, Dialer: client.Dialer, Transport: client.Transport,
		Topic: *keysTopic, KEK: kek, Log: discardLog()})
	if err != nil {
		return fmt.Errorf("keys topic %s: %w", *keysTopic, err)
	}
	defer ring.Close()
	if err := ring.WaitCaughtUp(ctx); err != nil {
		return fmt.Errorf("read the keys topic %s: %w", *keysTopic, err)
	}

	ranges, err := client.Offsets(ctx, *topic)
	if err != nil {
		return err
	}
	parts := make([]int32, 0, len(ranges))
	for p := range ranges {
		if *partition < 0 || int(p) == *partition {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return fmt.Errorf("topic %s has no partition %d", *topic, *partition)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	enc := json.NewEncoder(e.stdout)
	var n, decrypted, erased int
	stop := errors.New("enough")
	for _, p := range parts {
		r := ranges[p]
		from := r.First
		if *offset >= 0 {
			from = max(*offset, r.First)
		}
		if from >= r.End {
			continue
		}
		err := client.Read(ctx, *topic, p, from, r.End, func(m kafka.Message) error {
			if *maxRecords > 0 && n >= *maxRecords {
				return stop
			}
			n++
			rec, err := codec.Decode(ctx, m.Value)
			if err != nil {
				return fmt.Errorf("%s/%d@%d: not a record consentctl can decode (%v): give --schemas-dir", *topic, p, m.Offset, err)
			}
			v, rep, err := shred.DecryptValue(ctx, ring, rec.Schema.Root(), rec.Value)
			if err != nil {
				return fmt.Errorf("%s/%d@%d: %w", *topic, p, m.Offset, err)
			}
			id, _ := stream.Header(m, "consentgate.event_id")
			decrypted += len(rep.Fields)
			erased += len(rep.Erased)
			return enc.Encode(decryptedRecord{Topic: *topic, Partition: int(p), Offset: m.Offset, EventID: id, Schema: rec.Schema.FullName,
				Value: jsonable(v), Decrypted: rep.Fields, Erased: rep.Erased})
		})
		if errors.Is(err, stop) {
			break
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "%d records read from %s: %d fields decrypted, %d fields of erased subjects (their keys are destroyed)\n", n, *topic, decrypted, erased)
	return nil
}

// loadCatalog returns the schemas of dir, or the built-in ones.
func loadCatalog(dir string) (*avrocodec.Catalog, error) {
	if dir != "" {
		return avrocodec.LoadCatalog(os.DirFS(dir))
	}
	return avrocodec.LoadCatalog(schemas.FS)
}

// jsonable turns a goavro native value into one encoding/json prints
// readably: times in RFC 3339, bytes as base64 (json's own), everything
// else as it is.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case fmt.Stringer:
		return strings.TrimSpace(x.String())
	}
	return v
}

// discardLog is the keys ring's log: consentctl reports on its own.
func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
