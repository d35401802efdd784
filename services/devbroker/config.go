package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is the broker's configuration. Every field has a flag and an
// environment variable; flags win.
type Config struct {
	Port              int
	Partitions        int
	Topics            []string
	DataDir           string
	AutoCreate        bool
	SyncWrites        bool
	MinSessionTimeout time.Duration
	// MaxMessageBytes is the broker's message.max.bytes, the largest
	// record batch a topic without its own max.message.bytes accepts;
	// 0 keeps kfake's default (1048588, as Kafka).
	MaxMessageBytes int
	// TLSCertFile and TLSKeyFile make the listener TLS only (PEM
	// certificate and key); TLSClientCAFile then also requires a client
	// certificate signed by one of its CAs.
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	// SASLUsersFile lists the SASL users (see security.go); set, every
	// connection must authenticate as one of them.
	SASLUsersFile string
	// ACLs checks every request against the users' ACLs (superusers pass).
	ACLs bool
}

// DefaultTopics are the pipeline's topics (DESIGN.md, default names). Purpose
// streams (compliant.<purpose>) are created on first use unless
// auto-creation is off, or listed with --topics.
var DefaultTopics = []string{
	"customer.events",
	"customer.events.dlq",
	"consent.changes",
	"consent.audit",
	"consent.revocations",
	"consent.audit.checkpoints",
}

// DefaultConfig returns the settings used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Port:              9092,
		Partitions:        3,
		AutoCreate:        true,
		MinSessionTimeout: time.Second,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range: set DEVBROKER_PORT or --port to 0..65535 (0 picks a free port)", c.Port))
	}
	if c.Partitions < 1 || c.Partitions > 1000 {
		errs = append(errs, fmt.Errorf("partitions %d out of range: set DEVBROKER_PARTITIONS or --partitions to 1..1000", c.Partitions))
	}
	for _, t := range c.Topics {
		if t == "" || strings.ContainsAny(t, " /\\") || len(t) > 249 {
			errs = append(errs, fmt.Errorf("bad topic name %q in DEVBROKER_TOPICS/--topics", t))
		}
	}
	if c.MaxMessageBytes < 0 || (c.MaxMessageBytes > 0 && c.MaxMessageBytes < 1024) {
		errs = append(errs, fmt.Errorf("max message bytes %d out of range: set DEVBROKER_MAX_MESSAGE_BYTES or --max-message-bytes to 0 (default) or at least 1024", c.MaxMessageBytes))
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "", c.TLSCertFile == "" && c.TLSKeyFile != "":
		errs = append(errs, errors.New("TLS needs both DEVBROKER_TLS_CERT_FILE (--tls-cert-file) and DEVBROKER_TLS_KEY_FILE (--tls-key-file)"))
	case c.TLSClientCAFile != "" && c.TLSCertFile == "":
		errs = append(errs, errors.New("DEVBROKER_TLS_CLIENT_CA_FILE (--tls-client-ca-file) needs TLS: set DEVBROKER_TLS_CERT_FILE and DEVBROKER_TLS_KEY_FILE"))
	}
	if c.ACLs && c.SASLUsersFile == "" {
		errs = append(errs, errors.New("DEVBROKER_ACLS (--acls) needs SASL users to check: set DEVBROKER_SASL_USERS_FILE (--sasl-users-file)"))
	}
	if c.MinSessionTimeout <= 0 {
		errs = append(errs, errors.New("min session timeout must be positive: set DEVBROKER_MIN_SESSION_TIMEOUT or --min-session-timeout, e.g. 1s"))
	}
	return errors.Join(errs...)
}

func loadConfig(args []string, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	var errs []error
	envInt := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not a number", name, v))
				return
			}
			*dst = n
		}
	}
	envInt("DEVBROKER_PORT", &cfg.Port)
	envInt("DEVBROKER_PARTITIONS", &cfg.Partitions)
	envInt("DEVBROKER_MAX_MESSAGE_BYTES", &cfg.MaxMessageBytes)
	if v := getenv("DEVBROKER_DATA_DIR"); v != "" {
		cfg.DataDir = v
	}
	extra := getenv("DEVBROKER_TOPICS")
	if v := getenv("DEVBROKER_AUTO_CREATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("DEVBROKER_AUTO_CREATE=%q is not true or false", v))
		}
		cfg.AutoCreate = b
	}
	if v := getenv("DEVBROKER_MIN_SESSION_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("DEVBROKER_MIN_SESSION_TIMEOUT=%q is not a duration such as 1s", v))
		}
		cfg.MinSessionTimeout = d
	}
	cfg.TLSCertFile = getenv("DEVBROKER_TLS_CERT_FILE")
	cfg.TLSKeyFile = getenv("DEVBROKER_TLS_KEY_FILE")
	cfg.TLSClientCAFile = getenv("DEVBROKER_TLS_CLIENT_CA_FILE")
	cfg.SASLUsersFile = getenv("DEVBROKER_SASL_USERS_FILE")
	if v := getenv("DEVBROKER_ACLS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("DEVBROKER_ACLS=%q is not true or false", v))
		}
		cfg.ACLs = b
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}

	fs := flag.NewFlagSet("devbroker", flag.ContinueOnError)
	fs.IntVar(&cfg.Port, "port", cfg.Port, "TCP port on 127.0.0.1, 0 for a free one (env DEVBROKER_PORT)")
	fs.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "partitions of every created topic (env DEVBROKER_PARTITIONS)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory that keeps the log across restarts; empty keeps it in memory (env DEVBROKER_DATA_DIR)")
	fs.StringVar(&extra, "topics", extra, "extra topics to create at start, comma-separated (env DEVBROKER_TOPICS)")
	fs.BoolVar(&cfg.AutoCreate, "auto-create", cfg.AutoCreate, "create unknown topics on first use (env DEVBROKER_AUTO_CREATE)")
	fs.BoolVar(&cfg.SyncWrites, "sync", cfg.SyncWrites, "fsync every produced batch (slower)")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", cfg.MaxMessageBytes, "largest record batch the broker accepts (message.max.bytes), 0 for the default 1048588 (env DEVBROKER_MAX_MESSAGE_BYTES)")
	fs.DurationVar(&cfg.MinSessionTimeout, "min-session-timeout", cfg.MinSessionTimeout, "smallest consumer-group session timeout accepted (env DEVBROKER_MIN_SESSION_TIMEOUT)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert-file", cfg.TLSCertFile, "PEM certificate of a TLS-only listener, with --tls-key-file; empty: plain TCP (env DEVBROKER_TLS_CERT_FILE)")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key-file", cfg.TLSKeyFile, "PEM key of that certificate (env DEVBROKER_TLS_KEY_FILE)")
	fs.StringVar(&cfg.TLSClientCAFile, "tls-client-ca-file", cfg.TLSClientCAFile, "require client certificates signed by a CA of this PEM file (env DEVBROKER_TLS_CLIENT_CA_FILE)")
	fs.StringVar(&cfg.SASLUsersFile, "sasl-users-file", cfg.SASLUsersFile, "require SASL: file of users, one a line 'MECHANISM USER PASSWORD [superuser]' (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), and ACL lines 'acl USER allow|deny OPERATION RESOURCE_TYPE NAME [literal|prefixed]' (env DEVBROKER_SASL_USERS_FILE)")
	fs.BoolVar(&cfg.ACLs, "acls", cfg.ACLs, "check every request against the users' ACLs; superusers pass (env DEVBROKER_ACLS)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "devbroker: an embedded Kafka-protocol broker for development and tests.\n\nDefault topics: %s\n\nSettings:\n", strings.Join(DefaultTopics, ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q: devbroker takes only flags (see --help)", fs.Args())
	}
	cfg.Topics = append([]string(nil), DefaultTopics...)
	for _, t := range strings.Split(extra, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Topics = append(cfg.Topics, t)
		}
	}
	return cfg, cfg.Validate()
}
