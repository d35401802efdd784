package seal

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A Record is an audit record as read from its partition: its offset and
// its exact key and value bytes (nil for a null key or value).
type Record struct {
	Offset     int64
	Key, Value []byte
}

// Input is what Verify checks: one audit partition's records and the
// checkpoints published for it.
type Input struct {
	Topic     string
	Partition int32
	// Records are the partition's records in the order they were read.
	Records iter.Seq2[Record, error]
	// Checkpoints are the signed checkpoint notes of the partition, in
	// publication order (the order of consent.audit.checkpoints).
	Checkpoints [][]byte
	// Verifiers are the trusted checkpoint keys.
	Verifiers note.Verifiers
	// Ledger, when not nil, gives the leaf hash the ledger stored for the
	// record at offset at ingest time. With it Verify names every altered
	// offset, not only the range where the first one is, and checks the
	// checkpoints after a missing record.
	Ledger func(offset int64) (tlog.Hash, bool)
}

// RecordSlice is the records of a slice, as Input.Records.
func RecordSlice(records []Record) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for _, r := range records {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// A Kind is the kind of a Finding.
type Kind string

// The kinds of findings.
const (
	// KindAltered: records in From..To do not hash to what a checkpoint
	// (or the ledger) committed to: altered, replaced, or shifted by an
	// insertion or removal with renumbered offsets. Without the ledger's
	// leaf hashes the range is the one between the last checkpoint that
	// still matches and the first that does not: the first altered record
	// is in it, and later records are not checked one by one.
	KindAltered Kind = "altered"
	// KindMissing: no record at offsets From..To, inside the partition
	// (a gap) or at its end up to the last checkpoint (a truncation).
	KindMissing Kind = "missing"
	// KindDuplicate: more than one record at offset From.
	KindDuplicate Kind = "duplicate"
	// KindReordered: records at From..To were read out of offset order.
	KindReordered Kind = "reordered"
	// KindBadCheckpoint: checkpoint #Checkpoint does not verify (bad
	// signature, no trusted key, malformed) or is of another partition or
	// base; it is not used for anything else.
	KindBadCheckpoint Kind = "bad_checkpoint"
	// KindInconsistent: checkpoints #Checkpoint and #Other are not of one
	// append-only tree: a fork, or history rewritten after #Checkpoint.
	KindInconsistent Kind = "inconsistent"
	// KindLedgerMismatch: the ledger's leaf hashes do not give checkpoint
	// #Checkpoint's root: the ledger's copy in From..To was altered.
	KindLedgerMismatch Kind = "ledger_mismatch"
	// KindUnsealed (a warning): records at From..To are not covered by any
	// checkpoint (yet, after the last one; or before the tree's base).
	KindUnsealed Kind = "unsealed"
	// KindUnchecked (a warning): the consistency of checkpoints
	// #Checkpoint and #Other could not be checked: no tree at hand has
	// the later one's root.
	KindUnchecked Kind = "unchecked"
	// KindOutOfOrderCheckpoint (a warning): checkpoint #Other, published
	// after #Checkpoint, is of a smaller tree (and consistent with it).
	KindOutOfOrderCheckpoint Kind = "stale_checkpoint"
)

// A Severity says whether a finding is a failure of verification.
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// A Finding is one thing Verify found wrong (or could not check). It holds
// coordinates, sizes and hashes, never a record's key or value.
type Finding struct {
	Kind      Kind     `json:"kind"`
	Severity  Severity `json:"severity"`
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	// From and To are the first and last offset concerned, -1 when the
	// finding is about checkpoints only.
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Checkpoint and Other are indexes in Input.Checkpoints, -1 when none.
	Checkpoint int    `json:"checkpoint"`
	Other      int    `json:"other"`
	Detail     string `json:"detail"`
}

func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s/%d", strings.ToUpper(string(f.Severity)), f.Kind, f.Topic, f.Partition)
	switch {
	case f.From < 0:
	case f.From == f.To:
		fmt.Fprintf(&b, " offset %d", f.From)
	default:
		fmt.Fprintf(&b, " offsets %d..%d", f.From, f.To)
	}
	if f.Checkpoint >= 0 {
		fmt.Fprintf(&b, " checkpoint #%d", f.Checkpoint)
	}
	if f.Other >= 0 {
		fmt.Fprintf(&b, " and #%d", f.Other)
	}
	b.WriteString(": ")
	b.WriteString(f.Detail)
	return b.String()
}

// A Report is the result of Verify.
type Report struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Base is the tree's base offset: the valid checkpoints', else the
	// lowest offset read.
	Base int64 `json:"base"`
	// Records is the number of records read.
	Records int `json:"records"`
	// Sealed is the size of the largest valid checkpoint.
	Sealed int64 `json:"sealed"`
	// Checkpoints is the number of checkpoints given, Valid of them
	// verified and were of the partition.
	Checkpoints int       `json:"checkpoints"`
	Valid       int       `json:"valid_checkpoints"`
	Findings    []Finding `json:"findings"`
}

// OK reports whether the report has no error finding.
func (r *Report) OK() bool { return len(r.Errors()) == 0 }

// Errors is the report's error findings.
func (r *Report) Errors() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Severity == Error {
			out = append(out, f)
		}
	}
	return out
}

// String is the report for people: a summary line, then one line per
// finding.
func (r *Report) String() string {
	var b strings.Builder
	errs := len(r.Errors())
	status := "OK"
	if errs > 0 {
		status = "FAILED"
	}
	fmt.Fprintf(&b, "%s %s/%d: %d records from offset %d, %d sealed by %d of %d checkpoints; %d errors, %d warnings\n",
		status, r.Topic, r.Partition, r.Records, r.Base, r.Sealed, r.Valid, r.Checkpoints, errs, len(r.Findings)-errs)
	for _, f := range r.Findings {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// compareFindings orders errors before warnings, then by offset (findings
// about checkpoints only first), then by checkpoint.
func compareFindings(a, b Finding) int {
	if a.Severity != b.Severity {
		if a.Severity == Error {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.Checkpoint, b.Checkpoint), cmp.Compare(a.Other, b.Other))
}

type validCheckpoint struct {
	index int
	Checkpoint
}

// Verify recomputes the partition's tree from the records and checks it
// against every checkpoint: each checkpoint's signature, that its root is
// the root of the tree of the first Size records, that consecutive
// checkpoints are consistent (a consistency proof from whichever tree at
// hand has the later checkpoint's root, checked with CheckConsistency), and
// the records' offsets (gaps, duplicates, order). What it finds is in the
// report; the error is only for records that could not be read or an
// invalid input.
//
// The records are placed in the tree by their offsets, so records read out
// of order are reported as reordered but, if their bytes are intact, not
// as altered. Verify keeps the offsets of the records and the tree of the
// first Sealed leaves in memory (about 100 bytes a sealed record).
func Verify(in Input) (*Report, error) {
	if err := validOrigin(in.Topic, in.Partition); err != nil {
		return nil, err
	}
	if in.Records == nil {
		return nil, errors.New("seal: verify: no records")
	}
	v := &verification{in: in, r: &Report{Topic: in.Topic, Partition: in.Partition, Checkpoints: len(in.Checkpoints), Findings: []Finding{}}}
	v.openCheckpoints()
	if err := v.readRecords(); err != nil {
		return nil, err
	}
	v.checkOffsets()
	if err := v.buildTrees(); err != nil {
		return nil, err
	}
	if err := v.checkConsistency(); err != nil {
		return nil, err
	}
	if err := v.checkRoots(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(v.r.Findings, compareFindings)
	return v.r, nil
}

// leafAt is the leaf hash of the record read at a sealed leaf index.
type leafAt struct {
	i int64
	h tlog.Hash
}

type verification struct {
	in     Input
	r      *Report
	cps    []validCheckpoint
	base   int64
	sealed int64

	offsets []int64  // of the records, in read order
	leaves  []leafAt // of the records at sealed offsets, by index, one per index

	recTree, ledgerTree *Tree
	exact               []int64 // offsets whose record differs from the ledger's leaf hash
	// forked is the checkpoints inconsistent with the trusted one published
	// before them; they are not compared with the records or the ledger.
	forked map[int]bool
}

func (v *verification) add(f Finding) {
	f.Topic, f.Partition = v.in.Topic, v.in.Partition
	if f.Severity == "" {
		f.Severity = Error
	}
	v.r.Findings = append(v.r.Findings, f)
}

func (v *verification) openCheckpoints() {
	haveBase := false
	for i, msg := range v.in.Checkpoints {
		bad := func(detail string) {
			v.add(Finding{Kind: KindBadCheckpoint, From: -1, To: -1, Checkpoint: i, Other: -1, Detail: detail})
		}
		c, err := Open(msg, v.in.Verifiers)
		switch {
		case errors.Is(err, ErrBadSignature):
			bad("its signature does not verify")
			continue
		case errors.Is(err, ErrUnknownKey):
			bad("not signed by a trusted key")
			continue
		case err != nil:
			bad("not a well-formed signed checkpoint")
			continue
		}
		if c.Topic != v.in.Topic || c.Partition != v.in.Partition {
			bad(fmt.Sprintf("a checkpoint of %s, not of this partition", c.Origin()))
			continue
		}
		if haveBase && c.Base != v.base {
			bad(fmt.Sprintf("of a tree from base offset %d, earlier checkpoints are from %d", c.Base, v.base))
			continue
		}
		v.base, haveBase = c.Base, true
		v.sealed = max(v.sealed, c.Size)
		v.cps = append(v.cps, validCheckpoint{i, c})
	}
	v.r.Valid = len(v.cps)
	v.r.Sealed = v.sealed
}

func (v *verification) readRecords() error {
	haveBase := len(v.cps) > 0
	for rec, err := range v.in.Records {
		if err != nil {
			return fmt.Errorf("seal: verify: read records: %w", err)
		}
		v.offsets = append(v.offsets, rec.Offset)
		if !haveBase {
			continue
		}
		i := rec.Offset - v.base
		if i < 0 || i >= v.sealed {
			continue
		}
		v.leaves = append(v.leaves, leafAt{i, LeafHash(v.in.Topic, v.in.Partition, rec.Offset, rec.Key, rec.Value)})
	}
	// One leaf per index: of duplicates (reported), the first read, or
	// the one the ledger has.
	slices.SortStableFunc(v.leaves, func(a, b leafAt) int { return cmp.Compare(a.i, b.i) })
	var kept []leafAt
	for _, l := range v.leaves {
		n := len(kept)
		if n == 0 || kept[n-1].i != l.i {
			kept = append(kept, l)
			continue
		}
		if h, ok := v.ledgerLeaf(l.i); ok && h == l.h {
			kept[n-1] = l
		}
	}
	v.leaves = kept
	v.r.Records = len(v.offsets)
	if !haveBase && len(v.offsets) > 0 {
		v.base = slices.Min(v.offsets)
	}
	v.r.Base = v.base
	return nil
}

// checkOffsets reports records read out of order, duplicates, gaps, and
// records outside the sealed range.
func (v *verification) checkOffsets() {
	for _, run := range runs(outOfOrder(v.offsets), v.offsets) {
		detail := "read out of offset order"
		if run.first > 0 {
			detail = fmt.Sprintf("read out of offset order, after offset %d", v.offsets[run.first-1])
		}
		v.add(Finding{Kind: KindReordered, From: run.from, To: run.to, Checkpoint: -1, Other: -1, Detail: detail})
	}

	sorted := slices.Clone(v.offsets)
	slices.Sort(sorted)
	end := v.base + v.sealed // first unsealed offset
	next := v.base
	var before, after int
	for i := 0; i < len(sorted); {
		o := sorted[i]
		j := i
		for j < len(sorted) && sorted[j] == o {
			j++
		}
		if j-i > 1 {
			v.add(Finding{Kind: KindDuplicate, From: o, To: o, Checkpoint: -1, Other: -1, Detail: fmt.Sprintf("%d records at this offset", j-i)})
		}
		switch {
		case o < v.base:
			before++
		case o > next:
			v.add(Finding{Kind: KindMissing, From: next, To: o - 1, Checkpoint: -1, Other: -1, Detail: fmt.Sprintf("no record at %d offsets the partition skips", o-next)})
		}
		if o >= end {
			after++
		}
		next = max(next, o+1)
		i = j
	}
	if next < end {
		v.add(Finding{Kind: KindMissing, From: next, To: end - 1, Checkpoint: -1, Other: -1,
			Detail: fmt.Sprintf("%d records sealed by the checkpoints are absent from the end: the partition was truncated", end-next)})
	}
	if before > 0 {
		v.add(Finding{Kind: KindUnsealed, Severity: Warning, From: sorted[0], To: min(v.base-1, sorted[len(sorted)-1]), Checkpoint: -1, Other: -1,
			Detail: fmt.Sprintf("%d records before the tree's base offset %d are not sealed", before, v.base)})
	}
	if after > 0 {
		v.add(Finding{Kind: KindUnsealed, Severity: Warning, From: max(end, sorted[0]), To: sorted[len(sorted)-1], Checkpoint: -1, Other: -1,
			Detail: fmt.Sprintf("%d records after the last checkpoint are not sealed yet", after)})
	}
}

// buildTree is the tree of the leaves leaf(0), leaf(1), ... up to the
// first leaf it does not have or the sealed size.
func (v *verification) buildTree(leaf func(i int64) (tlog.Hash, bool)) (*Tree, error) {
	t := NewTree(v.in.Topic, v.in.Partition, v.base)
	for i := int64(0); i < v.sealed; i++ {
		h, ok := leaf(i)
		if !ok {
			break
		}
		if err := t.AppendLeafHash(v.base+i, h); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (v *verification) recordLeaf(i int64) (tlog.Hash, bool) {
	k, ok := slices.BinarySearchFunc(v.leaves, i, func(l leafAt, i int64) int { return cmp.Compare(l.i, i) })
	if !ok {
		return tlog.Hash{}, false
	}
	return v.leaves[k].h, true
}

func (v *verification) ledgerLeaf(i int64) (tlog.Hash, bool) {
	if v.in.Ledger == nil {
		return tlog.Hash{}, false
	}
	return v.in.Ledger(v.base + i)
}

// matches reports whether t has c's root at c's size, and whether t is
// large enough to tell.
func matches(t *Tree, c Checkpoint) (match, known bool, err error) {
	if t == nil || c.Size > t.Size() {
		return false, false, nil
	}
	root, err := t.RootAt(c.Size)
	if err != nil {
		return false, false, err
	}
	return root == c.Root, true, nil
}

func (v *verification) buildTrees() error {
	var err error
	v.recTree, err = v.buildTree(func(i int64) (tlog.Hash, bool) {
		if h, ok := v.recordLeaf(i); ok {
			return h, true
		}
		return v.ledgerLeaf(i) // a missing record (reported): check on with the ledger's hash
	})
	if err != nil {
		return err
	}
	if v.in.Ledger != nil {
		v.ledgerTree, err = v.buildTree(v.ledgerLeaf)
		if err != nil {
			return err
		}
		for _, l := range v.leaves {
			if h, ok := v.ledgerLeaf(l.i); ok && h != l.h {
				v.exact = append(v.exact, v.base+l.i)
			}
		}
	}
	return nil
}

// checkRoots compares the trees with the trusted checkpoints.
func (v *verification) checkRoots() error {
	if err := v.classifyExact(); err != nil {
		return err
	}
	byRecords, err := v.firstMismatches(v.recTree)
	if err != nil {
		return err
	}
	for _, m := range byRecords {
		from, to := v.base+m.lo, v.base+m.c.Size-1
		if v.anyExact(from, to) {
			continue // named one by one above
		}
		v.add(Finding{Kind: KindAltered, From: from, To: to, Checkpoint: m.c.index, Other: -1,
			Detail: fmt.Sprintf("the records do not hash to the root of checkpoint #%d (size %d); the first altered record is in this range", m.c.index, m.c.Size)})
	}
	if v.ledgerTree != nil {
		byLedger, err := v.firstMismatches(v.ledgerTree)
		if err != nil {
			return err
		}
		for _, m := range byLedger {
			if v.anyExact(v.base+m.lo, v.base+m.c.Size-1) {
				continue
			}
			v.add(Finding{Kind: KindLedgerMismatch, From: v.base + m.lo, To: v.base + m.c.Size - 1, Checkpoint: m.c.index, Other: -1,
				Detail: fmt.Sprintf("the ledger's leaf hashes do not hash to the root of checkpoint #%d (size %d)", m.c.index, m.c.Size)})
		}
	}
	return nil
}

// classifyExact reports the offsets where a record and the ledger's leaf
// hash differ, each as the record's alteration or the ledger's, by which of
// the two trees has the root of the smallest trusted checkpoint covering
// the offset (an altered record when neither does).
func (v *verification) classifyExact() error {
	trusted := v.trusted()
	type verdict struct{ rec, ledger bool }
	verdicts := map[int]verdict{}
	var records, ledger []int64
	for _, o := range v.exact {
		i := o - v.base
		k := sort.Search(len(trusted), func(k int) bool { return trusted[k].Size > i })
		if k == len(trusted) {
			records = append(records, o)
			continue
		}
		c := trusted[k]
		vd, ok := verdicts[c.index]
		if !ok {
			var err error
			if vd.rec, _, err = matches(v.recTree, c.Checkpoint); err != nil {
				return err
			}
			if vd.ledger, _, err = matches(v.ledgerTree, c.Checkpoint); err != nil {
				return err
			}
			verdicts[c.index] = vd
		}
		if vd.rec && !vd.ledger {
			ledger = append(ledger, o)
		} else {
			records = append(records, o)
		}
	}
	for _, r := range offsetRuns(records) {
		v.add(Finding{Kind: KindAltered, From: r[0], To: r[1], Checkpoint: -1, Other: -1,
			Detail: "the records' leaf hashes differ from the ones the ledger stored at ingest"})
	}
	for _, r := range offsetRuns(ledger) {
		v.add(Finding{Kind: KindLedgerMismatch, From: r[0], To: r[1], Checkpoint: -1, Other: -1,
			Detail: "the ledger's stored leaf hashes differ from the records', which the checkpoints seal"})
	}
	return nil
}

// trusted is the valid checkpoints not forked, by size.
func (v *verification) trusted() []validCheckpoint {
	var out []validCheckpoint
	for _, c := range v.cps {
		if !v.forked[c.index] {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b validCheckpoint) int { return cmp.Compare(a.Size, b.Size) })
	return out
}

func (v *verification) anyExact(from, to int64) bool {
	i := sort.Search(len(v.exact), func(i int) bool { return v.exact[i] >= from })
	return i < len(v.exact) && v.exact[i] <= to
}

type mismatch struct {
	c  validCheckpoint
	lo int64 // size of the largest smaller checkpoint t matches, 0 if none
}

// firstMismatches is, in order of size, each checkpoint whose root t does
// not have while the checkpoint before it (by size) matches or there is
// none: where the first leaf that differs is.
func (v *verification) firstMismatches(t *Tree) ([]mismatch, error) {
	bySize := v.trusted()
	var out []mismatch
	var lo int64
	ok := true // the previous checkpoint by size matched
	for _, c := range bySize {
		match, known, err := matches(t, c.Checkpoint)
		if err != nil {
			return nil, err
		}
		if !known {
			break
		}
		switch {
		case match:
			lo, ok = c.Size, true
		case ok && c.Size > lo:
			out = append(out, mismatch{c, lo})
			ok = false
		case ok: // same size as a matching one: a fork, see checkConsistency
		}
	}
	return out, nil
}

// checkConsistency checks each checkpoint against the last trusted one
// published before it: the first checkpoint is trusted, and so is each one
// consistent with (or not checkable against) the trusted one before it;
// an inconsistent one is reported and not trusted (the first published of
// two forks wins, as for a log monitor).
func (v *verification) checkConsistency() error {
	v.forked = map[int]bool{}
	for k := 1; k < len(v.cps); k++ {
		var a validCheckpoint
		for j := k - 1; j >= 0; j-- {
			if !v.forked[v.cps[j].index] {
				a = v.cps[j]
				break
			}
		}
		b := v.cps[k]
		old, new := a, b
		if b.Size < a.Size {
			old, new = b, a
		}
		err, checked, e := v.consistent(old.Checkpoint, new.Checkpoint)
		if e != nil {
			return e
		}
		f := Finding{From: -1, To: -1, Checkpoint: a.index, Other: b.index}
		switch {
		case !checked:
			f.Kind, f.Severity = KindUnchecked, Warning
			f.Detail = fmt.Sprintf("no tree at hand has the root of the checkpoint of size %d", new.Size)
		case err != nil && old.Size == new.Size:
			f.Kind, f.Detail = KindInconsistent, fmt.Sprintf("two checkpoints of size %d with different roots: a fork", old.Size)
		case err != nil:
			f.Kind, f.Detail = KindInconsistent, fmt.Sprintf("the tree of size %d is not a prefix of the tree of size %d: history was rewritten", old.Size, new.Size)
		case b.Size < a.Size:
			f.Kind, f.Severity = KindOutOfOrderCheckpoint, Warning
			f.Detail = fmt.Sprintf("published after a checkpoint of size %d, of a smaller tree (size %d)", a.Size, b.Size)
		default:
			continue
		}
		if f.Kind == KindInconsistent {
			v.forked[b.index] = true
		}
		v.add(f)
	}
	return nil
}

// consistent checks old against new with a proof from a tree that has
// new's root; checked is false when there is none (and the sizes differ).
func (v *verification) consistent(old, new Checkpoint) (bad error, checked bool, err error) {
	if old.Size == new.Size || old.Size == 0 {
		return CheckConsistency(old, new, nil), true, nil
	}
	for _, t := range []*Tree{v.recTree, v.ledgerTree} {
		match, _, err := matches(t, new)
		if err != nil {
			return nil, false, err
		}
		if !match {
			continue
		}
		proof, err := t.ProveTree(old.Size, new.Size)
		if err != nil {
			return nil, false, err
		}
		return CheckConsistency(old, new, proof), true, nil
	}
	return nil, false, nil
}

// outOfOrder is the read positions of the records that are not where they
// would be in offset order (the records stably sorted by offset): for two
// swapped records, exactly those two.
func outOfOrder(offs []int64) []int {
	if slices.IsSorted(offs) {
		return nil
	}
	order := make([]int, len(offs)) // order[k]: read position of the k-th record by offset
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(offs[a], offs[b]) })
	var out []int
	for k, p := range order {
		if p != k {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

type readRun struct {
	first    int // read position of the run's first record
	from, to int64
}

// runs groups read positions that follow each other with consecutive
// offsets.
func runs(positions []int, offs []int64) []readRun {
	var out []readRun
	for k, p := range positions {
		if k > 0 && p == positions[k-1]+1 && offs[p] == offs[p-1]+1 {
			out[len(out)-1].to = offs[p]
			continue
		}
		out = append(out, readRun{first: p, from: offs[p], to: offs[p]})
	}
	return out
}

// offsetRuns groups sorted offsets into ranges of consecutive ones.
func offsetRuns(offs []int64) [][2]int64 {
	var out [][2]int64
	for _, o := range offs {
		if n := len(out); n > 0 && out[n-1][1]+1 == o {
			out[n-1][1] = o
			continue
		}
		out = append(out, [2]int64{o, o})
	}
	return out
}
