// Command ledger consumes the pipeline's evidence topics (consent changes,
// audit records, revocation notices, dead letters, audit checkpoints, and
// when each data key was created and destroyed, from the keys topic) into
// the compliance ledger, a relational database that consentctl and the
// console query: SQLite by default (LEDGER_DSN=sqlite:<file>, nothing to
// install), PostgreSQL in production (LEDGER_DSN=postgres://…), same
// schema. Every record is written once: the consumed positions are stored
// in the same transaction as the rows, and a record already stored is left
// as it is, so a crash or a replay neither loses nor repeats a row.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/consentgate/consentgate/pkg/bootstrap"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/seal"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/pkg/telemetry"
)

func main() { bootstrap.Main("ledger", run) }

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg := DefaultConfig()
	cfg.emptyEnvTurnsOff(os.LookupEnv)
	if err := bootstrap.Parse(cfg.flags(), args, func() error { return cfg.Validate() }); err != nil {
		return err
	}
	log.Info("starting", "config", cfg)
	cfg.Kafka.Security.LogWarnings(log)
	if cfg.Kafka.ClientID == "" {
		cfg.Kafka.ClientID = "consentgate-ledger"
	}
	if err := stream.CheckSecurity(ctx, cfg.Kafka); err != nil {
		return err
	}
	codec, err := cfg.Codec()
	if err != nil {
		return err
	}
	store, err := ledger.Open(ctx, cfg.DSN, ledger.WithCatalog(codec.Catalog()))
	if err != nil {
		return fmt.Errorf("open the ledger (LEDGER_DSN): %w", err)
	}
	defer store.Close()

	tel, err := telemetry.Setup(ctx, "ledger", cfg.Telemetry, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	signer, verifiers, err := sealKeys(cfg.SealKeyFile, cfg.VerifierKeysFile)
	if err != nil {
		return err
	}
	dec := &ledger.Decoder{Codec: codec, LeafHash: leafHash, Checkpoint: checkpointReader(cfg.AuditTopic, verifiers)}
	c := &Consumer{
		Brokers: cfg.Kafka.Brokers, Dialer: cfg.Kafka.Dialer(), Transport: cfg.Kafka.Transport(), Topics: cfg.Topics(), Store: store, Decoder: dec,
		BatchSize: cfg.BatchSize, Linger: cfg.Linger, Refresh: cfg.Refresh, Log: log,
	}
	tel.AddReadiness("ledger-consumer", func(context.Context) error {
		st := c.Stats()
		if len(st.Held) > 0 {
			return fmt.Errorf("%d partitions are held (not read: their offsets started again): consentctl stats lists them, the logs say what to do", len(st.Held))
		}
		if st.LastError != "" && time.Since(st.LastIngest) > 30*time.Second {
			return errors.New("the consumer has not written for 30 s and is restarting: see the logs")
		}
		return nil
	})
	tel.AddReadiness("kafka", func(ctx context.Context) error { return stream.Ping(ctx, cfg.Kafka) })
	var sealer *Sealer
	if signer != nil {
		w := stream.NewWriter(cfg.Kafka)
		defer w.Close()
		sealer = &Sealer{Ledger: store, Signer: signer, Writer: w, AuditTopic: cfg.AuditTopic, CheckpointsTopic: cfg.CheckpointsTopic,
			Offsets: cfg.Kafka.TopicReader(10 * time.Second), Interval: cfg.SealInterval, Log: log}
		c.Ingested = sealer.Ingested // the checkpoints the ledger reads are checked
		tel.AddReadiness("sealer", sealer.Ready)
	} else {
		log.Warn("the audit is not sealed by this ledger: set LEDGER_SEAL_KEY_FILE (consentctl keygen makes a key) for signed checkpoints")
	}
	stopConsole, err := startConsole(ctx, cfg, log, store, sealer, func() time.Time { return c.Stats().LastIngest })
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = stopConsole(sctx)
	}()
	log.Info("consuming", "topics", len(c.Topics), "sealing", sealer != nil)
	var wg sync.WaitGroup
	if sealer != nil {
		wg.Go(func() { _ = sealer.Run(ctx) })
	}
	err = c.Run(ctx)
	wg.Wait()
	return err
}

// leafHash is seal.LeafHash for the decoder.
func leafHash(topic string, partition int32, offset int64, key, value []byte) [32]byte {
	return seal.LeafHash(topic, partition, offset, key, value)
}

// checkpointReader parses and verifies checkpoint notes for the decoder:
// a note not signed by a trusted key, or for another audit topic, is
// recorded as undecodable, with the reason.
func checkpointReader(auditTopic string, verifiers note.Verifiers) func([]byte) (ledger.Checkpoint, error) {
	return func(msg []byte) (ledger.Checkpoint, error) {
		if verifiers == nil {
			return ledger.Checkpoint{}, errors.New("no trusted verifier key: set LEDGER_SEAL_KEY_FILE or LEDGER_VERIFIER_KEYS_FILE")
		}
		cp, err := seal.Open(msg, verifiers)
		if err != nil {
			return ledger.Checkpoint{}, err
		}
		if cp.Topic != auditTopic {
			return ledger.Checkpoint{}, fmt.Errorf("checkpoint of topic %s, not the audit topic %s", cp.Topic, auditTopic)
		}
		return ledger.Checkpoint{AuditTopic: cp.Topic, Partition: cp.Partition, Base: cp.Base, Size: cp.Size, Root: cp.Root,
			Note: append([]byte(nil), msg...)}, nil
	}
}
