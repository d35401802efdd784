package apply

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// recorder is the brokers: every record written to it is acknowledged.
type recorder struct{ got []kafka.Message }

func (r *recorder) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	r.got = append(r.got, msgs...)
	return nil
}

// TestPropertyEveryRevocationIsNotified draws random consent histories per
// subject (shuffled, duplicated, ties in captured_at, erasures) and feeds
// them to the real Syncer on a real store the way the runner does, with
// crashes: a crash processes an arbitrary prefix of a batch and acknowledges
// no notice, or acknowledges the batch's notices but dies before the commit;
// the uncommitted suffix is then delivered again. It checks that every change
// that takes consent away from a grant, in captured_at order, eventually has
// a notice with its id acknowledged, and that every notice names a
// WITHDRAW, DENY or ERASE.
//
// "A grant" here is one that was applied before the revocation was first
// processed: a grant that arrives after a newer withdrawal is never in
// effect, so nothing was received under it.
func TestPropertyEveryRevocationIsNotified(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rdb := f.srv.Client(t)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 10))
	iterations := 200
	if testing.Short() {
		iterations = 30
	}
	for it := range iterations {
		store := consent.NewStore(rdb, fmt.Sprintf("%s%d:", redistest.PrefixFor(t), it))
		markWarm(t, store)
		s := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq"}, f.codec, store)

		// A history: a few subjects and purposes, captured_at in a
		// small range so that ties happen.
		var changes []consent.Change
		for i := range 3 + rng.IntN(12) {
			subject := []string{"a", "b"}[rng.IntN(2)]
			purpose := []string{"p", "q"}[rng.IntN(2)]
			var a consent.Action
			switch r := rng.IntN(10); {
			case r < 4:
				a = consent.ActionGrant
			case r < 6:
				a = consent.ActionWithdraw
			case r < 8:
				a = consent.ActionDeny
			default:
				a = consent.ActionErase
			}
			changes = append(changes, pchange(fmt.Sprintf("c%02d", i), subject, purpose, a, int64(rng.IntN(12))))
		}
		log := slices.Clone(changes)
		rng.Shuffle(len(log), func(i, j int) { log[i], log[j] = log[j], log[i] })
		for range rng.IntN(4) { // duplicates, anywhere
			d := log[rng.IntN(len(log))]
			at := rng.IntN(len(log) + 1)
			log = slices.Insert(log, at, d)
		}
		msgs := make([]kafka.Message, len(log))
		for i, c := range log {
			msgs[i] = f.msg(int64(i), c)
		}

		firstSeen := map[string]int{}
		seq := 0
		process := func(batch []kafka.Message, from int) []kafka.Message {
			out, err := s.Process(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for i := range batch {
				seq++
				if _, ok := firstSeen[log[from+i].ChangeID]; !ok {
					firstSeen[log[from+i].ChangeID] = seq
				}
			}
			return out
		}
		acked := &recorder{}
		sink := s.Sink(acked)
		var trace []string
		for committed, crashes := 0, 0; committed < len(msgs); {
			end := min(committed+1+rng.IntN(4), len(msgs))
			batch := msgs[committed:end]
			switch mode := rng.IntN(4); {
			case mode == 0 && crashes < 20: // dies mid-batch, nothing acknowledged
				j := rng.IntN(len(batch) + 1)
				process(batch[:j], committed)
				crashes++
				trace = append(trace, fmt.Sprintf("crash after %d of [%d,%d)", j, committed, end))
			case mode == 1 && crashes < 20: // notices acknowledged, dies before the commit
				if err := sink.WriteMessages(ctx, process(batch, committed)...); err != nil {
					t.Fatal(err)
				}
				crashes++
				trace = append(trace, fmt.Sprintf("acked, crash before commit of [%d,%d)", committed, end))
			default:
				if err := sink.WriteMessages(ctx, process(batch, committed)...); err != nil {
					t.Fatal(err)
				}
				trace = append(trace, fmt.Sprintf("committed [%d,%d)", committed, end))
				committed = end
			}
		}

		published := map[string]bool{}
		for _, n := range f.notices(acked.got) {
			id, _ := avrocodec.StringField(n, "change_id")
			published[id] = true
		}
		byID := map[string]consent.Change{}
		for _, c := range changes {
			byID[c.ChangeID] = c
		}
		for id := range published {
			if a := byID[id].Action; a == consent.ActionGrant || a == "" {
				t.Errorf("seed %d iteration %d: notice for %s, which is no WITHDRAW, DENY or ERASE", seed, it, id)
			}
		}
		for _, r := range changes {
			if r.Action == consent.ActionGrant || published[r.ChangeID] {
				continue
			}
			if q, ok := endsGrant(changes, r); ok && firstSeen[q] < firstSeen[r.ChangeID] {
				var hist []string
				for _, c := range log {
					hist = append(hist, fmt.Sprintf("%s:%s/%s/%s@%d", c.ChangeID, c.SubjectID, c.Purpose, c.Action, c.CapturedAt.Sub(t0).Milliseconds()))
				}
				t.Fatalf("seed %d iteration %d: %s (%s) ends grant %s in captured_at order but no notice was acknowledged\nlog: %s\nrun: %s",
					seed, it, r.ChangeID, r.Action, q, strings.Join(hist, " "), strings.Join(trace, "; "))
			}
		}
	}
}

// endsGrant is the reference: in captured_at order (ties to the greater
// change id), does r follow a GRANT of a purpose it takes away, with no
// change of that purpose or erasure in between? It returns that grant.
func endsGrant(changes []consent.Change, r consent.Change) (string, bool) {
	before := func(a, b consent.Change) bool { // a is older than b
		if !a.CapturedAt.Equal(b.CapturedAt) {
			return a.CapturedAt.Before(b.CapturedAt)
		}
		return a.ChangeID < b.ChangeID
	}
	purposes := []string{r.Purpose}
	if r.Action == consent.ActionErase {
		purposes = []string{"p", "q"}
	}
	for _, p := range purposes {
		var prev *consent.Change
		for i, c := range changes {
			if c.SubjectID != r.SubjectID || c.ChangeID == r.ChangeID || !before(c, r) {
				continue
			}
			if c.Action != consent.ActionErase && c.Purpose != p {
				continue
			}
			if prev == nil || before(*prev, c) {
				prev = &changes[i]
			}
		}
		if prev != nil && prev.Action == consent.ActionGrant {
			return prev.ChangeID, true
		}
	}
	return "", false
}
