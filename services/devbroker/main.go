// Command devbroker runs an embedded Kafka-protocol broker (franz-go's kfake)
// for the dev stack and the end-to-end tests. It is not a production broker:
// one process, no replication. It speaks the Kafka protocol over TCP, keeps
// consumer groups and offsets, persists its log in a data directory when one
// is given, and creates the pipeline's default topics at start.
//
// By default it listens in plain TCP without authentication. For testing
// the clients' security it can listen in TLS only (--tls-cert-file,
// --tls-key-file, and --tls-client-ca-file to require client
// certificates), require SASL (--sasl-users-file: PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512 users) and check ACLs (--acls); see security.go.
//
// It prints one line "devbroker ready <host:port>" on standard output once it
// accepts connections, and shuts down cleanly (flushing the data directory) on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "devbroker")
	if err := run(log, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		log.Error("devbroker stopped", "error", err.Error())
		os.Exit(1)
	}
}

func run(log *slog.Logger, args []string) error {
	cfg, err := loadConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	brokerConfigs := map[string]string{"log.retention.ms": "-1", "log.retention.bytes": "-1"}
	if cfg.MaxMessageBytes > 0 {
		brokerConfigs["message.max.bytes"] = strconv.Itoa(cfg.MaxMessageBytes)
	}
	opts := []kfake.Opt{
		kfake.Ports(cfg.Port),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...),
		kfake.ClusterID("consentgate-dev"),
		// Sessions below the default minimum let tests notice a killed
		// consumer quickly.
		kfake.GroupMinSessionTimeout(cfg.MinSessionTimeout),
		// A development broker keeps every record: the consent topic is
		// the system of record, and consent-sync refuses a consent topic
		// with time or size retention.
		kfake.BrokerConfigs(brokerConfigs),
	}
	if cfg.AutoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	sec, secAttrs, err := securityOpts(cfg)
	if err != nil {
		return err
	}
	opts = append(opts, sec...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	addrs := c.ListenAddrs()
	log.Info("devbroker started", "addr", addrs[0], "partitions", cfg.Partitions,
		"topics", cfg.Topics, "data_dir", cfg.DataDir, "auto_create", cfg.AutoCreate, "max_message_bytes", cfg.MaxMessageBytes)
	if len(secAttrs) > 0 {
		log.Info("devbroker security", secAttrs...)
	}
	fmt.Printf("devbroker ready %s\n", addrs[0])

	<-ctx.Done()
	log.Info("devbroker shutting down")
	c.Close()
	log.Info("devbroker stopped")
	return nil
}
