package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestStart checks that two callers get two distinct, working, empty
// databases of one cluster, and that the server runs as a non-root user.
func TestStart(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Name == b.Name || a.Cluster != b.Cluster {
		t.Fatalf("want two databases of one cluster, got %q and %q", a.Name, b.Name)
	}
	ctx := context.Background()
	for _, db := range []*DB{a, b} {
		conn, err := pgx.Connect(ctx, db.DSN)
		if err != nil {
			t.Fatal(err)
		}
		var name, user string
		var tables int
		if err := conn.QueryRow(ctx, "SELECT current_database(), current_user, (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')").Scan(&name, &user, &tables); err != nil {
			t.Fatal(err)
		}
		_ = conn.Close(ctx)
		if name != db.Name || user != "postgres" || tables != 0 {
			t.Errorf("database %q user %q tables %d; want %q, postgres, 0", name, user, tables, db.Name)
		}
	}
	var fsync string
	conn, err := pgx.Connect(ctx, a.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "off" {
		t.Errorf("fsync = %q (%v), want off", fsync, err)
	}
	t.Logf("%s from %s", a.Cluster.Version, a.Cluster.BinDir)
}

// TestMissingBinaries runs this test binary again with PGTEST_BINDIR
// naming a directory without PostgreSQL: Start must skip the test, or fail
// it when CI is set.
func TestMissingBinaries(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") != "" {
		Start(t)
		t.Fatal("Start returned without binaries")
	}
	for _, ci := range []string{"", "1"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingBinaries$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", "PGTEST_BINDIR="+t.TempDir(), "CI="+ci)
		out, err := cmd.CombinedOutput()
		text := string(out)
		switch {
		case ci == "" && (err != nil || !strings.Contains(text, "--- SKIP") || !strings.Contains(text, "apt-get install postgresql")):
			t.Errorf("without CI: want a skip naming the install, got %v:\n%s", err, text)
		case ci != "" && (err == nil || !strings.Contains(text, "--- FAIL") || !strings.Contains(text, "CI must install postgresql")):
			t.Errorf("with CI: want a failure, got %v:\n%s", err, text)
		}
	}
}
