package ledger

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// dialect holds every difference between SQLite and PostgreSQL that the
// ledger's SQL meets: the rest of the package writes one SQL text, with ?
// placeholders, for both.
type dialect struct {
	name string
	// subst replaces the {{…}} words of the migrations.
	subst map[string]string
	// dollar: placeholders are $1, $2, … (PostgreSQL) rather than ?.
	dollar bool
	// lock is a statement that serialises migrations across processes
	// (inside the migration transaction); empty when the transaction
	// itself does (SQLite's BEGIN IMMEDIATE).
	lock string
}

var sqliteDialect = &dialect{
	name:  "sqlite",
	subst: map[string]string{"{{BYTES}}": "BLOB", "{{WITHOUT_ROWID}}": " WITHOUT ROWID"},
}

var postgresDialect = &dialect{
	name:   "postgres",
	subst:  map[string]string{"{{BYTES}}": "BYTEA", "{{WITHOUT_ROWID}}": ""},
	dollar: true,
	lock:   "SELECT pg_advisory_xact_lock(7263540012)",
}

// q rewrites the ? placeholders of query for the dialect. The ledger's SQL
// has no ? inside string literals.
func (d *dialect) q(query string) string {
	if !d.dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	stmts   []string
}

// migrations returns the embedded migrations in version order, for d.
// A file is NNNN_name.sql; statements end with ";" at the end of a line.
func (d *dialect) migrations() ([]migration, error) {
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, f := range files {
		base := strings.TrimPrefix(f, "migrations/")
		num, name, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", base)
		}
		text, err := migrationFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		m := migration{version: v, name: name}
		for _, stmt := range splitSQL(string(text)) {
			for k, v := range d.subst {
				stmt = strings.ReplaceAll(stmt, k, v)
			}
			m.stmts = append(m.stmts, stmt)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("two migrations have version %d", out[i].version)
		}
	}
	return out, nil
}

// splitSQL splits a migration into statements, dropping -- comments.
func splitSQL(text string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimRight(line, " \t\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(line, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// migrate applies the migrations the database lacks, each in its own
// transaction with its row in ledger_migrations.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := s.d.migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := s.applyMigration(ctx, m); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

const migrationsTable = `CREATE TABLE IF NOT EXISTS ledger_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at BIGINT  NOT NULL
)`

func (s *Store) applyMigration(ctx context.Context, m migration) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if s.d.lock != "" {
		if _, err := tx.ExecContext(ctx, s.d.lock); err != nil {
			return err
		}
	}
	// Created under the lock: two processes opening a new database at
	// once must not both create it.
	if _, err := tx.ExecContext(ctx, migrationsTable); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, s.d.q("SELECT COUNT(*) FROM ledger_migrations WHERE version = ?"), m.version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	for _, stmt := range m.stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%w (in: %.80s)", err, stmt)
		}
	}
	if _, err := tx.ExecContext(ctx, s.d.q("INSERT INTO ledger_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
		m.version, m.name, s.now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}

// Migrations returns the versions applied to the database, in order.
func (s *Store) Migrations(ctx context.Context) ([]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT version FROM ledger_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
