// Command demo-producer produces the dev stack's demo traffic to a real
// Kafka cluster: customer events of every schema (pkg/eventgen) and consent
// changes (grants, denials, withdrawals, a few erasures, grants excluding
// health data or expiring) for a fixed population of customers, plus now and
// then a record no schema can read. It is what `make run` produces inside
// services/devstack, as a command of its own for docker-compose.yml, which
// runs the pipeline on Apache Kafka instead of the embedded broker.
//
// Every record is written with acks=all; SIGINT/SIGTERM stops after the
// records being written are acknowledged. Settings: demo-producer --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/eventgen"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

type config struct {
	kafka         stream.Config
	policyFile    string
	eventsTopic   string
	changesTopic  string
	eventsPerSec  int
	changesPerSec int
	subjects      int
	duration      time.Duration
	seed          bool
}

func (c *config) flags() *envflag.Set {
	s := envflag.New("demo-producer", "produces demo customer events and consent changes to Kafka (acks=all), as make run does, for the compose stack.")
	c.kafka.Flags(s)
	s.String(&c.policyFile, "policy", "POLICY_FILE", "policy file whose purposes the consent changes are about (required)")
	s.String(&c.eventsTopic, "events-topic", "DEMO_EVENTS_TOPIC", "topic of the customer events")
	s.String(&c.changesTopic, "changes-topic", "DEMO_CHANGES_TOPIC", "topic of the consent changes")
	s.Int(&c.eventsPerSec, "events-per-sec", "DEMO_EVENTS_PER_SEC", "customer events per second")
	s.Int(&c.changesPerSec, "changes-per-sec", "DEMO_CHANGES_PER_SEC", "consent changes per second")
	s.Int(&c.subjects, "subjects", "DEMO_SUBJECTS", "distinct customers")
	s.Duration(&c.duration, "duration", "DEMO_DURATION", "stop by itself after this long; 0 runs until SIGTERM")
	s.Bool(&c.seed, "seed", "DEMO_SEED", "first give every customer an initial choice per purpose")
	return s
}

func (c config) validate() error {
	errs := []error{c.kafka.Validate()}
	if c.policyFile == "" {
		errs = append(errs, errors.New("POLICY_FILE is required: the consent changes are about its purposes"))
	}
	if c.eventsTopic == "" || c.changesTopic == "" {
		errs = append(errs, errors.New("DEMO_EVENTS_TOPIC and DEMO_CHANGES_TOPIC must not be empty"))
	}
	if c.eventsPerSec < 0 || c.eventsPerSec > 100000 {
		errs = append(errs, errors.New("DEMO_EVENTS_PER_SEC must be 0..100000"))
	}
	if c.changesPerSec < 0 || c.changesPerSec > 100000 {
		errs = append(errs, errors.New("DEMO_CHANGES_PER_SEC must be 0..100000"))
	}
	if c.subjects < 1 || c.subjects > 10000000 {
		errs = append(errs, errors.New("DEMO_SUBJECTS must be 1..10000000"))
	}
	if c.duration < 0 {
		errs = append(errs, errors.New("DEMO_DURATION must not be negative"))
	}
	return errors.Join(errs...)
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, log, os.Args[1:], os.Getenv)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "demo-producer: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string, getenv func(string) string) error {
	cfg := config{kafka: stream.DefaultConfig(), eventsTopic: "customer.events", changesTopic: "consent.changes",
		eventsPerSec: 50, changesPerSec: 5, subjects: 300, seed: true}
	cfg.kafka.ClientID = "consentgate-demo-producer"
	set := cfg.flags()
	if err := set.Parse(args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			set.PrintUsage(os.Stdout)
		}
		return err
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	pol, err := policy.Load(cfg.policyFile)
	if err != nil {
		return fmt.Errorf("load policy:\n%w", err)
	}
	purposes := make([]string, len(pol.Purposes))
	for i, p := range pol.Purposes {
		purposes[i] = p.ID
	}
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	w := stream.NewWriter(cfg.kafka)
	defer w.Close()
	seed := uint64(time.Now().UnixNano())
	p := &producer{cfg: cfg, w: w, cat: cat, codec: avrocodec.New(cat, nil),
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), purposes: purposes,
		runID: fmt.Sprintf("%x", seed&0xffffffff)}
	log.Info("producing", "events_topic", cfg.eventsTopic, "changes_topic", cfg.changesTopic,
		"events_per_sec", cfg.eventsPerSec, "changes_per_sec", cfg.changesPerSec, "subjects", cfg.subjects)
	err = p.run(ctx)
	log.Info("stopped", "events", p.events, "changes", p.changes, "unreadable", p.poison)
	return err
}

type producer struct {
	cfg      config
	w        *kafka.Writer
	cat      *avrocodec.Catalog
	codec    *avrocodec.Codec
	rng      *rand.Rand
	purposes []string
	runID    string
	seq      int64

	built, events, changes, poison int64
}

func (p *producer) subject(i int) string { return fmt.Sprintf("cust-%05d", i) }

func (p *producer) nextID(kind string) string {
	p.seq++
	return fmt.Sprintf("%s-%s-%08d", kind, p.runID, p.seq)
}

// change returns a consent change for subject about purpose (one of the
// policy's drawn at random when purpose is ""). Initial changes are grants
// or denials; later ones also withdraw, deny again or erase.
func (p *producer) change(subject, purposeID string, initial bool) (kafka.Message, error) {
	now := time.Now()
	action := "GRANT"
	switch r := p.rng.Float64(); {
	case initial && r < 0.45:
		action = "DENY"
	case initial:
	case r < 0.02:
		action = "ERASE"
	case r < 0.30:
		action = "WITHDRAW"
	case r < 0.40:
		action = "DENY"
	}
	var purpose any
	if action != "ERASE" {
		if purposeID == "" {
			purposeID = p.purposes[p.rng.IntN(len(p.purposes))]
		}
		purpose = map[string]any{"string": purposeID}
	}
	excluded := []any{}
	var expires any
	if action == "GRANT" {
		if p.rng.Float64() < 0.15 {
			excluded = append(excluded, "user.health")
		}
		if p.rng.Float64() < 0.10 {
			expires = map[string]any{"long.timestamp-millis": now.Add(time.Duration(10+p.rng.IntN(50)) * time.Second)}
		}
	}
	sources := []string{"preference-centre", "cookie-banner", "mobile-app", "support-agent"}
	v := map[string]any{
		"change_id": p.nextID("chg"), "subject_id": subject, "purpose": purpose, "action": action,
		"legal_basis": "CONSENT", "excluded_categories": excluded,
		"source": sources[p.rng.IntN(len(sources))], "notice_version": "2026-09",
		// A little jitter, as clients' clocks and queues deliver changes
		// slightly out of order.
		"captured_at": now.Add(-time.Duration(p.rng.IntN(500)) * time.Millisecond),
		"expires_at":  expires,
	}
	b, err := p.codec.EncodeSingle("consentgate.consent.ConsentChange", v)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode consent change: %w", err)
	}
	return kafka.Message{Topic: p.cfg.changesTopic, Key: []byte(subject), Value: b}, nil
}

func (p *producer) event() (kafka.Message, error) {
	p.built++
	if p.built%500 == 0 {
		// Now and then a record no schema can read, as a buggy upstream
		// would send: it must end on the dead-letter topic.
		p.poison++
		return kafka.Message{Topic: p.cfg.eventsTopic, Key: []byte("poison"), Value: []byte("\xc3\x01not avro at all")}, nil
	}
	name, version, v := eventgen.Event(p.rng, p.nextID("evt"), p.subject(p.rng.IntN(p.cfg.subjects)))
	s, ok := p.cat.Version(name, version)
	if !ok {
		return kafka.Message{}, fmt.Errorf("no schema %s v%d", name, version)
	}
	b, err := s.EncodeSingle(v)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode %s v%d: %w", name, version, err)
	}
	return kafka.Message{Topic: p.cfg.eventsTopic, Key: []byte(v["subject_id"].(string)), Value: b}, nil
}

// run seeds every subject with an initial choice per purpose (DEMO_SEED),
// then produces at the configured rates until ctx ends. Every write is
// acknowledged before the next tick.
func (p *producer) run(ctx context.Context) error {
	if p.cfg.seed {
		var seed []kafka.Message
		for i := range p.cfg.subjects {
			for _, purpose := range p.purposes {
				m, err := p.change(p.subject(i), purpose, true)
				if err != nil {
					return err
				}
				seed = append(seed, m)
			}
		}
		if err := stream.WriteAll(ctx, p.w, seed, nil); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("seed consent: %w", err)
		}
		p.changes += int64(len(seed))
	}
	const ticks = 10
	tick := time.NewTicker(time.Second / ticks)
	defer tick.Stop()
	var evAcc, chAcc float64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		evAcc += float64(p.cfg.eventsPerSec) / ticks
		chAcc += float64(p.cfg.changesPerSec) / ticks
		var msgs []kafka.Message
		for ; chAcc >= 1; chAcc-- {
			m, err := p.change(p.subject(p.rng.IntN(p.cfg.subjects)), "", false)
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		nChanges := len(msgs)
		for ; evAcc >= 1; evAcc-- {
			m, err := p.event()
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		// Write even when ctx has just ended: what was built gets sent.
		if err := stream.WriteAll(context.WithoutCancel(ctx), p.w, msgs, nil); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		p.changes += int64(nChanges)
		p.events += int64(len(msgs) - nChanges)
	}
}
