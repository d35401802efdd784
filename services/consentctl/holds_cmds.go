package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/consentgate/consentgate/pkg/ledger"
)

// holdAdvice is what the operator of a held partition does; stats prints
// it under the holds.
const holdAdvice = `A held partition is one whose offsets started again (its topic deleted and created again, or the ledger
pointed at another cluster with the same topic names): the ledger reads nothing more of it and is not ready.
Keep this database: its rows of the partition are the record of the records read before. If the topic or
cluster really started over, start a new ledger database (LEDGER_DSN) for it; if the ledger was pointed at
the wrong cluster, point it back. Then, once decided:
  consentctl release --topic T --partition N --reason "what was checked and decided (change ticket)"
and restart the ledger: it checks the partition again, and holds it again if it still differs.`

func heldPartitions(hs []ledger.Hold) []ledger.HeldPartition {
	out := make([]ledger.HeldPartition, 0, len(hs))
	for _, h := range hs {
		out = append(out, ledger.HeldPartition{Topic: h.Topic, Partition: h.Partition, Next: h.Next, Reason: h.Reason, Since: h.At})
	}
	return out
}

// printHolds lists holds under a heading, one a line.
func printHolds(w io.Writer, holds []ledger.HeldPartition) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, h := range holds {
		fmt.Fprintf(tw, "  %s/%d\tat position %d\tsince %s\t%s\n", h.Topic, h.Partition, h.Next, ts(h.Since), h.Reason)
	}
	tw.Flush()
}

// completenessOutput is completeness --json: the report, and the held
// partitions (those of the audit topic make it not complete).
type completenessOutput struct {
	*ledger.CompletenessReport
	// HeldAudit are the held partitions of the audit topic: the audit
	// records they hold past the ledger's position are not in the ledger.
	HeldAudit []ledger.HeldPartition `json:"held_audit_partitions"`
	// HeldOther are the other held partitions, which completeness does
	// not read.
	HeldOther []ledger.HeldPartition `json:"held_other_partitions"`
}

// withHolds adds the ledger's holds to rep, which is not complete while a
// partition of the audit topic is held.
func withHolds(ctx context.Context, s *ledger.Store, rep *ledger.CompletenessReport, auditTopic string) (*completenessOutput, error) {
	audit, err := s.AuditHolds(ctx, auditTopic)
	if err != nil {
		return nil, err
	}
	all, err := s.Holds(ctx)
	if err != nil {
		return nil, err
	}
	out := &completenessOutput{CompletenessReport: rep, HeldAudit: heldPartitions(audit), HeldOther: []ledger.HeldPartition{}}
	isAudit := map[[2]any]bool{}
	for _, h := range audit {
		isAudit[[2]any{h.Topic, h.Partition}] = true
	}
	for _, h := range heldPartitions(all) {
		if !isAudit[[2]any{h.Topic, h.Partition}] {
			out.HeldOther = append(out.HeldOther, h)
		}
	}
	if len(out.HeldAudit) > 0 {
		rep.Complete = false
	}
	return out, nil
}

func printCompletenessHolds(w io.Writer, out *completenessOutput) {
	if len(out.HeldAudit) > 0 {
		fmt.Fprintf(w, "\n  HELD audit partitions (%d): the ledger no longer reads them, so the audit records they hold past the position\n"+
			"  are not in the ledger and the audit cannot be shown complete (consentctl stats says what to do):\n", len(out.HeldAudit))
		printHolds(w, out.HeldAudit)
	}
	if len(out.HeldOther) > 0 {
		fmt.Fprintf(w, "\n  Held partitions of other topics (%d; they do not change completeness):\n", len(out.HeldOther))
		printHolds(w, out.HeldOther)
	}
}

// releaseRecord is what release prints: the hold deleted, and who decided
// when and why (the ledger keeps the same in ledger_hold_releases).
type releaseRecord struct {
	Format     string               `json:"format"`
	Ledger     string               `json:"ledger"`
	Hold       ledger.HeldPartition `json:"hold"`
	By         string               `json:"released_by"`
	Reason     string               `json:"reason"`
	ReleasedAt time.Time            `json:"released_at"`
}

func cmdRelease(ctx context.Context, e *env, args []string) error {
	fs := e.flags("release", `--topic T --partition N --reason "…" [--by NAME]`)
	var lf ledgerFlags
	lf.add(fs, e)
	topic := fs.String("topic", "", "topic of the held partition (see consentctl stats)")
	partition := fs.String("partition", "", "the held partition")
	reason := fs.String("reason", "", "why it may be read again: what was checked and decided (required; kept in the ledger)")
	by := fs.String("by", envOr(e, "USER", e.getenv("LOGNAME")), "who decided (env USER)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	p, perr := strconv.ParseInt(*partition, 10, 32)
	switch {
	case *topic == "":
		return errors.New("--topic is required")
	case *partition == "":
		return errors.New("--partition is required")
	case perr != nil || p < 0:
		return fmt.Errorf("--partition %q: give a partition number", *partition)
	case strings.TrimSpace(*reason) == "":
		return errors.New(`--reason is required: say what was checked and decided (the ledger pointed back at the right cluster, a change ticket)`)
	case strings.TrimSpace(*by) == "":
		return errors.New("--by is required (who decided): USER is not set")
	}
	s, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	rel := releaseRecord{Format: "consentgate-hold-release/v1", Ledger: s.Backend(), By: strings.TrimSpace(*by),
		Reason: strings.TrimSpace(*reason), ReleasedAt: time.Now().UTC().Truncate(time.Millisecond)}
	h, err := s.Release(ctx, ledger.HoldRelease{Topic: *topic, Partition: int32(p), By: rel.By, Reason: rel.Reason, At: rel.ReleasedAt})
	if errors.Is(err, ledger.ErrNotHeld) {
		return fmt.Errorf("%s/%d is not held (consentctl stats lists the held partitions)", *topic, p)
	}
	if err != nil {
		return err
	}
	rel.Hold = heldPartitions([]ledger.Hold{h})[0]
	if lf.json {
		return writeJSON(e.stdout, rel)
	}
	fmt.Fprintf(e.stdout, "released %s/%d: held at position %d since %s: %s\n", h.Topic, h.Partition, h.Next, ts(h.At), h.Reason)
	fmt.Fprintf(e.stdout, "  by %s at %s: %s\n", rel.By, ts(rel.ReleasedAt), rel.Reason)
	fmt.Fprintf(e.stdout, "\nThe ledger keeps this release (consentctl stats lists the releases).\n"+
		"Restart the ledger: it checks %s/%d against position %d again, and holds it again if it still differs.\n", h.Topic, h.Partition, h.Next)
	return nil
}
