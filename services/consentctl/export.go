package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/seal"
	"github.com/consentgate/consentgate/pkg/topicread"
)

// auditSource is where verify reads the audit records and checkpoints.
type auditSource interface {
	partitions() ([]int32, error)
	notes() (map[int32][][]byte, int, error)
	records(p int32) iter.Seq2[seal.Record, error]
}

type topicSource struct {
	ctx                context.Context
	c                  *topicread.Client
	audit, checkpoints string
	offs               map[int32]topicread.Range
}

func (s *topicSource) partitions() ([]int32, error) {
	offs, err := s.c.Offsets(s.ctx, s.audit)
	if err != nil {
		return nil, err
	}
	s.offs = offs
	return sortedKeys(offs), nil
}

func (s *topicSource) notes() (map[int32][][]byte, int, error) {
	return checkpointNotes(s.ctx, s.c, s.checkpoints, s.audit)
}

func (s *topicSource) records(p int32) iter.Seq2[seal.Record, error] {
	r := s.offs[p]
	return topicRecords(s.ctx, s.c, s.audit, p, r.First, r.End)
}

// exportLine is one line of an audit export (JSON lines): an audit record
// with its partition and offset, or a checkpoint note as published.
type exportLine struct {
	Kind      string `json:"kind"` // "record" or "checkpoint"
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       []byte `json:"key,omitempty"`
	NullKey   bool   `json:"null_key,omitempty"`
	Value     []byte `json:"value"`
}

// fileSource is an audit export read back.
type fileSource struct {
	recs  map[int32][]seal.Record
	cps   map[int32][][]byte
	stray int
}

func readExport(path, auditTopic string) (*fileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--from-file: %w", err)
	}
	defer f.Close()
	s := &fileSource{recs: map[int32][]seal.Record{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	var all [][]byte
	for n := 1; sc.Scan(); n++ {
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("--from-file line %d: %v", n, err)
		}
		switch l.Kind {
		case "record":
			if l.Topic != auditTopic {
				return nil, fmt.Errorf("--from-file line %d: a record of %s, not of the audit topic %s (--audit-topic)", n, l.Topic, auditTopic)
			}
			key := l.Key
			if l.NullKey {
				key = nil
			} else if key == nil {
				key = []byte{}
			}
			s.recs[l.Partition] = append(s.recs[l.Partition], seal.Record{Offset: l.Offset, Key: key, Value: l.Value})
		case "checkpoint":
			all = append(all, l.Value)
		default:
			return nil, fmt.Errorf("--from-file line %d: kind %q is neither record nor checkpoint", n, l.Kind)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--from-file: %w", err)
	}
	s.cps, s.stray = groupNotes(all, auditTopic)
	return s, nil
}

func (s *fileSource) partitions() ([]int32, error) { return sortedKeys(s.recs), nil }

func (s *fileSource) notes() (map[int32][][]byte, int, error) { return s.cps, s.stray, nil }

func (s *fileSource) records(p int32) iter.Seq2[seal.Record, error] {
	return seal.RecordSlice(s.recs[p])
}

func cmdAuditExport(ctx context.Context, e *env, args []string) error {
	fs := e.flags("audit-export", "--brokers B --out FILE")
	var sf sealFlags
	sf.add(fs, e)
	out := fs.String("out", "", "file for the export (JSON lines; mode 0600, never replaced): every audit record with its partition and offset, and every checkpoint")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return errors.New("--out is required")
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	var records, checkpoints int
	err = writeFile(*out, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		dump := func(topic, kind string, count *int) error {
			offs, err := c.Offsets(ctx, topic)
			if errors.Is(err, topicread.ErrNoTopic) && kind == "checkpoint" {
				return nil
			}
			if err != nil {
				return err
			}
			for _, p := range sortedKeys(offs) {
				r := offs[p]
				if err := c.Read(ctx, topic, p, r.First, r.End, func(m kafka.Message) error {
					*count++
					return enc.Encode(exportLine{Kind: kind, Topic: topic, Partition: p, Offset: m.Offset, Key: m.Key, NullKey: m.Key == nil, Value: m.Value})
				}); err != nil {
					return err
				}
			}
			return nil
		}
		if err := dump(sf.auditTopic, "record", &records); err != nil {
			return err
		}
		return dump(sf.checkpointsTopic, "checkpoint", &checkpoints)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d audit records and %d checkpoints written to %s\n", records, checkpoints, *out)
	return nil
}
