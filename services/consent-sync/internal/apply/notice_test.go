package apply

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/schemas"
)

const revocations = "consent.revocations"

// fixture is a Syncer on a real store on a real redis-server.
type fixture struct {
	t     *testing.T
	codec *avrocodec.Codec
	store *consent.Store
	srv   *redistest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	f := &fixture{t: t, codec: avrocodec.New(cat, nil), srv: srv, store: consent.NewStore(srv.Client(t), redistest.PrefixFor(t))}
	markWarm(t, f.store)
	return f
}

// markWarm sets the state watermark as a finished replay does: the store holds
// the whole (here: empty) consent topic.
func markWarm(t *testing.T, store *consent.Store) {
	t.Helper()
	ctx := context.Background()
	token, err := store.BeginReplay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := store.SetWatermark(ctx, token, consent.Offsets{}); err != nil || !ok {
		t.Fatalf("SetWatermark = %v, %v", ok, err)
	}
}

func (f *fixture) syncer() *Syncer {
	return New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq"}, f.codec, f.store)
}

func (f *fixture) msg(offset int64, c consent.Change) kafka.Message {
	f.t.Helper()
	b, err := f.codec.EncodeSingle(ChangeSchema, c.Native())
	if err != nil {
		f.t.Fatal(err)
	}
	return kafka.Message{Topic: "consent.changes", Offset: offset, Key: []byte(c.SubjectID), Value: b, Time: c.CapturedAt}
}

// notices decodes the revocation notices among out.
func (f *fixture) notices(out []kafka.Message) []map[string]any {
	f.t.Helper()
	var ns []map[string]any
	for _, m := range out {
		if m.Topic != revocations {
			continue
		}
		rec, err := f.codec.Decode(context.Background(), m.Value)
		if err != nil {
			f.t.Fatal(err)
		}
		ns = append(ns, rec.Value)
	}
	return ns
}

func noticeIDs(ns []map[string]any) []string {
	var ids []string
	for _, n := range ns {
		id, _ := avrocodec.StringField(n, "notice_id")
		ids = append(ids, id)
	}
	return ids
}

func hasNotice(ns []map[string]any, id string) bool {
	for _, got := range noticeIDs(ns) {
		if got == id {
			return true
		}
	}
	return false
}

var t0 = time.UnixMilli(1_790_000_000_000)

func pchange(id, subject, purpose string, a consent.Action, ms int64) consent.Change {
	c := consent.Change{ChangeID: id, SubjectID: subject, Purpose: purpose, Action: a,
		LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: t0.Add(time.Duration(ms) * time.Millisecond)}
	if a == consent.ActionErase {
		c.Purpose = ""
	}
	return c
}

// TestOvertakenWithdrawalKeepsItsNotice reproduces finding 6 of issue 10:
// batch [WITHDRAW w1 of grant g1, newer GRANT g2] is applied, the process
// dies before w1's notice is acknowledged, and the batch is delivered again.
// The redelivery must publish w1's notice, with the same notice_id.
func TestOvertakenWithdrawalKeepsItsNotice(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	g1 := pchange("g1", "s1", "marketing", consent.ActionGrant, 0)
	w1 := pchange("w1", "s1", "marketing", consent.ActionWithdraw, 10)
	g2 := pchange("g2", "s1", "marketing", consent.ActionGrant, 20)

	s := f.syncer()
	if _, err := s.Process(ctx, []kafka.Message{f.msg(0, g1)}); err != nil {
		t.Fatal(err)
	}
	batch := []kafka.Message{f.msg(1, w1), f.msg(2, g2)}
	first, err := s.Process(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if ns := f.notices(first); !hasNotice(ns, "rev-w1") {
		t.Fatalf("first delivery: notices %v, want rev-w1", noticeIDs(ns))
	}
	// Crash: the notice was never written, nothing was committed. A new
	// process gets the batch again.
	again, err := f.syncer().Process(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if ns := f.notices(again); !hasNotice(ns, "rev-w1") {
		t.Fatalf("redelivery after a crash before the notice was acknowledged: notices %v, want rev-w1 (the notice is lost)", noticeIDs(ns))
	}
}
