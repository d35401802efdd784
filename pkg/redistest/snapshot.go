package redistest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Snapshot saves the server's data to its RDB file (SAVE): the next
// [Server.Restart] comes back with this data, older than whatever was
// written after the snapshot, as a server restored from a backup does.
func (s *Server) Snapshot(tb testing.TB) {
	tb.Helper()
	c := redis.NewClient(s.Options())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Save(ctx).Err(); err != nil {
		tb.Fatalf("redistest: SAVE on %s: %v", s.Addr(), err)
	}
}

// DropSnapshot removes the RDB file, so that the next restart is empty.
func (s *Server) DropSnapshot(tb testing.TB) {
	tb.Helper()
	if err := os.Remove(filepath.Join(s.dir, "dump.rdb")); err != nil && !os.IsNotExist(err) {
		tb.Fatalf("redistest: remove snapshot: %v", err)
	}
}
