package rebuild

import (
	"bufio"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// syncACLLine returns consent-sync's documented ACL line (the README's,
// tested in pkg/consent) for prefix and password.
func syncACLLine(t *testing.T, prefix, password string) string {
	t.Helper()
	f, err := os.Open("../../../../pkg/consent/testdata/redis-acl.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "user consentgate-sync ") {
			return strings.ReplaceAll(strings.ReplaceAll(l, "<prefix>", prefix), "<password>", password)
		}
	}
	t.Fatalf("no consentgate-sync line in the ACL file (%v)", sc.Err())
	return ""
}

// TestExistingKeysWithoutScan: as consent-sync's ACL user (which has no
// SCAN: Redis would not limit it to the prefix), on a single server and on
// a 3-master cluster, ExistingKeys finds the consent state of its prefix
// once a change is applied, and nothing in a prefix never written.
func TestExistingKeysWithoutScan(t *testing.T) {
	t.Parallel()
	const pw = "sync-existing-pw"
	for _, cluster := range []bool{false, true} {
		name := "single server"
		if cluster {
			name = "cluster"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			prefix := redistest.PrefixFor(t)
			opts := redistest.Options{Users: []string{syncACLLine(t, prefix, pw)}}
			var admin, syn redis.UniversalClient
			if cluster {
				c := redistest.StartClusterWith(t, 3, opts)
				admin = c.Client(t)
				o := c.Options()
				o.Username, o.Password, o.DisableIdentity = "consentgate-sync", pw, true
				syn = redis.NewClusterClient(o)
			} else {
				s := redistest.StartWith(t, opts)
				admin = s.Client(t)
				o := s.Options()
				o.Username, o.Password, o.DisableIdentity = "consentgate-sync", pw, true
				syn = redis.NewClient(o)
			}
			t.Cleanup(func() { _ = syn.Close() })

			if _, _, err := syn.Scan(ctx, 0, "*", 10).Result(); err == nil {
				t.Errorf("consent-sync's user may SCAN (every key of the server)")
			}
			if exist, err := ExistingKeys(ctx, syn, prefix); err != nil || exist {
				t.Fatalf("ExistingKeys before any change = %v, %v; want false", exist, err)
			}
			// Subjects on every master of a cluster.
			store := consent.NewStore(syn, prefix)
			for i, s := range []string{"a", "b", "c", "d", "e", "f"} {
				c := consent.Change{ChangeID: "g-" + s, SubjectID: s, Purpose: "marketing", Action: consent.ActionGrant,
					LegalBasis: consent.BasisConsent, Source: "test", NoticeVersion: "1", CapturedAt: time.UnixMilli(int64(1000 + i))}
				if _, err := store.Apply(ctx, c); err != nil {
					t.Fatalf("apply as consent-sync's user: %v", err)
				}
			}
			if exist, err := ExistingKeys(ctx, syn, prefix); err != nil || !exist {
				t.Errorf("ExistingKeys after changes were applied = %v, %v; want true", exist, err)
			}
			if exist, err := ExistingKeys(ctx, admin, prefix+"other:"); err != nil || exist {
				t.Errorf("ExistingKeys of a prefix never written = %v, %v; want false", exist, err)
			}
		})
	}
}
