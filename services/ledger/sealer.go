package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/seal"
	"github.com/consentgate/consentgate/pkg/topicread"
)

// SealLedger is what the sealer reads from the ledger.
type SealLedger interface {
	// AuditPartitions lists the partitions of topic that have audit
	// records in the ledger.
	AuditPartitions(ctx context.Context, topic string) ([]int32, error)
	// Leaves returns up to limit leaf hashes of the partition's audit
	// records (undecodable ones included), from offset from on, in offset
	// order.
	Leaves(ctx context.Context, topic string, partition int32, from int64, limit int) ([]ledger.Leaf, error)
	// CheckpointsOfBase returns up to limit checkpoints of the partition
	// of tree base base, in (size, root) order, after the one of size
	// afterSize and root afterRoot, without notes.
	CheckpointsOfBase(ctx context.Context, topic string, partition int32, base, afterSize int64, afterRoot [32]byte, limit int) ([]ledger.Checkpoint, error)
	// CheckpointPartitions lists the partitions of topic that have
	// checkpoints in the ledger.
	CheckpointPartitions(ctx context.Context, topic string) ([]int32, error)
	// CheckpointOfBaseAbove returns the partition's first checkpoint of
	// a tree base larger than base (math.MinInt64: its first checkpoint).
	CheckpointOfBaseAbove(ctx context.Context, topic string, partition int32, base int64) (ledger.Checkpoint, bool, error)
	// Positions returns the next offset the ledger will read of every
	// partition of topic it has read.
	Positions(ctx context.Context, topic string) (map[int32]int64, error)
}

// Writer publishes checkpoints; *kafka.Writer fits it.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// TopicOffsets gives the offsets a topic's partitions hold on the brokers;
// *topicread.Client fits it.
type TopicOffsets interface {
	Offsets(ctx context.Context, topic string) (map[int32]topicread.Range, error)
}

// Sealer seals the audit: per audit partition it keeps the Merkle tree of
// the records the ledger holds (their leaf hashes, computed from the exact
// bytes read from the topic), and every Interval it signs a checkpoint of
// each tree that grew and publishes it on the checkpoints topic, which the
// ledger consumes like the other topics.
//
// Its memory does not grow with the audit: a tree is kept as its frontier
// (seal.NewFrontierTree, at most 64 hashes), which gives the current root
// and no older one, and checkpoints are read from the ledger a page at a
// time.
//
// It checks every checkpoint the ledger holds, its own and any other
// (another ledger's sealer, a forgery signed with a trusted key), against
// the ledger's records, and fails the partition closed on the first that
// they do not reproduce:
//   - checkpoints of sizes the tree has not reached are read from the
//     ledger in size order, and each is compared when the tree, growing,
//     reaches its size; until the ledger holds the records a checkpoint
//     covers, the partition is not signed, and a checkpoint that covers
//     offsets the audit topic does not have (past its end offset on the
//     brokers, two rounds in a row) fails the partition;
//   - the partitions checked are those the ledger has records or
//     checkpoints of;
//   - checkpoints the ledger reads of sizes the tree has passed reach the
//     sealer through Ingested (which must be the ledger consumer's
//     Ingested hook) and are compared with the roots it signed or checked
//     recently, else with the root recomputed from the ledger's leaf
//     hashes.
//
// It signs nothing until the ledger has read the checkpoints topic up to
// the end offsets that topic had when the sealer first read them (through
// Offsets): a new ledger reads the topic from its start, and until then a
// checkpoint published before (by another ledger, or by this one before its
// database was rebuilt) is not in the ledger to be checked, and a new
// checkpoint could contradict it.
//
// A partition that fails closed (its records in the ledger are not every
// offset in order, or do not reproduce a checkpoint) is not sealed any
// further, and Problems names it (readiness fails) until the cause is
// found.
//
// Ready (the readiness check) fails while a partition is not sealed, while
// the sealer signs nothing (before its first round, while it waits for the
// ledger to read the published checkpoints or cannot learn where they
// end), and after failedRounds failed rounds in a row; neither it nor
// Problems waits for a round.
type Sealer struct {
	Ledger           SealLedger
	Signer           note.Signer
	Writer           Writer
	Offsets          TopicOffsets
	AuditTopic       string
	CheckpointsTopic string
	Interval         time.Duration
	Log              *slog.Logger

	// mu is held by a round (SealOnce) across its reads of the ledger;
	// smu guards what readiness and the console read (problems, sealedN,
	// the round's outcome), so that they never wait for a round. problems
	// is written with both held.
	mu       sync.Mutex
	parts    map[int32]*partitionSeal
	smu      sync.Mutex
	problems map[int32]string
	sealedN  int64
	rounds   int    // rounds run
	failures int    // consecutive rounds that ended in an error
	lastErr  string // the last round's error
	behind   string // why the sealer does not sign yet ("": it does)
	// ends are the end offsets of the checkpoints topic's partitions that
	// held records when the sealer first read them; caughtUp once the
	// ledger's positions reached them.
	ends     map[int32]int64
	caughtUp bool

	// queue holds the checkpoints the ledger read since the last round, of
	// the partitions followed (those with a tree); overflow is set when
	// more than maxQueued came (the partitions' checkpoints are read from
	// the ledger again).
	qmu      sync.Mutex
	followed map[int32]bool
	queue    []ledger.Checkpoint
	overflow bool
}

// partitionSeal is the sealer's state of one audit partition.
type partitionSeal struct {
	tree *seal.Tree
	// after is where sealPartition reads the partition's checkpoints on
	// from, in the ledger's (size, root) order: every checkpoint of the
	// tree's base up to it that the ledger held when read has been checked
	// (after.size <= tree.Size()).
	after cpKey
	// sealed is the largest size of a checkpoint checked or signed: the
	// next one is signed for a larger tree only.
	sealed int64
	// waiting is the size of a checkpoint that covers records the ledger
	// does not hold yet (0: none), logged once.
	waiting int64
	// beyond is a checkpoint that was found, at the last round, to cover
	// offsets past the audit partition's end on the brokers (size 0:
	// none); found so again, it is a failure.
	beyond cpKey
	// known are the roots of recent sizes signed or checked: the sealer's
	// own checkpoints, read back by the ledger, are checked with them.
	known map[int64]tlog.Hash
	// checker recomputes roots of sizes the tree has passed from the
	// ledger's leaf hashes; kept, as it grows on for increasing sizes.
	checker *seal.Tree
}

// checkpointsPage is how many checkpoints one query reads (a variable for
// the tests).
var checkpointsPage = 1000

const (
	leavesPage = 10000
	// maxKnown bounds partitionSeal.known (pruned to half).
	maxKnown = 256
	// maxQueued bounds the checkpoints queued between two rounds.
	maxQueued = 100_000
)

// allRoots sorts after every root: (size, allRoots) is after every
// checkpoint of that size.
var allRoots = func() (r [32]byte) {
	for i := range r {
		r[i] = 0xff
	}
	return r
}()

// cpKey is a position in a partition's checkpoints of one base, ordered
// by size, then root (bytewise), as the ledger orders them.
type cpKey struct {
	size int64
	root [32]byte
}

// upTo reports whether cp is at or before k.
func (k cpKey) upTo(cp ledger.Checkpoint) bool {
	return cp.Size < k.size || cp.Size == k.size && bytes.Compare(cp.Root[:], k.root[:]) <= 0
}

// Run seals at once, then every Interval until ctx ends, and once more at
// the end.
func (s *Sealer) Run(ctx context.Context) error {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	if err := s.SealOnce(ctx); err != nil && ctx.Err() == nil {
		s.Log.Warn("seal failed; retried at the next interval", "error", err.Error())
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := s.SealOnce(fctx); err != nil {
				s.Log.Warn("final seal failed", "error", err.Error())
			}
			return nil
		case <-t.C:
			if err := s.SealOnce(ctx); err != nil && ctx.Err() == nil {
				s.Log.Warn("seal failed; retried at the next interval", "error", err.Error())
			}
		}
	}
}

// Problems lists the partitions that are not sealed any more, and why. It
// does not wait for a round.
func (s *Sealer) Problems() map[int32]string {
	s.smu.Lock()
	defer s.smu.Unlock()
	out := make(map[int32]string, len(s.problems))
	for p, m := range s.problems {
		out[p] = m
	}
	return out
}

// failedRounds is how many rounds in a row may fail (a database or the
// brokers out of reach for a moment) before readiness says so.
const failedRounds = 3

// Ready is the sealer's readiness check: an error while some audit
// partition is no longer sealed, while the sealer signs nothing (it has
// not run yet, or waits for the ledger to read the checkpoints already
// published, or cannot learn where they end), and after failedRounds
// rounds in a row failed. It does not wait for a round.
func (s *Sealer) Ready(context.Context) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	switch {
	case len(s.problems) > 0:
		return fmt.Errorf("%d audit partitions are no longer sealed: see the logs", len(s.problems))
	case s.rounds == 0:
		return errors.New("the sealer has not run yet")
	case s.behind != "":
		return fmt.Errorf("the sealer signs nothing yet: %s", s.behind)
	case s.failures >= failedRounds:
		return fmt.Errorf("the last %d rounds of the sealer failed (the last: %s): see the logs", s.failures, s.lastErr)
	}
	return nil
}

// Published is the number of checkpoints published since start.
func (s *Sealer) Published() int64 {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.sealedN
}

// Ingested is the ledger consumer's hook (Consumer.Ingested): it queues the
// checkpoints of a committed batch for the next SealOnce to check.
func (s *Sealer) Ingested(b *ledger.Batch) {
	if len(b.Checkpoints) == 0 {
		return
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	for _, cp := range b.Checkpoints {
		if cp.AuditTopic != s.AuditTopic || !s.followed[cp.Partition] || s.overflow {
			continue
		}
		if len(s.queue) >= maxQueued {
			s.queue, s.overflow = nil, true
			continue
		}
		cp.Note = nil
		s.queue = append(s.queue, cp)
	}
}

// follow makes Ingested queue the partition's checkpoints (on), or stop.
// The sealer follows a partition before it first reads the partition's
// checkpoints from the ledger, so that every checkpoint is in what it
// reads, or queued, or both.
func (s *Sealer) follow(p int32, on bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.followed == nil {
		s.followed = map[int32]bool{}
	}
	if on {
		s.followed[p] = true
	} else {
		delete(s.followed, p)
	}
}

// SealOnce checks the checkpoints the ledger read since the last call,
// brings every partition's tree up to the ledger (checking the checkpoints
// it reaches) and publishes a checkpoint for each that grew.
func (s *Sealer) SealOnce(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.sealOnce(ctx)
	s.smu.Lock()
	defer s.smu.Unlock()
	s.rounds++
	if err != nil {
		s.failures++
		s.lastErr = err.Error()
	} else {
		s.failures, s.lastErr = 0, ""
	}
	return err
}

func (s *Sealer) sealOnce(ctx context.Context) error {
	if s.parts == nil {
		s.parts = map[int32]*partitionSeal{}
	}
	if ok, err := s.readPublished(ctx); err != nil || !ok {
		return err
	}
	parts, err := s.partitions(ctx)
	if err != nil {
		return err
	}
	if err := s.checkIngested(ctx); err != nil {
		return err
	}
	var msgs []kafka.Message
	var sizes []signed
	// A partition that cannot be read this round does not hold the others
	// back: its error is returned after they are published.
	var errs []error
	for _, p := range parts {
		if _, bad := s.problems[p]; bad {
			continue
		}
		m, size, err := s.sealPartition(ctx, p)
		if err != nil {
			if s.failed(p, err) {
				continue
			}
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
			continue
		}
		if m != nil {
			msgs = append(msgs, *m)
			sizes = append(sizes, signed{p, size})
		}
	}
	if err := s.publish(ctx, msgs, sizes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

type signed struct {
	p    int32
	size int64
}

// publish writes the round's checkpoints.
func (s *Sealer) publish(ctx context.Context, msgs []kafka.Message, sizes []signed) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := s.Writer.WriteMessages(ctx, msgs...); err != nil {
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return fmt.Errorf("publish %d checkpoints: the topic %s does not exist: create it (no retention limit; LEDGER_CHECKPOINTS_TOPIC names it): %w", len(msgs), s.CheckpointsTopic, err)
		}
		return fmt.Errorf("publish %d checkpoints: %w", len(msgs), err)
	}
	for _, x := range sizes {
		if st := s.parts[x.p]; st != nil {
			st.sealed = max(st.sealed, x.size)
		}
	}
	s.smu.Lock()
	s.sealedN += int64(len(msgs))
	s.smu.Unlock()
	return nil
}

// partitions lists, in order, the audit partitions the ledger has records
// of or checkpoints of: a partition with checkpoints and no record (its
// records not read, or gone, or a checkpoint forged) is checked too.
func (s *Sealer) partitions(ctx context.Context) ([]int32, error) {
	parts, err := s.Ledger.AuditPartitions(ctx, s.AuditTopic)
	if err != nil {
		return nil, fmt.Errorf("list audit partitions: %w", err)
	}
	sealed, err := s.Ledger.CheckpointPartitions(ctx, s.AuditTopic)
	if err != nil {
		return nil, fmt.Errorf("list audit partitions: %w", err)
	}
	seen := make(map[int32]bool, len(parts)+len(sealed))
	var out []int32
	for _, p := range append(parts, sealed...) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// sealFailure is a partition that must not be sealed further.
type sealFailure struct{ msg string }

func (e *sealFailure) Error() string { return e.msg }

// failed records err as the partition's problem, and forgets its tree, if
// err is a sealFailure, and says whether it was.
func (s *Sealer) failed(p int32, err error) bool {
	var fail *sealFailure
	if !errors.As(err, &fail) {
		return false
	}
	s.smu.Lock()
	if s.problems == nil {
		s.problems = map[int32]string{}
	}
	s.problems[p] = fail.msg
	s.smu.Unlock()
	delete(s.parts, p)
	s.follow(p, false)
	s.Log.Error("audit partition no longer sealed (fail closed): find the cause before restarting the ledger", "topic", s.AuditTopic, "partition", p, "problem", fail.msg)
	return true
}

// readPublished reports whether the ledger has read the checkpoints topic
// up to the end offsets it had when the sealer first read them; it is an
// error when they cannot be read.
func (s *Sealer) readPublished(ctx context.Context) (bool, error) {
	if s.caughtUp {
		return true, nil
	}
	ok, err := s.readPublishedOnce(ctx)
	s.smu.Lock()
	switch {
	case err != nil:
		s.behind = err.Error()
	case !ok:
		s.behind = fmt.Sprintf("the ledger has not read the checkpoints already published on %s yet (it signs once it has, and has checked them)", s.CheckpointsTopic)
	default:
		s.behind = ""
	}
	s.smu.Unlock()
	return ok, err
}

func (s *Sealer) readPublishedOnce(ctx context.Context) (bool, error) {
	if s.ends == nil {
		if s.Offsets == nil {
			return false, fmt.Errorf("the sealer has no reader of the offsets of %s (LEDGER_CHECKPOINTS_TOPIC): it signs nothing", s.CheckpointsTopic)
		}
		offs, err := s.Offsets.Offsets(ctx, s.CheckpointsTopic)
		if err != nil {
			return false, fmt.Errorf("the sealer signs nothing until the ledger has read the checkpoints already published, and the offsets of %s cannot be read: check that the topic exists (LEDGER_CHECKPOINTS_TOPIC names it; create it with no retention limit) and that the brokers are reachable: %w", s.CheckpointsTopic, err)
		}
		ends := map[int32]int64{}
		for p, rg := range offs {
			if rg.End > rg.First {
				ends[p] = rg.End
			}
		}
		s.ends = ends
		if len(ends) > 0 {
			s.Log.Info("the sealer signs once the ledger has read the checkpoints already published", "topic", s.CheckpointsTopic, "partitions", len(ends))
		}
	}
	pos, err := s.Ledger.Positions(ctx, s.CheckpointsTopic)
	if err != nil {
		return false, fmt.Errorf("read the ledger's positions of %s: %w", s.CheckpointsTopic, err)
	}
	for p, end := range s.ends {
		if pos[p] < end {
			return false, nil
		}
	}
	s.caughtUp = true
	if len(s.ends) > 0 {
		s.Log.Info("the ledger has read the checkpoints already published: sealing", "topic", s.CheckpointsTopic)
	}
	return true, nil
}

// checkIngested checks the checkpoints the ledger read since the last round
// against the partitions' trees.
func (s *Sealer) checkIngested(ctx context.Context) error {
	s.qmu.Lock()
	queue, overflow := s.queue, s.overflow
	s.queue, s.overflow = nil, false
	s.qmu.Unlock()
	if overflow {
		s.Log.Warn("more checkpoints read than queued between two rounds: checking every checkpoint of the audit partitions again", "queued", maxQueued)
		ps := make([]int32, 0, len(s.parts))
		for p := range s.parts {
			ps = append(ps, p)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		for _, p := range ps {
			if err := s.recheck(ctx, p); err != nil {
				s.qmu.Lock()
				s.overflow = true // all of them again next round
				s.qmu.Unlock()
				return err
			}
		}
	}
	// By partition and size: the checker grows on.
	sort.SliceStable(queue, func(i, j int) bool {
		if queue[i].Partition != queue[j].Partition {
			return queue[i].Partition < queue[j].Partition
		}
		return queue[i].Size < queue[j].Size
	})
	for i, cp := range queue {
		st := s.parts[cp.Partition]
		if st == nil {
			continue // failed already, or its tree is not built: it reads its checkpoints when it is
		}
		var err error
		if cp.Base != st.tree.Base() {
			err = baseFailure(cp, st.tree.Base())
		} else if st.after.upTo(cp) {
			err = s.check(ctx, st, cp)
		} // else sealPartition reads it from the ledger
		if err != nil && !s.failed(cp.Partition, err) {
			s.qmu.Lock()
			s.queue = append(s.queue, queue[i:]...) // again next round
			s.qmu.Unlock()
			return err
		}
	}
	return nil
}

// recheck checks every checkpoint of the partition the tree has passed.
func (s *Sealer) recheck(ctx context.Context, p int32) error {
	st := s.parts[p]
	if st == nil {
		return nil
	}
	if err := s.checkBases(ctx, st); err != nil {
		if s.failed(p, err) {
			return nil
		}
		return err
	}
	size, root := int64(-1), allRoots
	for {
		cps, err := s.Ledger.CheckpointsOfBase(ctx, s.AuditTopic, p, st.tree.Base(), size, root, checkpointsPage)
		if err != nil {
			return fmt.Errorf("read checkpoints of partition %d: %w", p, err)
		}
		for _, cp := range cps {
			if !st.after.upTo(cp) {
				return nil // not read yet: sealPartition reads it
			}
			if err := s.check(ctx, st, cp); err != nil {
				if s.failed(p, err) {
					return nil
				}
				return err
			}
			size, root = cp.Size, cp.Root
		}
		if len(cps) < checkpointsPage {
			return nil
		}
	}
}

// checkBases fails the partition if the ledger has a checkpoint of it of
// another base than its tree's.
func (s *Sealer) checkBases(ctx context.Context, st *partitionSeal) error {
	p, base := st.tree.Partition(), st.tree.Base()
	for _, after := range []int64{math.MinInt64, base} {
		cp, ok, err := s.Ledger.CheckpointOfBaseAbove(ctx, s.AuditTopic, p, after)
		if err != nil {
			return fmt.Errorf("read checkpoints of partition %d: %w", p, err)
		}
		if ok && cp.Base != base {
			return baseFailure(cp, base)
		}
	}
	return nil
}

func baseFailure(cp ledger.Checkpoint, base int64) error {
	return &sealFailure{fmt.Sprintf("checkpoint at %s/%d@%d has base %d, the partition's tree has base %d", cp.Topic, cp.Partition, cp.Offset, cp.Base, base)}
}

// check compares cp with the partition's records if its size is one the
// tree has reached: with the tree's root, a root signed or checked
// recently, or the root recomputed from the ledger's leaves. A checkpoint
// of a larger size is left to sealPartition, which reads every checkpoint
// after st.after from the ledger as the tree grows.
func (s *Sealer) check(ctx context.Context, st *partitionSeal, cp ledger.Checkpoint) error {
	tree := st.tree
	if cp.Base != tree.Base() {
		return baseFailure(cp, tree.Base())
	}
	if cp.Size > tree.Size() {
		return nil // sealPartition reads it when the tree reaches its size
	}
	var root tlog.Hash
	var err error
	switch known, ok := st.known[cp.Size]; {
	case cp.Size == tree.Size():
		root, err = tree.Root()
	case ok:
		root = known
	default:
		root, err = s.rootAt(ctx, st, cp.Size)
	}
	if err != nil {
		return err
	}
	if root != tlog.Hash(cp.Root) {
		return &sealFailure{fmt.Sprintf("the ledger's records do not reproduce the checkpoint of size %d (offsets %d..%d)", cp.Size, tree.Base(), tree.Base()+cp.Size-1)}
	}
	st.sealed = max(st.sealed, cp.Size)
	st.remember(cp.Size, root)
	return nil
}

// remember keeps the root of size among the recent ones.
func (st *partitionSeal) remember(size int64, root tlog.Hash) {
	if st.known == nil {
		st.known = map[int64]tlog.Hash{}
	}
	st.known[size] = root
	if len(st.known) < maxKnown {
		return
	}
	sizes := make([]int64, 0, len(st.known))
	for n := range st.known {
		sizes = append(sizes, n)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	for _, n := range sizes[:len(sizes)-maxKnown/2] {
		delete(st.known, n)
	}
}

// rootAt recomputes the root of the partition's first size leaves from the
// ledger's leaf hashes, with the partition's checker tree: it grows on from
// its size, and starts again from the base for a size it has passed.
func (s *Sealer) rootAt(ctx context.Context, st *partitionSeal, size int64) (tlog.Hash, error) {
	p := st.tree.Partition()
	if st.checker == nil || st.checker.Size() > size {
		s.Log.Info("recomputing the root of a checkpoint this sealer did not sign from the ledger's records", "topic", s.AuditTopic, "partition", p, "size", size)
		st.checker = seal.NewFrontierTree(s.AuditTopic, p, st.tree.Base())
	}
	c := st.checker
	if err := s.growTo(ctx, c, size); err != nil {
		return tlog.Hash{}, err
	}
	if c.Size() != size {
		return tlog.Hash{}, &sealFailure{fmt.Sprintf("the ledger's audit records of partition %d from offset %d, sealed before, are no longer there", p, c.Next())}
	}
	return c.Root()
}

// growTo appends the ledger's leaves to tree until it has size leaves or
// the ledger has no more; a gap is a sealFailure.
func (s *Sealer) growTo(ctx context.Context, tree *seal.Tree, size int64) error {
	for tree.Size() < size {
		limit := int(min(leavesPage, size-tree.Size()))
		leaves, err := s.Ledger.Leaves(ctx, s.AuditTopic, tree.Partition(), tree.Next(), limit)
		if err != nil {
			return fmt.Errorf("read leaves of partition %d: %w", tree.Partition(), err)
		}
		for _, l := range leaves {
			if err := tree.AppendLeafHash(l.Offset, tlog.Hash(l.Hash)); err != nil {
				var oe *seal.OffsetError
				if errors.As(err, &oe) {
					return &sealFailure{fmt.Sprintf("the ledger's audit records of partition %d skip offsets %d..%d", tree.Partition(), oe.Want, oe.Got-1)}
				}
				return err
			}
		}
		if len(leaves) < limit {
			return nil
		}
	}
	return nil
}

// open starts the partition's tree: its base is the base of its first
// checkpoint in the ledger, else the offset of its first record; nil when
// the ledger has neither.
func (s *Sealer) open(ctx context.Context, p int32) (*partitionSeal, error) {
	s.follow(p, true)
	first, ok, err := s.Ledger.CheckpointOfBaseAbove(ctx, s.AuditTopic, p, math.MinInt64)
	if err != nil {
		s.follow(p, false)
		return nil, fmt.Errorf("read checkpoints of partition %d: %w", p, err)
	}
	base := first.Base
	if !ok {
		leaves, err := s.Ledger.Leaves(ctx, s.AuditTopic, p, 0, 1)
		if err != nil || len(leaves) == 0 {
			s.follow(p, false)
			if err != nil {
				return nil, fmt.Errorf("read leaves of partition %d: %w", p, err)
			}
			return nil, nil
		}
		base = leaves[0].Offset
	}
	st := &partitionSeal{tree: seal.NewFrontierTree(s.AuditTopic, p, base), after: cpKey{-1, allRoots}}
	if err := s.checkBases(ctx, st); err != nil {
		return nil, err // a failure unfollows
	}
	return st, nil
}

// checkWritten fails the partition when cp, a checkpoint of records the
// ledger does not hold yet, covers offsets the audit partition has never
// had: records are on the topic before a ledger reads them and a sealer
// signs them, so an honest checkpoint never ends past the partition's end
// offset on the brokers. (A partition the brokers do not list ends at 0.)
// It takes two rounds that find so, for a leader's high watermark may lag
// for a moment after an election. When the offsets cannot be read the
// partition keeps waiting, and the next round asks again.
func (s *Sealer) checkWritten(ctx context.Context, st *partitionSeal, cp ledger.Checkpoint) error {
	if s.Offsets == nil {
		return nil
	}
	offs, err := s.Offsets.Offsets(ctx, s.AuditTopic)
	if err != nil {
		s.Log.Warn("the audit topic's offsets cannot be read: a checkpoint past the ledger's records is not compared with them this round",
			"topic", s.AuditTopic, "partition", st.tree.Partition(), "error", err.Error())
		return nil
	}
	end := offs[st.tree.Partition()].End
	key := cpKey{cp.Size, cp.Root}
	if cp.Size <= end-cp.Base { // cp.Base+cp.Size <= end, without overflow
		st.beyond = cpKey{}
		return nil
	}
	if st.beyond != key {
		st.beyond = key
		return nil
	}
	return &sealFailure{fmt.Sprintf("a checkpoint of size %d covers offsets %d..%d of partition %d, which the audit topic ends before (at offset %d): records never written (a forged checkpoint, or the topic was recreated)",
		cp.Size, cp.Base, cp.Base+cp.Size-1, st.tree.Partition(), end)}
}

// sealPartition brings the partition's tree up to the ledger, checking on
// the way every checkpoint of a size it had not reached, and returns the
// checkpoint to publish if it grew past the last.
func (s *Sealer) sealPartition(ctx context.Context, p int32) (*kafka.Message, int64, error) {
	st := s.parts[p]
	if st == nil {
		var err error
		if st, err = s.open(ctx, p); err != nil || st == nil {
			return nil, 0, err
		}
		s.parts[p] = st
	}
	tree := st.tree
	// Every checkpoint published must be reproduced by the ledger's
	// records: the ones the tree has not reached, in size order, as it
	// grows to their size. A ledger that disagrees with its seals is not
	// sealed over.
	var waiting ledger.Checkpoint
read:
	for {
		cps, err := s.Ledger.CheckpointsOfBase(ctx, s.AuditTopic, p, tree.Base(), st.after.size, st.after.root, checkpointsPage)
		if err != nil {
			return nil, 0, fmt.Errorf("read checkpoints of partition %d: %w", p, err)
		}
		for _, cp := range cps {
			if err := s.growTo(ctx, tree, cp.Size); err != nil {
				return nil, 0, err
			}
			if cp.Size > tree.Size() {
				waiting = cp
				break read
			}
			if err := s.check(ctx, st, cp); err != nil {
				return nil, 0, err
			}
			st.after = cpKey{cp.Size, cp.Root}
		}
		if len(cps) < checkpointsPage {
			break
		}
	}
	// Every checkpoint up to the tree's size was checked. (After an error
	// above, the next round reads on after the last checked, and check
	// compares those the tree grew past with recomputed roots.)
	if waiting.Size > 0 {
		st.after = cpKey{tree.Size(), allRoots}
		if err := s.checkWritten(ctx, st, waiting); err != nil {
			return nil, 0, err
		}
		if st.waiting != waiting.Size {
			st.waiting = waiting.Size
			s.Log.Warn("a published checkpoint covers audit records the ledger does not hold yet: the partition is signed again once they are read and reproduce it",
				"topic", s.AuditTopic, "partition", p, "checkpoint_size", waiting.Size, "ledger_size", tree.Size())
		}
		return nil, 0, nil
	}
	st.waiting, st.beyond = 0, cpKey{}
	if err := s.growTo(ctx, tree, math.MaxInt64); err != nil {
		return nil, 0, err
	}
	st.after = cpKey{tree.Size(), allRoots}
	if tree.Size() <= st.sealed {
		return nil, 0, nil
	}
	r, err := tree.Root()
	if err != nil {
		return nil, 0, err
	}
	msg, err := seal.Sign(s.Signer, seal.Checkpoint{Topic: s.AuditTopic, Partition: p, Base: tree.Base(), Size: tree.Size(), Root: r})
	if err != nil {
		return nil, 0, err
	}
	st.remember(tree.Size(), r)
	return &kafka.Message{Topic: s.CheckpointsTopic, Key: []byte(seal.Origin(s.AuditTopic, p)), Value: msg}, tree.Size(), nil
}
