package ledger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
)

// table is one table Ingest writes: its columns in the order of the rows
// built for it.
type table struct {
	name string
	cols []string
	// conflict is what an INSERT of a row already stored does; empty: ON
	// CONFLICT DO NOTHING.
	conflict string
}

// onConflict is t's ON CONFLICT clause.
func (t table) onConflict() string {
	if t.conflict != "" {
		return " " + t.conflict
	}
	return " ON CONFLICT DO NOTHING"
}

var (
	tChanges = table{"consent_changes", []string{"topic", "partition_id", "record_offset", "record_time", "change_id", "subject_id",
		"purpose", "action", "legal_basis", "excluded_categories", "source", "notice_version", "captured_at", "expires_at"}, ""}
	tAudits = table{"audit_records", []string{"topic", "partition_id", "record_offset", "record_time", "leaf_hash", "record_version",
		"event_id", "subject_id", "outcome", "dead_letter_reason", "event_schema", "policy_version", "source_topic",
		"source_partition", "source_offset", "processed_at", "decisions", "decision_digest"}, ""}
	tOutputs = table{"audit_outputs", []string{"processed_at", "stream", "topic", "partition_id", "record_offset", "subject_id",
		"source_topic", "event_schema", "decision", "treated_fields"}, ""}
	tNotices = table{"revocation_notices", []string{"topic", "partition_id", "record_offset", "record_time", "notice_id", "subject_id",
		"purposes", "action", "since", "change_id", "reason", "issued_at"}, ""}
	tDeadLetters = table{"dead_letters", []string{"topic", "partition_id", "record_offset", "record_time", "reason", "error_code",
		"source_topic", "source_partition", "source_offset", "event_id"}, ""}
	tUndecodable = table{"undecodable_records", []string{"topic", "partition_id", "record_offset", "record_time", "error", "leaf_hash"}, ""}
	tCheckpoints = table{"audit_checkpoints", []string{"audit_topic", "audit_partition", "tree_base", "tree_size", "root_hash", "note",
		"published_at", "topic", "partition_id", "record_offset", "record_time"}, ""}
	// A data key's row is written by its record and by its tombstone,
	// each filling its own columns once: the first record and the first
	// tombstone read are kept (SET reads the stored row's old values on
	// both backends).
	tDataKeys = table{"data_keys", []string{"topic", "partition_id", "key_id", "subject_id", "created_at", "created_offset",
		"destroyed_at", "destroyed_offset"}, `ON CONFLICT (topic, partition_id, key_id, subject_id) DO UPDATE SET
created_at = CASE WHEN data_keys.created_offset IS NULL THEN excluded.created_at ELSE data_keys.created_at END,
created_offset = COALESCE(data_keys.created_offset, excluded.created_offset),
destroyed_at = CASE WHEN data_keys.destroyed_offset IS NULL THEN excluded.destroyed_at ELSE data_keys.destroyed_at END,
destroyed_offset = COALESCE(data_keys.destroyed_offset, excluded.destroyed_offset)`}
	tKeyErasures = table{"key_erasures", []string{"topic", "partition_id", "record_offset", "record_time", "subject_id"}, ""}
)

// tableRows are the rows of one table in a batch.
type tableRows struct {
	t    table
	rows [][]any
}

// StreamDecision is the decision of one stream in an audit record, as the
// ledger stores it (the JSON of audit_records.decisions) and returns it.
type StreamDecision struct {
	Stream          string       `json:"stream"`
	Purposes        []string     `json:"purposes"`
	Decision        string       `json:"decision"`
	Reason          string       `json:"reason"`
	DecidingPurpose string       `json:"deciding_purpose"`
	TreatedFields   []string     `json:"treated_fields"`
	Consents        []ConsentRef `json:"consents"`
}

// ConsentRef is the consent change a purpose's verdict rested on; ChangeID
// empty (and CapturedAt nil) when there was none.
type ConsentRef struct {
	Purpose    string `json:"purpose"`
	ChangeID   string `json:"change_id,omitempty"`
	CapturedAt *int64 `json:"captured_at_ms,omitempty"`
}

// published reports whether a decision put the event on its stream.
func published(d string) bool {
	return d == string(decision.Passed) || d == string(decision.Redacted)
}

func decisionsOf(r *audit.Record) []StreamDecision {
	out := make([]StreamDecision, 0, len(r.Decisions))
	for _, d := range r.Decisions {
		sd := StreamDecision{
			Stream: storeText(d.Stream), Purposes: storeTexts(d.Purposes), Decision: storeText(string(d.Decision)), Reason: storeText(d.Reason),
			DecidingPurpose: storeText(d.DecidingPurpose), TreatedFields: storeTexts(d.TreatedFields), Consents: []ConsentRef{},
		}
		for _, c := range d.Consents {
			ref := ConsentRef{Purpose: storeText(c.Purpose), ChangeID: storeText(c.ChangeID)}
			if !c.CapturedAt.IsZero() {
				t := c.CapturedAt.UnixMilli()
				ref.CapturedAt = &t
			}
			sd.Consents = append(sd.Consents, ref)
		}
		out = append(out, sd)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func jsonList(s []string) string {
	b, _ := json.Marshal(storeTexts(s))
	return string(b)
}

// digest is the 64-bit FNV-1a hash of what two audit records of one input
// event must agree on: outcome, dead-letter reason and decisions.
func digest(outcome, reason, decisions string) int64 {
	h := fnv.New64a()
	h.Write([]byte(outcome))
	h.Write([]byte{0})
	h.Write([]byte(reason))
	h.Write([]byte{0})
	h.Write([]byte(decisions))
	return int64(h.Sum64())
}

// rowsOf turns a batch into table rows, in the order Ingest writes them.
func rowsOf(b *Batch) ([]tableRows, error) {
	var out []tableRows
	add := func(t table, rows [][]any) {
		if len(rows) > 0 {
			out = append(out, tableRows{t, rows})
		}
	}
	var rows [][]any
	for _, c := range b.Changes {
		var exp any
		if !c.ExpiresAt.IsZero() {
			exp = c.ExpiresAt.UnixMilli()
		}
		rows = append(rows, []any{c.Topic, c.Partition, c.Offset, ms(c.Time), storeText(c.ChangeID), storeText(c.SubjectID), storeText(c.Purpose),
			storeText(c.Action), storeText(c.LegalBasis), jsonList(c.ExcludedCategories), storeText(c.Source), storeText(c.NoticeVersion),
			ms(c.CapturedAt), exp})
	}
	add(tChanges, rows)

	rows = nil
	var outputs [][]any
	for i := range b.Audits {
		a := &b.Audits[i]
		r := &a.Record
		// processed_at is a required long of the record: the zero time
		// is 0001-01-01 (-62135596800000 ms), a date like any other, and
		// is stored as such. Refusing it refused the batch on every try,
		// and the consumer stopped there for good.
		ds := decisionsOf(r)
		dj, err := json.Marshal(ds)
		if err != nil {
			return nil, err
		}
		at := r.ProcessedAt.UnixMilli()
		outcome, reason := storeText(string(r.Outcome)), storeText(r.DeadLetterReason)
		subject, schema, source := storeText(r.SubjectID), storeText(r.EventSchema), storeText(r.SourceTopic)
		rows = append(rows, []any{a.Topic, a.Partition, a.Offset, ms(a.Time), a.LeafHash[:], int32(r.Version), storeText(r.EventID), subject,
			outcome, reason, schema, storeText(r.PolicyVersion), source, r.SourcePartition, r.SourceOffset,
			at, string(dj), digest(outcome, reason, string(dj))})
		seen := map[string]bool{}
		for _, d := range ds {
			if !published(d.Decision) || seen[d.Stream] {
				continue
			}
			seen[d.Stream] = true
			outputs = append(outputs, []any{at, d.Stream, a.Topic, a.Partition, a.Offset, subject, source, schema,
				d.Decision, jsonList(d.TreatedFields)})
		}
	}
	add(tAudits, rows)
	add(tOutputs, outputs)

	rows = nil
	for _, n := range b.Notices {
		rows = append(rows, []any{n.Topic, n.Partition, n.Offset, ms(n.Time), storeText(n.NoticeID), storeText(n.SubjectID), jsonList(n.Purposes),
			storeText(n.Action), ms(n.Since), storeText(n.ChangeID), storeText(n.Reason), ms(n.IssuedAt)})
	}
	add(tNotices, rows)

	rows = nil
	for _, d := range b.DeadLetters {
		rows = append(rows, []any{d.Topic, d.Partition, d.Offset, ms(d.Time), storeText(d.Reason), storeText(d.Error), storeText(d.SourceTopic),
			d.SourcePartition, d.SourceOffset, storeText(d.EventID)})
	}
	add(tDeadLetters, rows)

	rows = nil
	for _, u := range b.Undecodable {
		var leaf any
		if u.LeafHash != nil {
			leaf = u.LeafHash
		}
		rows = append(rows, []any{u.Topic, u.Partition, u.Offset, ms(u.Time), storeText(u.Error), leaf})
	}
	add(tUndecodable, rows)

	rows = nil
	for _, c := range b.Checkpoints {
		note := c.Note
		if note == nil {
			note = []byte{}
		}
		rows = append(rows, []any{c.AuditTopic, c.Partition, c.Base, c.Size, c.Root[:], note, ms(c.PublishedAt), c.Coord.Topic,
			c.Coord.Partition, c.Coord.Offset, ms(c.Coord.Time)})
	}
	add(tCheckpoints, rows)

	add(tDataKeys, dataKeyRows(b.DataKeys))

	rows = nil
	for _, e := range b.KeyErasures {
		rows = append(rows, []any{e.Topic, e.Partition, e.Offset, ms(e.Time), storeText(e.SubjectID)})
	}
	add(tKeyErasures, rows)
	return out, nil
}

// dataKeyRows merges the records of each data key in a batch into one row
// (an INSERT … ON CONFLICT DO UPDATE may not meet a row twice on
// PostgreSQL), keeping the first record and the first tombstone of each,
// in the order read.
func dataKeyRows(events []DataKeyEvent) [][]any {
	type pk struct {
		topic     string
		partition int32
		key, subj string
	}
	at := map[pk]int{}
	var rows [][]any
	for _, e := range events {
		k := pk{e.Topic, e.Partition, e.KeyID, storeText(e.SubjectID)}
		i, ok := at[k]
		if !ok {
			i = len(rows)
			at[k] = i
			rows = append(rows, []any{e.Topic, e.Partition, e.KeyID, k.subj, nil, nil, nil, nil})
		}
		col := 4 // created_at, created_offset
		if e.Destroyed {
			col = 6 // destroyed_at, destroyed_offset
		}
		if rows[i][col+1] == nil {
			rows[i][col], rows[i][col+1] = ms(e.Time), e.Offset
		}
	}
	return rows
}

// positionSQL moves a position forward, never back, with the hash of the
// record before it.
const positionSQL = `INSERT INTO ledger_positions (topic, partition_id, next_offset, last_hash) VALUES (?, ?, ?, ?)
ON CONFLICT (topic, partition_id) DO UPDATE SET next_offset = excluded.next_offset, last_hash = excluded.last_hash
WHERE excluded.next_offset > ledger_positions.next_offset`

// guardSQL reads, for one partition, its stored position (0 when none),
// whether it is held at an offset before the batch's position (a batch up
// to the hold's offset holds records read before the partition was found
// to differ: the consumer holds a partition at the offset after the last
// record it read, and the batches of those records may commit after the
// hold), and whether any row of a table of records is stored at or past
// the stored position. Every stored row of a partition is before its
// position (they are written in one transaction), so a row at or past it
// means the position was removed or lowered while the rows stayed: rows
// read from there could collide with stored rows of other records.
const guardSQL = `WITH p AS (SELECT COALESCE((SELECT next_offset FROM ledger_positions WHERE topic = ? AND partition_id = ?), 0) AS n)
SELECT p.n,
  (SELECT COUNT(*) FROM ledger_holds WHERE topic = ? AND partition_id = ? AND next_offset < ?),
  CASE WHEN EXISTS (SELECT 1 FROM consent_changes WHERE topic = ? AND partition_id = ? AND record_offset >= p.n)
    OR EXISTS (SELECT 1 FROM audit_records WHERE topic = ? AND partition_id = ? AND record_offset >= p.n)
    OR EXISTS (SELECT 1 FROM revocation_notices WHERE topic = ? AND partition_id = ? AND record_offset >= p.n)
    OR EXISTS (SELECT 1 FROM dead_letters WHERE topic = ? AND partition_id = ? AND record_offset >= p.n)
    OR EXISTS (SELECT 1 FROM undecodable_records WHERE topic = ? AND partition_id = ? AND record_offset >= p.n)
    OR EXISTS (SELECT 1 FROM data_keys WHERE topic = ? AND partition_id = ? AND created_offset >= p.n)
    OR EXISTS (SELECT 1 FROM data_keys WHERE topic = ? AND partition_id = ? AND destroyed_offset >= p.n)
    OR EXISTS (SELECT 1 FROM key_erasures WHERE topic = ? AND partition_id = ? AND record_offset >= p.n)
  THEN 1 ELSE 0 END
FROM p`

func guardArgs(p Position) []any {
	args := make([]any, 0, 21)
	for i := range 10 {
		args = append(args, p.Topic, p.Partition)
		if i == 1 {
			args = append(args, p.Next)
		}
	}
	return args
}

// guard turns what guardSQL read of p into the refusal of the batch, or nil.
func guard(p Position, next, held, past int64) error {
	switch {
	case held > 0:
		return &PartitionError{Topic: p.Topic, Partition: p.Partition, Reason: "the partition is held (ledger_holds): the ledger writes nothing of it past the offset it was held at"}
	case past > 0:
		return &PartitionError{Topic: p.Topic, Partition: p.Partition, Reason: fmt.Sprintf(
			"rows are stored at or past the stored position %d (the position was removed or lowered while its rows stayed): "+
				"records read from there would collide with them and be dropped", next)}
	}
	return nil
}

// RecordHash identifies a record of a partition for Position.Last: SHA-256
// of its key, value, timestamp (milliseconds) and headers, each length
// prefixed. Two records at the same offset with the same hash are taken
// for the same record.
func RecordHash(m kafka.Message) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte, isNil bool) {
		if isNil {
			binary.BigEndian.PutUint64(n[:], ^uint64(0))
			h.Write(n[:])
			return
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	h.Write([]byte("consentgate ledger record v1\x00"))
	field(m.Key, m.Key == nil)
	field(m.Value, m.Value == nil)
	binary.BigEndian.PutUint64(n[:], uint64(m.Time.UnixMilli()))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(len(m.Headers)))
	h.Write(n[:])
	for _, hd := range m.Headers {
		field([]byte(hd.Key), false)
		field(hd.Value, hd.Value == nil)
	}
	return h.Sum(nil)
}

// Ingest writes every row of b and every position of b in one transaction:
// all or nothing. A row whose (topic, partition, offset) is already in the
// ledger is left as it is; a position only moves forward. A batch with a
// position of a partition that is held at an offset before it, or of one
// with rows stored at or past its stored position, is refused with a
// *PartitionError: its rows
// could collide with rows of other records and be dropped without a word.
// On PostgreSQL the rows go through COPY into temporary tables and one
// INSERT … SELECT … ON CONFLICT DO NOTHING (DO UPDATE for data_keys) per table; on SQLite through
// prepared multi-row INSERTs, one writer at a time.
func (s *Store) Ingest(ctx context.Context, b *Batch) error {
	if b == nil {
		return nil
	}
	for _, p := range b.Positions {
		if p.Topic == "" || p.Partition < 0 || p.Next < 0 || (p.Last != nil && len(p.Last) != sha256.Size) {
			return fmt.Errorf("ledger: ingest: invalid position (topic %q, partition %d, next %d, hash of %d bytes)", p.Topic, p.Partition, p.Next, len(p.Last))
		}
	}
	tabs, err := rowsOf(b)
	if err != nil {
		return fmt.Errorf("ledger: ingest: %w", err)
	}
	if s.pool != nil {
		err = s.ingestPostgres(ctx, tabs, b.Positions)
	} else {
		err = s.ingestSQLite(ctx, tabs, b.Positions)
	}
	if err != nil {
		return fmt.Errorf("ledger: ingest: %w", err)
	}
	return nil
}

// sqliteMaxVars bounds the placeholders of one statement (SQLite's limit
// is 32766).
const sqliteMaxVars = 30000

// sqliteMaxRows bounds the rows of one multi-row INSERT.
const sqliteMaxRows = 256

func (s *Store) ingestSQLite(ctx context.Context, tabs []tableRows, positions []Position) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, p := range positions {
		var next, held, past int64
		if err := tx.QueryRowContext(ctx, guardSQL, guardArgs(p)...).Scan(&next, &held, &past); err != nil {
			return fmt.Errorf("ledger_positions: %w", err)
		}
		if err := guard(p, next, held, past); err != nil {
			return err
		}
	}
	for _, tr := range tabs {
		if err := insertMulti(ctx, tx, tr); err != nil {
			return fmt.Errorf("%s: %w", tr.t.name, err)
		}
	}
	if len(positions) > 0 {
		st, err := tx.PrepareContext(ctx, positionSQL)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, p := range positions {
			if _, err := st.ExecContext(ctx, p.Topic, p.Partition, p.Next, hashArg(p.Last)); err != nil {
				return fmt.Errorf("ledger_positions: %w", err)
			}
		}
	}
	return tx.Commit()
}

// insertMulti inserts tr's rows with a prepared statement of n rows,
// reused for every full chunk, and one for the remainder.
func insertMulti(ctx context.Context, tx *sql.Tx, tr tableRows) error {
	per := min(sqliteMaxRows, sqliteMaxVars/len(tr.t.cols))
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			_ = st.Close()
		}
	}()
	args := make([]any, 0, per*len(tr.t.cols))
	for start := 0; start < len(tr.rows); start += per {
		chunk := tr.rows[start:min(start+per, len(tr.rows))]
		st := stmts[len(chunk)]
		if st == nil {
			var err error
			st, err = tx.PrepareContext(ctx, multiInsertSQL(tr.t, len(chunk)))
			if err != nil {
				return err
			}
			stmts[len(chunk)] = st
		}
		args = args[:0]
		for _, r := range chunk {
			args = append(args, r...)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

func multiInsertSQL(t table, n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + t.name + " (" + strings.Join(t.cols, ", ") + ") VALUES ")
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(t.cols)), ", ") + ")"
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	b.WriteString(t.onConflict())
	return b.String()
}

func (s *Store) ingestPostgres(ctx context.Context, tabs []tableRows, positions []Position) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if len(positions) > 0 {
		gb := &pgx.Batch{}
		q := postgresDialect.q(guardSQL)
		for _, p := range positions {
			gb.Queue(q, guardArgs(p)...)
		}
		res := tx.SendBatch(ctx, gb)
		for _, p := range positions {
			var next, held, past int64
			if err := res.QueryRow().Scan(&next, &held, &past); err != nil {
				_ = res.Close()
				return fmt.Errorf("ledger_positions: %w", err)
			}
			if err := guard(p, next, held, past); err != nil {
				_ = res.Close()
				return err
			}
		}
		if err := res.Close(); err != nil {
			return fmt.Errorf("ledger_positions: %w", err)
		}
	}
	for _, tr := range tabs {
		tmp := "ledger_in_" + tr.t.name
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+tmp+" (LIKE "+tr.t.name+") ON COMMIT DELETE ROWS"); err != nil {
			return fmt.Errorf("%s: %w", tr.t.name, err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{tmp}, tr.t.cols, pgx.CopyFromRows(tr.rows)); err != nil {
			return fmt.Errorf("%s: copy: %w", tr.t.name, err)
		}
		cols := strings.Join(tr.t.cols, ", ")
		if _, err := tx.Exec(ctx, "INSERT INTO "+tr.t.name+" ("+cols+") SELECT "+cols+" FROM "+tmp+tr.t.onConflict()); err != nil {
			return fmt.Errorf("%s: %w", tr.t.name, err)
		}
		// ON COMMIT DELETE ROWS empties it at the end; a table that
		// appears twice in a transaction never does.
	}
	if len(positions) > 0 {
		pb := &pgx.Batch{}
		q := postgresDialect.q(positionSQL)
		for _, p := range positions {
			pb.Queue(q, p.Topic, p.Partition, p.Next, hashArg(p.Last))
		}
		if err := tx.SendBatch(ctx, pb).Close(); err != nil {
			return fmt.Errorf("ledger_positions: %w", err)
		}
	}
	return tx.Commit(ctx)
}

// Positions returns the next offset of every partition of topic the ledger
// has read.
func (s *Store) Positions(ctx context.Context, topic string) (map[int32]int64, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q("SELECT partition_id, next_offset FROM ledger_positions WHERE topic = ?"), topic)
	if err != nil {
		return nil, fmt.Errorf("ledger: positions: %w", err)
	}
	defer rows.Close()
	out := map[int32]int64{}
	for rows.Next() {
		var p int32
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("ledger: positions: %w", err)
		}
		out[p] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: positions: %w", err)
	}
	return out, nil
}

// hashArg is a position's hash as a query argument: NULL when unknown.
func hashArg(h []byte) any {
	if h == nil {
		return nil
	}
	return h
}

// Resume returns the position of every partition of topic the ledger has
// read, with the hash of the record before it (nil when not known): where
// the consumer reads on, and what it checks first.
func (s *Store) Resume(ctx context.Context, topic string) (map[int32]Position, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q("SELECT partition_id, next_offset, last_hash FROM ledger_positions WHERE topic = ?"), topic)
	if err != nil {
		return nil, fmt.Errorf("ledger: positions: %w", err)
	}
	defer rows.Close()
	out := map[int32]Position{}
	for rows.Next() {
		p := Position{Topic: topic}
		var last []byte
		if err := rows.Scan(&p.Partition, &p.Next, &last); err != nil {
			return nil, fmt.Errorf("ledger: positions: %w", err)
		}
		if last != nil {
			p.Last = append([]byte(nil), last...)
		}
		out[p.Partition] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: positions: %w", err)
	}
	return out, nil
}

// Hold stores that the ledger no longer reads a partition, and why. A
// partition already held keeps its first hold.
func (s *Store) Hold(ctx context.Context, h Hold) error {
	if h.Topic == "" || h.Partition < 0 || h.Reason == "" {
		return fmt.Errorf("ledger: hold: invalid hold (topic %q, partition %d)", h.Topic, h.Partition)
	}
	if s.pool == nil {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	at := h.At
	if at.IsZero() {
		at = s.now()
	}
	_, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO ledger_holds (topic, partition_id, next_offset, reason, held_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (topic, partition_id) DO NOTHING`), h.Topic, h.Partition, h.Next, h.Reason, at.UnixMilli())
	if err != nil {
		return fmt.Errorf("ledger: hold: %w", err)
	}
	return nil
}

// Holds lists the held partitions, ordered by topic and partition.
func (s *Store) Holds(ctx context.Context) ([]Hold, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT topic, partition_id, next_offset, reason, held_at FROM ledger_holds ORDER BY topic, partition_id")
	if err != nil {
		return nil, fmt.Errorf("ledger: holds: %w", err)
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		var h Hold
		var at int64
		if err := rows.Scan(&h.Topic, &h.Partition, &h.Next, &h.Reason, &at); err != nil {
			return nil, fmt.Errorf("ledger: holds: %w", err)
		}
		h.At = time.UnixMilli(at).UTC()
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: holds: %w", err)
	}
	return out, nil
}
