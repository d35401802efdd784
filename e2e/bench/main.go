// Command bench is `make bench`: it measures what consent enforcement costs
// against a plain Kafka passthrough, on the embedded stack, in one run.
//
// On one devbroker process and one redis-server (local processes on free
// ports) it:
//
//  1. seeds Redis with the consent of BENCH_SUBJECTS subjects (1,000,000 by
//     default; per purpose of both policies about half granted, some
//     excluding user.health, some expired) and pre-produces BENCH_EVENTS
//     events of the realistic mix (PageView v1/v2, Purchase,
//     EmailEngagement) to customer.events;
//  2. for each policy, deploy/policy.yaml (four streams) then
//     e2e/bench/policy.yaml (three streams, analytics in redact mode): runs
//     the enforcer binary over the input in a consumer group of its own and
//     times the group's commits (enforcer events/s), then the matched
//     baseline, a passthrough process (this binary re-executed, see
//     runPassthroughProcess) with the same kafka-go plumbing (pkg/stream
//     reader, writer with acks=all, Runner with batch 500 and commit after
//     acknowledgement) writing per input event as many records to as many
//     topics as that enforcer did; then the 1:1 baseline (one copy per event
//     to one topic). Over each events/s window it reads the CPU time
//     (/proc/<pid>/stat) of the measured process, the broker, redis-server
//     and itself: CPU seconds per 1,000 events, and the ratios;
//  3. produces a burst of BENCH_CHANGES consent changes and times the
//     consent-sync binary applying them: changes/s;
//  4. with the bench policy's enforcer only: produces events at half its
//     rate for BENCH_PACED, measures end-to-end latency (event handed to the
//     producer → passed output read back from the broker) and, meanwhile,
//     withdrawal-to-enforcement latency (WITHDRAW produced → first audit
//     record saying withdrawn); then the matched passthrough at the same
//     rate;
//  5. reads the peak RSS (VmHWM) of every process it started.
//
// It prints a table and writes the same figures as JSON (default
// .data/bench/latest.json, git-ignored). Every process it starts is stopped
// at the end, also on failure or Ctrl-C. Method and latest figures:
// BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/envflag"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// config is the benchmark's settings (environment or flags).
type config struct {
	Events       int
	Subjects     int
	Changes      int
	Partitions   int
	Paced        time.Duration
	Warmup       time.Duration
	Probes       int
	OutDir       string
	Policy       string
	DeployPolicy string
	Seed         int
	BinDir       string
	Rate         int
	Traced       float64
}

func defaultConfig() config {
	return config{
		Events:       500000,
		Subjects:     1000000,
		Changes:      50000,
		Partitions:   6,
		Paced:        45 * time.Second,
		Warmup:       5 * time.Second,
		Probes:       2000,
		OutDir:       ".data/bench",
		Policy:       "e2e/bench/policy.yaml",
		DeployPolicy: "deploy/policy.yaml",
		Seed:         1,
		Traced:       0.01,
	}
}

func (c *config) flags() *envflag.Set {
	s := envflag.New("bench", "measures the enforcer against a passthrough baseline on the embedded stack (make bench).")
	s.Int(&c.Events, "events", "BENCH_EVENTS", "input events of the throughput runs (e.g. 20000 for a quick run)")
	s.Int(&c.Subjects, "subjects", "BENCH_SUBJECTS", "subjects with consent in Redis")
	s.Int(&c.Changes, "changes", "BENCH_CHANGES", "consent changes of the consent-sync burst")
	s.Int(&c.Partitions, "partitions", "BENCH_PARTITIONS", "partitions of every topic")
	s.Duration(&c.Paced, "paced", "BENCH_PACED", "measured part of the paced run (latency and withdrawal probes)")
	s.Duration(&c.Warmup, "warmup", "BENCH_WARMUP", "start of the paced run left out of the figures")
	s.Int(&c.Probes, "probes", "BENCH_PROBES", "most withdrawal probes (each takes a fresh probe subject)")
	s.String(&c.OutDir, "out", "BENCH_OUT", "folder of the results (relative to the repository root)")
	s.String(&c.Policy, "policy", "BENCH_POLICY", "bench policy file (relative to the repository root): throughput, latency and withdrawal probes")
	s.String(&c.DeployPolicy, "deploy-policy", "BENCH_DEPLOY_POLICY", "second policy of the throughput runs (relative to the repository root)")
	s.Int(&c.Seed, "seed", "BENCH_SEED", "seed of the event generator")
	s.Float(&c.Traced, "traced", "BENCH_TRACED", "share of input events carrying a sampled W3C traceparent, as from producers that sample (the enforcer then traces them)")
	s.Int(&c.Rate, "rate", "BENCH_RATE", "events/s of the paced run; 0 is half the enforcer's measured rate")
	s.String(&c.BinDir, "bin-dir", "BENCH_BIN_DIR", "folder of prebuilt devbroker, enforcer and consent-sync binaries; empty builds them from this checkout")
	return s
}

func (c config) validate() error {
	var errs []error
	if c.Events < 1000 {
		errs = append(errs, errors.New("BENCH_EVENTS below 1000: set it to 1000 or more"))
	}
	if c.Subjects < 1000 {
		errs = append(errs, errors.New("BENCH_SUBJECTS below 1000: set it to 1000 or more"))
	}
	if c.Changes < 1 {
		errs = append(errs, errors.New("BENCH_CHANGES below 1: set it to 1 or more"))
	}
	if c.Partitions < 1 || c.Partitions > 64 {
		errs = append(errs, errors.New("BENCH_PARTITIONS out of range: set it to 1..64"))
	}
	if c.Paced < 5*time.Second {
		errs = append(errs, errors.New("BENCH_PACED below 5s: set it to e.g. 45s"))
	}
	if c.Warmup < 0 {
		errs = append(errs, errors.New("negative BENCH_WARMUP: set it to e.g. 5s"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("negative BENCH_RATE: set it to 0 (half the measured rate) or more"))
	}
	if c.Probes < 1 {
		errs = append(errs, errors.New("BENCH_PROBES below 1: set it to e.g. 2000"))
	}
	if c.Traced < 0 || c.Traced > 1 {
		errs = append(errs, errors.New("BENCH_TRACED out of range: set it to 0..1"))
	}
	return errors.Join(errs...)
}

// Topics of the run.
const (
	inputTopic   = "customer.events"
	changesTopic = "consent.changes"
	auditTopic   = "consent.audit"
	dlqTopic     = "customer.events.dlq"
	keyPrefix    = "bench:"
	// pseudonymKey is the benchmark's pseudonymisation key (the analytics
	// stream pseudonymises subject ids). Not a secret: test data only.
	pseudonymKey = "consentgate-bench-pseudonymisation-key"
)

// policyRun is one policy the throughput runs measure: its enforcer run and
// its matched baseline.
type policyRun struct {
	label string // "bench" or "deploy"; names its processes, groups and baseline topics
	file  string // relative to the repository root
	pol   *policy.Policy
	// topics are the topics the enforcer writes with this policy: the
	// streams', the audit topic and the dead-letter topic.
	topics []string
	res    *policyResult
}

// policyFiles are the policies of the throughput runs, in run order: the
// deploy policy first (its enforcer stops after its run), then the bench
// policy, whose enforcer keeps running for the paced run and the probes.
func (c config) policyFiles() [][2]string {
	return [][2]string{{"deploy", c.DeployPolicy}, {"bench", c.Policy}}
}

// baselineTopic is the matched baseline's topic for enforcer topic t.
func (p *policyRun) baselineTopic(t string) string { return baselinePrefix + p.label + "." + t }

func (p *policyRun) baselineTopics() []string {
	out := make([]string, len(p.topics))
	for i, t := range p.topics {
		out[i] = p.baselineTopic(t)
	}
	return out
}

// enforcerName is the process (and log) name of the policy's enforcer.
func (p *policyRun) enforcerName() string {
	if p.label == "bench" {
		return "enforcer"
	}
	return "enforcer-" + p.label
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == passthroughMode {
		if err := runPassthroughProcess(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "bench passthrough: %v\n", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, log, os.Args[1:])
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// bench holds what the phases share.
type bench struct {
	cfg      config
	log      *slog.Logger
	root     string
	logDir   string
	bins     map[string]string
	broker   string
	redis    string
	rdb      *redis.Client
	store    *consent.Store
	cat      *avrocodec.Catalog
	codec    *avrocodec.Codec
	kcfg     stream.Config
	writer   *kafka.Writer
	admin    *kafkaAdmin
	procs    []*proc // in start order; stopped in reverse
	probes   []string
	baseEnv  []string
	policies []*policyRun // in run order
	res      results
}

func run(ctx context.Context, log *slog.Logger, args []string) (err error) {
	cfg := defaultConfig()
	fs := cfg.flags()
	if err := fs.Parse(args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.PrintUsage(os.Stdout)
		}
		return err
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("bad configuration (see --help):\n%w", err)
	}
	began := time.Now()
	b := &bench{cfg: cfg, log: log}
	b.res.Date = began.UTC().Format(time.RFC3339)
	b.res.Machine = describeMachine()
	b.res.Settings = cfg.settings()
	b.res.PeakRSSMiB = map[string]float64{}
	b.res.ClockTicks.PerSecond, b.res.ClockTicks.From = ticksPerSecond()
	if b.root, err = repoRoot(); err != nil {
		return err
	}
	if err := b.loadPolicies(); err != nil {
		return err
	}
	outDir := filepath.Join(b.root, cfg.OutDir)
	b.logDir = filepath.Join(outDir, "logs")
	if err := os.RemoveAll(b.logDir); err != nil {
		return fmt.Errorf("clear %s: %w", b.logDir, err)
	}
	if err := os.MkdirAll(b.logDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", b.logDir, err)
	}
	tmp, err := os.MkdirTemp("", "consentgate-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	defer func() {
		// Stop everything, newest first, also on failure or Ctrl-C.
		for i := len(b.procs) - 1; i >= 0; i-- {
			if serr := b.procs[i].stop(30 * time.Second); serr != nil {
				log.Warn("stop", "process", b.procs[i].name, "error", serr.Error())
			}
		}
	}()

	if cfg.BinDir != "" {
		b.bins = map[string]string{}
		for _, n := range []string{"devbroker", "enforcer", "consent-sync"} {
			b.bins[n] = filepath.Join(cfg.BinDir, n)
			if _, err := os.Stat(b.bins[n]); err != nil {
				return fmt.Errorf("BENCH_BIN_DIR: %w", err)
			}
		}
	} else {
		step(log, "building devbroker, enforcer and consent-sync")
		if b.bins, err = buildBinaries(ctx, b.root, filepath.Join(tmp, "bin"), "devbroker", "enforcer", "consent-sync"); err != nil {
			return err
		}
	}
	if err := b.startInfra(ctx, filepath.Join(tmp, "kafka")); err != nil {
		return err
	}
	defer b.rdb.Close()
	defer b.writer.Close()

	phases := []func(context.Context) error{b.seed, b.produceInput}
	for _, pr := range b.policies {
		phases = append(phases, func(ctx context.Context) error { return b.enforcerThroughput(ctx, pr) },
			func(ctx context.Context) error { return b.matchedThroughput(ctx, pr) })
	}
	phases = append(phases, b.oneToOneThroughput, b.consentSyncBurst, b.paced, b.peakRSS)
	for _, phase := range phases {
		if err := phase(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			return err
		}
	}
	b.res.Machine.LoadAvgEnd = loadAvg()
	b.res.WallSeconds = time.Since(began).Seconds()
	b.res.finish()
	b.res.judge()
	printTable(os.Stdout, &b.res)
	path, err := b.res.write(outDir)
	if err != nil {
		return err
	}
	fmt.Printf("\nresults: %s (logs in %s)\n", path, b.logDir)
	return nil
}

func step(log *slog.Logger, msg string, args ...any) { log.Info("bench: "+msg, args...) }

// loadPolicies reads the policies of the throughput runs and the topics
// their enforcers write.
func (b *bench) loadPolicies() error {
	for _, pf := range b.cfg.policyFiles() {
		pol, err := policy.Load(filepath.Join(b.root, pf[1]))
		if err != nil {
			return fmt.Errorf("%s policy: %w", pf[0], err)
		}
		if missing := unseededPurposes(pol); len(missing) > 0 {
			return fmt.Errorf("%s policy: purposes %v get no seeded consent: add them to seedPurposes in e2e/bench/seed.go", pf[0], missing)
		}
		pr := &policyRun{label: pf[0], file: strings.TrimPrefix(pf[1], "./"), pol: pol}
		for _, st := range pol.Streams {
			pr.topics = append(pr.topics, st.Topic)
		}
		pr.topics = append(pr.topics, auditTopic, dlqTopic)
		pr.res = &policyResult{Label: pr.label, File: pr.file, Version: pol.Version, Streams: len(pol.Streams)}
		b.policies = append(b.policies, pr)
		b.res.Policies = append(b.res.Policies, pr.res)
	}
	return nil
}

// startInfra starts Redis and the broker, and the clients on them.
func (b *bench) startInfra(ctx context.Context, dataDir string) error {
	rp, addr, err := startRedis(ctx, b.logDir)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, rp)
	b.redis = addr
	topics := []string{pacedBaselineInput, oneToOneTopic}
	for _, pr := range b.policies {
		for _, t := range pr.topics {
			if !slices.Contains(topics, t) && t != auditTopic && t != dlqTopic { // the broker's defaults
				topics = append(topics, t)
			}
		}
		topics = append(topics, pr.baselineTopics()...)
	}
	bp, baddr, err := startBroker(ctx, b.bins["devbroker"], b.logDir, dataDir, b.cfg.Partitions, topics)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, bp)
	b.broker = baddr
	step(b.log, "started", "redis", b.redis, "broker", b.broker, "partitions", b.cfg.Partitions)

	b.rdb = redis.NewClient(&redis.Options{Addr: b.redis, PoolSize: 16})
	b.store = consent.NewStore(b.rdb, keyPrefix)
	if b.cat, err = avrocodec.LoadCatalog(schemas.FS); err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	b.codec = avrocodec.New(b.cat, nil)
	b.kcfg = stream.DefaultConfig()
	b.kcfg.Brokers = []string{b.broker}
	b.kcfg.ClientID = "consentgate-bench"
	b.writer = stream.NewWriter(b.kcfg)
	b.admin = newKafkaAdmin(b.kcfg)
	b.baseEnv = []string{
		"KAFKA_BROKERS=" + b.broker,
		"REDIS_ADDR=" + b.redis,
		"CONSENT_KEY_PREFIX=" + keyPrefix,
		"PSEUDONYMISATION_KEY=" + pseudonymKey,
		"CONSENT_SYNC_GROUP_ID=bench-consent-sync",
		// Telemetry stays on (it is part of the cost) on ports of its own.
		"ENFORCER_TELEMETRY_ADDR=127.0.0.1:0",
		"CONSENT_SYNC_TELEMETRY_ADDR=127.0.0.1:0",
	}
	return nil
}

// seed writes the subjects' consent and the probe subjects' grants.
func (b *bench) seed(ctx context.Context) error {
	step(b.log, "seeding consent", "subjects", b.cfg.Subjects)
	start := time.Now()
	if err := seedConsent(ctx, b.rdb, b.store, b.cfg.Subjects, start); err != nil {
		return err
	}
	b.probes = probeSubjects(b.cfg.Probes, b.cfg.Partitions)
	if err := seedProbes(ctx, b.store, b.probes, start); err != nil {
		return err
	}
	// The seeded state is the whole consent state: mark it warm, as a
	// rebuild from the topic would, so that the enforcer does not pause
	// (consent.ErrCold) and consent-sync does not replay the topic.
	token, err := b.store.BeginReplay(ctx)
	if err != nil {
		return err
	}
	if ok, err := b.store.SetWatermark(ctx, token, consent.Offsets{}); err != nil || !ok {
		return fmt.Errorf("mark the seeded consent state warm: %v (set: %v)", err, ok)
	}
	b.res.Seed.Seconds = time.Since(start).Seconds()
	n, err := b.rdb.DBSize(ctx).Result()
	if err != nil {
		return fmt.Errorf("count keys: %w", err)
	}
	b.res.Seed.Keys = n
	step(b.log, "seeded", "keys", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// produceInput pre-produces the throughput runs' input.
// traceparent returns a sampled W3C trace context with random ids.
func traceparent(g *generator) string {
	return fmt.Sprintf("00-%016x%016x-%016x-01", g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64()|1)
}

func (b *bench) produceInput(ctx context.Context) error {
	step(b.log, "producing input events", "events", b.cfg.Events)
	start := time.Now()
	gen := newGenerator(uint64(b.cfg.Seed), b.cat, b.cfg.Subjects)
	const chunk = 5000
	var bytes int64
	for done := 0; done < b.cfg.Events; done += chunk {
		msgs := make([]kafka.Message, min(chunk, b.cfg.Events-done))
		for i := range msgs {
			m, err := gen.message(inputTopic)
			if err != nil {
				return err
			}
			if gen.rng.Float64() < b.cfg.Traced {
				m.Headers = append(m.Headers, kafka.Header{Key: "traceparent", Value: []byte(traceparent(gen))})
			}
			msgs[i] = m
			bytes += int64(len(m.Value))
		}
		if err := stream.WriteAll(ctx, b.writer, msgs, nil); err != nil {
			return fmt.Errorf("produce input: %w", err)
		}
	}
	ends, err := b.admin.endOffsets(ctx, b.cfg.Partitions, inputTopic)
	if err != nil {
		return err
	}
	if ends[inputTopic] != int64(b.cfg.Events) {
		return fmt.Errorf("input topic holds %d records, want %d", ends[inputTopic], b.cfg.Events)
	}
	b.res.Input = inputStats{Events: b.cfg.Events, AvgBytes: float64(bytes) / float64(b.cfg.Events), Seconds: time.Since(start).Seconds()}
	step(b.log, "produced", "events", b.cfg.Events, "avg_bytes", int(b.res.Input.AvgBytes), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// startService starts the binary bin as process name with the common
// environment plus env, and waits for its ready line.
func (b *bench) startService(ctx context.Context, name, bin, ready string, env ...string) (*proc, error) {
	p, err := startProc(name, b.bins[bin], b.logDir, append(slices.Clone(b.baseEnv), env...))
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, p)
	if err := p.waitLog(ctx, ready, 60*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

func (b *bench) enforcer() *proc { return b.find("enforcer") }
func (b *bench) find(name string) *proc {
	for _, p := range b.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

func aliveCheck(p *proc) func() error {
	return func() error {
		if p.exited() {
			return fmt.Errorf("%s exited (%v); see %s", p.name, p.err, p.logPath)
		}
		return nil
	}
}

// drainTimeout bounds a throughput run: generous, at 200 events/s.
func (b *bench) drainTimeout(n int) time.Duration {
	return time.Minute + time.Duration(n/200)*time.Second
}

// contextCPU watches the CPU time of the measured process p (named name),
// then, for context, of the broker, redis-server and this process.
func (b *bench) contextCPU(name string, p *proc) *cpuWatch {
	w := &cpuWatch{}
	w.add(name, p.cmd.Process.Pid)
	for _, n := range []string{"devbroker", "redis"} {
		if q := b.find(n); q != nil {
			w.add(n, q.cmd.Process.Pid)
		}
	}
	w.add(benchSelf, os.Getpid())
	return w
}

// benchSelf names this process in the CPU figures: the producer of the
// paced runs, the observers, the commit polling.
const benchSelf = "bench"

// enforcerThroughput runs the enforcer with pr's policy over the
// pre-produced input, in a consumer group of its own. The bench policy's
// enforcer keeps running (the paced run and the probes use it); the others
// are stopped after their run.
func (b *bench) enforcerThroughput(ctx context.Context, pr *policyRun) error {
	step(b.log, "enforcer: consuming the input", "policy", pr.file)
	before, err := b.admin.endOffsets(ctx, b.cfg.Partitions, pr.topics...)
	if err != nil {
		return err
	}
	name := pr.enforcerName()
	p, err := b.startService(ctx, name, "enforcer", `"msg":"enforcing"`,
		"POLICY_FILE="+filepath.Join(b.root, pr.file), "ENFORCER_GROUP_ID="+enforcerGroup(pr))
	if err != nil {
		return err
	}
	run, err := b.admin.waitDrained(ctx, enforcerGroup(pr), inputTopic, b.cfg.Partitions, int64(b.cfg.Events), b.drainTimeout(b.cfg.Events), aliveCheck(p), b.contextCPU(name, p))
	if err != nil {
		return err
	}
	after, err := b.admin.endOffsets(ctx, b.cfg.Partitions, pr.topics...)
	if err != nil {
		return err
	}
	counts := make(map[string]int64, len(after))
	for t, n := range after {
		counts[t] = n - before[t]
	}
	pr.res.Enforcer = b.throughputOf(run, name, counts)
	step(b.log, "enforcer done", "policy", pr.file, "events_per_sec", int(run.PerSec()), "records_per_event", fmt.Sprintf("%.3f", pr.res.Enforcer.RecordsPerEvent),
		"cpu_s_per_1000", fmt.Sprintf("%.3f", pr.res.Enforcer.CPUPer1000))
	// One audit record per event (audit record v2) or one per event and
	// stream (v1); anything else means events were lost or doubled.
	events := int64(b.cfg.Events)
	if n := counts[auditTopic]; n != events && n != events*int64(len(pr.pol.Streams)) {
		return fmt.Errorf("the enforcer (%s) wrote %d audit records for %d events and %d streams, want %d (one per event) or %d (one per event and stream)",
			pr.file, n, events, len(pr.pol.Streams), events, events*int64(len(pr.pol.Streams)))
	}
	if pr.label != "bench" {
		b.res.PeakRSSMiB[name] = b.rssMiB(p)
		if err := p.stop(30 * time.Second); err != nil {
			return err
		}
	}
	return nil
}

func enforcerGroup(pr *policyRun) string { return "bench-enforcer-" + pr.label }

// throughputOf builds the figures of a drain run of process name that wrote
// counts records (by topic).
func (b *bench) throughputOf(run drainRun, name string, counts map[string]int64) throughput {
	var total int64
	for _, n := range counts {
		total += n
	}
	t := throughput{EventsPerSec: run.PerSec(), Events: run.Records, StartupSeconds: run.Startup.Seconds(),
		BusySeconds: run.Busy.Seconds(), RecordsWritten: total, RecordsPerEvent: float64(total) / float64(b.cfg.Events), ByTopic: counts}
	t.setCPU(run, name)
	return t
}

// rssMiB reads a running process's peak RSS; 0 when it cannot.
func (b *bench) rssMiB(p *proc) float64 {
	rss, err := p.peakRSS()
	if err != nil {
		b.log.Warn("peak RSS", "process", p.name, "error", err.Error())
		return 0
	}
	return float64(rss) / (1 << 20)
}

// matchedThroughput runs the matched baseline of pr: a passthrough process
// over the same input writing, per input event, as many records to as many
// topics as pr's enforcer did.
func (b *bench) matchedThroughput(ctx context.Context, pr *policyRun) error {
	perTopic := map[string]float64{}
	for _, t := range pr.topics {
		if n := pr.res.Enforcer.ByTopic[t]; n > 0 {
			perTopic[pr.baselineTopic(t)] = float64(n) / float64(b.cfg.Events)
		}
	}
	res, err := b.passthroughThroughput(ctx, "passthrough-"+pr.label, perTopic)
	if err != nil {
		return err
	}
	pr.res.Matched = res
	return nil
}

// oneToOneThroughput runs the 1:1 baseline: one copy of every input event
// to one topic.
func (b *bench) oneToOneThroughput(ctx context.Context) error {
	res, err := b.passthroughThroughput(ctx, "passthrough-1to1", map[string]float64{oneToOneTopic: 1})
	if err != nil {
		return err
	}
	b.res.OneToOne = res
	return nil
}

// passthroughThroughput runs a passthrough process (name is also its
// consumer group) over the input, writing perTopic, times it like the
// enforcer and stops it.
func (b *bench) passthroughThroughput(ctx context.Context, name string, perTopic map[string]float64) (throughput, error) {
	step(b.log, "baseline: consuming the input", "baseline", name)
	topics := make([]string, 0, len(perTopic))
	for t := range perTopic {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	before, err := b.admin.endOffsets(ctx, b.cfg.Partitions, topics...)
	if err != nil {
		return throughput{}, err
	}
	group := "bench-" + name
	p, err := b.startPassthrough(ctx, name, group, inputTopic, perTopic)
	if err != nil {
		return throughput{}, err
	}
	run, err := b.admin.waitDrained(ctx, group, inputTopic, b.cfg.Partitions, int64(b.cfg.Events), b.drainTimeout(b.cfg.Events), aliveCheck(p), b.contextCPU(name, p))
	if err != nil {
		return throughput{}, err
	}
	b.res.PeakRSSMiB[name] = b.rssMiB(p)
	if err := p.stop(30 * time.Second); err != nil {
		return throughput{}, err
	}
	after, err := b.admin.endOffsets(ctx, b.cfg.Partitions, topics...)
	if err != nil {
		return throughput{}, err
	}
	counts := make(map[string]int64, len(after))
	var want float64
	for _, t := range topics {
		counts[t] = after[t] - before[t]
		want += perTopic[t] * float64(b.cfg.Events)
	}
	res := b.throughputOf(run, name, counts)
	if float64(res.RecordsWritten) < math.Floor(want)-float64(len(topics)) || float64(res.RecordsWritten) > math.Ceil(want)+float64(len(topics)) {
		return throughput{}, fmt.Errorf("baseline %s wrote %d records, want about %.0f", name, res.RecordsWritten, want)
	}
	step(b.log, "baseline done", "baseline", name, "events_per_sec", int(run.PerSec()), "records", res.RecordsWritten,
		"cpu_s_per_1000", fmt.Sprintf("%.3f", res.CPUPer1000))
	return res, nil
}

// consentSyncBurst produces a burst of changes, then starts consent-sync
// and times it applying them.
func (b *bench) consentSyncBurst(ctx context.Context) error {
	step(b.log, "consent-sync: producing a burst of changes", "changes", b.cfg.Changes)
	gen := newGenerator(uint64(b.cfg.Seed)+1, b.cat, b.cfg.Subjects)
	now := time.Now()
	actions := []consent.Action{consent.ActionGrant, consent.ActionGrant, consent.ActionDeny, consent.ActionWithdraw}
	const chunk = 5000
	for done := 0; done < b.cfg.Changes; done += chunk {
		msgs := make([]kafka.Message, min(chunk, b.cfg.Changes-done))
		for i := range msgs {
			c := consent.Change{
				ChangeID:   fmt.Sprintf("burst-%08d", done+i),
				SubjectID:  subjectID(gen.rng.IntN(b.cfg.Subjects)),
				Purpose:    seedPurposes[gen.rng.IntN(len(seedPurposes))],
				Action:     actions[gen.rng.IntN(len(actions))],
				LegalBasis: consent.BasisConsent, Source: "bench-burst", NoticeVersion: "2026-09",
				CapturedAt: now.Add(-time.Duration(gen.rng.IntN(500)) * time.Millisecond),
			}
			v, err := b.codec.EncodeSingle("consentgate.consent.ConsentChange", c.Native())
			if err != nil {
				return fmt.Errorf("encode consent change: %w", err)
			}
			msgs[i] = kafka.Message{Topic: changesTopic, Key: []byte(c.SubjectID), Value: v}
		}
		if err := stream.WriteAll(ctx, b.writer, msgs, nil); err != nil {
			return fmt.Errorf("produce consent changes: %w", err)
		}
	}
	step(b.log, "consent-sync: applying the burst")
	p, err := b.startService(ctx, "consent-sync", "consent-sync", `"msg":"syncing consent"`)
	if err != nil {
		return err
	}
	cpu := b.contextCPU("consent-sync", p)
	run, err := b.admin.waitDrained(ctx, "bench-consent-sync", changesTopic, b.cfg.Partitions, int64(b.cfg.Changes), b.drainTimeout(b.cfg.Changes), aliveCheck(p), cpu)
	if err != nil {
		return err
	}
	b.res.ConsentSync = throughput{EventsPerSec: run.PerSec(), Events: run.Records, StartupSeconds: run.Startup.Seconds(), BusySeconds: run.Busy.Seconds()}
	b.res.ConsentSync.setCPU(run, "consent-sync")
	step(b.log, "consent-sync done", "changes_per_sec", int(run.PerSec()))
	return nil
}

// benchPolicy is the policy of the paced run and the probes.
func (b *bench) benchPolicy() *policyRun {
	for _, pr := range b.policies {
		if pr.label == "bench" {
			return pr
		}
	}
	panic("bench: no bench policy") // policyFiles always has one
}

// paced runs the enforcer of the bench policy at half its measured rate,
// measuring end-to-end latency and, meanwhile, withdrawal-to-enforcement
// latency; then the matched passthrough of the same policy at the same rate
// on an input topic of its own, for the latency floor of the same Kafka
// plumbing.
func (b *bench) paced(ctx context.Context) error {
	pr := b.benchPolicy()
	b.res.LatencyPolicy = pr.file
	rate := pr.res.Enforcer.EventsPerSec / 2
	if b.cfg.Rate > 0 {
		rate = float64(b.cfg.Rate)
	}
	pool := make([]kafka.Message, 0, 20000)
	gen := newGenerator(uint64(b.cfg.Seed)+2, b.cat, b.cfg.Subjects)
	for range cap(pool) {
		m, err := gen.message(inputTopic)
		if err != nil {
			return err
		}
		pool = append(pool, m)
	}
	var outputs, baselineOutputs []string
	for _, st := range pr.pol.Streams {
		outputs = append(outputs, st.Topic)
		baselineOutputs = append(baselineOutputs, pr.baselineTopic(st.Topic))
	}

	step(b.log, "paced run: enforcer", "events_per_sec", int(rate), "warmup", b.cfg.Warmup, "measured", b.cfg.Paced)
	probe := &prober{gen: newGenerator(uint64(b.cfg.Seed)+3, b.cat, b.cfg.Subjects), codec: b.codec, input: inputTopic, changes: changesTopic}
	lat, err := b.pacedRun(ctx, pacedRun{rate: rate, pool: pool, input: inputTopic, outputs: outputs, measure: b.cfg.Paced, probe: probe,
		cpu: b.contextCPU("enforcer", b.enforcer()), process: "enforcer"})
	if err != nil {
		return err
	}
	if err := aliveCheck(b.enforcer())(); err != nil {
		return err
	}
	b.res.Latency = lat
	b.res.Withdrawal = withdrawalResult{Latency: percentilesOf(probe.samples), TimedOut: probe.failures}
	step(b.log, "paced run: enforcer done", "latency_samples", lat.EndToEnd.Samples, "withdrawal_samples", len(probe.samples))

	// The passthrough on its own input topic, at the same rate.
	measure := min(b.cfg.Paced, 20*time.Second)
	step(b.log, "paced run: baseline", "events_per_sec", int(rate), "measured", measure)
	perTopic := map[string]float64{}
	for _, t := range pr.topics {
		if n := pr.res.Enforcer.ByTopic[t]; n > 0 {
			perTopic[pr.baselineTopic(t)] = float64(n) / float64(b.cfg.Events)
		}
	}
	const name = "passthrough-paced"
	p, err := b.startPassthrough(ctx, name, "bench-"+name, pacedBaselineInput, perTopic)
	if err != nil {
		return err
	}
	blat, err := b.pacedRun(ctx, pacedRun{rate: rate, pool: pool, input: pacedBaselineInput, outputs: baselineOutputs,
		warmup: max(b.cfg.Warmup, 5*time.Second), measure: measure, cpu: b.contextCPU(name, p), process: name})
	if err == nil {
		err = aliveCheck(p)()
	}
	if err != nil {
		return err
	}
	b.res.PeakRSSMiB[name] = b.rssMiB(p)
	if err := p.stop(30 * time.Second); err != nil {
		return err
	}
	b.res.PassthroughLatency = blat
	step(b.log, "paced run: baseline done", "latency_samples", blat.EndToEnd.Samples)
	return nil
}

// pacedBaselineInput is the input topic of the paced baseline run.
const pacedBaselineInput = "bench.paced.input"

// pacedRun is one paced run: events from pool produced to input at rate,
// passed outputs observed on partition probePartition of outputs.
type pacedRun struct {
	rate    float64
	pool    []kafka.Message
	input   string
	outputs []string
	warmup  time.Duration // 0: the configured warm-up
	measure time.Duration
	// probe, when set, runs withdrawal probes during the measured part.
	probe *prober
	// cpu, when set, is read at the start and the end of the measured
	// part; process names the one measured.
	cpu     *cpuWatch
	process string
}

// pacedRun produces at a fixed rate for warm-up plus the measured time,
// and returns the end-to-end latency of the outputs sent after the
// warm-up.
func (b *bench) pacedRun(ctx context.Context, pr pacedRun) (latencyResult, error) {
	if pr.warmup == 0 {
		pr.warmup = b.cfg.Warmup
	}
	rctx, cancelReaders := context.WithCancel(ctx)
	defer cancelReaders()
	obs := &latencyObserver{}
	watcher := &auditWatcher{codec: b.codec, rows: make(chan auditRow, 4096)}
	var readers []*kafka.Reader
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	topics := pr.outputs
	if pr.probe != nil {
		topics = append(slices.Clone(topics), auditTopic)
	}
	errs := make(chan error, len(topics))
	for _, t := range topics {
		r, err := tailReader(b.kcfg, t, probePartition)
		if err != nil {
			return latencyResult{}, err
		}
		readers = append(readers, r)
		if t == auditTopic {
			go func() { errs <- watcher.run(rctx, r) }()
		} else {
			go func() { errs <- obs.run(rctx, r) }()
		}
	}
	if err := sleepCtx(ctx, time.Second); err != nil { // let the readers find the end
		return latencyResult{}, err
	}

	start := time.Now()
	obs.mu.Lock()
	obs.from = start.Add(pr.warmup)
	obs.mu.Unlock()
	pctx, stopPacing := context.WithCancel(ctx)
	defer stopPacing()
	pw := stream.NewWriter(b.kcfg)
	defer pw.Close()
	pc := &pacer{w: pw, pool: pr.pool, rate: pr.rate, topic: pr.input}
	pacerDone := make(chan error, 1)
	go func() { pacerDone <- pc.run(pctx) }()
	if err := sleepCtx(ctx, pr.warmup); err != nil {
		return latencyResult{}, err
	}

	mctx, stopMeasuring := context.WithTimeout(ctx, pr.measure)
	defer stopMeasuring()
	measureStart := time.Now()
	sentAtStart := pc.sent.Load()
	cpuAtStart, err := pr.cpu.sample()
	if err != nil {
		return latencyResult{}, err
	}
	var probeErr error
	if pr.probe != nil {
		probeW := stream.NewWriter(b.kcfg)
		defer probeW.Close()
		pr.probe.w, pr.probe.rows = probeW, watcher.rows
		probeErr = pr.probe.run(mctx, b.probes)
	}
	if probeErr == nil {
		<-mctx.Done() // the probes may run out before the time is up
	}
	measured := time.Since(measureStart)
	sent := pc.sent.Load() - sentAtStart
	cpuAtEnd, cpuErr := pr.cpu.sample()
	stopPacing()
	if err := <-pacerDone; err != nil {
		return latencyResult{}, err
	}
	if probeErr != nil {
		return latencyResult{}, probeErr
	}
	if cpuErr != nil {
		return latencyResult{}, cpuErr
	}
	if ctx.Err() != nil {
		return latencyResult{}, ctx.Err()
	}
	if err := sleepCtx(ctx, 2*time.Second); err != nil { // let the last outputs arrive
		return latencyResult{}, err
	}
	cancelReaders()
	for range readers {
		if err := <-errs; err != nil {
			return latencyResult{}, err
		}
	}
	res := latencyResult{TargetPerSec: pr.rate, AchievedPerSec: float64(sent) / measured.Seconds(), MeasuredSeconds: measured.Seconds(), EndToEnd: obs.result(),
		Process: pr.process, CPUSeconds: pr.cpu.seconds(cpuAtStart, cpuAtEnd)}
	if sent > 0 {
		res.CPUPer1000 = res.CPUSeconds[pr.process] / float64(sent) * 1000
	}
	return res, nil
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// peakRSS reads VmHWM of every process still running (those stopped
// earlier had theirs read before they were stopped).
func (b *bench) peakRSS(context.Context) error {
	for _, p := range b.procs {
		if p.exited() {
			continue
		}
		rss, err := p.peakRSS()
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		b.res.PeakRSSMiB[p.name] = float64(rss) / (1 << 20)
	}
	return nil
}

func (c config) settings() settings {
	return settings{Traced: c.Traced, TraceSampleRatio: os.Getenv("TRACE_SAMPLE_RATIO"), Events: c.Events, Subjects: c.Subjects, Changes: c.Changes, Partitions: c.Partitions,
		PacedSeconds: c.Paced.Seconds(), WarmupSeconds: c.Warmup.Seconds(), Policy: strings.TrimPrefix(c.Policy, "./"), DeployPolicy: strings.TrimPrefix(c.DeployPolicy, "./")}
}
