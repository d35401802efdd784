package ledger

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/consentgate/consentgate/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backend opens a fresh, empty store of one kind.
type backend struct {
	name string
	open func(t testing.TB, opts ...Option) (*Store, string)
}

var backends = []backend{
	{"sqlite", func(t testing.TB, opts ...Option) (*Store, string) {
		dsn := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
		return openStore(t, dsn, opts...), dsn
	}},
	{"postgres", func(t testing.TB, opts ...Option) (*Store, string) {
		db := pgtest.Start(t)
		return openStore(t, db.DSN, opts...), db.DSN
	}},
}

func openStore(t testing.TB, dsn string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// eachBackend runs f as a subtest against a fresh store of each backend.
func eachBackend(t *testing.T, f func(t *testing.T, s *Store), opts ...Option) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t, opts...)
			f(t, s)
		})
	}
}
