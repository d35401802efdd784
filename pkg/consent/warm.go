package consent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrCold is returned by Lookup on a store that requires a warm cache
// ([Store.RequireWarm]) while the warm marker is missing: Redis does not
// hold the state of the whole consent topic (it was restarted empty, or was
// never filled), so an absent subject cannot be told from a lost one. The
// enforcer treats it like Redis being down: it pauses, failing closed, until
// consent-sync has rebuilt the state from the topic and set the marker.
var ErrCold = errors.New("consent state is not warm: Redis does not hold the whole consent topic (restarted empty, or never rebuilt); waiting for consent-sync to rebuild it")

// The warm marker: WarmKey holds the time the state was last rebuilt from
// the topic; pendingKey holds the token of a rebuild in progress. Neither
// has braces, so they are outside the per-subject key space that a rebuild
// scans ("<prefix>consent:{*").
func (s *Store) WarmKey() string    { return s.prefix + "consent:!warm" }
func (s *Store) pendingKey() string { return s.prefix + "consent:!warming" }

// RequireWarm makes Lookup fail with ErrCold while the warm marker is
// missing; the check rides in the same pipelined round trip as the reads.
// It returns s.
func (s *Store) RequireWarm() *Store {
	s.requireWarm = true
	return s
}

// IsWarm reports whether the warm marker is present.
func (s *Store) IsWarm(ctx context.Context) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.WarmKey()).Result()
	if err != nil {
		return false, fmt.Errorf("check warm marker: %w", err)
	}
	return n == 1, nil
}

// BeginWarm starts a rebuild: it records a random token, which MarkWarm
// checks, so that a Redis restart during the rebuild (which loses the token
// with everything else) can never leave a marker over a half-filled state.
func (s *Store) BeginWarm(ctx context.Context) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b)
	if err := s.rdb.Set(ctx, s.pendingKey(), token, 0).Err(); err != nil {
		return "", fmt.Errorf("begin rebuild: %w", err)
	}
	return token, nil
}

var markWarmScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
`)

// MarkWarm sets the warm marker if the rebuild that BeginWarm returned token
// for is still the one Redis knows (no restart since). It reports whether
// the marker was set; false means: rebuild again.
func (s *Store) MarkWarm(ctx context.Context, token string, asOf time.Time) (bool, error) {
	// Both keys share no hash tag; on a Redis Cluster they may sit on
	// different slots, so the check-and-set runs only where they share one.
	n, err := markWarmScript.Run(ctx, s.rdb, []string{s.pendingKey(), s.WarmKey()}, token, strconv.FormatInt(asOf.UnixMilli(), 10)).Int()
	if err != nil {
		if isCrossSlot(err) {
			return s.markWarmCluster(ctx, token, asOf)
		}
		return false, fmt.Errorf("mark warm: %w", err)
	}
	return n == 1, nil
}

func (s *Store) markWarmCluster(ctx context.Context, token string, asOf time.Time) (bool, error) {
	got, err := s.rdb.Get(ctx, s.pendingKey()).Result()
	if errors.Is(err, redis.Nil) || (err == nil && got != token) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mark warm: %w", err)
	}
	if err := s.rdb.Set(ctx, s.WarmKey(), strconv.FormatInt(asOf.UnixMilli(), 10), 0).Err(); err != nil {
		return false, fmt.Errorf("mark warm: %w", err)
	}
	return true, s.rdb.Del(ctx, s.pendingKey()).Err()
}

func isCrossSlot(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && len(err.Error()) >= 9 && err.Error()[:9] == "CROSSSLOT"
}
