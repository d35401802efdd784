package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Store is the ledger's relational store: SQLite or PostgreSQL, with the
// same schema and queries. It is safe for concurrent use; on SQLite, writes
// are serialised (one writer), reads run concurrently (WAL mode).
type Store struct {
	d  *dialect
	db *sql.DB
	// pool is the pgx pool of a PostgreSQL store (nil on SQLite): Ingest
	// uses it for COPY; db is a database/sql view of the same pool.
	pool *pgxpool.Pool
	// wmu serialises SQLite writers.
	wmu sync.Mutex

	now     func() time.Time
	catalog *avrocodec.Catalog
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that decides whether a grant has expired
// (Subject); time.Now by default.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithCatalog sets the schema catalog Breach reads the data categories of
// event schemas from. Without one, Breach reports the categories of every
// group as unknown.
func WithCatalog(c *avrocodec.Catalog) Option { return func(s *Store) { s.catalog = c } }

// Open opens the ledger at dsn and applies the migrations it lacks:
//
//   - sqlite:<path>: an SQLite database file (created if missing), in WAL
//     mode; sqlite::memory: for a private in-memory database;
//   - postgres://… or postgresql://…: a PostgreSQL database (pgx
//     connection string).
//
// Errors never include the DSN's password.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	s := &Store{now: time.Now}
	for _, o := range opts {
		o(s)
	}
	var err error
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		err = s.openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		err = s.openPostgres(ctx, dsn)
	default:
		return nil, fmt.Errorf("ledger: open %s: the DSN must start with sqlite:, postgres:// or postgresql://", redactDSN(dsn))
	}
	if err != nil {
		s.Close()
		return nil, scrubError(fmt.Errorf("ledger: open %s: %w", redactDSN(dsn), err), dsn)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, scrubError(fmt.Errorf("ledger: migrate %s: %w", redactDSN(dsn), err), dsn)
	}
	return s, nil
}

func (s *Store) openSQLite(ctx context.Context, path string) error {
	s.d = sqliteDialect
	if path == "" {
		return errors.New("no database path after sqlite:")
	}
	memory := path == ":memory:"
	if strings.Contains(path, "?") {
		return errors.New("the SQLite path must not contain '?'")
	}
	q := "?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	if !memory {
		q += "&_pragma=journal_mode(WAL)&_pragma=cache_size(-65536)&_pragma=temp_store(MEMORY)"
	}
	db, err := sql.Open("sqlite", path+q)
	if err != nil {
		return err
	}
	s.db = db
	if memory {
		// Every connection to :memory: is a database of its own.
		db.SetMaxOpenConns(1)
	} else {
		db.SetMaxOpenConns(8)
	}
	return db.PingContext(ctx)
}

func (s *Store) openPostgres(ctx context.Context, dsn string) error {
	s.d = postgresDialect
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	s.pool = pool
	if err := pool.Ping(ctx); err != nil {
		return err
	}
	s.db = stdlib.OpenDBFromPool(pool)
	return nil
}

// Close closes the store's connections.
func (s *Store) Close() {
	if s.db != nil {
		_ = s.db.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
}

// Backend returns "sqlite" or "postgres".
func (s *Store) Backend() string { return s.d.name }

// redactDSN returns dsn without its password (and, for URLs, without the
// query's password parameter).
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "sqlite" || u.Opaque != "" {
		if strings.HasPrefix(dsn, "sqlite:") {
			return dsn
		}
		return "(unparsable DSN)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// scrubError replaces every occurrence of the DSN's password in err's
// message: drivers may quote what they were given.
func scrubError(err error, dsn string) error {
	var secrets []string
	if u, perr := url.Parse(dsn); perr == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
		if p := u.Query().Get("password"); p != "" {
			secrets = append(secrets, p, url.QueryEscape(p))
		}
	}
	msg := err.Error()
	changed := false
	for _, p := range secrets {
		if strings.Contains(msg, p) {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}

// ms is t in Unix milliseconds, or NULL for the zero time.
func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// fromMS is the UTC time of nullable Unix milliseconds.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}
