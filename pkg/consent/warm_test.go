package consent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/redistest"
)

func TestWarmMarkerGatesLookups(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := NewStore(srv.Client(t), redistest.PrefixFor(t)).RequireWarm()
	ctx := context.Background()
	if _, err := st.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Fatalf("lookup on an empty Redis: %v, want ErrCold", err)
	}
	token, err := st.BeginWarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := st.MarkWarm(ctx, "someone-else", time.Now()); err != nil || ok {
		t.Fatalf("MarkWarm with a stale token: %v %v, want false", ok, err)
	}
	if ok, err := st.MarkWarm(ctx, token, time.Now()); err != nil || !ok {
		t.Fatalf("MarkWarm: %v %v", ok, err)
	}
	if _, err := st.Lookup(ctx, []string{"s1"}); err != nil {
		t.Fatalf("lookup once warm: %v", err)
	}
	// A restart empties Redis: cold again, and a rebuild begun before the
	// restart cannot mark it warm.
	token, err = st.BeginWarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	if _, err := st.Lookup(ctx, []string{"s1"}); !errors.Is(err, ErrCold) {
		t.Errorf("lookup after a restart: %v, want ErrCold", err)
	}
	if ok, err := st.MarkWarm(ctx, token, time.Now()); err != nil || ok {
		t.Errorf("a rebuild begun before the restart marked the state warm (%v, %v)", ok, err)
	}
	if warm, err := st.IsWarm(ctx); err != nil || warm {
		t.Errorf("IsWarm after restart: %v %v", warm, err)
	}
	// Without RequireWarm nothing is gated.
	if _, err := NewStore(srv.Client(t), "other:").Lookup(ctx, []string{"s1"}); err != nil {
		t.Errorf("plain store lookup: %v", err)
	}
}
