package enforce

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// chunk is the most events a worker takes at a time: small enough to
// balance a batch of mixed events over the workers, large enough that
// handing out work costs nothing next to deciding it. A small batch is
// handed out in smaller chunks, so that every worker gets some.
const chunk = 32

// DefaultWorkers is the number of goroutines that decide a batch when
// Options.Workers is 0: one per CPU the Go runtime may use.
func DefaultWorkers() int { return runtime.GOMAXPROCS(0) }

// parallel calls fn(w, i) once for every i in [0, n), on at most workers
// goroutines; w (0 ≤ w < workers) names the goroutine, so that fn can keep
// per-goroutine state (an arena, a tally) without locks. Indexes are handed
// out in chunks (of at most chunk, at least 1) in increasing order. When fn returns an error no further
// chunk is started, and parallel returns the error of the lowest index that
// failed among those run (every call that was started is finished first).
//
// Each fn(w, i) must write only to state owned by index i or by goroutine
// w: the caller assembles the results in index order afterwards, so what
// is written does not depend on how the work was spread.
func parallel(n, workers int, fn func(w, i int) error) error {
	if workers <= 1 || n <= 1 {
		for i := 0; i < n; i++ {
			if err := fn(0, i); err != nil {
				return err
			}
		}
		return nil
	}
	size := max(1, min(chunk, n/(4*workers)))
	workers = min(workers, n)
	var (
		next    atomic.Int64
		stop    atomic.Bool
		mu      sync.Mutex
		errAt   = n
		firstEr error
		wg      sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				start := int(next.Add(int64(size))) - size
				if start >= n {
					return
				}
				for i := start; i < min(start+size, n); i++ {
					if err := fn(w, i); err != nil {
						mu.Lock()
						if i < errAt {
							errAt, firstEr = i, err
						}
						mu.Unlock()
						stop.Store(true)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return firstEr
}
