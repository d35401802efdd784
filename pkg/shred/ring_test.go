package shred

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/internal/syncbuf"
)

const keysTopic = "consent.keys"

func startBroker(t *testing.T, o brokertest.Options) *brokertest.Broker {
	t.Helper()
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	o.Topics = append(o.Topics, keysTopic)
	return brokertest.Start(t, o)
}

func testKEK(t testing.TB) *LocalKEK {
	t.Helper()
	k, err := ParseLocalKEK([]byte(newKEKLine(t)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ringConfig(b *brokertest.Broker, kek KEK) RingConfig {
	return RingConfig{Brokers: []string{b.Addr}, Dialer: b.Dialer(), Transport: b.Security.Transport("shred-test"),
		Topic: keysTopic, KEK: kek, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 5 * time.Second}
}

func openRing(t *testing.T, cfg RingConfig) *Ring {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := OpenRing(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	return r
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustKeys(t *testing.T, r *Ring, subjects ...string) map[string]*DataKey {
	t.Helper()
	ks, err := r.Keys(tctx(t), subjects)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subjects {
		if ks[s] == nil || ks[s].Subject != s {
			t.Fatalf("no key for a subject")
		}
	}
	return ks
}

func encrypt(t *testing.T, k *DataKey, p string, det bool) string {
	t.Helper()
	c, err := k.EncryptString(p, det)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantDecrypt(t *testing.T, r *Ring, c, want string) {
	t.Helper()
	got, err := r.DecryptString(tctx(t), c)
	if err != nil || got != want {
		t.Fatalf("decrypt: %q, %v; want %q", got, err, want)
	}
}

func wantErased(t *testing.T, r *Ring, c string) {
	t.Helper()
	got, err := r.DecryptString(tctx(t), c)
	if !errors.Is(err, ErrErased) {
		t.Fatalf("decrypt of an erased subject's ciphertext: %q, %v; want ErrErased", got, err)
	}
}

func TestBalancerIsMurmur2OfTheSubject(t *testing.T) {
	t.Parallel()
	parts := []int{0, 1, 2, 3, 4, 5, 6}
	for _, s := range []string{"a", "subject-1", "alice@example.com", "x:y:z", ""} {
		want := (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(s)}, parts...)
		var id [16]byte
		id[3] = 9
		for _, key := range [][]byte{dataKeyKafkaKey(id, s), erasedKafkaKey(s)} {
			if got := (Balancer{}).Balance(kafka.Message{Key: key}, parts...); got != want {
				t.Errorf("subject %q key %q: partition %d, want %d", s, key, got, want)
			}
		}
		if got := Partition(s, 7); got != want {
			t.Errorf("Partition(%q, 7) = %d, want %d", s, got, want)
		}
	}
	erased, id, subj, ok := parseKafkaKey([]byte("key:000102030405060708090a0b0c0d0e0f:a:b"))
	if !ok || erased || subj != "a:b" || hex.EncodeToString(id[:]) != "000102030405060708090a0b0c0d0e0f" {
		t.Fatalf("parse: %v %v %x %q", ok, erased, id, subj)
	}
	for _, bad := range []string{"key:", "key:zz0102030405060708090a0b0c0d0e0f:a", "key:000102030405060708090a0b0c0d0e0f-a", "other"} {
		if _, _, _, ok := parseKafkaKey([]byte(bad)); ok {
			t.Errorf("parse %q: ok", bad)
		}
	}
}

func TestRingKeysSurviveARestart(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	r1 := openRing(t, ringConfig(b, kek))
	subjects := []string{"subject-alice-7781", "subject-bob-7782", "subject-carol-7783"}
	ks := mustKeys(t, r1, append(subjects, subjects[0])...)
	cts := map[string]string{}
	for _, s := range subjects {
		if ks[s].Version != 1 {
			t.Fatalf("first key has version %d", ks[s].Version)
		}
		cts[s+"/d"] = encrypt(t, ks[s], "mail of "+s, true)
		cts[s+"/r"] = encrypt(t, ks[s], "street of "+s, false)
	}
	again := mustKeys(t, r1, subjects...)
	for _, s := range subjects {
		if again[s].ID != ks[s].ID {
			t.Fatalf("a second call made a new key")
		}
	}
	// Records of other formats and foreign tombstones are skipped.
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: keysTopic, RequiredAcks: kafka.RequireAll, Balancer: Balancer{}}
	if err := w.WriteMessages(tctx(t), kafka.Message{Key: []byte("junk"), Value: []byte("not avro")},
		kafka.Message{Key: []byte("junk2")}, kafka.Message{Key: dataKeyKafkaKey(ks[subjects[1]].ID, subjects[0]), Value: []byte("\xc3\x01garbage")}); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	_ = r1.Close()

	r2 := openRing(t, ringConfig(b, kek))
	for _, s := range subjects {
		wantDecrypt(t, r2, cts[s+"/d"], "mail of "+s)
		wantDecrypt(t, r2, cts[s+"/r"], "street of "+s)
	}
	if n := r2.Skipped(); n != 3 {
		t.Fatalf("skipped %d records, want 3", n)
	}
	ks2 := mustKeys(t, r2, subjects...)
	for _, s := range subjects {
		if ks2[s].ID != ks[s].ID || ks2[s].Version != 1 {
			t.Fatalf("after a restart the subject got another key")
		}
	}
	if n := len(b.ReadAll(t, keysTopic, 300*time.Millisecond, 20*time.Second)); n != 3+3 {
		t.Fatalf("topic holds %d records, want 3 keys + 3 others", n)
	}

	// Another KEK: the keys do not unwrap; the error names the key id,
	// never the subject, and is not ErrErased.
	r3 := openRing(t, ringConfig(b, testKEK(t)))
	_, err := r3.Keys(tctx(t), subjects[:1])
	if err == nil || errors.Is(err, ErrErased) || !strings.Contains(err.Error(), hex.EncodeToString(ks[subjects[0]].ID[:])) ||
		strings.Contains(err.Error(), "alice") || !errors.Is(err, ErrUnknownKEK) {
		t.Fatalf("wrong KEK: %v", err)
	}
	if _, err := r3.DecryptString(tctx(t), cts[subjects[0]+"/d"]); err == nil || errors.Is(err, ErrErased) {
		t.Fatalf("decrypt with the wrong KEK: %v", err)
	}
}

func TestRingConcurrentFirstKeys(t *testing.T) {
	b := startBroker(t, brokertest.Options{Partitions: 2})
	kek := testKEK(t)
	a, c := openRing(t, ringConfig(b, kek)), openRing(t, ringConfig(b, kek))
	const s = "subject-dora-1234"
	var ka, kc map[string]*DataKey
	var ea, ec error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ka, ea = a.Keys(tctx(t), []string{s}) }()
	go func() { defer wg.Done(); kc, ec = c.Keys(tctx(t), []string{s}) }()
	wg.Wait()
	if ea != nil || ec != nil {
		t.Fatal(ea, ec)
	}
	if ka[s].ID == kc[s].ID {
		t.Log("the two rings happened to share one key (one read the other's first)")
	}
	ca, cc := encrypt(t, ka[s], "from a", false), encrypt(t, kc[s], "from c", true)
	fresh := openRing(t, ringConfig(b, kek))
	for _, r := range []*Ring{a, c, fresh} {
		wantDecrypt(t, r, ca, "from a")
		wantDecrypt(t, r, cc, "from c")
	}
	// Both rings now agree on the subject's current key.
	if err := a.WaitCaughtUp(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitCaughtUp(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if mustKeys(t, a, s)[s].ID != mustKeys(t, c, s)[s].ID || mustKeys(t, fresh, s)[s].ID != mustKeys(t, a, s)[s].ID {
		t.Fatalf("rings chose different current keys")
	}
}

type destroyedLog struct {
	mu sync.Mutex
	d  []Destroyed
}

func (l *destroyedLog) add(d Destroyed) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

func (l *destroyedLog) waitFor(t *testing.T, id [16]byte) Destroyed {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, d := range l.d {
			if d.KeyID == id {
				l.mu.Unlock()
				return d
			}
		}
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("key %x never destroyed", id)
	return Destroyed{}
}

func runShred(t *testing.T, r *Ring, log *destroyedLog) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Shred(ctx, log.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Shred returned %v", err)
		}
	})
}

// tombstones returns the Kafka keys of the topic's tombstones.
func tombstones(t *testing.T, b *brokertest.Broker) map[string]bool {
	out := map[string]bool{}
	for _, m := range b.ReadAll(t, keysTopic, 300*time.Millisecond, 20*time.Second) {
		if m.Value == nil {
			out[string(m.Key)] = true
		}
	}
	return out
}

func TestRingEraseAndShred(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	logs := &syncbuf.Buffer{}
	logged := ringConfig(b, kek)
	logged.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	enforcer := openRing(t, logged)
	syncer := openRing(t, logged)
	const alice, bob = "subject-alice-9001", "subject-bob-9002"
	ks := mustKeys(t, enforcer, alice, bob)
	aliceOld := ks[alice]
	ca, cb := encrypt(t, aliceOld, "alice@example.com", true), encrypt(t, ks[bob], "bob@example.com", false)
	caBytes, _ := aliceOld.EncryptBytes([]byte("alice bytes"), false)
	wantDecrypt(t, syncer, ca, "alice@example.com")

	log := &destroyedLog{}
	runShred(t, syncer, log)
	if err := syncer.Erase(tctx(t), alice, testErasure("chg-erase-1")); err != nil {
		t.Fatal(err)
	}
	// The erasing ring knows at once.
	wantErased(t, syncer, ca)
	d := log.waitFor(t, aliceOld.ID)
	if d.Subject != alice || d.ChangeID != "chg-erase-1" || d.Version != 1 || d.At.IsZero() {
		t.Fatalf("destroyed %+v", d)
	}
	// The running enforcer once it has read the marker.
	if err := enforcer.WaitCaughtUp(tctx(t)); err != nil {
		t.Fatal(err)
	}
	wantErased(t, enforcer, ca)
	if _, err := enforcer.DecryptBytes(tctx(t), caBytes); !errors.Is(err, ErrErased) {
		t.Fatalf("bytes: %v", err)
	}
	wantDecrypt(t, enforcer, cb, "bob@example.com")
	enforcer.mu.Lock()
	_, inMemory := enforcer.keys[aliceOld.ID]
	_, cached := enforcer.cache[aliceOld.ID]
	enforcer.mu.Unlock()
	if inMemory || cached {
		t.Fatalf("a dead key is still in memory")
	}
	if !tombstones(t, b)["key:"+hex.EncodeToString(aliceOld.ID[:])+":"+alice] {
		t.Fatalf("no tombstone for the erased key")
	}
	fresh := openRing(t, ringConfig(b, kek))
	wantErased(t, fresh, ca)
	wantDecrypt(t, fresh, cb, "bob@example.com")

	// Without knowing the erasure (a consent state older than it) alice
	// gets no key; a key created after the marker for a state that knows
	// it (a grant after the erasure) stays alive, in every ring.
	if _, err := enforcer.Keys(tctx(t), []string{alice}); !errors.Is(err, ErrStaleErasure) {
		t.Fatalf("Keys for an erased subject without knowing the erasure = %v, want ErrStaleErasure", err)
	}
	known, err := enforcer.KeysKnowing(tctx(t), map[string]Erasure{alice: testErasure("chg-erase-1")})
	if err != nil {
		t.Fatal(err)
	}
	aliceNew := known[alice]
	if aliceNew.ID == aliceOld.ID {
		t.Fatalf("the erased key came back")
	}
	cn := encrypt(t, aliceNew, "alice again", true)
	for _, r := range []*Ring{enforcer, syncer, fresh, openRing(t, ringConfig(b, kek))} {
		wantDecrypt(t, r, cn, "alice again")
		wantErased(t, r, ca)
	}
	time.Sleep(300 * time.Millisecond) // Shred must not destroy the new key
	if tombstones(t, b)["key:"+hex.EncodeToString(aliceNew.ID[:])+":"+alice] {
		t.Fatalf("the key created after the marker was destroyed")
	}
	log.mu.Lock()
	n := len(log.d)
	log.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d keys destroyed, want 1", n)
	}
	// A ciphertext under a key the topic never held: erased, once read.
	var stray [16]byte
	stray[0] = 0x77
	sk, _ := NewDataKey("x", stray, 1, time.Time{}, fixedDEK())
	wantErased(t, fresh, encrypt(t, sk, "y", false))
	if !strings.Contains(logs.String(), "data keys destroyed") {
		t.Fatalf("nothing logged: %s", logs.String())
	}
	if out := logs.String(); strings.Contains(out, "alice") || strings.Contains(out, "bob") {
		t.Fatalf("the log names a subject:\n%s", out)
	}
}

func TestShredFinishesAfterACrash(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	r1 := openRing(t, ringConfig(b, kek))
	const erin = "subject-erin-4242"
	rot := ringConfig(b, kek)
	now := time.Now()
	rot.Now = func() time.Time { return now }
	rot.RotateAfter = time.Hour
	r0 := openRing(t, rot)
	k1 := mustKeys(t, r0, erin)[erin]
	now = now.Add(2 * time.Hour)
	k2 := mustKeys(t, r0, erin)[erin]
	if k2.Version != 2 || k2.ID == k1.ID {
		t.Fatalf("rotation: version %d", k2.Version)
	}
	_ = r0.Close()
	c1, c2 := encrypt(t, k1, "v1", false), encrypt(t, k2, "v2", false)
	// The marker is written; the process dies before any tombstone.
	if err := r1.Erase(tctx(t), erin, testErasure("chg-7")); err != nil {
		t.Fatal(err)
	}
	_ = r1.Close()
	if ts := tombstones(t, b); len(ts) != 0 {
		t.Fatalf("tombstones before any Shred: %v", ts)
	}
	r2 := openRing(t, ringConfig(b, kek))
	wantErased(t, r2, c1)
	wantErased(t, r2, c2)
	log := &destroyedLog{}
	runShred(t, r2, log)
	log.waitFor(t, k1.ID)
	log.waitFor(t, k2.ID)
	ts := tombstones(t, b)
	for _, k := range []*DataKey{k1, k2} {
		if !ts["key:"+hex.EncodeToString(k.ID[:])+":"+erin] {
			t.Fatalf("no tombstone for %x", k.ID)
		}
	}
	// A third start finds nothing left to do.
	r3 := openRing(t, ringConfig(b, kek))
	r3.mu.Lock()
	left := len(r3.pending)
	r3.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d keys still to destroy after the tombstones", left)
	}
	wantErased(t, r3, c1)
}

func TestRingRotation(t *testing.T) {
	b := startBroker(t, brokertest.Options{Partitions: 1})
	kek := testKEK(t)
	cfg := ringConfig(b, kek)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg.RotateAfter = 24 * time.Hour
	early, err := OpenRing(tctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if early.Ready() == nil {
		t.Fatalf("ready before it caught up")
	}
	_ = early.Close()
	if !errors.Is(early.Ready(), ErrClosed) || !errors.Is(early.WaitCaughtUp(tctx(t)), ErrClosed) {
		t.Fatalf("a closed ring: %v", early.Ready())
	}
	if _, err := early.Keys(tctx(t), []string{"s"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Keys on a closed ring: %v", err)
	}
	r := openRing(t, cfg)
	const s = "subject-fay-1"
	k1 := mustKeys(t, r, s)[s]
	c1 := encrypt(t, k1, "old", true)
	mu.Lock()
	now = now.Add(23 * time.Hour)
	mu.Unlock()
	if k := mustKeys(t, r, s)[s]; k.ID != k1.ID {
		t.Fatalf("rotated before RotateAfter")
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	k2 := mustKeys(t, r, s)[s]
	if k2.ID == k1.ID || k2.Version != 2 || !k2.CreatedAt.Equal(now) {
		t.Fatalf("after RotateAfter: version %d, same id %v", k2.Version, k2.ID == k1.ID)
	}
	if k := mustKeys(t, r, s)[s]; k.ID != k2.ID {
		t.Fatalf("the rotated key is not the current one")
	}
	fresh := openRing(t, cfg)
	if k := mustKeys(t, fresh, s)[s]; k.ID != k2.ID || k.Version != 2 {
		t.Fatalf("a fresh ring chose version %d", k.Version)
	}
	wantDecrypt(t, fresh, c1, "old")
	wantDecrypt(t, r, c1, "old")
}

func TestRingBrokerDown(t *testing.T) {
	b := startBroker(t, brokertest.Options{DataDir: t.TempDir(), Partitions: 1})
	kek := testKEK(t)
	r := openRing(t, ringConfig(b, kek))
	const known, unknown = "subject-gus-1", "subject-hal-2"
	k := mustKeys(t, r, known)[known]
	if err := b.Proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err := r.Keys(ctx, []string{known, unknown})
	cancel()
	if err == nil {
		t.Fatalf("Keys created a key with the broker down")
	}
	if strings.Contains(err.Error(), "hal") {
		t.Fatalf("error names the subject: %v", err)
	}
	r.mu.Lock()
	_, inMemory := r.subjects[unknown]
	r.mu.Unlock()
	if inMemory {
		t.Fatalf("a key that was not written is in memory")
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Ready() == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if r.Ready() == nil {
		t.Fatalf("ready with the broker down")
	}
	b.Restart()
	// The first write after the restart may meet a connection the broker
	// closed: an error, which the caller retries (as the enforcer does).
	var ks map[string]*DataKey
	for deadline := time.Now().Add(15 * time.Second); ; {
		ks, err = r.Keys(tctx(t), []string{known, unknown})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Keys after the broker came back: %v", err)
	}
	if ks[known].ID != k.ID {
		t.Fatalf("known subject got a new key")
	}
	fresh := openRing(t, ringConfig(b, kek))
	if got := mustKeys(t, fresh, unknown)[unknown]; got.ID != ks[unknown].ID {
		t.Fatalf("the key created after the restart is not the one in the topic")
	}
	deadline = time.Now().Add(15 * time.Second)
	for r.Ready() != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := r.Ready(); err != nil {
		t.Fatalf("not ready again after the broker came back: %v", err)
	}
}

// erasureEpoch is the captured_at of the tests' erasures.
var erasureEpoch = time.UnixMilli(1_790_000_000_000).UTC()

// testErasure is an erasure captured at erasureEpoch with change id id.
func testErasure(id string) Erasure { return Erasure{At: erasureEpoch, ChangeID: id} }
