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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/stream"
)

// baselinePrefix starts the names of the passthroughs' output topics: with
// the matched baseline of policy label l, the enforcer's topic t becomes
// baselinePrefix+l+"."+t; the 1:1 baseline writes oneToOneTopic.
const baselinePrefix = "bench.baseline."

// oneToOneTopic is the only output of the 1:1 baseline.
const oneToOneTopic = baselinePrefix + "one"

// passthroughMode is the first argument that makes this binary run as a
// passthrough process (see runPassthroughProcess) instead of the benchmark.
const passthroughMode = "passthrough"

// passthrough is a baseline: a plain consume → produce copy with the
// enforcer's Kafka plumbing (stream.NewReader, stream.NewWriter with
// acks=all, stream.Runner with the same batch size, linger and
// commit-after-acknowledge discipline) and no consent work. For every input
// event it writes perTopic[t] records on average to topic t, each a copy of
// the input (key, value, headers). The matched baseline uses the enforcer's
// records per event and topic; the 1:1 baseline one record to one topic.
type passthrough struct {
	perTopic map[string]float64 // records per input event, by output topic
	topics   []string           // keys of perTopic, in a fixed order
	seen     int64              // input events processed so far
}

// process is the stream.Processor of the baseline. Event i gets
// floor((i+1)·r) − floor(i·r) copies per topic of rate r, so that the
// totals match the enforcer's over the whole input.
func (p *passthrough) process(_ context.Context, batch []kafka.Message) ([]kafka.Message, error) {
	out := make([]kafka.Message, 0, len(batch)*4)
	for _, m := range batch {
		i := float64(p.seen)
		p.seen++
		for _, t := range p.topics {
			r := p.perTopic[t]
			for range int(math.Floor((i+1)*r) - math.Floor(i*r)) {
				out = append(out, kafka.Message{Topic: t, Key: m.Key, Value: m.Value, Headers: m.Headers})
			}
		}
	}
	return out, nil
}

// outputsArg encodes perTopic for the --outputs flag: "topic=rate,...".
func outputsArg(perTopic map[string]float64) string {
	topics := make([]string, 0, len(perTopic))
	for t := range perTopic {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	parts := make([]string, len(topics))
	for i, t := range topics {
		parts[i] = t + "=" + strconv.FormatFloat(perTopic[t], 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

// parseOutputs decodes outputsArg's format.
func parseOutputs(s string) (*passthrough, error) {
	pt := &passthrough{perTopic: map[string]float64{}}
	for part := range strings.SplitSeq(s, ",") {
		t, r, ok := strings.Cut(part, "=")
		if !ok || t == "" {
			return nil, fmt.Errorf("bad output %q: want topic=records_per_event", part)
		}
		v, err := strconv.ParseFloat(r, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("bad records per event in %q", part)
		}
		if _, dup := pt.perTopic[t]; dup {
			return nil, fmt.Errorf("output %s twice", t)
		}
		pt.perTopic[t] = v
		pt.topics = append(pt.topics, t)
	}
	return pt, nil
}

// passthroughReady is the line a passthrough process logs once its reader,
// writer and runner are built.
const passthroughReady = "passthrough running"

// runPassthroughProcess is the passthrough process: this binary re-executed
// by the benchmark with passthroughMode as its first argument, so that its
// CPU time is its own (/proc/<pid>/stat) as the enforcer's is. It runs
// until SIGTERM or SIGINT, then drains like the enforcer (the runner
// finishes and commits the batches in hand) and exits.
func runPassthroughProcess(args []string) error {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	fs := flag.NewFlagSet(passthroughMode, flag.ContinueOnError)
	broker := fs.String("broker", "", "broker address")
	group := fs.String("group", "", "consumer group")
	input := fs.String("input", "", "input topic")
	outputs := fs.String("outputs", "", "output topics and records per input event: topic=rate,...")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *broker == "" || *group == "" || *input == "" || *outputs == "" {
		return errors.New("--broker, --group, --input and --outputs are required")
	}
	pt, err := parseOutputs(*outputs)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	kcfg := stream.DefaultConfig()
	kcfg.Brokers = []string{*broker}
	kcfg.ClientID = "consentgate-bench-passthrough"
	return runBaseline(ctx, kcfg, *group, *input, pt, log)
}

// runBaseline runs the passthrough until ctx ends, in its own consumer group
// over the input topic, and returns when it stopped.
func runBaseline(ctx context.Context, kcfg stream.Config, group, input string, pt *passthrough, log *slog.Logger) error {
	w := stream.NewWriter(kcfg)
	defer w.Close()
	r := stream.NewReader(kcfg, stream.ReaderConfig{
		Topics: []string{input}, GroupID: group,
		// The enforcer's defaults (bootstrap.DefaultCommon).
		MaxWait: 250 * time.Millisecond, SessionTimeout: 10 * time.Second, FromBeginning: true,
	})
	defer r.Close()
	runner := &stream.Runner{
		Source: r, Sink: w, Process: pt.process,
		BatchSize: 500, Linger: 5 * time.Millisecond, DrainTimeout: 20 * time.Second, Log: log,
	}
	log.Info(passthroughReady, "group", group, "input", input, "outputs", len(pt.topics))
	err := runner.Run(ctx)
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil // stopped by the benchmark, drained
	}
	return err
}

// startPassthrough starts a passthrough process named name (its log is
// logDir/name.log) over input in group, writing perTopic, and waits until it
// runs.
func (b *bench) startPassthrough(ctx context.Context, name, group, input string, perTopic map[string]float64) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the benchmark binary to run the passthrough: %w", err)
	}
	p, err := startProc(name, self, b.logDir, nil, passthroughMode,
		"--broker", b.broker, "--group", group, "--input", input, "--outputs", outputsArg(perTopic))
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, p)
	if err := p.waitLog(ctx, passthroughReady, 30*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}
