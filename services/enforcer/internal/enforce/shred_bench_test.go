package enforce_test

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/schemas"
	"github.com/consentgate/consentgate/services/enforcer/internal/enforce"
)

// shredBenchPolicy is one stream whose personal fields (e-mail, phone, IP
// address, user agent) get ACTION on every output where it applies:
// pseudonymise (redacted copies only) or encrypt (every output).
const shredBenchPolicy = `
purposes:
  - id: marketing
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    on_missing_consent: redact
    treatments:
      - category: user.contact.email
        action: ACTION
      - category: user.contact.phone
        action: ACTION
      - category: user.device.ip_address
        action: ACTION
      - category: user.device.user_agent
        action: ACTION
      - category: user.id
        action: keep
      - category: user.behavior.*
        action: keep
    default_treatment: remove
`

// ringSource gives Process the data keys of a real ring.
type ringSource struct{ r *shred.Ring }

func (s ringSource) Encrypters(ctx context.Context, want map[string]shred.Erasure) (map[string]redact.Encrypter, error) {
	m, err := s.r.KeysKnowing(ctx, want)
	if err != nil {
		return nil, err
	}
	out := make(map[string]redact.Encrypter, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out, nil
}

// BenchmarkProcessShred is the cost of crypto-shredding (issue 15): the
// same stream with pseudonymise rules and with encrypt rules
// (deterministic AES-SIV, randomised AES-GCM) on the same four personal
// fields, for batches of 500 events of the bench mix over 400 subjects
// whose data keys already exist (a real ring on a real broker: the steady
// state; a subject's first key costs one produce per batch):
//
//   - redacted: every subject is unknown, each event is a redacted copy on
//     both variants (the rules apply to the same fields);
//   - passed: every subject granted; pseudonymise forwards the input bytes,
//     encrypt re-encodes every event with its fields encrypted (an encrypt
//     rule applies to every output).
//
// It reports ns/event, events/s, CPU-ns/event (user+system time of the
// process over the loop: both cores' work) and allocs/event. Compare the
// variants of one run: `make bench` prints them side by side.
func BenchmarkProcessShred(b *testing.B) {
	const batchSize, population, batches = 500, 400, 8
	ctx := context.Background()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	red, err := redact.New([]byte("consentgate-bench-pseudonymisation-key"))
	if err != nil {
		b.Fatal(err)
	}
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	store := consent.NewStore(rdb, redistest.PrefixFor(b))
	at := time.Now().Add(-time.Hour)
	for i := range population {
		if _, err := store.Apply(ctx, consent.Change{ChangeID: fmt.Sprintf("g-%d", i), SubjectID: fmt.Sprintf("all-%05d", i), Purpose: "marketing",
			Action: consent.ActionGrant, LegalBasis: consent.BasisConsent, Source: "bench", NoticeVersion: "1", CapturedAt: at}); err != nil {
			b.Fatal(err)
		}
	}
	broker := brokertest.Start(b, brokertest.Options{Partitions: 3, Topics: []string{"consent.keys"}})
	raw := make([]byte, 32)
	crand.Read(raw)
	kek, err := shred.ParseLocalKEK([]byte(base64.StdEncoding.EncodeToString(raw)))
	if err != nil {
		b.Fatal(err)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ring, err := shred.OpenRing(octx, shred.RingConfig{Brokers: []string{broker.Addr}, Topic: "consent.keys", KEK: kek,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer ring.Close()
	if err := ring.WaitCaughtUp(octx); err != nil {
		b.Fatal(err)
	}

	g := &mix{rng: rand.New(rand.NewPCG(3, 4)), cat: cat}
	batchesOf := func(prefix string) [][]kafka.Message {
		in := make([][]kafka.Message, batches)
		for i := range in {
			in[i] = make([]kafka.Message, batchSize)
			for j := range in[i] {
				m, err := g.message(fmt.Sprintf("%s-%05d", prefix, g.rng.IntN(population)))
				if err != nil {
					b.Fatal(err)
				}
				m.Partition, m.Offset = j%6, int64(i*batchSize+j)
				in[i][j] = m
			}
		}
		return in
	}
	inputs := map[string][][]kafka.Message{"redacted": batchesOf("none"), "passed": batchesOf("all")}
	for _, shape := range []string{"redacted", "passed"} {
		for _, v := range []struct{ name, action string }{
			{"pseudonymise", "pseudonymise"},
			{"encrypt-deterministic", "encrypt\n        encryption: deterministic"},
			{"encrypt-randomised", "encrypt\n        encryption: randomised"},
		} {
			b.Run(shape+"/"+v.name, func(b *testing.B) {
				pol, err := policy.Parse([]byte(strings.ReplaceAll(shredBenchPolicy, "ACTION", v.action)), "shred-bench.yaml")
				if err != nil {
					b.Fatal(err)
				}
				cache := consent.NewCache(store, rdb, 100000, time.Hour)
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = cache.Start(sctx)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				defer cache.Close()
				e := enforce.New(enforce.Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Keys: ringSource{ring}},
					codec, cache, pol)
				input := inputs[shape]
				for _, batch := range input { // warm: consent cache, plans, every subject's data key
					if _, err := e.Process(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				var before, after syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &before)
				n := 0
				for b.Loop() {
					if _, err := e.Process(ctx, input[n%batches]); err != nil {
						b.Fatal(err)
					}
					n++
				}
				syscall.Getrusage(syscall.RUSAGE_SELF, &after)
				events := float64(n * batchSize)
				cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
				b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu-ns/event")
			})
		}
	}
}
