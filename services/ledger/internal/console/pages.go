package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/seal"
)

// tableOrder is the order the overview lists the ledger's tables in.
var tableOrder = []string{"consent_changes", "audit_records", "audit_outputs", "revocation_notices", "dead_letters",
	"undecodable_records", "audit_checkpoints", "data_keys", "key_erasures"}

type countRow struct {
	Name  string
	Count int64
}

type sealRow struct {
	Partition   int32
	Checkpoints int
	LatestSize  int64
	Latest      time.Time
	Problem     string
}

type overviewData struct {
	Backend    string
	Migrations []int
	// Holds are the partitions the ledger no longer reads: shown first.
	Holds        []ledger.HeldPartition
	Tables       []countRow
	Positions    []ledger.Position
	LastIngest   time.Time
	HasIngest    bool
	Completeness []completenessRow
	Expected     bool
	AuditTopic   string
	Sealing      bool
	Seal         []sealRow
	Policies     []ledger.PolicyUse
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.queryCtx(r)
	defer cancel()
	st, err := c.cfg.Store.Stats(ctx)
	if err != nil {
		c.failed(w, r, "stats", err)
		return
	}
	d := overviewData{Backend: st.Backend, Migrations: st.Migrations, Holds: st.Holds, Positions: st.Positions, AuditTopic: c.cfg.AuditTopic,
		Sealing: c.cfg.Sealer != nil}
	for _, t := range tableOrder {
		d.Tables = append(d.Tables, countRow{t, st.Tables[t]})
	}
	if c.cfg.LastIngest != nil {
		d.LastIngest = c.cfg.LastIngest()
		d.HasIngest = true
	}
	for _, topic := range c.cfg.SourceTopics {
		rep, held, expected, err := c.completenessOf(ctx, topic)
		if err != nil {
			c.failed(w, r, "completeness", err)
			return
		}
		d.Expected = d.Expected || expected
		d.Completeness = append(d.Completeness, completenessRow{rep, len(held)})
	}
	var problems map[int32]string
	if c.cfg.Sealer != nil {
		problems = c.cfg.Sealer.Problems()
	}
	parts, err := c.auditPartitions(ctx, problems)
	if err != nil {
		c.failed(w, r, "audit partitions", err)
		return
	}
	for _, p := range parts {
		cps, err := c.cfg.Store.Checkpoints(ctx, c.cfg.AuditTopic, p)
		if err != nil {
			c.failed(w, r, "checkpoints", err)
			return
		}
		row := sealRow{Partition: p, Checkpoints: len(cps), Problem: problems[p]}
		if cp, ok := latest(cps); ok {
			row.LatestSize, row.Latest = cp.Size, publishedAt(cp)
		}
		d.Seal = append(d.Seal, row)
	}
	if d.Policies, err = c.cfg.Store.Policies(ctx); err != nil {
		c.failed(w, r, "policies", err)
		return
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

// auditPartitions lists, in order, the audit partitions the ledger has
// records or checkpoints of, and those the sealer has a problem with: a
// partition with checkpoints and no record (its records gone from the
// ledger, never read, or a checkpoint forged) is shown, and not verified.
func (c *Console) auditPartitions(ctx context.Context, problems map[int32]string) ([]int32, error) {
	parts, err := c.cfg.Store.AuditPartitions(ctx, c.cfg.AuditTopic)
	if err != nil {
		return nil, err
	}
	sealed, err := c.cfg.Store.CheckpointPartitions(ctx, c.cfg.AuditTopic)
	if err != nil {
		return nil, err
	}
	parts = append(parts, sealed...)
	for p := range problems {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	return slices.Compact(parts), nil
}

// publishedAt is when a checkpoint was published: its own field, else the
// timestamp of its record on the checkpoints topic.
func publishedAt(cp ledger.Checkpoint) time.Time {
	if !cp.PublishedAt.IsZero() {
		return cp.PublishedAt
	}
	return cp.Time
}

// latest is the checkpoint of the largest tree.
func latest(cps []ledger.Checkpoint) (ledger.Checkpoint, bool) {
	if len(cps) == 0 {
		return ledger.Checkpoint{}, false
	}
	best := cps[0]
	for _, cp := range cps[1:] {
		if cp.Size > best.Size || (cp.Size == best.Size && publishedAt(cp).After(publishedAt(best))) {
			best = cp
		}
	}
	return best, true
}

// completenessRow is an input topic's completeness on the overview, and
// how many audit partitions are held.
type completenessRow struct {
	*ledger.CompletenessReport
	Held int
}

// completenessOf checks topic, with the brokers' ranges when the console
// has a client for them, and returns the held partitions of the audit
// topic: while one is held, the audit records it holds past the ledger's
// position are not in the ledger, so the report is not complete.
func (c *Console) completenessOf(ctx context.Context, topic string) (*ledger.CompletenessReport, []ledger.HeldPartition, bool, error) {
	var expected map[int32]ledger.OffsetRange
	if c.cfg.Offsets != nil {
		offs, err := c.cfg.Offsets.Offsets(ctx, topic)
		if err != nil {
			return nil, nil, false, fmt.Errorf("input offsets of the brokers: %w", err)
		}
		expected = map[int32]ledger.OffsetRange{}
		for p, rg := range offs {
			expected[p] = ledger.OffsetRange{Start: rg.First, End: rg.End}
		}
	}
	rep, err := c.cfg.Store.Completeness(ctx, topic, expected)
	if err != nil {
		return nil, nil, false, err
	}
	holds, err := c.cfg.Store.AuditHolds(ctx, c.cfg.AuditTopic)
	if err != nil {
		return nil, nil, false, err
	}
	var held []ledger.HeldPartition
	for _, h := range holds {
		held = append(held, ledger.HeldPartition{Topic: h.Topic, Partition: h.Partition, Next: h.Next, Reason: h.Reason, Since: h.At})
	}
	if len(held) > 0 {
		rep.Complete = false
	}
	return rep, held, expected != nil, nil
}

func (c *Console) subjectForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "subject", page{Title: "Subject", Nav: "subject"})
}

// maxSubjectID bounds the subject id of a search.
const maxSubjectID = 512

func (c *Console) subjectPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	id := strings.TrimSpace(r.PostFormValue("subject"))
	if id == "" || len(id) > maxSubjectID {
		c.render(w, r, http.StatusBadRequest, "subject", page{Title: "Subject", Nav: "subject",
			Error: fmt.Sprintf("Type a subject id (1 to %d characters).", maxSubjectID)})
		return
	}
	ctx, cancel := c.queryCtx(r)
	defer cancel()
	h, err := c.cfg.Store.Subject(ctx, id)
	if err != nil {
		c.failed(w, r, "subject history", err)
		return
	}
	c.render(w, r, http.StatusOK, "subject", page{Title: "Subject", Nav: "subject", Data: h})
}

type breachForm struct {
	Streams  []streamBox
	Topic    string
	From, To string
}

type streamBox struct {
	Name    string
	Checked bool
}

type breachData struct {
	Form       breachForm
	Report     *ledger.BreachReport
	Streams    []countRow
	Decisions  []countRow
	Categories []categoryRow
	Subjects   []ledger.BreachSubject
	More       int
}

type categoryRow struct {
	Category         string
	Passed, Redacted int
}

// formTime is the format of the breach form's datetime-local fields, read
// as UTC.
const formTime = "2006-01-02T15:04"

func (c *Console) streamNames(ctx context.Context) ([]string, error) {
	ps, err := c.cfg.Store.Policies(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range ps {
		for _, s := range p.Streams {
			seen[s] = true
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}

func (c *Console) breachForm(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.queryCtx(r)
	defer cancel()
	names, err := c.streamNames(ctx)
	if err != nil {
		c.failed(w, r, "policy streams", err)
		return
	}
	now := time.Now().UTC()
	f := breachForm{Topic: "", From: now.Add(-72 * time.Hour).Format(formTime), To: now.Add(time.Minute).Format(formTime)}
	for _, n := range names {
		f.Streams = append(f.Streams, streamBox{Name: n})
	}
	c.render(w, r, http.StatusOK, "breach", page{Title: "Breach scope", Nav: "breach", Data: breachData{Form: f}})
}

func parseFormTime(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	for _, layout := range []string{formTime, "2006-01-02T15:04:05", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("bad time")
}

func (c *Console) breachPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.render(w, r, http.StatusBadRequest, "error", page{Title: "Breach scope", Nav: "breach", Error: "The form could not be read."})
		return
	}
	ctx, cancel := c.queryCtx(r)
	defer cancel()
	names, err := c.streamNames(ctx)
	if err != nil {
		c.failed(w, r, "policy streams", err)
		return
	}
	chosen := r.PostForm["stream"]
	f := breachForm{Topic: strings.TrimSpace(r.PostFormValue("topic")), From: r.PostFormValue("from"), To: r.PostFormValue("to")}
	for _, n := range names {
		f.Streams = append(f.Streams, streamBox{Name: n, Checked: slices.Contains(chosen, n)})
	}
	q := ledger.BreachQuery{Streams: chosen}
	if f.Topic != "" {
		q.Topics = []string{f.Topic}
	}
	var problems []string
	if q.From, err = parseFormTime(f.From); err != nil {
		problems = append(problems, "the start of the window is not a time (YYYY-MM-DDTHH:MM, UTC)")
	}
	if q.To, err = parseFormTime(f.To); err != nil {
		problems = append(problems, "the end of the window is not a time (YYYY-MM-DDTHH:MM, UTC)")
	}
	if len(problems) == 0 && !q.From.Before(q.To) {
		problems = append(problems, "the window must end after it starts")
	}
	if len(problems) > 0 {
		c.render(w, r, http.StatusBadRequest, "breach", page{Title: "Breach scope", Nav: "breach",
			Error: "Check the form: " + strings.Join(problems, "; ") + ".", Data: breachData{Form: f}})
		return
	}
	rep, err := c.cfg.Store.Breach(ctx, q)
	if err != nil {
		c.failed(w, r, "breach scope", err)
		return
	}
	d := breachData{Form: f, Report: rep}
	for _, k := range sortedKeys(rep.PerStream) {
		d.Streams = append(d.Streams, countRow{k, rep.PerStream[k]})
	}
	for _, k := range sortedKeys(rep.PerDecision) {
		d.Decisions = append(d.Decisions, countRow{k, rep.PerDecision[k]})
	}
	cats := map[string]*categoryRow{}
	for _, bs := range rep.BySubject {
		for _, st := range bs.Streams {
			for _, cu := range st.Categories {
				cr := cats[cu.Category]
				if cr == nil {
					cr = &categoryRow{Category: cu.Category}
					cats[cu.Category] = cr
				}
				if cu.How == ledger.HowPassed {
					cr.Passed++
				} else {
					cr.Redacted++
				}
			}
		}
	}
	for _, k := range sortedKeys(cats) {
		d.Categories = append(d.Categories, *cats[k])
	}
	d.Subjects = rep.BySubject
	if len(d.Subjects) > c.cfg.BreachSubjects {
		d.More = len(d.Subjects) - c.cfg.BreachSubjects
		d.Subjects = d.Subjects[:c.cfg.BreachSubjects]
	}
	c.render(w, r, http.StatusOK, "breach", page{Title: "Breach scope", Nav: "breach", Data: d})
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type completenessData struct {
	Topic    string
	Topics   []string
	Report   *ledger.CompletenessReport
	Expected bool
	// Held are the held partitions of the audit topic (the report is then
	// not complete).
	Held []ledger.HeldPartition
}

// validTopic accepts Kafka topic names.
func validTopic(t string) bool {
	if t == "" || len(t) > 249 {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (c *Console) completeness(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		topic = c.cfg.SourceTopics[0]
	}
	d := completenessData{Topic: topic, Topics: c.cfg.SourceTopics}
	if !validTopic(topic) {
		c.render(w, r, http.StatusBadRequest, "completeness", page{Title: "Completeness", Nav: "completeness",
			Error: "That is not a topic name (letters, digits, '.', '_' and '-').", Data: d})
		return
	}
	ctx, cancel := c.queryCtx(r)
	defer cancel()
	rep, held, expected, err := c.completenessOf(ctx, topic)
	if err != nil {
		c.failed(w, r, "completeness", err)
		return
	}
	d.Report, d.Held, d.Expected = rep, held, expected
	c.render(w, r, http.StatusOK, "completeness", page{Title: "Completeness", Nav: "completeness", Data: d})
}

// Checkpoint states on the verification page.
const (
	cpVerified = "verified"
	cpMismatch = "root differs"
	cpMissing  = "ledger lacks records"
	cpOther    = "other base"
)

type cpRow struct {
	Size        int64
	Base        int64
	Root        [32]byte
	PublishedAt time.Time
	State       string
}

type partitionVerification struct {
	Partition   int32
	Records     int64 // leaves read contiguously from the tree's base
	Base        int64
	Checkpoints []cpRow
	Latest      *cpRow
	Unsealed    int64 // records after the latest checkpoint
	Problem     string
	Sealer      string // the sealer's problem, if any
	Verified    bool
}

type verificationData struct {
	AuditTopic string
	Partitions []partitionVerification
	Verified   bool
	Sealing    bool
}

// leafPage is how many leaf hashes one query reads.
const leafPage = 10000

// verifyPartition rebuilds the partition's tree from the ledger's leaf
// hashes and checks every checkpoint's root against it. The tree is a
// frontier tree (memory bounded whatever the audit's size), which gives
// only its current root: each checkpoint is compared when the tree,
// growing, reaches its size.
func (c *Console) verifyPartition(ctx context.Context, p int32) (partitionVerification, error) {
	pv := partitionVerification{Partition: p}
	cps, err := c.cfg.Store.Checkpoints(ctx, c.cfg.AuditTopic, p)
	if err != nil {
		return pv, err
	}
	first, err := c.cfg.Store.Leaves(ctx, c.cfg.AuditTopic, p, 0, 1)
	if err != nil {
		return pv, err
	}
	base := int64(0)
	if len(first) > 0 {
		base = first[0].Offset
	}
	if len(cps) > 0 {
		base = cps[0].Base
	}
	pv.Base = base
	tree := seal.NewFrontierTree(c.cfg.AuditTopic, p, base)
	states := make([]string, len(cps))
	// The checkpoints of the tree's base, by size, to check as the tree
	// reaches their size.
	var order []int
	var maxSize int64
	for i, cp := range cps {
		if cp.Base == base {
			order = append(order, i)
			maxSize = max(maxSize, cp.Size)
		} else {
			states[i] = cpOther
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return cps[order[i]].Size < cps[order[j]].Size })
	checkReached := func() error {
		for len(order) > 0 && cps[order[0]].Size <= tree.Size() {
			cp := cps[order[0]]
			if cp.Size < tree.Size() {
				return fmt.Errorf("verification: checkpoint of size %d passed at size %d", cp.Size, tree.Size())
			}
			root, err := tree.Root()
			if err != nil {
				return err
			}
			states[order[0]] = cpMismatch
			if root == cp.Root {
				states[order[0]] = cpVerified
			}
			order = order[1:]
		}
		return nil
	}
	if err := checkReached(); err != nil {
		return pv, err
	}
	// Read every leaf (the tail after the last checkpoint is counted as
	// unsealed), stopping at the first offset out of order.
	from := base
	for {
		ls, err := c.cfg.Store.Leaves(ctx, c.cfg.AuditTopic, p, from, leafPage)
		if err != nil {
			return pv, err
		}
		for _, l := range ls {
			if err := tree.AppendLeafHash(l.Offset, l.Hash); err != nil {
				var oe *seal.OffsetError
				if errors.As(err, &oe) {
					pv.Problem = fmt.Sprintf("the ledger's audit records skip offsets %d..%d", oe.Want, oe.Got-1)
				} else {
					return pv, err
				}
				break
			}
			if err := checkReached(); err != nil {
				return pv, err
			}
		}
		if pv.Problem != "" || len(ls) < leafPage {
			break
		}
		from = ls[len(ls)-1].Offset + 1
	}
	for _, i := range order {
		states[i] = cpMissing // beyond the records read
	}
	pv.Records = tree.Size()
	pv.Verified = len(cps) > 0 && pv.Problem == ""
	for i, cp := range cps {
		pv.Checkpoints = append(pv.Checkpoints, cpRow{Size: cp.Size, Base: cp.Base, Root: cp.Root, PublishedAt: publishedAt(cp), State: states[i]})
		if states[i] != cpVerified {
			pv.Verified = false
		}
	}
	if l, ok := latest(cps); ok {
		for i := range pv.Checkpoints {
			if pv.Checkpoints[i].Size == l.Size && pv.Checkpoints[i].PublishedAt.Equal(publishedAt(l)) {
				pv.Latest = &pv.Checkpoints[i]
			}
		}
	}
	if tree.Size() > maxSize {
		pv.Unsealed = tree.Size() - maxSize
	}
	return pv, nil
}

func (c *Console) verification(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.queryCtx(r)
	defer cancel()
	// One verification at a time: each reads every leaf hash of the audit
	// (its trees are frontier trees, so memory is bounded; the database's
	// and the CPU's load are not).
	select {
	case c.verifying <- struct{}{}:
		defer func() { <-c.verifying }()
	case <-ctx.Done():
		c.failed(w, r, "verification", ctx.Err())
		return
	}
	var problems map[int32]string
	if c.cfg.Sealer != nil {
		problems = c.cfg.Sealer.Problems()
	}
	parts, err := c.auditPartitions(ctx, problems)
	if err != nil {
		c.failed(w, r, "audit partitions", err)
		return
	}
	d := verificationData{AuditTopic: c.cfg.AuditTopic, Verified: len(parts) > 0, Sealing: c.cfg.Sealer != nil}
	for _, p := range parts {
		pv, err := c.verifyPartition(ctx, p)
		if err != nil {
			c.failed(w, r, "verification", err)
			return
		}
		pv.Sealer = problems[p]
		if pv.Sealer != "" {
			pv.Verified = false
		}
		d.Verified = d.Verified && pv.Verified
		d.Partitions = append(d.Partitions, pv)
	}
	c.render(w, r, http.StatusOK, "verification", page{Title: "Verification", Nav: "verification", Data: d})
}

func (c *Console) policies(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.queryCtx(r)
	defer cancel()
	ps, err := c.cfg.Store.Policies(ctx)
	if err != nil {
		c.failed(w, r, "policies", err)
		return
	}
	c.render(w, r, http.StatusOK, "policies", page{Title: "Policy versions", Nav: "policies", Data: ps})
}
