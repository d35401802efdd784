package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
)

// seedPurposes are the purposes seeded for every subject: those of
// e2e/bench/policy.yaml and of deploy/policy.yaml ("sale" is an opt-out
// purpose there: never asked counts as allowed). The index of a purpose
// here enters the hash of seededState, so purposes are only ever appended
// (at most 4: the hash spaces subjects 4 apart).
var seedPurposes = []string{"marketing", "analytics", "personalisation", "sale"}

// unseededPurposes returns the purposes of pol that get no seeded consent.
func unseededPurposes(pol *policy.Policy) []string {
	var out []string
	for _, p := range pol.Purposes {
		if !slices.Contains(seedPurposes, p.ID) {
			out = append(out, p.ID)
		}
	}
	return out
}

// storedPurpose is one purpose field of a subject's consent hash, in the
// layout pkg/consent/doc.go documents ("Redis layout"). Seeding writes it
// directly with pipelined HSETs: a million subjects through Store.Apply
// (one Lua script per purpose change) would take minutes. seedConsent checks
// afterwards, through Store.Lookup, that what it wrote reads back as meant.
type storedPurpose struct {
	Status     consent.Status `json:"s"`
	ChangeID   string         `json:"c"`
	CapturedAt int64          `json:"t"`
	ExpiresAt  int64          `json:"e,omitempty"`
	LegalBasis string         `json:"b,omitempty"`
	Excluded   []string       `json:"x,omitempty"`
	Source     string         `json:"src,omitempty"`
	Notice     string         `json:"n,omitempty"`
}

// seededState is the consent of subject number i for purpose p, decided by a
// hash of (i, p), so that it can be recomputed anywhere: per purpose about
// 50 % granted (15 % of those excluding user.health, 10 % expired), 30 %
// denied and 20 % never asked (no field).
func seededState(i int, purpose int, now time.Time) (storedPurpose, bool) {
	h := splitmix(uint64(i)*4 + uint64(purpose))
	u := float64(h>>11) / (1 << 53)
	captured := now.Add(-48 * time.Hour).Add(time.Duration(h%3600) * time.Second)
	sp := storedPurpose{
		ChangeID:   fmt.Sprintf("seed-%d-%d", i, purpose),
		CapturedAt: captured.UnixMilli(),
		LegalBasis: string(consent.BasisConsent),
		Source:     "bench-seed",
		Notice:     "2026-09",
	}
	switch {
	case u < 0.50:
		sp.Status = consent.StatusGranted
		v := float64(splitmix(h)>>11) / (1 << 53)
		switch {
		case v < 0.15:
			sp.Excluded = []string{"user.health"}
		case v < 0.25:
			sp.ExpiresAt = captured.Add(time.Hour).UnixMilli() // long past
		}
	case u < 0.80:
		sp.Status = consent.StatusDenied
	default:
		return storedPurpose{}, false
	}
	return sp, true
}

// splitmix is the SplitMix64 finaliser: a cheap, well-mixed hash.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// seedConsent writes the consent of subjects 0..n-1 into Redis under store's
// prefix, with pipelined HSETs from a few goroutines, then reads a sample
// back through store.Lookup and checks it decodes to what was meant.
func seedConsent(ctx context.Context, rdb *redis.Client, store *consent.Store, n int, now time.Time) error {
	const chunk, workers = 2000, 4
	starts := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range starts {
				if err := seedChunk(ctx, rdb, store, start, min(start+chunk, n), now); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for start := 0; start < n; start += chunk {
		select {
		case starts <- start:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(starts)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs // nil when the channel is empty
	}
	if err != nil {
		return err
	}
	return checkSeed(ctx, store, n, now)
}

// seedChunk writes subjects from..to-1 in one pipeline.
func seedChunk(ctx context.Context, rdb *redis.Client, store *consent.Store, from, to int, now time.Time) error {
	pipe := rdb.Pipeline()
	for i := from; i < to; i++ {
		var fields []any
		for p, purpose := range seedPurposes {
			sp, ok := seededState(i, p, now)
			if !ok {
				continue
			}
			b, err := json.Marshal(sp)
			if err != nil {
				return fmt.Errorf("encode seeded consent: %w", err)
			}
			fields = append(fields, purpose, b)
		}
		if len(fields) > 0 {
			pipe.HSet(ctx, store.Key(subjectID(i)), fields...)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("seed consent: %w", err)
	}
	return nil
}

// checkSeed reads 1,000 seeded subjects through the store and compares the
// verdicts with the intended states.
func checkSeed(ctx context.Context, store *consent.Store, n int, now time.Time) error {
	step := max(1, n/1000)
	var subjects []string
	var idx []int
	for i := 0; i < n; i += step {
		subjects = append(subjects, subjectID(i))
		idx = append(idx, i)
	}
	states, err := store.Lookup(ctx, subjects)
	if err != nil {
		return fmt.Errorf("read seeded consent back: %w", err)
	}
	for k, s := range subjects {
		for p, purpose := range seedPurposes {
			sp, ok := seededState(idx[k], p, now)
			v := states[s].Check(purpose, now)
			var want consent.Reason
			switch {
			case !ok && states[s] == nil:
				want = consent.ReasonUnknownSubject
			case !ok:
				want = consent.ReasonNeverAsked
			case sp.Status == consent.StatusDenied:
				want = consent.ReasonDenied
			case sp.ExpiresAt != 0:
				want = consent.ReasonExpired
			default:
				want = consent.ReasonGranted
			}
			if v.Reason != want {
				return errors.New("seeded consent does not read back as written: the Redis layout of pkg/consent changed; update e2e/bench/seed.go")
			}
		}
	}
	return nil
}

// seedProbes grants every bench purpose to the withdrawal-probe subjects,
// through Store.Apply (the path consent-sync takes).
func seedProbes(ctx context.Context, store *consent.Store, subjects []string, now time.Time) error {
	for i, s := range subjects {
		for _, purpose := range seedPurposes {
			_, err := store.Apply(ctx, consent.Change{
				ChangeID: fmt.Sprintf("probe-grant-%d-%s", i, purpose), SubjectID: s, Purpose: purpose,
				Action: consent.ActionGrant, LegalBasis: consent.BasisConsent, Source: "bench-seed", NoticeVersion: "2026-09",
				CapturedAt: now.Add(-time.Hour),
			})
			if err != nil {
				return fmt.Errorf("seed probe subjects: %w", err)
			}
		}
	}
	return nil
}

// probePrefix starts the ids of the withdrawal-probe subjects, which are
// outside the seeded population.
const probePrefix = "bench-probe-"

// probeSubjects returns n probe subject ids whose records the enforcer's
// writer (murmur2 on the key, like every pkg/stream writer) puts on
// partition 0 of a topic of partitions partitions, the audit partition the
// prober reads.
func probeSubjects(n, partitions int) []string {
	bal := &kafka.Murmur2Balancer{Consistent: true}
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		s := fmt.Sprintf("%s%06d", probePrefix, i)
		if bal.Balance(kafka.Message{Key: []byte(s)}, parts...) == probePartition {
			out = append(out, s)
		}
	}
	return out
}

// probePartition is the audit partition that holds the probe subjects.
const probePartition = 0
