package rebuild

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
	"github.com/consentgate/consentgate/services/consent-sync/internal/apply"
)

// TestWithdrawalDuringRebuildGetsANotice reproduces finding 7 of issue 10:
// after Redis restarted empty, the live consumer applies a WITHDRAW before
// the rebuild has replayed the grant it withdraws (or while only an older
// denial is replayed); the replayed grant is then ignored as older. The
// withdrawal must publish a revocation notice all the same.
func TestWithdrawalDuringRebuildGetsANotice(t *testing.T) {
	t.Parallel()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	t0 := time.UnixMilli(1_790_000_000_000)
	change := func(id string, a consent.Action, ms int64) consent.Change {
		return consent.Change{ChangeID: id, SubjectID: "s1", Purpose: "marketing", Action: a,
			LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: t0.Add(time.Duration(ms) * time.Millisecond)}
	}
	encode := func(topic string, c consent.Change) kafka.Message {
		b, err := codec.EncodeSingle(apply.ChangeSchema, c.Native())
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Topic: topic, Key: []byte(c.SubjectID), Value: b, Time: c.CapturedAt}
	}

	tests := []struct {
		name string
		// topic is what the consent topic held (and Redis, before it
		// restarted empty); live is applied by the live consumer after
		// `after` records of the topic were replayed.
		topic []consent.Change
		after int
		live  consent.Change
	}{
		{"before the grant is replayed", []consent.Change{change("g1", consent.ActionGrant, 0)}, 0,
			change("w1", consent.ActionWithdraw, 10)},
		{"after an older denial is replayed", []consent.Change{change("d0", consent.ActionDeny, 0), change("g1", consent.ActionGrant, 5)}, 1,
			change("w1", consent.ActionWithdraw, 10)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := "rebuild.notice." + string(rune('a'+i))
			broker.CreateTopics(t, 1, topic)
			w := stream.NewWriter(kc)
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var msgs []kafka.Message
			for _, c := range tt.topic {
				msgs = append(msgs, encode(topic, c))
			}
			if err := stream.WriteAll(ctx, w, msgs, nil); err != nil {
				t.Fatal(err)
			}

			store := consent.NewStore(rdb, redistest.PrefixFor(t))
			token, err := store.BeginReplay(ctx) // what the warmer does when a node is behind
			if err != nil {
				t.Fatal(err)
			}
			live := apply.New(apply.Options{RevocationsTopic: "consent.revocations", DLQSuffix: ".dlq"}, codec, store)
			var liveOut []kafka.Message
			applyLive := func() {
				out, err := live.Process(ctx, []kafka.Message{encode(topic, tt.live)})
				if err != nil {
					t.Error(err)
				}
				liveOut = append(liveOut, out...)
			}
			replay := apply.New(apply.Options{RevocationsTopic: "consent.revocations", DLQSuffix: ".dlq", Replay: true}, codec, store)
			replayed := 0
			process := func(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error) {
				out, err := replay.Process(ctx, batch)
				if err == nil {
					replayed += len(batch)
					if replayed == tt.after {
						applyLive()
					}
				}
				return out, err
			}
			opts := Options{Kafka: kc, Topics: []string{topic}, BatchSize: 1, Parallelism: 1}
			if tt.after == 0 {
				opts.afterTargets = applyLive
			}
			log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
			if _, err := Run(ctx, log, opts, process, Counters{Applied: &replay.Applied, Ignored: &replay.Ignored, Invalid: &replay.Invalid, UnknownPurpose: &replay.UnknownPurpose}); err != nil {
				t.Fatal(err)
			}
			if ok, err := store.SetWatermark(ctx, token, consent.Offsets{}); err != nil || !ok {
				t.Fatalf("SetWatermark = %v, %v", ok, err)
			}

			states, err := store.Lookup(ctx, []string{"s1"})
			if err != nil {
				t.Fatal(err)
			}
			if v := states["s1"].Check("marketing", t0.Add(time.Hour)); v.Reason != consent.ReasonWithdrawn || v.ChangeID != tt.live.ChangeID {
				t.Fatalf("after the rebuild: %s by %s, want withdrawn by %s", v.Reason, v.ChangeID, tt.live.ChangeID)
			}
			var ids []string
			for _, m := range liveOut {
				if m.Topic != "consent.revocations" {
					continue
				}
				rec, err := codec.Decode(ctx, m.Value)
				if err != nil {
					t.Fatal(err)
				}
				id, _ := avrocodec.StringField(rec.Value, "notice_id")
				ids = append(ids, id)
			}
			if len(ids) != 1 || ids[0] != "rev-"+tt.live.ChangeID {
				t.Fatalf("live consumer published notices %v during the rebuild, want [rev-%s]: the withdrawal of a grant the rebuild had not replayed yet got no notice", ids, tt.live.ChangeID)
			}
		})
	}
}
