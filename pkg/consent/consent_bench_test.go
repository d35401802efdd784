package consent_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// BenchmarkLookupBatch500 reads the consent of a batch of 500 distinct
// subjects, the enforcer's batch size, against a real redis-server:
//
//   - store: Store.Lookup, one pipelined round trip of 500 HGETALLs;
//   - cache-hit: a warm Cache, every subject served from memory;
//   - cache-miss: a Cache too small for the subjects cycled through, every
//     subject read from Redis and then cached (the cache's bookkeeping on
//     top of store).
//
// ns/subject is the cost per event's lookup.
func BenchmarkLookupBatch500(b *testing.B) {
	const batch, population = 500, 4000
	ctx := context.Background()
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	store := consent.NewStore(rdb, redistest.PrefixFor(b))
	subjects := make([]string, population)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("cust-%07d", i)
	}
	if err := seedBench(ctx, store, subjects); err != nil {
		b.Fatal(err)
	}
	batches := make([][]string, population/batch)
	for i := range batches {
		batches[i] = subjects[i*batch : (i+1)*batch]
	}
	// measure runs lookup in the benchmark loop and reports the cost per
	// subject.
	measure := func(b *testing.B, lookup func(context.Context, []string) (map[string]*consent.State, error)) {
		b.ReportAllocs()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		n := 0
		for b.Loop() {
			if _, err := lookup(ctx, batches[n%len(batches)]); err != nil {
				b.Fatal(err)
			}
			n++
		}
		runtime.ReadMemStats(&after)
		subjects := float64(n * batch)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/subjects, "ns/subject")
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/subjects, "allocs/subject")
	}

	b.Run("store", func(b *testing.B) { measure(b, store.Lookup) })
	for _, bc := range []struct {
		name string
		size int
	}{
		{"cache-hit", population},
		{"cache-miss", batch}, // cycling through 8 batches evicts each before its turn
	} {
		b.Run(bc.name, func(b *testing.B) {
			cache := consent.NewCache(store, rdb, bc.size, time.Hour)
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := cache.Start(sctx)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			defer cache.Close()
			for _, s := range batches { // warm
				if _, err := cache.Lookup(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
			hits, misses := cache.Hits.Load(), cache.Misses.Load()
			measure(b, cache.Lookup)
			h, m := cache.Hits.Load()-hits, cache.Misses.Load()-misses
			b.ReportMetric(float64(h)/float64(max(1, h+m)), "hit-ratio")
		})
	}
}

// seedBench grants, denies or leaves unasked each purpose of each subject,
// through Store.Apply from a few goroutines.
func seedBench(ctx context.Context, store *consent.Store, subjects []string) error {
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(subjects); i += 8 {
				for j, p := range []string{"marketing", "analytics", "personalisation"} {
					action := []consent.Action{consent.ActionGrant, consent.ActionDeny, ""}[(i+j)%3]
					if action == "" {
						continue
					}
					c := consent.Change{ChangeID: fmt.Sprintf("chg-%d-%d", i, j), SubjectID: subjects[i], Purpose: p, Action: action,
						LegalBasis: consent.BasisConsent, Source: "bench", NoticeVersion: "1", CapturedAt: at}
					if i%7 == 0 && action == consent.ActionGrant {
						c.ExcludedCategories = []string{"user.health"}
					}
					if _, err := store.Apply(ctx, c); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
