package enforce_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/schemas"
	"github.com/consentgate/consentgate/services/enforcer/internal/enforce"
)

// benchPolicy is the policy of `make bench` (e2e/bench/policy.yaml).
const benchPolicy = `
purposes:
  - id: marketing
    legal_bases: [CONSENT]
  - id: analytics
    legal_bases: [CONSENT, LEGITIMATE_INTEREST]
  - id: personalisation
streams:
  - topic: compliant.marketing
    purposes: [marketing]
    schemas: [consentgate.events.EmailEngagement, consentgate.events.Purchase]
    on_missing_consent: drop
    excluded_categories: remove
  - topic: compliant.analytics
    purposes: [analytics]
    on_missing_consent: redact
    excluded_categories: remove
    treatments:
      - category: user.id
        action: pseudonymise
      - category: user.device.ip_address
        action: truncate_ip
      - category: user.location.precise
        action: remove
      - category: user.location.approximate
        action: keep
      - category: user.behavior.*
        action: keep
      - field: items[].sku
        action: keep
    default_treatment: remove
  - topic: compliant.personalisation
    purposes: [personalisation]
    on_missing_consent: drop
    excluded_categories: drop
`

// BenchmarkProcess runs Enforcer.Process on batches of 500 events of the
// `make bench` mix (PageView v1/v2, Purchase, EmailEngagement) over 4,000
// subjects with mixed consent in a real redis-server, with the bench policy
// (three streams, analytics in redact mode): decode, one consent lookup per
// batch, three decisions per event, redaction and re-encoding of the
// redacted copies, and one audit record per event.
//
//   - store: every batch reads Redis (ENFORCER_CONSENT_CACHE_SIZE=0);
//   - cache: the local consent cache is warm (the enforcer's default);
//   - cache+tracing: as cache, with an OTel tracer (ParentBased, 1 %) and 1 %
//     of the events carrying a sampled traceparent: the tracing overhead;
//   - cache/1-worker: as cache, decided on one goroutine (ENFORCER_WORKERS=1);
//   - cache/passed: every subject grants every purpose: each event is
//     forwarded as its bytes on every stream that takes its schema (the
//     allocations of a passed event);
//   - cache/redacted: every subject is unknown: each event is redacted on
//     compliant.analytics and dropped elsewhere (those of a redacted one).
//
// It reports ns/event, allocs/event and B/event. Profile it with
//
//	go test -run '^$' -bench Process -cpuprofile cpu.out ./internal/enforce
func BenchmarkProcess(b *testing.B) {
	const batchSize, population, batches = 500, 4000, 8
	ctx := context.Background()
	pol, err := policy.Parse([]byte(benchPolicy), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
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
	if err := seedSubjects(ctx, store, population); err != nil {
		b.Fatal(err)
	}
	// "all-…" subjects grant every purpose with no exclusion: their
	// events pass on every stream that takes their schema. "none-…"
	// subjects are unknown: their events are redacted on analytics and
	// dropped elsewhere.
	at := time.Now().Add(-time.Hour)
	for i := range 200 {
		for _, p := range []string{"marketing", "analytics", "personalisation"} {
			if _, err := store.Apply(ctx, consent.Change{ChangeID: fmt.Sprintf("all-%d-%s", i, p), SubjectID: fmt.Sprintf("all-%05d", i), Purpose: p,
				Action: consent.ActionGrant, LegalBasis: consent.BasisConsent, Source: "bench", NoticeVersion: "1", CapturedAt: at}); err != nil {
				b.Fatal(err)
			}
		}
	}
	g := &mix{rng: rand.New(rand.NewPCG(1, 2)), cat: cat}
	batchesOf := func(subject func() string) [][]kafka.Message {
		in := make([][]kafka.Message, batches)
		for i := range in {
			in[i] = make([]kafka.Message, batchSize)
			for j := range in[i] {
				m, err := g.message(subject())
				if err != nil {
					b.Fatal(err)
				}
				m.Partition, m.Offset = j%6, int64(i*batchSize+j)
				in[i][j] = m
			}
		}
		return in
	}
	input := batchesOf(func() string { return fmt.Sprintf("cust-%07d", g.rng.IntN(population)) })
	passedIn := batchesOf(func() string { return fmt.Sprintf("all-%05d", g.rng.IntN(200)) })
	redactedIn := batchesOf(func() string { return fmt.Sprintf("none-%05d", g.rng.IntN(200)) })

	// 1 % of the events carry a sampled traceparent, as from producers
	// that sample 1 %: the "cache+tracing" case traces those records.
	traced := make([][]kafka.Message, batches)
	for i := range input {
		traced[i] = append([]kafka.Message(nil), input[i]...)
		for j := range traced[i] {
			if g.rng.Float64() < 0.01 {
				traced[i][j].Headers = []kafka.Header{{Key: "traceparent",
					Value: []byte(fmt.Sprintf("00-%016x%016x-%016x-01", g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64()|1))}}
			}
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))),
		sdktrace.WithBatcher(discardExporter{}))
	defer tp.Shutdown(ctx)

	for _, bc := range []struct {
		name    string
		cache   bool
		tracing bool
		input   [][]kafka.Message
		workers int
	}{
		{"store", false, false, input, 0}, {"cache", true, false, input, 0}, {"cache+tracing", true, true, input, 0},
		{"cache/1-worker", true, false, input, 1},
		{"cache/passed", true, false, passedIn, 0}, {"cache/redacted", true, false, redactedIn, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			input := bc.input
			var tracer trace.Tracer
			if bc.tracing {
				input, tracer = traced, tp.Tracer("bench")
			}
			var lookup enforce.ConsentReader = store
			if bc.cache {
				cache := consent.NewCache(store, rdb, 100000, time.Hour)
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := cache.Start(sctx)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				defer cache.Close()
				lookup = cache
			}
			e := enforce.New(enforce.Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red, Tracer: tracer, Workers: bc.workers}, codec, lookup, pol)
			for _, batch := range input { // warm the cache and the redactor's plans
				if _, err := e.Process(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			n := 0
			for b.Loop() {
				if _, err := e.Process(ctx, input[n%batches]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			runtime.ReadMemStats(&after)
			events := float64(n * batchSize)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/events, "allocs/event")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/events, "B/event")
		})
	}
}

// discardExporter drops finished spans: the cost measured is recording
// and batching them, not shipping them.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// seedSubjects gives each of n subjects, per purpose, a grant (some
// excluding user.health), a denial, or nothing, through Store.Apply.
func seedSubjects(ctx context.Context, store *consent.Store, n int) error {
	at := time.Now().Add(-time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				for j, p := range []string{"marketing", "analytics", "personalisation"} {
					action := []consent.Action{consent.ActionGrant, consent.ActionGrant, consent.ActionDeny, ""}[(i*3+j)%4]
					if action == "" {
						continue
					}
					c := consent.Change{ChangeID: fmt.Sprintf("chg-%d-%d", i, j), SubjectID: fmt.Sprintf("cust-%07d", i), Purpose: p,
						Action: action, LegalBasis: consent.BasisConsent, Source: "bench", NoticeVersion: "1", CapturedAt: at}
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

// mix builds events of the bench mix: page views v1 and v2 (30 % each),
// purchases (25 %), e-mail engagements (15 %); a compact copy of
// e2e/bench/generate.go.
type mix struct {
	rng *rand.Rand
	cat *avrocodec.Catalog
	seq int
}

func (g *mix) message(subject string) (kafka.Message, error) {
	g.seq++
	str := func(s string) map[string]any { return map[string]any{"string": s} }
	ip := fmt.Sprintf("203.0.113.%d", g.rng.IntN(254)+1)
	v := map[string]any{"event_id": fmt.Sprintf("evt-%09d", g.seq), "subject_id": subject, "occurred_at": time.Now(), "ip_address": str(ip)}
	name, version := "consentgate.events.PageView", 1
	switch r := g.rng.Float64(); {
	case r < 0.60:
		v["session_id"] = fmt.Sprintf("sess-%06d", g.rng.IntN(1000000))
		v["page_url"] = "https://shop.example/shoes"
		v["duration_ms"] = int32(g.rng.IntN(60000))
		v["user_agent"] = str("Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0")
		v["geo"] = map[string]any{"consentgate.events.Geo": map[string]any{"country": "FR", "region": nil, "city": str("Lyon")}}
		if r < 0.30 {
			v["page_title"] = str("Shop")
		} else {
			version = 2
			v["title"], v["referrer"], v["consent_banner_shown"], v["device_type"] = str("Shop"), str("https://search.example/?q=shoes"), true, "MOBILE"
		}
	case r < 0.85:
		name = "consentgate.events.Purchase"
		var health any
		if g.rng.IntN(3) == 0 {
			health = str("supplements")
		}
		v["order_id"] = fmt.Sprintf("ORD-%08d", g.rng.IntN(100000000))
		v["currency"] = "EUR"
		v["total_minor"] = int64(2697)
		v["items"] = []any{
			map[string]any{"sku": "SKU-3307", "name": "Vitamin D3 1000 IU", "category": "pharmacy/vitamins", "quantity": int32(2), "price_minor": int64(899), "health_category": health},
			map[string]any{"sku": "SKU-1001", "name": "Trail runner 3", "category": "shoes/running", "quantity": int32(1), "price_minor": int64(899), "health_category": nil},
		}
		v["shipping_address"] = map[string]any{"consentgate.events.Address": map[string]any{
			"recipient": "Camille Martin", "street": "12 rue des Lilas", "postal_code": "69003", "city": "Lyon", "country": "FR"}}
		v["payment"] = map[string]any{"method": "CARD", "card_brand": str("visa"), "card_last4": str("4242")}
		v["email"] = str(subject + "@mail.example")
		v["phone"] = str("+33 6 12 34 56 78")
	default:
		name = "consentgate.events.EmailEngagement"
		v["email"] = subject + "@mail.example"
		v["campaign_id"] = "cmp-2026-11"
		v["message_id"] = fmt.Sprintf("msg-%08d", g.rng.IntN(100000000))
		v["action"] = "OPEN"
		v["link_url"] = nil
		v["user_agent"] = str("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1) Safari/604.1")
	}
	s, ok := g.cat.Version(name, version)
	if !ok {
		return kafka.Message{}, fmt.Errorf("no schema %s v%d", name, version)
	}
	b, err := s.EncodeSingle(v)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode %s v%d: %w", name, version, err)
	}
	return kafka.Message{Topic: "customer.events", Key: []byte(subject), Value: b,
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")}}}, nil
}
