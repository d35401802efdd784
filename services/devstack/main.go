// Command devstack starts the whole pipeline on one machine with nothing but
// Go: Redis (REDIS_ADDR when given, else a redis-server on a free port when
// one is installed, else an embedded in-process Redis for trying things out),
// the embedded Kafka-protocol broker, consent-sync, the enforcer, and a demo
// producer of customer events and consent changes. It prints a one-line
// summary per purpose stream every few seconds. Ctrl-C stops the producer,
// lets both services drain and commit, then stops the broker (whose data
// directory keeps everything for the next run).
//
// `make run` builds the binaries into bin/ and runs this command from the
// repository root.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/shred"
)

// Config is devstack's configuration.
type Config struct {
	DataDir       string
	BinDir        string
	PolicyFile    string
	KafkaPort     int
	Partitions    int
	RedisAddr     string
	EventsPerSec  int
	ChangesPerSec int
	Subjects      int
	Every         time.Duration
	Duration      time.Duration
	ConsoleAddr   string
}

func defaultConfig() Config {
	bin := "bin"
	if exe, err := os.Executable(); err == nil {
		bin = filepath.Dir(exe)
	}
	return Config{
		DataDir: ".data", BinDir: bin, PolicyFile: "deploy/policy.yaml",
		KafkaPort: 9092, Partitions: 3,
		EventsPerSec: 50, ChangesPerSec: 5, Subjects: 300,
		Every: 3 * time.Second, ConsoleAddr: "127.0.0.1:8089",
	}
}

func (c *Config) flags() *envflag.Set {
	s := envflag.New("devstack", "runs the whole consent pipeline locally with a demo producer (make run).")
	s.String(&c.DataDir, "data-dir", "DEVSTACK_DATA_DIR", "folder for the broker's log and the services' logs")
	s.String(&c.BinDir, "bin-dir", "DEVSTACK_BIN_DIR", "folder holding devbroker, consent-sync and enforcer binaries")
	s.String(&c.PolicyFile, "policy", "POLICY_FILE", "policy file the enforcer uses")
	s.Int(&c.KafkaPort, "kafka-port", "DEVBROKER_PORT", "port of the embedded broker on 127.0.0.1; 0 picks a free one")
	s.Int(&c.Partitions, "partitions", "DEVBROKER_PARTITIONS", "partitions of every topic")
	s.String(&c.RedisAddr, "redis-addr", "REDIS_ADDR", "use this Redis; empty starts redis-server (or an embedded Redis when none is installed)")
	s.Int(&c.EventsPerSec, "events-per-sec", "DEMO_EVENTS_PER_SEC", "customer events the demo producer emits per second")
	s.Int(&c.ChangesPerSec, "changes-per-sec", "DEMO_CHANGES_PER_SEC", "consent changes the demo producer emits per second")
	s.Int(&c.Subjects, "subjects", "DEMO_SUBJECTS", "distinct customers in the demo")
	s.Duration(&c.Every, "every", "DEVSTACK_SUMMARY_EVERY", "how often the summary is printed")
	s.Duration(&c.Duration, "duration", "DEVSTACK_DURATION", "stop by itself after this long; 0 runs until Ctrl-C")
	s.String(&c.ConsoleAddr, "console-addr", "DEVSTACK_CONSOLE_ADDR", "where the ledger serves the compliance console")
	return s
}

func (c Config) validate() error {
	var errs []error
	if c.EventsPerSec < 0 || c.EventsPerSec > 100000 {
		errs = append(errs, errors.New("DEMO_EVENTS_PER_SEC must be 0..100000"))
	}
	if c.ChangesPerSec < 0 || c.ChangesPerSec > 100000 {
		errs = append(errs, errors.New("DEMO_CHANGES_PER_SEC must be 0..100000"))
	}
	if c.Subjects < 1 {
		errs = append(errs, errors.New("DEMO_SUBJECTS must be at least 1"))
	}
	if c.Every < 100*time.Millisecond {
		errs = append(errs, errors.New("DEVSTACK_SUMMARY_EVERY must be at least 100ms"))
	}
	for _, b := range []string{"devbroker", "consent-sync", "enforcer", "ledger"} {
		if _, err := os.Stat(filepath.Join(c.BinDir, b)); err != nil {
			errs = append(errs, fmt.Errorf("no %s binary in %s: run `make build` (or `make run`), or set DEVSTACK_BIN_DIR", b, c.BinDir))
		}
	}
	if _, err := os.Stat(c.PolicyFile); err != nil {
		errs = append(errs, fmt.Errorf("policy file %s not found: set POLICY_FILE or run from the repository root", c.PolicyFile))
	}
	return errors.Join(errs...)
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, log, os.Args[1:])
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "devstack: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg := defaultConfig()
	set := cfg.flags()
	if err := set.Parse(args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			set.PrintUsage(os.Stdout)
		}
		return err
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	pol, err := policy.Load(cfg.PolicyFile)
	if err != nil {
		return fmt.Errorf("load policy:\n%w", err)
	}
	policyAbs, _ := filepath.Abs(cfg.PolicyFile)
	logDir := filepath.Join(cfg.DataDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", logDir, err)
	}
	st := &stack{log: log, binDir: cfg.BinDir, logDir: logDir}
	defer st.stopAll()

	redisAddr, err := st.startRedis(cfg.RedisAddr)
	if err != nil {
		return err
	}
	topics := make([]string, 0, len(pol.Streams)+1)
	for _, s := range pol.Streams {
		topics = append(topics, s.Topic)
	}
	// The keys topic of encrypt rules (the devbroker does not compact:
	// a destroyed key's tombstone is there, its record stays on disk).
	topics = append(topics, shred.DefaultTopic)
	brokerAddr, err := st.startBroker(cfg, topics)
	if err != nil {
		return err
	}
	keyFile, err := devKey(cfg.DataDir)
	if err != nil {
		return err
	}
	kekFile, err := devKEK(cfg.DataDir)
	if err != nil {
		return err
	}
	kc := brokerConfig(brokerAddr)
	env := append([]string{"KAFKA_BROKERS=" + brokerAddr, "REDIS_ADDR=" + redisAddr, "POLICY_FILE=" + policyAbs,
		"PSEUDONYMISATION_KEY_FILE=" + keyFile, "KEYS_TOPIC=" + shred.DefaultTopic}, securityEnv(kc.Security)...)
	if err := st.startService("consent-sync", env); err != nil {
		return err
	}
	if err := st.startService("enforcer", enforcerEnv(env, kekFile)); err != nil {
		return err
	}
	ledgerEnv, err := ledgerSetup(cfg.DataDir, cfg.ConsoleAddr)
	if err != nil {
		return err
	}
	if err := st.startService("ledger", append(append([]string{}, env...), ledgerEnv.env...)); err != nil {
		return err
	}
	fmt.Printf("consentgate dev stack is up: broker %s, redis %s, policy %s (version %s)\n", brokerAddr, redisAddr, cfg.PolicyFile, pol.Version)
	fmt.Printf("service logs: %s/*.log; producing %d events/s and %d consent changes/s for %d customers; Ctrl-C stops everything\n",
		logDir, cfg.EventsPerSec, cfg.ChangesPerSec, cfg.Subjects)
	ledgerEnv.describe(brokerAddr)
	if pol.Encrypts() {
		fmt.Printf("encrypt rules: data keys on %s, wrapped by the dev key-encryption key %s; read a stream back with\n"+
			"       CONSENT_KEK_FILE=%s KAFKA_BROKERS=%s bin/consentctl decrypt --topic %s --max 5\n",
			shred.DefaultTopic, kekFile, kekFile, brokerAddr, encryptingStream(pol))
	}

	purposes := make([]string, len(pol.Purposes))
	for i, p := range pol.Purposes {
		purposes[i] = p.ID
	}
	sum, err := newSummary(kc, pol)
	if err != nil {
		return err
	}
	sumCtx, stopSum := context.WithCancel(context.WithoutCancel(ctx))
	sumDone := make(chan error, 1)
	go func() { sumDone <- sum.run(sumCtx, cfg.Every) }()

	prod, err := newProducer(kc, newDemo(uint64(time.Now().UnixNano()), cfg.Subjects, purposes))
	if err != nil {
		stopSum()
		return err
	}
	perr := prod.run(ctx, cfg.EventsPerSec, cfg.ChangesPerSec)
	prod.close()
	fmt.Printf("\nstopping: producer flushed (%d events, %d consent changes sent, all acknowledged); draining the services...\n",
		prod.events, prod.changes)
	st.stopServices(30 * time.Second)
	// Let the summary read the last audit records, then print it once more.
	time.Sleep(2 * cfg.Every / 3)
	stopSum()
	<-sumDone
	sum.print()
	st.stopAll()
	fmt.Println("stopped cleanly; the broker's log is kept in", filepath.Join(cfg.DataDir, "kafka"), "for the next run")
	if perr != nil && !errors.Is(perr, context.Canceled) && !errors.Is(perr, context.DeadlineExceeded) {
		return perr
	}
	return st.err()
}

// enforcerEnv is the enforcer's environment: the services' common one and
// the key-encryption key, which only the enforcer reads (consent-sync
// destroys data keys without it, the ledger records them without it).
func enforcerEnv(common []string, kekFile string) []string {
	return append(append([]string{}, common...), shred.EnvKEKFile+"="+kekFile)
}

// encryptingStream is the topic of the first stream with an encrypt rule.
func encryptingStream(pol *policy.Policy) string {
	for _, s := range pol.Streams {
		for _, t := range s.Treatments {
			if t.Action == policy.ActionEncrypt {
				return s.Topic
			}
		}
		if s.DefaultTreatment == policy.ActionEncrypt {
			return s.Topic
		}
	}
	return pol.Streams[0].Topic
}

// devKEK returns the dev stack's key-encryption key file (package shred's
// format: the standard base64 of 32 random bytes), creating it on first
// use, readable by its owner only, and keeping it across runs: a new one
// would leave every data key on the broker unreadable. The key is never
// printed, only the file's path.
func devKEK(dataDir string) (string, error) {
	path, err := filepath.Abs(filepath.Join(dataDir, "consent.kek"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	text := "# consentgate dev stack key-encryption key (make run); keep it with the broker's data\n" + base64.StdEncoding.EncodeToString(key) + "\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// devKey returns the dev stack's pseudonymisation key file, creating it with
// a random key on first use and keeping it across runs so that pseudonyms
// stay stable, as they must in production.
func devKey(dataDir string) (string, error) {
	path, err := filepath.Abs(filepath.Join(dataDir, "pseudonymisation.key"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}
