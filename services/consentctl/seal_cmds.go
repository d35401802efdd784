package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/seal"
	"github.com/consentgate/consentgate/pkg/topicread"
)

func cmdKeygen(ctx context.Context, e *env, args []string) error {
	fs := e.flags("keygen", "--out FILE [--pub FILE]")
	out := fs.String("out", "", "file for the signing key (mode 0600, never replaced): give it to the ledger as LEDGER_SEAL_KEY_FILE and to nobody else")
	pub := fs.String("pub", "", "file for the verifier key (else it is printed): give it to whoever verifies (consentctl verify --verifier-keys-file)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return errors.New("--out is required: the signing key is never printed")
	}
	skey, vkey, err := seal.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := writeFile(*out, func(w io.Writer) error { _, err := io.WriteString(w, skey+"\n"); return err }); err != nil {
		return err
	}
	if *pub != "" {
		if err := os.WriteFile(*pub, []byte(vkey+"\n"), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "signing key written to %s, verifier key to %s\n", *out, *pub)
		return nil
	}
	fmt.Fprintln(e.stdout, vkey)
	return nil
}

// sealFlags are the flags of the commands that check checkpoints.
type sealFlags struct {
	brokers, auditTopic, checkpointsTopic, verifierKeys string
	kafka                                               kafkaFlags
}

func (s *sealFlags) add(fs *flag.FlagSet, e *env) {
	fs.StringVar(&s.brokers, "brokers", e.getenv("KAFKA_BROKERS"), "Kafka brokers, comma-separated (env KAFKA_BROKERS)")
	fs.StringVar(&s.auditTopic, "audit-topic", envOr(e, "LEDGER_AUDIT_TOPIC", "consent.audit"), "the audit topic (env LEDGER_AUDIT_TOPIC)")
	fs.StringVar(&s.checkpointsTopic, "checkpoints-topic", envOr(e, "LEDGER_CHECKPOINTS_TOPIC", "consent.audit.checkpoints"), "the checkpoints topic (env LEDGER_CHECKPOINTS_TOPIC)")
	fs.StringVar(&s.verifierKeys, "verifier-keys-file", e.getenv("LEDGER_VERIFIER_KEYS_FILE"), "trusted verifier keys, one per line (from consentctl keygen; env LEDGER_VERIFIER_KEYS_FILE)")
	s.kafka.add(fs, e)
}

func envOr(e *env, name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (s *sealFlags) verifiers() (note.Verifiers, error) {
	if s.verifierKeys == "" {
		return nil, errors.New("--verifier-keys-file is required: the verifier key of the sealer (consentctl keygen printed it)")
	}
	b, err := os.ReadFile(s.verifierKeys)
	if err != nil {
		return nil, fmt.Errorf("--verifier-keys-file: %w", err)
	}
	return seal.ParseVerifiers(b)
}

func (s *sealFlags) client() (*topicread.Client, error) {
	if s.brokers == "" {
		return nil, errors.New("--brokers (or KAFKA_BROKERS) is required")
	}
	return s.kafka.client(s.brokers)
}

// checkpointNotes reads the checkpoints topic and returns the notes per
// audit partition, in publication order, and how many records name no
// partition of the audit topic (malformed, or of another topic).
func checkpointNotes(ctx context.Context, c *topicread.Client, topic, auditTopic string) (map[int32][][]byte, int, error) {
	offs, err := c.Offsets(ctx, topic)
	if errors.Is(err, topicread.ErrNoTopic) {
		return map[int32][][]byte{}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var all [][]byte
	for _, p := range sortedKeys(offs) {
		r := offs[p]
		err := c.Read(ctx, topic, p, r.First, r.End, func(m kafka.Message) error {
			all = append(all, append([]byte(nil), m.Value...))
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	out, stray := groupNotes(all, auditTopic)
	return out, stray, nil
}

// groupNotes sorts checkpoint notes by the audit partition their origin
// line names, keeping their order; notes of no partition of auditTopic are
// counted as stray.
func groupNotes(all [][]byte, auditTopic string) (map[int32][][]byte, int) {
	out := map[int32][][]byte{}
	stray := 0
	prefix := seal.Origin(auditTopic, 0)
	prefix = prefix[:len(prefix)-1]
	for _, v := range all {
		line, _, _ := bytes.Cut(v, []byte("\n"))
		n, err := strconv.ParseInt(strings.TrimPrefix(string(line), prefix), 10, 32)
		if !strings.HasPrefix(string(line), prefix) || err != nil || n < 0 {
			stray++
			continue
		}
		out[int32(n)] = append(out[int32(n)], v)
	}
	return out, stray
}

func cmdVerify(ctx context.Context, e *env, args []string) error {
	fs := e.flags("verify", "--brokers B --verifier-keys-file F [--partition N] [--ledger]")
	var sf sealFlags
	sf.add(fs, e)
	var lf ledgerFlags
	lf.add(fs, e)
	partition := fs.Int("partition", -1, "verify only this audit partition")
	withLedger := fs.Bool("ledger", false, "also compare the ledger's copy (--dsn): names every altered record, and whether the topic or the ledger changed")
	fromFile := fs.String("from-file", "", "verify the audit export in this file (consentctl audit-export) instead of the topics: offline, e.g. a backup")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	verifiers, err := sf.verifiers()
	if err != nil {
		return err
	}
	var src auditSource
	if *fromFile != "" {
		if src, err = readExport(*fromFile, sf.auditTopic); err != nil {
			return err
		}
	} else {
		c, err := sf.client()
		if err != nil {
			return err
		}
		src = &topicSource{ctx: ctx, c: c, audit: sf.auditTopic, checkpoints: sf.checkpointsTopic}
	}
	var store *ledger.Store
	if *withLedger {
		if store, err = lf.open(ctx); err != nil {
			return err
		}
		defer store.Close()
	}
	parts, err := src.partitions()
	if err != nil {
		return fmt.Errorf("audit topic: %w", err)
	}
	notes, stray, err := src.notes()
	if err != nil {
		return fmt.Errorf("checkpoints: %w", err)
	}
	if store != nil {
		// The ledger's checkpoints count too: a copy of the audit cut short
		// together with the checkpoints after the cut holds nothing that
		// says more was sealed, the ledger does.
		lparts, err := store.AuditPartitions(ctx, sf.auditTopic)
		if err != nil {
			return err
		}
		for _, p := range lparts {
			if !slices.Contains(parts, p) {
				parts = append(parts, p)
			}
		}
		for _, p := range parts {
			cps, err := store.Checkpoints(ctx, sf.auditTopic, p)
			if err != nil {
				return err
			}
			have := make(map[string]bool, len(notes[p]))
			for _, n := range notes[p] {
				have[string(n)] = true
			}
			for _, c := range cps {
				if len(c.Note) > 0 && !have[string(c.Note)] {
					have[string(c.Note)] = true
					notes[p] = append(notes[p], c.Note)
				}
			}
		}
	}
	// A partition with checkpoints is verified even when no record of it
	// was read (an export without it, a topic recreated with fewer
	// partitions): its checkpoints say which records are missing.
	for p := range notes {
		if !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	var reports []*seal.Report
	failed := false
	for _, p := range parts {
		if *partition >= 0 && p != int32(*partition) {
			continue
		}
		in := seal.Input{Topic: sf.auditTopic, Partition: p, Checkpoints: notes[p], Verifiers: verifiers, Records: src.records(p)}
		if store != nil {
			hashes, err := ledgerHashes(ctx, store, sf.auditTopic, p)
			if err != nil {
				return err
			}
			in.Ledger = func(off int64) (tlog.Hash, bool) { h, ok := hashes[off]; return h, ok }
		}
		rep, err := seal.Verify(in)
		if err != nil {
			return fmt.Errorf("verify %s/%d: %w", sf.auditTopic, p, err)
		}
		if len(in.Checkpoints) == 0 && rep.Records > 0 {
			failed = true // records no checkpoint covers at all: nothing proves them
		}
		failed = failed || !rep.OK()
		reports = append(reports, rep)
	}
	if lf.json {
		if err := writeJSON(e.stdout, map[string]any{"reports": reports, "stray_checkpoint_records": stray}); err != nil {
			return err
		}
	} else {
		for _, rep := range reports {
			fmt.Fprint(e.stdout, rep.String())
			if rep.Checkpoints == 0 && rep.Records > 0 {
				fmt.Fprintln(e.stdout, "  no checkpoint of this partition: its records are not sealed (is the ledger's sealer running with LEDGER_SEAL_KEY_FILE?)")
			}
		}
		if stray > 0 {
			fmt.Fprintf(e.stdout, "%d records of %s are not checkpoints of %s\n", stray, sf.checkpointsTopic, sf.auditTopic)
		}
	}
	if failed {
		return fmt.Errorf("%w: the audit did not verify", errFound)
	}
	return nil
}

// topicRecords reads a partition's records for seal.Verify.
func topicRecords(ctx context.Context, c *topicread.Client, topic string, p int32, from, to int64) iter.Seq2[seal.Record, error] {
	return func(yield func(seal.Record, error) bool) {
		stop := errors.New("stop")
		err := c.Read(ctx, topic, p, from, to, func(m kafka.Message) error {
			if !yield(seal.Record{Offset: m.Offset, Key: m.Key, Value: m.Value}, nil) {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			yield(seal.Record{}, err)
		}
	}
}

func ledgerHashes(ctx context.Context, s *ledger.Store, topic string, p int32) (map[int64]tlog.Hash, error) {
	out := map[int64]tlog.Hash{}
	var from int64
	for {
		leaves, err := s.Leaves(ctx, topic, p, from, 50000)
		if err != nil {
			return nil, err
		}
		for _, l := range leaves {
			out[l.Offset] = tlog.Hash(l.Hash)
		}
		if len(leaves) < 50000 {
			return out, nil
		}
		from = leaves[len(leaves)-1].Offset + 1
	}
}

func cmdProve(ctx context.Context, e *env, args []string) error {
	fs := e.flags("prove", "<event id> --verifier-keys-file F [--out FILE]")
	var sf sealFlags
	sf.add(fs, e)
	var lf ledgerFlags
	lf.add(fs, e)
	out := fs.String("out", "", "write the proof to this file instead of stdout")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("give one event id")
	}
	verifiers, err := sf.verifiers()
	if err != nil {
		return err
	}
	s, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	coords, err := s.AuditsOfEvent(ctx, pos[0])
	if err != nil {
		return err
	}
	var audits []ledger.Coords
	for _, c := range coords {
		if c.Topic == sf.auditTopic {
			audits = append(audits, c)
		}
	}
	if len(audits) == 0 {
		return fmt.Errorf("%w: no audit record of that event id on %s in the ledger", errFound, sf.auditTopic)
	}
	var proofs [][]byte
	for _, a := range audits {
		p, err := prove(ctx, s, a, verifiers)
		if err != nil {
			return err
		}
		proofs = append(proofs, p)
	}
	w := e.stdout
	if *out != "" {
		var buf bytes.Buffer
		for _, p := range proofs {
			buf.Write(p)
		}
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%d proofs written to %s\n", len(proofs), *out)
		return nil
	}
	for _, p := range proofs {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// prove builds the tree of the audit partition from the ledger's leaf
// hashes and proves the record at a against the newest checkpoint that
// covers it.
func prove(ctx context.Context, s *ledger.Store, a ledger.Coords, verifiers note.Verifiers) ([]byte, error) {
	cps, err := s.Checkpoints(ctx, a.Topic, a.Partition)
	if err != nil {
		return nil, err
	}
	var best *ledger.Checkpoint
	for i := range cps {
		c := &cps[i]
		if a.Offset >= c.Base && a.Offset < c.Base+c.Size && (best == nil || c.Size > best.Size) {
			best = c
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: no checkpoint covers %s/%d@%d yet (the sealer signs one every LEDGER_SEAL_INTERVAL)", errFound, a.Topic, a.Partition, a.Offset)
	}
	tree := seal.NewTree(a.Topic, a.Partition, best.Base)
	from := best.Base
	for tree.Size() < best.Size {
		leaves, err := s.Leaves(ctx, a.Topic, a.Partition, from, 50000)
		if err != nil {
			return nil, err
		}
		if len(leaves) == 0 {
			break
		}
		for _, l := range leaves {
			if tree.Size() >= best.Size {
				break
			}
			if err := tree.AppendLeafHash(l.Offset, tlog.Hash(l.Hash)); err != nil {
				return nil, fmt.Errorf("the ledger's audit records of %s/%d: %w", a.Topic, a.Partition, err)
			}
		}
		from = leaves[len(leaves)-1].Offset + 1
	}
	p, err := tree.Prove(a.Offset, best.Note, verifiers)
	if err != nil {
		return nil, err
	}
	return p.Encode()
}

func cmdVerifyProof(ctx context.Context, e *env, args []string) error {
	fs := e.flags("verify-proof", "FILE --verifier-keys-file F [--brokers B]")
	var sf sealFlags
	sf.add(fs, e)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("give the proof file (- for stdin)")
	}
	var data []byte
	if pos[0] == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, seal.MaxProofSize*64))
	} else {
		data, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return err
	}
	verifiers, err := sf.verifiers()
	if err != nil {
		return err
	}
	proofs := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	bad := 0
	for _, raw := range proofs {
		p, err := seal.DecodeProof(raw)
		if err != nil {
			return err
		}
		var rec *seal.Record
		if sf.brokers != "" {
			c, err := sf.client()
			if err != nil {
				return err
			}
			err = c.Read(ctx, p.Topic, p.Partition, p.Offset, p.Offset+1, func(m kafka.Message) error {
				rec = &seal.Record{Offset: m.Offset, Key: m.Key, Value: m.Value}
				return nil
			})
			if err != nil {
				return err
			}
			if rec == nil {
				fmt.Fprintf(e.stdout, "FAILED %s/%d@%d: the record is no longer on the topic\n", p.Topic, p.Partition, p.Offset)
				bad++
				continue
			}
		}
		_, c, err := seal.VerifyProof(raw, rec, verifiers)
		if err != nil {
			fmt.Fprintf(e.stdout, "FAILED %s/%d@%d: %v\n", p.Topic, p.Partition, p.Offset, err)
			bad++
			continue
		}
		what := "a record with the proof's leaf hash"
		if rec != nil {
			what = "the record on the topic"
		}
		fmt.Fprintf(e.stdout, "OK %s/%d@%d: %s is leaf %d of the tree of %d records (offsets %d..%d) signed in the checkpoint\n",
			p.Topic, p.Partition, p.Offset, what, p.Index, c.Size, c.Base, c.Base+c.Size-1)
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d of %d proofs did not verify", errFound, bad, len(proofs))
	}
	return nil
}
