package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// results is everything one run measured; it is printed as a table and
// written as JSON.
type results struct {
	Date     string   `json:"date"`
	Machine  machine  `json:"machine"`
	Settings settings `json:"settings"`
	// ClockTicks is the unit of the CPU times read from /proc/<pid>/stat.
	ClockTicks struct {
		PerSecond float64 `json:"per_second"`
		From      string  `json:"from"`
	} `json:"clock_ticks"`
	Seed  seedStats  `json:"seed"`
	Input inputStats `json:"input"`
	// Policies are the throughput runs, one per policy: its enforcer and
	// its matched baseline.
	Policies []*policyResult `json:"policies"`
	// OneToOne is the 1:1 baseline: one copy per input event to one topic.
	OneToOne    throughput `json:"one_to_one"`
	ConsentSync throughput `json:"consent_sync"`
	// LatencyPolicy is the policy of the paced run and the withdrawal
	// probes (the bench policy only).
	LatencyPolicy string        `json:"latency_policy"`
	Latency       latencyResult `json:"latency"`
	// PassthroughLatency is the matched passthrough's end-to-end latency
	// at the same rate: the floor of the Kafka plumbing.
	PassthroughLatency latencyResult      `json:"passthrough_latency"`
	Withdrawal         withdrawalResult   `json:"withdrawal"`
	PeakRSSMiB         map[string]float64 `json:"peak_rss_mib"`
	Targets            []target           `json:"targets"`
	WallSeconds        float64            `json:"wall_seconds"`
}

// policyResult is one policy's throughput runs.
type policyResult struct {
	Label   string `json:"label"`
	File    string `json:"file"`
	Version string `json:"version"`
	Streams int    `json:"streams"`
	// Enforcer is the enforcer's run; Matched the passthrough writing as
	// many records per event to as many topics.
	Enforcer throughput `json:"enforcer"`
	Matched  throughput `json:"matched"`
	// Ratios of events/s: enforcer ÷ matched, enforcer ÷ 1:1.
	RatioMatched  float64 `json:"ratio_enforcer_to_matched"`
	RatioOneToOne float64 `json:"ratio_enforcer_to_one_to_one"`
	// CPURatio is the enforcer's CPU per event ÷ the matched
	// passthrough's.
	CPURatio float64 `json:"cpu_ratio_enforcer_to_matched"`
}

type machine struct {
	NProc        int    `json:"nproc"`
	CPU          string `json:"cpu"`
	MemTotalMiB  int64  `json:"mem_total_mib"`
	GoVersion    string `json:"go_version"`
	OSArch       string `json:"os_arch"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

type settings struct {
	Events        int     `json:"events"`
	Subjects      int     `json:"subjects"`
	Changes       int     `json:"changes"`
	Partitions    int     `json:"partitions"`
	PacedSeconds  float64 `json:"paced_seconds"`
	WarmupSeconds float64 `json:"warmup_seconds"`
	Policy        string  `json:"policy"`
	DeployPolicy  string  `json:"deploy_policy"`
	// Traced is the share of input events carrying a sampled
	// traceparent; TraceSampleRatio the enforcer's TRACE_SAMPLE_RATIO
	// (empty: its default).
	Traced           float64 `json:"traced"`
	TraceSampleRatio string  `json:"trace_sample_ratio"`
}

type seedStats struct {
	Keys    int64   `json:"redis_keys"`
	Seconds float64 `json:"seconds"`
}

type inputStats struct {
	Events   int     `json:"events"`
	AvgBytes float64 `json:"avg_value_bytes"`
	Seconds  float64 `json:"produce_seconds"`
}

// throughput is one consumer working through a backlog. For consent-sync
// the "events" are consent changes.
type throughput struct {
	EventsPerSec    float64          `json:"per_sec"`
	Events          int64            `json:"counted"`
	StartupSeconds  float64          `json:"startup_seconds"`
	BusySeconds     float64          `json:"busy_seconds"`
	RecordsWritten  int64            `json:"records_written,omitempty"`
	RecordsPerEvent float64          `json:"records_per_event,omitempty"`
	ByTopic         map[string]int64 `json:"records_by_topic,omitempty"`
	// Process names the measured process; CPUSeconds holds the CPU seconds
	// (utime + stime) over the busy window of it and, for context, of the
	// broker, redis-server and the benchmark process; CPUPer1000 is the
	// measured process's CPU seconds per 1,000 events counted.
	Process    string             `json:"process,omitempty"`
	CPUSeconds map[string]float64 `json:"cpu_seconds_in_window,omitempty"`
	CPUPer1000 float64            `json:"cpu_seconds_per_1000_events,omitempty"`
}

// setCPU takes the CPU times of run, where process name is the one measured.
func (t *throughput) setCPU(run drainRun, name string) {
	t.Process, t.CPUSeconds = name, run.CPU
	if run.Records > 0 {
		t.CPUPer1000 = run.CPU[name] / float64(run.Records) * 1000
	}
}

// per1000 is process n's CPU seconds per 1,000 events of the window.
func (t throughput) per1000(n string) float64 {
	if t.Events == 0 {
		return 0
	}
	return t.CPUSeconds[n] / float64(t.Events) * 1000
}

type latencyResult struct {
	TargetPerSec    float64     `json:"target_per_sec"`
	AchievedPerSec  float64     `json:"achieved_per_sec"`
	MeasuredSeconds float64     `json:"measured_seconds"`
	EndToEnd        percentiles `json:"end_to_end"`
	// CPU over the measured part, as in throughput; CPUPer1000 is per
	// 1,000 events sent (the probes' own events are not counted).
	Process    string             `json:"process,omitempty"`
	CPUSeconds map[string]float64 `json:"cpu_seconds_measured,omitempty"`
	CPUPer1000 float64            `json:"cpu_seconds_per_1000_events,omitempty"`
}

type withdrawalResult struct {
	Latency  percentiles `json:"latency"`
	TimedOut int         `json:"timed_out"`
}

// target is one of issue 11's goals and whether this run met it.
type target struct {
	Name string `json:"name"`
	// Goal is the goal as text; Limit its number, AtLeast its direction
	// (value ≥ limit, else value ≤ or < limit) and Inclusive whether the
	// limit itself meets it (≥, ≤).
	Goal      string  `json:"goal"`
	Limit     float64 `json:"limit"`
	AtLeast   bool    `json:"at_least"`
	Inclusive bool    `json:"inclusive"`
	Value     float64 `json:"value"`
	Unit      string  `json:"unit"`
	Met       bool    `json:"met"`
	// Margin is how far the value is inside the goal (negative: outside),
	// in the unit and relative to the limit.
	Margin         float64 `json:"margin"`
	MarginRelative float64 `json:"margin_relative"`
	Note           string  `json:"note,omitempty"`
}

// finish computes the ratios.
func (r *results) finish() {
	for _, p := range r.Policies {
		if p.Matched.EventsPerSec > 0 {
			p.RatioMatched = p.Enforcer.EventsPerSec / p.Matched.EventsPerSec
		}
		if r.OneToOne.EventsPerSec > 0 {
			p.RatioOneToOne = p.Enforcer.EventsPerSec / r.OneToOne.EventsPerSec
		}
		if p.Matched.CPUPer1000 > 0 {
			p.CPURatio = p.Enforcer.CPUPer1000 / p.Matched.CPUPer1000
		}
	}
}

// throughputGoals are issue 11's enforcer ÷ matched goals by policy label.
var throughputGoals = map[string]float64{"bench": 0.9, "deploy": 0.8}

// judge compares the figures with the targets of issue 11.
func (r *results) judge() {
	r.Targets = nil
	add := func(t target, valid bool) {
		if t.AtLeast {
			t.Margin = t.Value - t.Limit
		} else {
			t.Margin = t.Limit - t.Value
		}
		if t.Limit != 0 {
			t.MarginRelative = t.Margin / t.Limit
		}
		t.Met = valid && (t.Margin > 0 || t.Inclusive && t.Margin == 0)
		if !valid && t.Note == "" {
			t.Note = "not measured"
		}
		r.Targets = append(r.Targets, t)
	}
	for _, p := range r.Policies {
		if g, ok := throughputGoals[p.Label]; ok {
			add(target{Name: "enforcer / matched passthrough, " + p.Label + " policy", Goal: fmt.Sprintf(">= %.1fx", g), Limit: g, AtLeast: true, Inclusive: true, Value: p.RatioMatched, Unit: "x"},
				p.Matched.EventsPerSec > 0)
		}
	}
	for _, p := range r.Policies {
		add(target{Name: "CPU per event enforcer / matched passthrough, " + p.Label + " policy", Goal: "<= 1.5x", Limit: 1.5, Inclusive: true, Value: p.CPURatio, Unit: "x"},
			p.CPURatio > 0)
	}
	pl, bl := r.Latency.EndToEnd, r.PassthroughLatency.EndToEnd
	ratio := 0.0
	if bl.P99 > 0 {
		ratio = pl.P99 / bl.P99
	}
	add(target{Name: "p99 enforcer / passthrough at the same rate, " + r.LatencyPolicy, Goal: "<= 1.5x", Limit: 1.5, Inclusive: true, Value: ratio, Unit: "x",
		Note: fmt.Sprintf("%.1f ms / %.1f ms", pl.P99, bl.P99)}, pl.Samples > 0 && bl.Samples > 0)
	wd := r.Withdrawal
	t := target{Name: "withdrawal-to-enforcement p99", Goal: "< 200 ms", Limit: 200, Value: wd.Latency.P99, Unit: "ms"}
	if wd.TimedOut > 0 {
		t.Note = fmt.Sprintf("%d probes timed out", wd.TimedOut)
	}
	add(t, wd.Latency.Samples > 0 && wd.TimedOut == 0)
	var rss float64
	var rssOf []string
	for n, v := range r.PeakRSSMiB {
		if strings.HasPrefix(n, "enforcer") {
			rss = max(rss, v)
			rssOf = append(rssOf, n)
		}
	}
	slices.Sort(rssOf)
	t = target{Name: "enforcer peak RSS (largest of " + strings.Join(rssOf, ", ") + ")", Goal: "< 256 MiB", Limit: 256, Value: rss, Unit: "MiB"}
	if r.Settings.Subjects < 1000000 {
		t.Note = fmt.Sprintf("only %d subjects seeded; the target is for 1,000,000", r.Settings.Subjects)
	}
	add(t, rss > 0)
}

// printTable writes the figures as a table.
func printTable(w io.Writer, r *results) {
	fmt.Fprintf(w, "\nconsentgate benchmark, %s\n", r.Date)
	fmt.Fprintf(w, "machine: %d CPUs (%s), %d MiB, %s %s; load average %s at start, %s at end\n",
		r.Machine.NProc, r.Machine.CPU, r.Machine.MemTotalMiB, r.Machine.GoVersion, r.Machine.OSArch, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	fmt.Fprintf(w, "input: %d events (avg %.0f B), %d subjects with consent, %d partitions\n",
		r.Settings.Events, r.Input.AvgBytes, r.Settings.Subjects, r.Settings.Partitions)
	fmt.Fprintf(w, "CPU = utime+stime from /proc/<pid>/stat (%.0f ticks/s, %s) over the same window as events/s (first to last commit seen)\n\n",
		r.ClockTicks.PerSecond, r.ClockTicks.From)

	fmt.Fprintln(w, "throughput (events/s) and CPU (s per 1,000 events), per policy:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "policy\tstreams\tenforcer\tmatched\t1:1\tenf/matched\tenf/1:1\tCPU enforcer\tCPU matched\tCPU ratio\trecords/event\t\n")
	for _, p := range r.Policies {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.2fx\t%.2fx\t%.3f\t%.3f\t%.2fx\t%.2f\t\n",
			p.Label, p.Streams, p.Enforcer.EventsPerSec, p.Matched.EventsPerSec, r.OneToOne.EventsPerSec,
			p.RatioMatched, p.RatioOneToOne, p.Enforcer.CPUPer1000, p.Matched.CPUPer1000, p.CPURatio, p.Enforcer.RecordsPerEvent)
	}
	tw.Flush()
	for _, p := range r.Policies {
		fmt.Fprintf(w, "  %s = %s (%s)\n", p.Label, p.File, p.Version)
	}
	fmt.Fprintf(w, "  1:1 = one copy per input event to one topic: CPU %.3f s per 1,000 events\n", r.OneToOne.CPUPer1000)
	fmt.Fprintf(w, "  matched = a passthrough process writing per event as many records to as many topics as that policy's enforcer\n\n")

	fmt.Fprintln(w, "CPU of every process over each window (s per 1,000 events; cores = CPU s / window s):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "run\twindow s\tevents\tmeasured\tdevbroker\tredis\tbench\tcores, all four\t\n")
	runs := []throughput{}
	for _, p := range r.Policies {
		runs = append(runs, p.Enforcer, p.Matched)
	}
	runs = append(runs, r.OneToOne, r.ConsentSync)
	for _, t := range runs {
		var all float64
		for _, v := range t.CPUSeconds {
			all += v
		}
		cores := 0.0
		if t.BusySeconds > 0 {
			cores = all / t.BusySeconds
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\t\n", t.Process, t.BusySeconds, t.Events,
			t.per1000(t.Process), t.per1000("devbroker"), t.per1000("redis"), t.per1000(benchSelf), cores)
	}
	tw.Flush()
	fmt.Fprintf(w, "  (consent-sync: per 1,000 consent changes)\n")
	shortest := math.Inf(1)
	for _, t := range runs {
		shortest = min(shortest, t.BusySeconds)
	}
	if shortest < 2 {
		fmt.Fprintf(w, "  note: the shortest window is %.1f s; CPU is counted in ticks of %.0f ms per process, so windows this short (a small BENCH_EVENTS) make the CPU figures coarse\n",
			shortest, 1000/r.ClockTicks.PerSecond)
	}
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "measure\tvalue\tnote\n")
	l := r.Latency.EndToEnd
	fmt.Fprintf(tw, "enforcer latency p50/p99/p999\t%.1f / %.1f / %.1f ms\t%s policy only, at %.0f events/s (target %.0f, half the enforcer's), %d samples; CPU %.3f s per 1,000 events\n",
		l.P50, l.P99, l.P999, r.LatencyPolicy, r.Latency.AchievedPerSec, r.Latency.TargetPerSec, l.Samples, r.Latency.CPUPer1000)
	bl := r.PassthroughLatency.EndToEnd
	fmt.Fprintf(tw, "passthrough latency p50/p99/p999\t%.1f / %.1f / %.1f ms\tmatched passthrough at %.0f events/s, %d samples: the plumbing's floor; CPU %.3f s per 1,000 events\n",
		bl.P50, bl.P99, bl.P999, r.PassthroughLatency.AchievedPerSec, bl.Samples, r.PassthroughLatency.CPUPer1000)
	wd := r.Withdrawal.Latency
	fmt.Fprintf(tw, "withdrawal-to-enforcement p50/p99\t%.0f / %.0f ms\t%s policy only, %d samples, %d timed out (10 s)\n", wd.P50, wd.P99, r.LatencyPolicy, wd.Samples, r.Withdrawal.TimedOut)
	fmt.Fprintf(tw, "consent-sync\t%.0f changes/s\t%d changes in the burst\n", r.ConsentSync.EventsPerSec, r.Settings.Changes)
	names := make([]string, 0, len(r.PeakRSSMiB))
	for n := range r.PeakRSSMiB {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		note := ""
		if strings.HasPrefix(n, "enforcer") {
			note = "target < 256 MiB"
		}
		fmt.Fprintf(tw, "peak RSS %s\t%.0f MiB\t%s\n", n, r.PeakRSSMiB[n], note)
	}
	fmt.Fprintf(tw, "wall time\t%.0f s\tseeding %.0f s\n", r.WallSeconds, r.Seed.Seconds)
	tw.Flush()
	fmt.Fprintln(w, "\ntargets of issue 11:")
	for _, t := range r.Targets {
		fmt.Fprintln(w, t.line())
	}
}

// line is the target as one line: MET or MISSED, the value, the goal and the
// margin.
func (t target) line() string {
	mark := "MET   "
	if !t.Met {
		mark = "MISSED"
	}
	how := "margin"
	if t.Margin < 0 {
		how = "missed by"
	}
	unit := " " + t.Unit
	if t.Unit == "x" {
		unit = "x"
	}
	pct := fmt.Sprintf("%.0f", abs(t.MarginRelative)*100)
	if abs(t.MarginRelative) < 0.1 {
		pct = fmt.Sprintf("%.1f", abs(t.MarginRelative)*100)
	}
	m := fmt.Sprintf("%s %.2f%s (%s %% of the goal)", how, abs(t.Margin), unit, pct)
	s := fmt.Sprintf("%s %s: %.2f%s (goal %s; %s)", mark, t.Name, t.Value, unit, t.Goal, m)
	if t.Note != "" {
		s += "; " + t.Note
	}
	return s
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// write saves the results as dir/latest.json and a dated copy, and returns
// the path of latest.json.
func (r *results) write(dir string) (string, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode results: %w", err)
	}
	b = append(b, '\n')
	latest := filepath.Join(dir, "latest.json")
	dated := filepath.Join(dir, "bench-"+strings.NewReplacer(":", "", "-", "").Replace(r.Date)+".json")
	for _, p := range []string{latest, dated} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", fmt.Errorf("write results: %w", err)
		}
	}
	return latest, nil
}

func describeMachine() machine {
	m := machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), OSArch: runtime.GOOS + "/" + runtime.GOARCH, LoadAvgStart: loadAvg()}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		m.CPU = v
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		var kb int64
		if _, err := fmt.Sscanf(v, "%d kB", &kb); err == nil {
			m.MemTotalMiB = kb >> 10
		}
	}
	return m
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// procField returns the value of the first "name: value" line of a /proc file.
func procField(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
