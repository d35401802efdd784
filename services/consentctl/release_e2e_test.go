package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/stream"
)

const e2eDLQ = "customer.events.dlq"

// deadLetters are n dead letters of e2eDLQ, told apart by tag.
func deadLetters(tag string, n int) []kafka.Message {
	out := make([]kafka.Message, n)
	for i := range out {
		out[i] = kafka.Message{Topic: e2eDLQ, Value: []byte(fmt.Sprintf("%s %d", tag, i)),
			Headers: []kafka.Header{{Key: stream.HeaderDLQReason, Value: []byte("undecodable")}}}
	}
	return out
}

func produceTo(t *testing.T, addr string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return
		}
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || ctx.Err() != nil {
			t.Fatalf("produce: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReleaseWithTheLedger runs the ledger service (the real binary) on
// cluster A, then points it at cluster B, whose customer.events.dlq is
// another partition with the same name: the ledger holds the partition,
// and consentctl stats shows it and exits 2. A release while the ledger is
// still pointed at B is followed by the same hold again; pointed back at
// A, after a release, the ledger reads on from its position and stats is
// clean.
func TestReleaseWithTheLedger(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ledger and two brokers")
	}
	a := brokertest.Start(t, brokertest.Options{Partitions: 1})
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	produceTo(t, a.Addr, deadLetters("a", 5))
	produceTo(t, b.Addr, deadLetters("b", 2))
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	bin := proctest.Build(t, "services/ledger")
	vars := map[string]string{"LEDGER_DSN": dsn, "USER": "olga"}

	runs := 0
	ledgerOn := func(addr string) *proctest.Proc {
		runs++
		p := proctest.Start(t, fmt.Sprintf("ledger-%d", runs), bin, []string{"LEDGER_DSN=" + dsn, "KAFKA_BROKERS=" + addr,
			"LEDGER_LINGER=20ms", "LEDGER_REFRESH=300ms"})
		if err := p.WaitFor(`"msg":"consuming"`, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// stats polls consentctl stats --json until ok accepts it.
	stats := func(what string, ok func(st *ledger.Stats, code int) bool) *ledger.Stats {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, errs, code := runCtl(t, vars, "stats", "--json")
			var st ledger.Stats
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("stats --json: exit %d, %v\n%s%s", code, err, out, errs)
			}
			if ok(&st, code) {
				return &st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 60 s: exit %d\n%s%s", what, code, out, errs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	position := func(st *ledger.Stats) int64 {
		for _, p := range st.Positions {
			if p.Topic == e2eDLQ && p.Partition == 0 {
				return p.Next
			}
		}
		return 0
	}
	heldAt5 := func(st *ledger.Stats, code int) bool {
		return code == 2 && len(st.Holds) == 1 && st.Holds[0].Topic == e2eDLQ && st.Holds[0].Partition == 0 && st.Holds[0].Next == 5
	}

	l := ledgerOn(a.Addr)
	stats("the ledger reads cluster A", func(st *ledger.Stats, code int) bool { return code == 0 && position(st) == 5 })
	if err := l.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	l = ledgerOn(b.Addr)
	st := stats("the ledger on cluster B holds the partition", heldAt5)
	if !strings.Contains(st.Holds[0].Reason, "ends at offset 2, before the ledger's position 5") {
		t.Errorf("hold reason %q", st.Holds[0].Reason)
	}
	out, errs, code := runCtl(t, vars, "stats")
	if code != 2 || !strings.Contains(out, "HELD") || !strings.Contains(out, e2eDLQ+"/0") {
		t.Errorf("stats text with the hold: exit %d\n%s%s", code, out, errs)
	}
	if err := l.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := runCtl(t, vars, "release", "--topic", e2eDLQ, "--partition", "0"); code != 1 || !strings.Contains(errs, "--reason") {
		t.Errorf("release without --reason: exit %d: %s", code, errs)
	}
	stats("a refused release leaves the hold", heldAt5)

	// Released while still pointed at B: held again.
	runCtl(t, vars, "release", "--topic", e2eDLQ, "--partition", "0", "--reason", "tried B again")
	stats("the release is stored", func(st *ledger.Stats, code int) bool { return code == 0 && len(st.Holds) == 0 })
	l = ledgerOn(b.Addr)
	stats("the ledger still on cluster B holds the partition again", heldAt5)
	if err := l.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Pointed back at A and released: read on from 5.
	out, errs, code = runCtl(t, vars, "release", "--topic", e2eDLQ, "--partition", "0", "--reason", "pointed back at cluster A (CHG-1)")
	if code != 0 || !strings.Contains(out, "released "+e2eDLQ+"/0") || !strings.Contains(out, "olga") {
		t.Fatalf("release: exit %d\n%s%s", code, out, errs)
	}
	produceTo(t, a.Addr, deadLetters("a-later", 3))
	l = ledgerOn(a.Addr)
	stats("the ledger back on cluster A reads on", func(st *ledger.Stats, code int) bool {
		return code == 0 && len(st.Holds) == 0 && position(st) == 8
	})
	if err := l.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st := stats("dead letters", func(*ledger.Stats, int) bool { return true }); st.Tables["dead_letters"] != 8 {
		t.Errorf("%d dead letters in the ledger, want the 8 of cluster A", st.Tables["dead_letters"])
	}
}
