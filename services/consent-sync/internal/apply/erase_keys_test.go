package apply

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/shred"
)

// recordingEraser records the erasure marks it is asked for; fail makes
// every mark fail (the keys topic unreachable).
type recordingEraser struct {
	marks []string
	fail  error
}

func (r *recordingEraser) Erase(_ context.Context, subject string, e shred.Erasure) error {
	if r.fail != nil {
		return r.fail
	}
	r.marks = append(r.marks, subject+"/"+e.ChangeID)
	return nil
}

// An ERASE marks the subject's data keys erased before its notice is
// returned, on every delivery (a redelivery too, whether it owes its
// notice or not); other changes mark nothing; a mark that cannot be written fails the batch (retried, nothing
// committed), so no erasure leaves the keys alive.
func TestEraseMarksTheSubjectsKeys(t *testing.T) {
	f := newFixture(t)
	keys := &recordingEraser{}
	s := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: keys}, f.codec, f.store)
	ctx := context.Background()

	batch := []kafka.Message{
		f.msg(0, pchange("g1", "cust-1", "marketing", consent.ActionGrant, 0)),
		f.msg(1, pchange("w1", "cust-1", "marketing", consent.ActionWithdraw, 10)),
		f.msg(2, pchange("e1", "cust-1", "", consent.ActionErase, 20)),
		f.msg(3, pchange("g2", "cust-2", "marketing", consent.ActionGrant, 0)),
	}
	out, err := s.Process(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"cust-1/e1"}; !slices.Equal(keys.marks, want) {
		t.Fatalf("marks = %v, want %v (only the ERASE marks)", keys.marks, want)
	}
	if !hasNotice(f.notices(out), NoticeID("e1")) {
		t.Fatalf("no erasure notice in %v", noticeIDs(f.notices(out)))
	}
	if got := s.KeyErasures.Load(); got != 1 {
		t.Fatalf("KeyErasures = %d, want 1", got)
	}

	// Redelivered before the notice was acknowledged: the notice is owed
	// again, and so is the mark.
	if _, err := s.Process(ctx, batch[2:3]); err != nil {
		t.Fatal(err)
	}
	if len(keys.marks) != 2 || keys.marks[1] != "cust-1/e1" {
		t.Fatalf("redelivery marks = %v, want a second cust-1/e1", keys.marks)
	}

	// The keys topic down: the batch fails whole, no notice goes out.
	down := &recordingEraser{fail: errors.New("broker unreachable")}
	s2 := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: down}, f.codec, f.store)
	out, err = s2.Process(ctx, []kafka.Message{f.msg(4, pchange("e2", "cust-2", "", consent.ActionErase, 30))})
	if err == nil || len(out) != 0 {
		t.Fatalf("Process with the keys topic down = %d records, %v; want an error and nothing", len(out), err)
	}
	// Retried once the topic is back: marked, notice returned.
	s3 := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: keys}, f.codec, f.store)
	out, err = s3.Process(ctx, []kafka.Message{f.msg(4, pchange("e2", "cust-2", "", consent.ActionErase, 30))})
	if err != nil || !hasNotice(f.notices(out), NoticeID("e2")) || keys.marks[len(keys.marks)-1] != "cust-2/e2" {
		t.Fatalf("retry = %v notices %v, marks %v", err, noticeIDs(f.notices(out)), keys.marks)
	}
}

// A rebuild replays erasures without marking: the live service marked
// them when it first applied them (or will, on redelivery).
func TestReplayMarksNoKeys(t *testing.T) {
	f := newFixture(t)
	keys := &recordingEraser{}
	s := New(Options{RevocationsTopic: revocations, DLQSuffix: ".dlq", Keys: keys, Replay: true}, f.codec, f.store)
	if _, err := s.Process(context.Background(), []kafka.Message{f.msg(0, pchange("e1", "cust-1", "", consent.ActionErase, 0))}); err != nil {
		t.Fatal(err)
	}
	if len(keys.marks) != 0 {
		t.Fatalf("replay marked %v", keys.marks)
	}
}
