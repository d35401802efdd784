package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// atClkTck is the auxiliary-vector entry holding the kernel's clock ticks
// per second (USER_HZ), what sysconf(_SC_CLK_TCK) returns.
const atClkTck = 17

var (
	clockTicksOnce sync.Once
	clockTicks     float64
	clockTicksFrom string
)

// ticksPerSecond returns the unit of utime and stime in /proc/<pid>/stat:
// AT_CLKTCK from this process's auxiliary vector (/proc/self/auxv, as glibc's
// sysconf(_SC_CLK_TCK) does, without cgo), else 100, Linux's USER_HZ on
// every architecture Go supports. from says which.
func ticksPerSecond() (hz float64, from string) {
	clockTicksOnce.Do(func() {
		clockTicks, clockTicksFrom = 100, "default (Linux USER_HZ)"
		b, err := os.ReadFile("/proc/self/auxv")
		if err != nil {
			return
		}
		if v, ok := auxvValue(b, atClkTck, strconv.IntSize/8); ok && v > 0 {
			clockTicks, clockTicksFrom = float64(v), "AT_CLKTCK"
		}
	})
	return clockTicks, clockTicksFrom
}

// auxvValue finds key in an auxiliary vector of word-sized (key, value)
// pairs in native byte order, ended by AT_NULL.
func auxvValue(b []byte, key uint64, word int) (uint64, bool) {
	read := func(p []byte) uint64 {
		if word == 4 {
			return uint64(binary.NativeEndian.Uint32(p))
		}
		return binary.NativeEndian.Uint64(p)
	}
	for i := 0; i+2*word <= len(b); i += 2 * word {
		k, v := read(b[i:]), read(b[i+word:])
		if k == 0 {
			break
		}
		if k == key {
			return v, true
		}
	}
	return 0, false
}

// cpuTicks returns utime + stime of process pid (every thread, in clock
// ticks), fields 14 and 15 of /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	return parseStatTicks(string(b))
}

// parseStatTicks reads utime + stime from the text of /proc/<pid>/stat.
// The command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so fields are counted after the last ')'.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/<pid>/stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/<pid>/stat: %d fields after the command name, want 13 or more", len(f))
	}
	var sum int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/<pid>/stat: %w", err)
		}
		sum += v
	}
	return sum, nil
}

// cpuWatch names the processes whose CPU time a measurement window
// reports: the measured one first, then the others for context.
type cpuWatch struct {
	names []string
	pids  []int
}

func (w *cpuWatch) add(name string, pid int) {
	w.names = append(w.names, name)
	w.pids = append(w.pids, pid)
}

// sample reads the CPU ticks of every watched process.
func (w *cpuWatch) sample() ([]int64, error) {
	if w == nil {
		return nil, nil
	}
	out := make([]int64, len(w.pids))
	for i, pid := range w.pids {
		t, err := cpuTicks(pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.names[i], err)
		}
		out[i] = t
	}
	return out, nil
}

// seconds returns the CPU seconds of each process between two samples.
func (w *cpuWatch) seconds(from, to []int64) map[string]float64 {
	if w == nil || len(from) != len(w.names) || len(to) != len(w.names) {
		return nil
	}
	hz, _ := ticksPerSecond()
	out := make(map[string]float64, len(w.names))
	for i, n := range w.names {
		out[n] = float64(to[i]-from[i]) / hz
	}
	return out
}
