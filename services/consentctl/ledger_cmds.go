package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/schemas"
)

// ledgerFlags are the flags of every command that reads the ledger.
type ledgerFlags struct {
	dsn, schemasDir string
	json            bool
}

func (l *ledgerFlags) add(fs *flag.FlagSet, e *env) {
	dsn := e.getenv("LEDGER_DSN")
	if dsn == "" {
		dsn = "sqlite:ledger.db"
	}
	fs.StringVar(&l.dsn, "dsn", dsn, "the ledger: sqlite:<file> or postgres://… (env LEDGER_DSN)")
	fs.StringVar(&l.schemasDir, "schemas-dir", e.getenv("SCHEMAS_DIR"), "folder of .avsc schemas for data categories; empty: the built-in ones (env SCHEMAS_DIR)")
	fs.BoolVar(&l.json, "json", false, "print JSON instead of text")
}

func (l *ledgerFlags) catalog() (*avrocodec.Catalog, error) {
	if l.schemasDir != "" {
		return avrocodec.LoadCatalog(os.DirFS(l.schemasDir))
	}
	return avrocodec.LoadCatalog(schemas.FS)
}

func (l *ledgerFlags) open(ctx context.Context) (*ledger.Store, error) {
	cat, err := l.catalog()
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	s, err := ledger.Open(ctx, l.dsn, ledger.WithCatalog(cat))
	if err != nil {
		return nil, fmt.Errorf("open the ledger (--dsn / LEDGER_DSN): %w", err)
	}
	return s, nil
}

// readLedger parses a subcommand's ledger flags, opens
// the ledger and returns what query reads from it.
func readLedger[T any](ctx context.Context, e *env, name string, args []string, lf *ledgerFlags, query func(*ledger.Store, context.Context) (T, error)) (T, error) {
	var zero T
	fs := e.flags(name, "")
	lf.add(fs, e)
	if _, err := parse(fs, args); err != nil {
		return zero, err
	}
	s, err := lf.open(ctx)
	if err != nil {
		return zero, err
	}
	defer s.Close()
	return query(s, ctx)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// writeFile writes a file only its owner can read (exports hold personal
// data), refusing to replace one.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	bw := bufio.NewWriter(f)
	if err := write(bw); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// SubjectExport is the file of a data subject access request.
type SubjectExport struct {
	Format      string                 `json:"format"`
	GeneratedAt time.Time              `json:"generated_at"`
	Ledger      string                 `json:"ledger"`
	About       string                 `json:"about"`
	History     *ledger.SubjectHistory `json:"history"`
}

const exportAbout = "Everything the consentgate ledger holds about this person: every consent change they made and which one decides " +
	"each purpose now (and why the others do not), every decision taken on their events for each purpose stream (published unchanged, " +
	"published with the listed fields redacted, or not published, with the reason code and the policy version), and every revocation " +
	"notice sent to downstream systems; and, where fields are encrypted under a key of this person's own (crypto-shredding), when each " +
	"such data key was created and destroyed and each erasure that destroyed them (data_keys, key_erasures: key ids and times, never a " +
	"key; once a key is destroyed, every copy of the fields encrypted under it is unreadable). The ledger holds no field values of the " +
	"events, only field names. Reason codes are explained in the consentgate audit record schema (audit_record.v2.avsc)."

func cmdSubject(ctx context.Context, e *env, args []string) error {
	fs := e.flags("subject", "<subject id | - to read it from stdin>")
	var lf ledgerFlags
	lf.add(fs, e)
	export := fs.String("export", "", "also write the history as a data subject access request file (JSON, mode 0600, never replaced)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("give one subject id (or - to read it from stdin, which keeps it out of the shell history)")
	}
	id := pos[0]
	if id == "-" {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read the subject id from stdin: %w", err)
		}
		id = strings.TrimSpace(line)
	}
	if id == "" {
		return errors.New("empty subject id")
	}
	s, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	h, err := s.Subject(ctx, id)
	if err != nil {
		return err
	}
	if *export != "" {
		x := SubjectExport{Format: "consentgate-subject-access/v1", GeneratedAt: time.Now().UTC(), Ledger: s.Backend(), About: exportAbout, History: h}
		if err := writeFile(*export, func(w io.Writer) error { return writeJSON(w, x) }); err != nil {
			return err
		}
	}
	if lf.json {
		return writeJSON(e.stdout, h)
	}
	printSubject(e.stdout, h)
	return nil
}

func printSubject(w io.Writer, h *ledger.SubjectHistory) {
	fmt.Fprintf(w, "Subject %s, as of %s\n", h.SubjectID, ts(h.AsOf))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\nConsent now (%d purposes):\n", len(h.Purposes))
	for _, p := range h.Purposes {
		extra := ""
		if p.LegalBasis != "" {
			extra += " legal basis " + p.LegalBasis
		}
		if len(p.ExcludedCategories) > 0 {
			extra += ", excluding " + strings.Join(p.ExcludedCategories, ", ")
		}
		if p.ExpiresAt != nil {
			extra += ", expires " + ts(*p.ExpiresAt)
		}
		fmt.Fprintf(tw, "  %s\t%s\tchange %s\tcaptured %s\t%s\n", p.Purpose, p.Status, orDash(p.ChangeID), ts(p.CapturedAt), strings.TrimPrefix(extra, " "))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nConsent changes (%d), in time order:\n", len(h.Changes))
	for _, c := range h.Changes {
		verdict := "won"
		if !c.Won {
			verdict = "lost: " + c.Why
		}
		if c.Expired {
			verdict += " (expired)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\tvia %s, notice %s\t%s\n", ts(c.CapturedAt), c.Action, orDash(c.Purpose), c.ChangeID, orDash(c.ChangeSource), orDash(c.NoticeVersion), verdict)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nDecisions (%d audit records):\n", len(h.Audits))
	for _, a := range h.Audits {
		fmt.Fprintf(w, "  %s  event %s  %s  policy %s  from %s/%d@%d  %s", ts(a.ProcessedAt), orDash(a.EventID), orDash(a.EventSchema),
			a.PolicyVersion, a.Source.Topic, a.Source.Partition, a.Source.Offset, a.Outcome)
		if a.DeadLetterReason != "" {
			fmt.Fprintf(w, " (%s)", a.DeadLetterReason)
		}
		fmt.Fprintln(w)
		for _, d := range a.Decisions {
			treated := ""
			if len(d.TreatedFields) > 0 {
				treated = "treated: " + strings.Join(d.TreatedFields, ", ")
			}
			fmt.Fprintf(tw, "      %s\t%s\t%s\tpurpose %s\t%s\n", d.Stream, d.Decision, d.Reason, orDash(d.DecidingPurpose), treated)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nRevocation notices (%d):\n", len(h.Notices))
	for _, n := range h.Notices {
		purposes := "every purpose"
		if len(n.Purposes) > 0 {
			purposes = strings.Join(n.Purposes, ", ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\tsince %s\t%s\n", ts(n.IssuedAt), n.Action, purposes, n.NoticeID, ts(n.Since), n.Reason)
	}
	tw.Flush()
	destroyed := 0
	for _, k := range h.DataKeys {
		if k.DestroyedAt != nil || k.DestroyedOffset != nil {
			destroyed++
		}
	}
	fmt.Fprintf(w, "\nData keys (%d, %d destroyed; key ids, never a key):\n", len(h.DataKeys), destroyed)
	for _, k := range h.DataKeys {
		created := "created (not read: compacted before the ledger read it)"
		if k.CreatedAt != nil {
			created = "created " + ts(*k.CreatedAt)
		}
		state := "in use"
		switch {
		case k.DestroyedAt != nil:
			state = "destroyed " + ts(*k.DestroyedAt)
		case k.DestroyedOffset != nil:
			state = "destroyed"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s/%d\n", k.KeyID, created, state, k.Topic, k.Partition)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nErasures of the data keys (%d):\n", len(h.KeyErasures))
	for _, x := range h.KeyErasures {
		fmt.Fprintf(tw, "  %s\terased: every data key before it is dead\t%s/%d@%d\n", ts(x.At), x.Coords.Topic, x.Coords.Partition, x.Coords.Offset)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseTime reads an RFC 3339 time or a date (midnight UTC).
func parseTime(flagName, v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("--%s %q: give an RFC 3339 time (2026-12-01T09:00:00Z) or a date (2026-12-01)", flagName, v)
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func cmdBreach(ctx context.Context, e *env, args []string) error {
	fs := e.flags("breach", "--from T --to T [--stream S]… [--topic T]…")
	var lf ledgerFlags
	lf.add(fs, e)
	var streams, topics listFlag
	fs.Var(&streams, "stream", "output stream (topic) that was breached, e.g. compliant.marketing; repeat or comma-separate; none: every stream")
	fs.Var(&topics, "topic", "only events from this input topic, e.g. customer.events; repeat or comma-separate; none: every input topic")
	from := fs.String("from", "", "start of the window (inclusive), RFC 3339 or a date")
	to := fs.String("to", "", "end of the window (exclusive), RFC 3339 or a date")
	export := fs.String("export", "", "also write the subjects to this file (CSV, or JSON when it ends in .json; mode 0600, never replaced)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		fs.Usage()
		return errors.New("--from and --to are required")
	}
	var q ledger.BreachQuery
	var err error
	if q.From, err = parseTime("from", *from); err != nil {
		return err
	}
	if q.To, err = parseTime("to", *to); err != nil {
		return err
	}
	q.Streams, q.Topics = streams, topics
	s, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Breach(ctx, q)
	if err != nil {
		return err
	}
	if *export != "" {
		write := func(w io.Writer) error { return breachCSV(w, rep) }
		if strings.HasSuffix(*export, ".json") {
			write = func(w io.Writer) error { return writeJSON(w, rep) }
		}
		if err := writeFile(*export, write); err != nil {
			return err
		}
	}
	if lf.json {
		return writeJSON(e.stdout, rep)
	}
	fmt.Fprintf(e.stdout, "Breach scope: outputs published from %s to %s", ts(q.From), ts(q.To))
	if len(q.Streams) > 0 {
		fmt.Fprintf(e.stdout, " on %s", strings.Join(q.Streams, ", "))
	}
	if len(q.Topics) > 0 {
		fmt.Fprintf(e.stdout, " of input %s", strings.Join(q.Topics, ", "))
	}
	fmt.Fprintf(e.stdout, "\n\n  subjects %d\n  events   %d\n  outputs  %d\n", rep.Subjects, rep.Events, rep.Outputs)
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\n  per stream\toutputs")
	for _, st := range sortedKeys(rep.PerStream) {
		fmt.Fprintf(tw, "  %s\t%d\n", st, rep.PerStream[st])
	}
	fmt.Fprintln(tw, "\n  per decision\toutputs")
	for _, d := range sortedKeys(rep.PerDecision) {
		fmt.Fprintf(tw, "  %s\t%d\n", d, rep.PerDecision[d])
	}
	tw.Flush()
	cats := map[string][2]int64{}
	for _, bs := range rep.BySubject {
		for _, st := range bs.Streams {
			for _, c := range st.Categories {
				v := cats[c.Category]
				if c.How == ledger.HowPassed {
					v[0]++
				} else {
					v[1]++
				}
				cats[c.Category] = v
			}
		}
	}
	fmt.Fprintln(tw, "\n  data category\tsubjects×streams received it unchanged\tonly redacted")
	for _, c := range sortedKeys(cats) {
		fmt.Fprintf(tw, "  %s\t%d\t%d\n", c, cats[c][0], cats[c][1])
	}
	tw.Flush()
	if len(rep.UnknownSchemas) > 0 {
		fmt.Fprintf(e.stdout, "\n  WARNING: the data categories of events of %s are unknown (not in the schema catalog, --schemas-dir):\n"+
			"  assume their events carried any category, unchanged.\n", strings.Join(rep.UnknownSchemas, ", "))
	}
	if *export == "" && rep.Subjects > 0 {
		fmt.Fprintln(e.stdout, "\nThe subjects themselves: --export FILE (CSV) or --json.")
	}
	return nil
}

// csvCell keeps a value a spreadsheet would run as a formula (it starts
// with = + - @, a tab or a carriage return: a subject id is whatever a
// producer sent) from being one, by a leading apostrophe.
func csvCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func breachCSV(w io.Writer, rep *ledger.BreachReport) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"subject_id", "stream", "events", "first", "last", "decisions", "event_schemas", "treated_fields", "categories_passed", "categories_redacted_only", "unknown_schemas"})
	for _, bs := range rep.BySubject {
		for _, st := range bs.Streams {
			var passed, redacted, decisions []string
			for _, c := range st.Categories {
				if c.How == ledger.HowPassed {
					passed = append(passed, c.Category)
				} else {
					redacted = append(redacted, c.Category)
				}
			}
			for _, d := range sortedKeys(st.Decisions) {
				decisions = append(decisions, fmt.Sprintf("%s=%d", d, st.Decisions[d]))
			}
			if err := cw.Write([]string{csvCell(bs.SubjectID), csvCell(st.Stream), fmt.Sprint(st.Events), ts(st.First), ts(st.Last), strings.Join(decisions, " "),
				strings.Join(st.EventSchemas, " "), strings.Join(st.TreatedFields, " "), strings.Join(passed, " "), strings.Join(redacted, " "),
				strings.Join(st.UnknownSchemas, " ")}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func cmdCompleteness(ctx context.Context, e *env, args []string) error {
	fs := e.flags("completeness", "[--topic customer.events] [--brokers host:port]")
	var lf ledgerFlags
	lf.add(fs, e)
	topic := fs.String("topic", "customer.events", "input topic whose offsets must each have exactly one audit record")
	auditTopic := fs.String("audit-topic", envOr(e, "LEDGER_AUDIT_TOPIC", "consent.audit"), "the audit topic, whose held partitions make no input topic complete (env LEDGER_AUDIT_TOPIC)")
	brokers := fs.String("brokers", e.getenv("KAFKA_BROKERS"), "Kafka brokers (env KAFKA_BROKERS): the input topic's offsets are then checked from its start to its end; without, between the first and last audited offsets")
	var kf kafkaFlags
	kf.add(fs, e)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var expected map[int32]ledger.OffsetRange
	if *brokers != "" {
		c, err := kf.client(*brokers)
		if err != nil {
			return err
		}
		offs, err := c.Offsets(ctx, *topic)
		if err != nil {
			return fmt.Errorf("input offsets: %w", err)
		}
		expected = map[int32]ledger.OffsetRange{}
		for p, r := range offs {
			expected[p] = ledger.OffsetRange{Start: r.First, End: r.End}
		}
	}
	s, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Completeness(ctx, *topic, expected)
	if err != nil {
		return err
	}
	out, err := withHolds(ctx, s, rep, *auditTopic)
	if err != nil {
		return err
	}
	if lf.json {
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		printCompleteness(e.stdout, rep, expected != nil)
		printCompletenessHolds(e.stdout, out)
	}
	switch {
	case len(out.HeldAudit) > 0:
		return fmt.Errorf("%w: the audit of %s is not complete: held audit partitions: %d", errFound, *topic, len(out.HeldAudit))
	case !rep.Complete:
		return fmt.Errorf("%w: the audit of %s is not complete", errFound, *topic)
	}
	return nil
}

func printCompleteness(w io.Writer, rep *ledger.CompletenessReport, withExpected bool) {
	state := "complete"
	if !rep.Complete {
		state = "NOT complete"
	}
	fmt.Fprintf(w, "Audit of %s: %s\n", rep.SourceTopic, state)
	if !withExpected {
		fmt.Fprintln(w, "(checked between the first and last audited offsets; give --brokers to check the topic's whole range)")
	}
	for _, p := range rep.Partitions {
		mark := "ok"
		if !p.Complete {
			mark = "PROBLEM"
		}
		fmt.Fprintf(w, "\n  partition %d: %s — %d audit records for %d offsets, audited %d..%d", p.Partition, mark, p.Records, p.Offsets, p.Audited.Start, p.Audited.End)
		if p.Expected != nil {
			fmt.Fprintf(w, ", topic holds %d..%d", p.Expected.Start, p.Expected.End)
		}
		fmt.Fprintln(w)
		if len(p.Gaps) > 0 {
			fmt.Fprintf(w, "    gaps (%d offsets without an audit record):", p.MissingOffsets)
			for i, g := range p.Gaps {
				if i == 20 {
					fmt.Fprintf(w, " … %d more", len(p.Gaps)-20)
					break
				}
				fmt.Fprintf(w, " %d..%d", g.Start, g.End-1)
			}
			fmt.Fprintln(w)
		}
		if len(p.Duplicates) > 0 {
			fmt.Fprintf(w, "    offsets audited more than once: %d (%d decided differently)\n", len(p.Duplicates), p.Disagreeing)
			n := 0
			for _, d := range p.Duplicates {
				if d.Agree && len(p.Duplicates) > 20 {
					continue
				}
				if n == 20 {
					fmt.Fprintln(w, "      …")
					break
				}
				n++
				agree := "same decisions (decided again after a restart)"
				if !d.Agree {
					agree = "DIFFERENT decisions"
				}
				fmt.Fprintf(w, "      offset %d: %d records, %s\n", d.Offset, d.Count, agree)
			}
		}
		if p.Outside > 0 {
			fmt.Fprintf(w, "    %d audited offsets outside the topic's range (deleted by retention since)\n", p.Outside)
		}
	}
}

func cmdPolicies(ctx context.Context, e *env, args []string) error {
	var lf ledgerFlags
	uses, err := readLedger(ctx, e, "policies", args, &lf, (*ledger.Store).Policies)
	if err != nil {
		return err
	}
	if lf.json {
		return writeJSON(e.stdout, uses)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "policy version\tfirst decision\tlast decision\taudit records\tstreams")
	for _, u := range uses {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", u.PolicyVersion, ts(u.First), ts(u.Last), u.Records, strings.Join(u.Streams, ", "))
	}
	return tw.Flush()
}

func cmdStats(ctx context.Context, e *env, args []string) error {
	var lf ledgerFlags
	st, err := readLedger(ctx, e, "stats", args, &lf, (*ledger.Store).Stats)
	if err != nil {
		return err
	}
	if lf.json {
		if err := writeJSON(e.stdout, st); err != nil {
			return err
		}
		if len(st.Holds) > 0 {
			return heldError(st)
		}
		return nil
	}
	fmt.Fprintf(e.stdout, "ledger on %s, migrations %v\n\n", st.Backend, st.Migrations)
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	for _, t := range sortedKeys(st.Tables) {
		fmt.Fprintf(tw, "  %s\t%d\n", t, st.Tables[t])
	}
	fmt.Fprintln(tw, "\n  consumed up to\tnext offset")
	for _, p := range st.Positions {
		fmt.Fprintf(tw, "  %s/%d\t%d\n", p.Topic, p.Partition, p.Next)
	}
	if len(st.Releases) > 0 {
		fmt.Fprintln(tw, "\n  hold released\tby\tat\twhy")
		for _, r := range st.Releases {
			fmt.Fprintf(tw, "  %s/%d (held at %d since %s)\t%s\t%s\t%s\n", r.Topic, r.Partition, r.Hold.Next, ts(r.Hold.At), r.By, ts(r.At), r.Reason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return statsHolds(e.stdout, st)
}

// statsHolds prints the held partitions, if any, and what to do; a hold is
// a problem found (exit 2).
func statsHolds(w io.Writer, st *ledger.Stats) error {
	if len(st.Holds) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nHELD partitions (%d), which the ledger no longer reads (ledger_holds):\n", len(st.Holds))
	printHolds(w, st.Holds)
	fmt.Fprintf(w, "\n%s\n", holdAdvice)
	return heldError(st)
}

func heldError(st *ledger.Stats) error {
	return fmt.Errorf("%w: held partitions: %d (the ledger reads nothing more of them and is not ready)", errFound, len(st.Holds))
}
