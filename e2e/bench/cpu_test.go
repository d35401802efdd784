package main

import (
	"encoding/binary"
	"os"
	"runtime"
	"testing"
)

func TestParseStatTicks(t *testing.T) {
	// Fields 3.. of a real /proc/<pid>/stat line: utime (14) = 1234,
	// stime (15) = 56, then cutime and cstime (children's, not counted).
	rest := " S 1 1 1 0 -1 4194560 100 0 0 0 1234 56 7 8 20 0 9 0 100 1000 10"
	for _, tc := range []struct {
		name, stat string
		want       int64
		bad        bool
	}{
		{name: "plain", stat: "42 (enforcer)" + rest, want: 1290},
		{name: "spaces and parentheses in the command", stat: "42 (a ) b (c))" + rest, want: 1290},
		{name: "no command", stat: "42 enforcer" + rest, bad: true},
		{name: "truncated", stat: "42 (enforcer) S 1 1 1 0 -1 4194560 100 0 0 0 1234", bad: true},
		{name: "not a number", stat: "42 (enforcer) S 1 1 1 0 -1 4194560 100 0 0 0 x 56 7 8", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatTicks(tc.stat)
			if tc.bad {
				if err == nil {
					t.Fatalf("parseStatTicks = %d, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStatTicks = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestAuxvValue(t *testing.T) {
	for _, word := range []int{4, 8} {
		var b []byte
		put := func(vs ...uint64) {
			for _, v := range vs {
				if word == 4 {
					b = binary.NativeEndian.AppendUint32(b, uint32(v))
				} else {
					b = binary.NativeEndian.AppendUint64(b, v)
				}
			}
		}
		put(6, 4096, atClkTck, 250, 0, 0, atClkTck, 99) // an entry after AT_NULL is not read
		if v, ok := auxvValue(b, atClkTck, word); !ok || v != 250 {
			t.Errorf("word %d: auxvValue(AT_CLKTCK) = %d, %v; want 250", word, v, ok)
		}
		if v, ok := auxvValue(b, 33, word); ok {
			t.Errorf("word %d: auxvValue(33) = %d, want not found", word, v)
		}
		if _, ok := auxvValue(b[:len(b)-1], 99, word); ok {
			t.Errorf("word %d: found a key in a truncated vector", word)
		}
	}
}

// TestCPUTicksOfSelf reads this process's CPU time twice around some work:
// the clock-tick rate comes from the auxiliary vector on Linux, and the
// count does not go backwards.
func TestCPUTicksOfSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	hz, from := ticksPerSecond()
	if from != "AT_CLKTCK" || hz <= 0 {
		t.Fatalf("ticksPerSecond = %v from %q, want AT_CLKTCK", hz, from)
	}
	a, err := cpuTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := range 50_000_000 {
		x += i ^ x
	}
	b, err := cpuTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if b < a {
		t.Fatalf("CPU ticks went from %d to %d (x=%d)", a, b, x)
	}
	w := &cpuWatch{}
	w.add("self", os.Getpid())
	secs := w.seconds([]int64{a}, []int64{b})
	if got, want := secs["self"], float64(b-a)/hz; got != want {
		t.Fatalf("seconds = %v, want %v", got, want)
	}
}

func TestOutputsArgRoundTrip(t *testing.T) {
	in := map[string]float64{"bench.baseline.bench.consent.audit": 1, "bench.baseline.bench.compliant.analytics": 0.6180339887498949, "x": 0}
	pt, err := parseOutputs(outputsArg(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(pt.perTopic) != len(in) || len(pt.topics) != len(in) {
		t.Fatalf("parsed %v, want %v", pt.perTopic, in)
	}
	for k, v := range in {
		if pt.perTopic[k] != v {
			t.Errorf("%s: %v, want %v", k, pt.perTopic[k], v)
		}
	}
	for _, bad := range []string{"", "a", "a=x", "a=-1", "a=1,a=2", "=1", "a=NaN", "a=+Inf"} {
		if _, err := parseOutputs(bad); err == nil {
			t.Errorf("parseOutputs(%q) accepted", bad)
		}
	}
}
