package enforce

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

func TestParallelCallsEveryIndexOnce(t *testing.T) {
	for _, workers := range []int{0, 1, 2, 3, 8} {
		for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 500, 1001} {
			t.Run(fmt.Sprintf("workers=%d/n=%d", workers, n), func(t *testing.T) {
				calls := make([]atomic.Int32, n)
				var badWorker atomic.Bool
				err := parallel(n, workers, func(w, i int) error {
					if w < 0 || w >= max(workers, 1) {
						badWorker.Store(true)
					}
					calls[i].Add(1)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if badWorker.Load() {
					t.Fatal("fn got a worker index out of range")
				}
				for i := range calls {
					if c := calls[i].Load(); c != 1 {
						t.Fatalf("index %d called %d times", i, c)
					}
				}
			})
		}
	}
}

func TestParallelReturnsTheLowestFailure(t *testing.T) {
	const n = 1000
	for _, workers := range []int{1, 2, 4} {
		fail := map[int]bool{137: true, 600: true, 999: true}
		err := parallel(n, workers, func(w, i int) error {
			if fail[i] {
				return fmt.Errorf("index %d", i)
			}
			return nil
		})
		// 137 is in the first chunks handed out; any worker that meets a
		// later failure stops only its own chunk, and the lowest index
		// among the failures that ran wins.
		if err == nil || err.Error() != "index 137" {
			t.Fatalf("workers=%d: error %v, want index 137", workers, err)
		}
	}
	sentinel := errors.New("x")
	var after atomic.Int32
	err := parallel(n, 2, func(w, i int) error {
		if i == 0 {
			return sentinel
		}
		if i >= 4*chunk {
			after.Add(1)
		}
		return nil
	})
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v", err)
	}
	// The other worker may finish the chunk it holds and start at most one
	// more before it sees the stop.
	if a := after.Load(); a > 2*chunk {
		t.Fatalf("%d calls ran well after a failure", a)
	}
}
