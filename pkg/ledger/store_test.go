package ledger

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestOpenTwice checks that migrations are applied once: a second Open of
// the same database finds them applied and keeps the data.
func TestOpenTwice(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, dsn := b.open(t)
			ctx := context.Background()
			items := genItems(rand.New(rand.NewPCG(1, 2)), 20)
			if err := s.Ingest(ctx, batchOf(items)); err != nil {
				t.Fatal(err)
			}
			before := dump(t, s)
			s.Close()
			s2 := openStore(t, dsn)
			vs, err := s2.Migrations(ctx)
			if err != nil || !reflect.DeepEqual(vs, []int{1, 2, 3, 4, 5}) {
				t.Fatalf("migrations %v (%v), want [1 2 3 4 5]", vs, err)
			}
			if after := dump(t, s2); after != before {
				t.Errorf("data changed across a reopen:\n%s\nvs\n%s", before, after)
			}
		})
	}
}

// TestOpenErrorsHideThePassword checks that a failing Open names neither
// the password of a URL nor that of a password= parameter.
func TestOpenErrorsHideThePassword(t *testing.T) {
	ctx := context.Background()
	for _, dsn := range []string{
		"postgres://ledger:s3cr3tpw@127.0.0.1:1/ledger?sslmode=disable&connect_timeout=2",
		"postgresql://ledger@127.0.0.1:1/ledger?password=s3cr3tpw&sslmode=disable&connect_timeout=2",
		"postgres://ledger:s3cr3tpw@127.0.0.1:1/ledger?sslmode=bogus",
		"mysql://ledger:s3cr3tpw@host/db",
	} {
		_, err := Open(ctx, dsn)
		if err == nil {
			t.Fatalf("Open(%s) succeeded", strings.ReplaceAll(dsn, "s3cr3tpw", "xxx"))
		}
		if strings.Contains(err.Error(), "s3cr3tpw") {
			t.Errorf("error names the password: %v", err)
		}
	}
}

// TestIngestIdempotent checks that ingesting the same batch twice leaves
// the rows of one ingest.
func TestIngestIdempotent(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		b := batchOf(genItems(rand.New(rand.NewPCG(3, 4)), 200))
		if err := s.Ingest(ctx, b); err != nil {
			t.Fatal(err)
		}
		once := dump(t, s)
		if err := s.Ingest(ctx, b); err != nil {
			t.Fatal(err)
		}
		if twice := dump(t, s); twice != once {
			t.Errorf("second ingest changed the ledger")
		}
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total := st.Tables["consent_changes"] + st.Tables["audit_records"] + st.Tables["revocation_notices"] + st.Tables["dead_letters"]
		if total != 200 {
			t.Errorf("%d records stored, want 200 (%v)", total, st.Tables)
		}
	})
}

// TestIngestAllOrNothing checks that a batch failing midway (a row that
// violates a constraint after good rows of every table, or a cancelled
// context) leaves neither rows nor positions.
func TestIngestAllOrNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		first := batchOf(genItems(rand.New(rand.NewPCG(5, 6)), 30))
		if err := s.Ingest(ctx, first); err != nil {
			t.Fatal(err)
		}
		before := dump(t, s)

		bad := batchOf(genItems(rand.New(rand.NewPCG(7, 8)), 300))
		for i := range bad.Positions {
			bad.Positions[i].Next += 1000
		}
		// The undecodable table is written after every other: a negative
		// offset there fails the batch at its end.
		bad.Undecodable = append(bad.Undecodable, Undecodable{Coord: Coord{Topic: "consent.audit", Partition: 0, Offset: -5}, Error: "x"})
		if err := s.Ingest(ctx, bad); err == nil {
			t.Fatal("a batch with a negative offset was accepted")
		}
		if after := dump(t, s); after != before {
			t.Errorf("a failed batch left rows or positions behind")
		}

		cctx, cancel := context.WithCancel(ctx)
		cancel()
		good := batchOf(genItems(rand.New(rand.NewPCG(7, 8)), 300))
		if err := s.Ingest(cctx, good); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled ingest: %v, want context.Canceled", err)
		}
		if after := dump(t, s); after != before {
			t.Errorf("a cancelled batch left rows or positions behind")
		}
	})
}

// TestPositionsNeverGoBack checks that a batch with older positions (a
// replay) leaves the newer ones.
func TestPositionsNeverGoBack(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		in := func(ps ...Position) {
			t.Helper()
			if err := s.Ingest(ctx, &Batch{Positions: ps}); err != nil {
				t.Fatal(err)
			}
		}
		in(Position{Topic: "a", Partition: 0, Next: 10}, Position{Topic: "a", Partition: 1, Next: 5})
		in(Position{Topic: "a", Partition: 0, Next: 7}, Position{Topic: "a", Partition: 1, Next: 6}, Position{Topic: "b", Partition: 0, Next: 1})
		in(Position{Topic: "a", Partition: 0, Next: 10})
		got, err := s.Positions(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != 10 || got[1] != 6 {
			t.Errorf("positions of a = %v, want map[0:10 1:6]", got)
		}
		if err := s.Ingest(ctx, &Batch{Positions: []Position{{Topic: "a", Partition: 0, Next: -1}}}); err == nil {
			t.Error("a negative position was accepted")
		}
		got, _ = s.Positions(ctx, "b")
		if len(got) != 1 || got[0] != 1 {
			t.Errorf("positions of b = %v, want map[0:1]", got)
		}
	})
}

// TestCrashReplay is the exactly-once property: the records of a topic
// ingested in random batches, where after each batch the consumer may
// "crash" and resume from an earlier point (re-ingesting an overlap),
// leave exactly the rows and positions of one pass in one batch.
func TestCrashReplay(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for round := uint64(0); round < 3; round++ {
			r := rand.New(rand.NewPCG(round, 99))
			items := genItems(r, 150+r.IntN(150))
			ref := backends[0]
			refStore, _ := ref.open(t)
			if err := refStore.Ingest(ctx, batchOf(items)); err != nil {
				t.Fatal(err)
			}
			want := dump(t, refStore)

			target := s
			if round > 0 {
				target, _ = backendOf(s).open(t)
			}
			for pos := 0; pos < len(items); {
				end := min(len(items), pos+1+r.IntN(60))
				if err := target.Ingest(ctx, batchOf(items[pos:end])); err != nil {
					t.Fatal(err)
				}
				// A crash before the consumer commits: resume from
				// anywhere in [last start, end].
				if r.IntN(3) == 0 {
					pos = max(0, pos-r.IntN(40))
					if pos < end && r.IntN(2) == 0 {
						continue
					}
				}
				pos = end
			}
			if got := dump(t, target); got != want {
				t.Fatalf("round %d: replayed ingest differs from one pass:\n%s\nwant\n%s", round, got, want)
			}
		}
	})
}

func backendOf(s *Store) backend {
	for _, b := range backends {
		if b.name == s.Backend() {
			return b
		}
	}
	panic("unknown backend")
}

// TestSQLiteMemory checks the sqlite::memory: DSN: a private database that
// holds what was ingested for as long as the store is open.
func TestSQLiteMemory(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "sqlite::memory:")
	if err := s.Ingest(ctx, batchOf(genItems(rand.New(rand.NewPCG(9, 9)), 50))); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range st.Tables {
		n += c
	}
	if n < 50 || len(st.Positions) == 0 || st.Backend != "sqlite" {
		t.Errorf("stats %+v", st)
	}
	other := openStore(t, "sqlite::memory:")
	if st2, _ := other.Stats(ctx); st2.Tables["audit_records"] != 0 {
		t.Errorf("a second memory store sees the first's rows")
	}
	if _, err := Open(ctx, "sqlite:"); err == nil {
		t.Error("sqlite: without a path was accepted")
	}
}

// TestOpenConcurrently checks that stores opening one new database at once
// (two ledger replicas starting together) all succeed and apply each
// migration once.
func TestOpenConcurrently(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			first, dsn := b.open(t)
			// Start over from an empty database: drop what first created.
			for _, tab := range append(ledgerTables, "ledger_positions", "ledger_holds", "ledger_hold_releases", "ledger_migrations") {
				if _, err := first.db.Exec("DROP TABLE " + tab); err != nil {
					t.Fatal(err)
				}
			}
			first.Close()
			errs := make(chan error, 4)
			for i := 0; i < 4; i++ {
				go func() {
					s, err := Open(context.Background(), dsn)
					if err == nil {
						s.Close()
					}
					errs <- err
				}()
			}
			for i := 0; i < 4; i++ {
				if err := <-errs; err != nil {
					t.Errorf("concurrent open: %v", err)
				}
			}
			s := openStore(t, dsn)
			if vs, err := s.Migrations(context.Background()); err != nil || !reflect.DeepEqual(vs, []int{1, 2, 3, 4, 5}) {
				t.Errorf("migrations %v (%v)", vs, err)
			}
		})
	}
}
