package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/seal"
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
	// Checkpoints returns the partition's checkpoints in the ledger, in
	// publication order.
	Checkpoints(ctx context.Context, topic string, partition int32) ([]ledger.Checkpoint, error)
}

// Writer publishes checkpoints; *kafka.Writer fits it.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Sealer seals the audit: per audit partition it keeps the Merkle tree of
// the records the ledger holds (their leaf hashes, computed from the exact
// bytes read from the topic), and every Interval it signs a checkpoint of
// each tree that grew and publishes it on the checkpoints topic, which the
// ledger consumes like the other topics.
//
// It fails closed: a partition whose records in the ledger are not every
// offset in order, or whose tree does not reproduce a checkpoint already
// published, is not sealed any further, and Problems names it (readiness
// fails) until the cause is found.
type Sealer struct {
	Ledger           SealLedger
	Signer           note.Signer
	Writer           Writer
	AuditTopic       string
	CheckpointsTopic string
	Interval         time.Duration
	Log              *slog.Logger

	mu       sync.Mutex
	trees    map[int32]*seal.Tree
	sealed   map[int32]int64 // size of the last checkpoint published
	problems map[int32]string
	sealedN  int64
}

// Run seals every Interval until ctx ends, and once more at the end.
func (s *Sealer) Run(ctx context.Context) error {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
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

// Problems lists the partitions that are not sealed any more, and why.
func (s *Sealer) Problems() map[int32]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int32]string, len(s.problems))
	for p, m := range s.problems {
		out[p] = m
	}
	return out
}

// Published is the number of checkpoints published since start.
func (s *Sealer) Published() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealedN
}

const leavesPage = 10000

// SealOnce brings every partition's tree up to the ledger and publishes a
// checkpoint for each that grew.
func (s *Sealer) SealOnce(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trees == nil {
		s.trees, s.sealed, s.problems = map[int32]*seal.Tree{}, map[int32]int64{}, map[int32]string{}
	}
	parts, err := s.Ledger.AuditPartitions(ctx, s.AuditTopic)
	if err != nil {
		return fmt.Errorf("list audit partitions: %w", err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	var msgs []kafka.Message
	var sizes []struct {
		p    int32
		size int64
	}
	for _, p := range parts {
		if _, bad := s.problems[p]; bad {
			continue
		}
		m, size, err := s.sealPartition(ctx, p)
		if err != nil {
			var fail *sealFailure
			if errors.As(err, &fail) {
				s.problems[p] = fail.msg
				s.Log.Error("audit partition no longer sealed (fail closed): find the cause before restarting the ledger", "topic", s.AuditTopic, "partition", p, "problem", fail.msg)
				continue
			}
			return err
		}
		if m != nil {
			msgs = append(msgs, *m)
			sizes = append(sizes, struct {
				p    int32
				size int64
			}{p, size})
		}
	}
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
		s.sealed[x.p] = x.size
	}
	s.sealedN += int64(len(msgs))
	return nil
}

// sealFailure is a partition that must not be sealed further.
type sealFailure struct{ msg string }

func (e *sealFailure) Error() string { return e.msg }

func (s *Sealer) sealPartition(ctx context.Context, p int32) (*kafka.Message, int64, error) {
	tree := s.trees[p]
	if tree == nil {
		cps, err := s.Ledger.Checkpoints(ctx, s.AuditTopic, p)
		if err != nil {
			return nil, 0, fmt.Errorf("read checkpoints of partition %d: %w", p, err)
		}
		var base int64
		if len(cps) > 0 {
			base = cps[0].Base
		} else {
			first, err := s.Ledger.Leaves(ctx, s.AuditTopic, p, 0, 1)
			if err != nil {
				return nil, 0, fmt.Errorf("read leaves of partition %d: %w", p, err)
			}
			if len(first) == 0 {
				return nil, 0, nil
			}
			base = first[0].Offset
		}
		tree = seal.NewTree(s.AuditTopic, p, base)
		if err := s.grow(ctx, tree); err != nil {
			return nil, 0, err
		}
		// Every checkpoint published before must be reproduced by the
		// ledger's records: a ledger that disagrees with its own seals is
		// not sealed over.
		for _, cp := range cps {
			if cp.Base != base {
				return nil, 0, &sealFailure{fmt.Sprintf("checkpoint at %s/%d@%d has base %d, the first has %d", cp.Topic, cp.Partition, cp.Offset, cp.Base, base)}
			}
			if cp.Size > tree.Size() {
				return nil, 0, &sealFailure{fmt.Sprintf("a checkpoint covers %d records, the ledger holds %d from offset %d", cp.Size, tree.Size(), base)}
			}
			root, err := tree.RootAt(cp.Size)
			if err != nil {
				return nil, 0, err
			}
			if root != tlog.Hash(cp.Root) {
				return nil, 0, &sealFailure{fmt.Sprintf("the ledger's records do not reproduce the checkpoint of size %d (offsets %d..%d)", cp.Size, base, base+cp.Size-1)}
			}
			s.sealed[p] = max(s.sealed[p], cp.Size)
		}
		s.trees[p] = tree
	} else if err := s.grow(ctx, tree); err != nil {
		return nil, 0, err
	}
	if tree.Size() <= s.sealed[p] {
		return nil, 0, nil
	}
	root, err := tree.Root()
	if err != nil {
		return nil, 0, err
	}
	msg, err := seal.Sign(s.Signer, seal.Checkpoint{Topic: s.AuditTopic, Partition: p, Base: tree.Base(), Size: tree.Size(), Root: root})
	if err != nil {
		return nil, 0, err
	}
	return &kafka.Message{Topic: s.CheckpointsTopic, Key: []byte(seal.Origin(s.AuditTopic, p)), Value: msg}, tree.Size(), nil
}

// grow appends the ledger's leaves after the tree's last.
func (s *Sealer) grow(ctx context.Context, tree *seal.Tree) error {
	for {
		leaves, err := s.Ledger.Leaves(ctx, s.AuditTopic, tree.Partition(), tree.Next(), leavesPage)
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
		if len(leaves) < leavesPage {
			return nil
		}
	}
}
