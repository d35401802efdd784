package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
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
	Date        string        `json:"date"`
	Machine     machine       `json:"machine"`
	Settings    settings      `json:"settings"`
	Seed        seedStats     `json:"seed"`
	Input       inputStats    `json:"input"`
	Enforcer    throughput    `json:"enforcer"`
	Baseline    throughput    `json:"baseline"`
	Ratio       float64       `json:"ratio_enforcer_to_baseline"`
	ConsentSync throughput    `json:"consent_sync"`
	Latency     latencyResult `json:"latency"`
	// BaselineLatency is the passthrough's end-to-end latency at the same
	// rate: the floor of the Kafka plumbing.
	BaselineLatency latencyResult      `json:"baseline_latency"`
	Withdrawal      withdrawalResult   `json:"withdrawal"`
	PeakRSSMiB      map[string]float64 `json:"peak_rss_mib"`
	Targets         []target           `json:"targets"`
	WallSeconds     float64            `json:"wall_seconds"`
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
}

type latencyResult struct {
	TargetPerSec    float64     `json:"target_per_sec"`
	AchievedPerSec  float64     `json:"achieved_per_sec"`
	MeasuredSeconds float64     `json:"measured_seconds"`
	EndToEnd        percentiles `json:"end_to_end"`
}

type withdrawalResult struct {
	Latency  percentiles `json:"latency"`
	TimedOut int         `json:"timed_out"`
}

// target is one of issue 5's goals and whether this run met it.
type target struct {
	Name  string  `json:"name"`
	Goal  string  `json:"goal"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Met   bool    `json:"met"`
}

// judge compares the figures with the targets of issue 5.
func (r *results) judge() {
	r.Targets = []target{
		{Name: "throughput ratio", Goal: ">= 0.8", Value: r.Ratio, Unit: "x", Met: r.Ratio >= 0.8},
		{Name: "end-to-end p99 at half rate", Goal: "< 25 ms", Value: r.Latency.EndToEnd.P99, Unit: "ms", Met: r.Latency.EndToEnd.Samples > 0 && r.Latency.EndToEnd.P99 < 25},
		{Name: "withdrawal-to-enforcement p99", Goal: "< 1000 ms", Value: r.Withdrawal.Latency.P99, Unit: "ms", Met: r.Withdrawal.Latency.Samples > 0 && r.Withdrawal.Latency.P99 < 1000 && r.Withdrawal.TimedOut == 0},
		{Name: "enforcer peak RSS", Goal: "< 256 MiB", Value: r.PeakRSSMiB["enforcer"], Unit: "MiB", Met: r.PeakRSSMiB["enforcer"] > 0 && r.PeakRSSMiB["enforcer"] < 256},
	}
}

// printTable writes the figures as a table.
func printTable(w io.Writer, r *results) {
	fmt.Fprintf(w, "\nconsentgate benchmark, %s\n", r.Date)
	fmt.Fprintf(w, "machine: %d CPUs (%s), %d MiB, %s %s; load average %s at start, %s at end\n",
		r.Machine.NProc, r.Machine.CPU, r.Machine.MemTotalMiB, r.Machine.GoVersion, r.Machine.OSArch, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	fmt.Fprintf(w, "input: %d events (avg %.0f B), %d subjects with consent, %d partitions, policy %s\n\n",
		r.Settings.Events, r.Input.AvgBytes, r.Settings.Subjects, r.Settings.Partitions, r.Settings.Policy)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "measure\tvalue\tnote\n")
	fmt.Fprintf(tw, "baseline passthrough\t%.0f events/s\t%.2f records written per event, acks=all\n", r.Baseline.EventsPerSec, r.Baseline.RecordsPerEvent)
	fmt.Fprintf(tw, "enforcer\t%.0f events/s\t%.2f records written per event (outputs + audit)\n", r.Enforcer.EventsPerSec, r.Enforcer.RecordsPerEvent)
	fmt.Fprintf(tw, "ratio enforcer/baseline\t%.2f\ttarget >= 0.8\n", r.Ratio)
	l := r.Latency.EndToEnd
	fmt.Fprintf(tw, "end-to-end latency p50/p99/p999\t%.1f / %.1f / %.1f ms\tat %.0f events/s (target %.0f), %d samples; target p99 < 25 ms\n",
		l.P50, l.P99, l.P999, r.Latency.AchievedPerSec, r.Latency.TargetPerSec, l.Samples)
	bl := r.BaselineLatency.EndToEnd
	fmt.Fprintf(tw, "baseline latency p50/p99/p999\t%.1f / %.1f / %.1f ms\tpassthrough at %.0f events/s, %d samples: the plumbing's floor\n",
		bl.P50, bl.P99, bl.P999, r.BaselineLatency.AchievedPerSec, bl.Samples)
	wd := r.Withdrawal.Latency
	fmt.Fprintf(tw, "withdrawal-to-enforcement p50/p99\t%.0f / %.0f ms\t%d samples, %d timed out (10 s); target p99 < 1 s\n", wd.P50, wd.P99, wd.Samples, r.Withdrawal.TimedOut)
	fmt.Fprintf(tw, "consent-sync\t%.0f changes/s\t%d changes in the burst\n", r.ConsentSync.EventsPerSec, r.Settings.Changes)
	names := make([]string, 0, len(r.PeakRSSMiB))
	for n := range r.PeakRSSMiB {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		note := ""
		if n == "enforcer" {
			note = "target < 256 MiB"
		}
		fmt.Fprintf(tw, "peak RSS %s\t%.0f MiB\t%s\n", n, r.PeakRSSMiB[n], note)
	}
	fmt.Fprintf(tw, "wall time\t%.0f s\tseeding %.0f s\n", r.WallSeconds, r.Seed.Seconds)
	tw.Flush()
	fmt.Fprintln(w)
	for _, t := range r.Targets {
		mark := "MET   "
		if !t.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "%s %s: %.2f %s (goal %s)\n", mark, t.Name, t.Value, t.Unit, t.Goal)
	}
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
