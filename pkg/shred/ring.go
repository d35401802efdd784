package shred

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/topicread"
)

// RingConfig configures a Ring.
type RingConfig struct {
	Brokers []string
	// Dialer (readers) and Transport (produce, metadata, offsets)
	// connect with TLS and SASL; build both from one kafkaconn.Config.
	// nil: plain TCP.
	Dialer    *kafka.Dialer
	Transport kafka.RoundTripper
	// Topic is the keys topic; "" is DefaultTopic. It must exist.
	Topic string
	// KEK wraps new data keys and unwraps the ones read. nil: the ring
	// only marks erasures and shreds (consent-sync, which needs no key
	// material); Keys, Key and the Decrypt methods then fail with ErrNoKEK.
	KEK KEK
	// RotateAfter: Keys creates a new key (version+1) for a subject whose
	// newest key is older. 0 never rotates.
	RotateAfter time.Duration
	// Log receives what the ring does (never a subject id or key
	// material); nil is slog.Default().
	Log *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// CacheSize bounds the number of unwrapped data keys kept; 0 is
	// 10000.
	CacheSize int
	// Timeout bounds each request to the brokers; 0 is 10 s.
	Timeout time.Duration
}

// Ring is the in-memory view of the keys topic, kept up to date by a
// reader of every partition (no consumer group, from the first offset).
// It is safe for concurrent use.
type Ring struct {
	cfg    RingConfig
	log    *slog.Logger
	codec  *codec
	client *kafka.Client
	tr     *topicread.Client
	parts  []int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	progress chan struct{} // closed and replaced on every change
	pos      map[int]int64 // next offset to read, by partition
	active   map[int]time.Time
	errAt    map[int]time.Time // last reader error, by partition
	errMsg   map[int]string
	caught   bool // caught up at least once
	caughtCh chan struct{}
	closed   bool

	keys     map[[16]byte]*keyRec // alive keys
	subjects map[string]*subjectState
	dead     map[[16]byte]struct{} // ids of destroyed keys (no material)
	pending  map[[16]byte]*keyRec  // dead, tombstone not yet read or written
	markers  map[string]marker     // newest erasure marker by subject
	cache    map[[16]byte]*DataKey // unwrapped, bounded by CacheSize
	skipped  int64                 // records of another format
	loggedSk bool
	// lost is set for good when a partition's offsets went back below
	// what was read (the topic deleted and created again, or replaced):
	// the keys in memory may be in no topic any more, so none is handed
	// out again (Keys fails) until the service restarts and reads anew.
	lost string
	// kekOK: CheckKEK found a key of the topic its KEK holds (checked
	// once: it walks every key).
	kekOK bool
}

type keyRec struct {
	subject   string
	id        [16]byte
	version   uint32
	createdAt time.Time
	kekID     string
	wrapped   []byte
	partition int
	offset    int64
	// known is the newest erasure of the subject the consent state knew
	// when the key was made (zero: none).
	known Erasure
}

type subjectState struct {
	keys       map[[16]byte]*keyRec
	maxVersion uint32
}

type marker struct {
	partition int
	offset    int64
	changeID  string
	at        time.Time
	// erasure is the ERASE the marker stands for; it kills every key
	// made knowing only an older one (keyRec.known).
	erasure Erasure
}

// ErrNoKEK: the ring was opened without a KEK (RingConfig.KEK), so it
// can mark erasures and shred, but neither make nor read data keys.
var ErrNoKEK = errors.New("shred: no key-encryption key: set CONSENT_KEK_FILE")

// ErrClosed is returned by a closed ring.
var ErrClosed = errors.New("shred: ring closed")

// OpenRing starts reading every partition of the keys topic from its first
// offset. It returns once the partitions are known; WaitCaughtUp waits
// for the records already there.
func OpenRing(ctx context.Context, cfg RingConfig) (*Ring, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("shred: RingConfig.Brokers is empty")
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 10000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	c, err := newCodec()
	if err != nil {
		return nil, fmt.Errorf("shred: %w", err)
	}
	r := &Ring{
		cfg: cfg, log: cfg.Log.With("topic", cfg.Topic), codec: c,
		client:   &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: cfg.Transport, Timeout: cfg.Timeout},
		tr:       &topicread.Client{Brokers: cfg.Brokers, Dialer: cfg.Dialer, Transport: cfg.Transport, Timeout: cfg.Timeout},
		progress: make(chan struct{}),
		pos:      map[int]int64{}, active: map[int]time.Time{}, errAt: map[int]time.Time{}, errMsg: map[int]string{},
		caughtCh: make(chan struct{}),
		keys:     map[[16]byte]*keyRec{}, subjects: map[string]*subjectState{}, dead: map[[16]byte]struct{}{},
		pending: map[[16]byte]*keyRec{}, markers: map[string]marker{}, cache: map[[16]byte]*DataKey{},
	}
	parts, err := r.tr.Partitions(ctx, cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("shred: keys topic: %w", err)
	}
	for _, p := range parts {
		r.parts = append(r.parts, int(p))
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	for _, p := range r.parts {
		rd := kafka.NewReader(kafka.ReaderConfig{
			Brokers: cfg.Brokers, Dialer: cfg.Dialer, Topic: cfg.Topic, Partition: p,
			StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
			ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) { r.readerError(p, fmt.Sprintf(format, args...)) }),
		})
		r.wg.Add(1)
		go r.read(p, rd)
	}
	return r, nil
}

// Close stops the readers. It does not wait for Shred.
func (r *Ring) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

func (r *Ring) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Ring) read(p int, rd *kafka.Reader) {
	defer r.wg.Done()
	defer rd.Close()
	for {
		m, err := rd.ReadMessage(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.readerError(p, err.Error())
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		r.apply(p, m.Offset, m.Key, m.Value)
	}
}

// readerError notes a failed fetch (for Ready); it logs the first of a
// run. kafka-go's messages name brokers, topics and partitions only.
func (r *Ring) readerError(p int, msg string) {
	r.mu.Lock()
	if strings.Contains(msg, "Offset Out Of Range") && r.lost == "" {
		r.lost = fmt.Sprintf("keys topic partition %d no longer holds the offsets read (the topic was recreated or replaced?): restart the service to read it anew", p)
		r.log.Error("shred: " + r.lost)
	}
	first := r.errAt[p].Before(r.active[p]) || r.errAt[p].IsZero()
	r.errAt[p] = time.Now()
	r.errMsg[p] = msg
	r.mu.Unlock()
	if first {
		r.log.Warn("keys topic: reading a partition fails; retrying", "partition", p, "error", msg)
	}
}

// changed wakes the waiters. r.mu must be held.
func (r *Ring) changed() {
	close(r.progress)
	r.progress = make(chan struct{})
}

// apply takes one record of partition p into the view.
func (r *Ring) apply(p int, offset int64, key, value []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.changed()
	if offset+1 > r.pos[p] {
		r.pos[p] = offset + 1
	}
	r.active[p] = time.Now()
	erased, id, subject, ok := parseKafkaKey(key)
	if value == nil {
		if ok && !erased {
			r.destroy(id)
			delete(r.pending, id)
		} else {
			r.skip(p, offset, "a tombstone of another key")
		}
		return
	}
	e, err := r.codec.decode(value)
	if err != nil {
		r.skip(p, offset, "not a "+SchemaName)
		return
	}
	switch {
	case e.kind == KindDataKey && ok && !erased && e.hasKeyID && e.keyID == id && e.subject == subject &&
		e.version >= 1 && e.kekID != "" && len(e.wrapped) > 0:
		r.addKey(&keyRec{subject: e.subject, id: e.keyID, version: e.version, createdAt: e.createdAt,
			kekID: e.kekID, wrapped: e.wrapped, partition: p, offset: offset, known: e.erasure})
	case e.kind == KindSubjectErased && ok && erased && e.subject == subject:
		if e.erasure.IsZero() {
			// A marker without its ERASE's captured_at (a writer that
			// does not set it): it kills every key of the subject read
			// so far (all at lower offsets, or in another partition:
			// fail closed), and is not taken as the subject's newest
			// erasure (it cannot be ordered against the others).
			r.killAll(e.subject)
			return
		}
		r.erase(e.subject, marker{partition: p, offset: offset, changeID: e.changeID, at: e.createdAt, erasure: e.erasure})
	default:
		r.skip(p, offset, "a "+SchemaName+" whose Kafka key or fields do not agree")
	}
}

func (r *Ring) skip(p int, offset int64, what string) {
	r.skipped++
	if !r.loggedSk {
		r.loggedSk = true
		r.log.Warn("keys topic: records skipped (logged once; see Skipped)", "partition", p, "offset", offset, "first", what)
	}
}

// addKey records an alive key. r.mu must be held. A key made without
// knowing the subject's newest erasure marker is dead at once.
func (r *Ring) addKey(k *keyRec) {
	if _, gone := r.dead[k.id]; gone {
		return
	}
	if old, ok := r.keys[k.id]; ok {
		if old.offset < 0 {
			old.partition, old.offset = k.partition, k.offset
		}
		return
	}
	if m, ok := r.markers[k.subject]; ok && killedBy(k, m) {
		r.dead[k.id] = struct{}{}
		r.pending[k.id] = k
		return
	}
	r.keys[k.id] = k
	s := r.subjects[k.subject]
	if s == nil {
		s = &subjectState{keys: map[[16]byte]*keyRec{}}
		r.subjects[k.subject] = s
	}
	s.keys[k.id] = k
	if k.version > s.maxVersion {
		s.maxVersion = k.version
	}
}

// killedBy: a marker kills every key of its subject that was made knowing
// only an older erasure (or none), whatever the offsets: such a key may
// hold data decided before the erasure. A key made knowing this erasure
// or a newer one (a grant given after it) lives on, so an ERASE marked
// again (redelivered, or arriving late and older) destroys nothing a later
// grant needs.
func killedBy(k *keyRec, m marker) bool {
	return k.known.Before(m.erasure)
}

// erase applies an erasure marker; the subject keeps its newest one (the
// consent store's order of erasures). r.mu must be held.
func (r *Ring) erase(subject string, m marker) {
	if old, ok := r.markers[subject]; ok && !old.erasure.Before(m.erasure) {
		return // kills no key the newer marker did not
	}
	r.markers[subject] = m
	s := r.subjects[subject]
	if s == nil {
		return
	}
	for id, k := range s.keys {
		if killedBy(k, m) {
			r.destroy(id)
			r.pending[id] = k
		}
	}
}

// killAll kills every key of subject in memory. r.mu must be held.
func (r *Ring) killAll(subject string) {
	s := r.subjects[subject]
	if s == nil {
		return
	}
	for id, k := range s.keys {
		r.destroy(id)
		r.pending[id] = k
	}
}

// destroy drops a key from memory and remembers its id as dead. r.mu
// must be held.
func (r *Ring) destroy(id [16]byte) {
	r.dead[id] = struct{}{}
	k, ok := r.keys[id]
	delete(r.cache, id)
	if !ok {
		return
	}
	delete(r.keys, id)
	if s := r.subjects[k.subject]; s != nil {
		delete(s.keys, id)
		if len(s.keys) == 0 {
			delete(r.subjects, k.subject)
		}
	}
}

// Skipped returns how many records of the topic were not KeyEvents the
// ring understands (another format, a foreign key form), which it ignored.
func (r *Ring) Skipped() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped
}

// probeIdle is how long a partition may read nothing before WaitCaughtUp
// asks the broker whether the offsets left hold any record at all (a
// compacted topic has gaps at its end).
var probeIdle = time.Second

// WaitCaughtUp returns once every partition is read up to the end offset
// it had when WaitCaughtUp was called, or with ctx's error.
func (r *Ring) WaitCaughtUp(ctx context.Context) error {
	rng, err := r.tr.Offsets(ctx, r.cfg.Topic)
	if err != nil {
		return fmt.Errorf("shred: keys topic: %w", err)
	}
	tick := time.NewTicker(probeIdle / 2)
	defer tick.Stop()
	r.mu.Lock()
	for _, p := range r.parts {
		if rg, ok := rng[int32(p)]; ok && r.pos[p] < rg.First {
			r.pos[p] = rg.First // below the log start nothing is left
		}
	}
	r.mu.Unlock()
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return ErrClosed
		}
		var behind []int
		for _, p := range r.parts {
			if r.pos[p] < rng[int32(p)].End {
				behind = append(behind, p)
			}
		}
		if len(behind) == 0 {
			if !r.caught {
				r.caught = true
				close(r.caughtCh)
			}
			r.mu.Unlock()
			return nil
		}
		wait := r.progress
		var idle []int
		for _, p := range behind {
			if time.Since(r.active[p]) > probeIdle {
				idle = append(idle, p)
			}
		}
		r.mu.Unlock()
		for _, p := range idle {
			r.probe(ctx, p, rng[int32(p)].End)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		case <-tick.C:
		}
	}
}

// probe moves a partition's position to end when the broker holds no
// record between it and end (compacted away).
func (r *Ring) probe(ctx context.Context, p int, end int64) {
	r.mu.Lock()
	from := r.pos[p]
	r.mu.Unlock()
	res, err := r.client.Fetch(ctx, &kafka.FetchRequest{Topic: r.cfg.Topic, Partition: p, Offset: from,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	if err != nil || res.Error != nil || res.HighWatermark < end || res.Records == nil {
		return
	}
	for {
		rec, err := res.Records.ReadRecord()
		if err == io.EOF {
			break
		}
		if err != nil || rec.Offset < end {
			return // a record to read (the reader will), or unknown
		}
	}
	r.mu.Lock()
	if r.pos[p] == from {
		r.pos[p] = end
		r.active[p] = time.Now()
		r.changed()
	}
	r.mu.Unlock()
}

// Ready is nil once the ring has caught up at least once and every
// partition's reader is healthy (no failed fetch since its last record
// within the last 30 s).
func (r *Ring) Ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if !r.caught {
		return errors.New("shred: keys topic not read to its end yet")
	}
	if r.lost != "" {
		return errors.New("shred: " + r.lost)
	}
	for _, p := range r.parts {
		if e := r.errAt[p]; e.After(r.active[p]) && time.Since(e) < 30*time.Second {
			return fmt.Errorf("shred: keys topic partition %d: %s", p, r.errMsg[p])
		}
	}
	return nil
}

func (r *Ring) waitFirstCatchUp(ctx context.Context) error {
	r.mu.Lock()
	ch := r.caughtCh
	r.mu.Unlock()
	select {
	case <-ch:
		return nil
	default:
	}
	return r.WaitCaughtUp(ctx)
}

// ErrStaleErasure: the keys topic holds an erasure marker of a subject
// that the caller's consent state does not know (KeysKnowing): the state
// is older than the erasure. No key is given: one made now would come
// after the marker and outlive the erasure. Retry once the state has
// caught up.
var ErrStaleErasure = errors.New("shred: the keys topic holds an erasure of a subject that the consent state does not know yet; retry once it has caught up")

// Keys is KeysKnowing for subjects whose consent state knows of no
// erasure: a subject with an erasure marker gets no key (ErrStaleErasure).
func (r *Ring) Keys(ctx context.Context, subjects []string) (map[string]*DataKey, error) {
	want := make(map[string]Erasure, len(subjects))
	for _, s := range subjects {
		want[s] = Erasure{}
	}
	return r.KeysKnowing(ctx, want)
}

// KeysKnowing returns the current data key of each subject of want,
// creating a key (version 1, or version+1 when the newest is older than
// RotateAfter) for each subject that has none, and producing the new keys
// durably (acks=all, one batch per partition) before it returns them. An
// error means no key is usable (retry the whole call); nothing it created
// is kept in memory unless it was written. It waits for the first
// catch-up, and fails for good once the topic lost records the ring had
// read (see Ready).
//
// want maps each subject to the newest erasure the caller's consent state
// knows (State.ErasedAt and ErasedBy; zero for none). A key is handed out
// only if it was made knowing at least that erasure (else a new one is
// made, recording it), and a new key records it, so that any erasure
// marker newer than what the caller knew kills the key, wherever it lies
// in the topic. When the ring holds a newer marker than the caller knows,
// the call fails with ErrStaleErasure: before a key is chosen, and again
// once every new key has been read back from the topic (a marker written
// meanwhile by a consent-sync that applied an erasure the caller's state
// predates is then in the view).
func (r *Ring) KeysKnowing(ctx context.Context, want map[string]Erasure) (map[string]*DataKey, error) {
	if r.isClosed() {
		return nil, ErrClosed
	}
	if err := r.waitFirstCatchUp(ctx); err != nil {
		return nil, err
	}
	if err := r.verifyAfterError(ctx); err != nil {
		return nil, err
	}
	if err := r.staleErasure(want); err != nil {
		return nil, err
	}
	subjects := make([]string, 0, len(want))
	for s := range want {
		subjects = append(subjects, s)
	}
	sort.Strings(subjects)
	out := make(map[string]*DataKey, len(subjects))
	for range 4 {
		found, missing, err := r.current(ctx, subjects, want, out)
		if err != nil {
			return nil, err
		}
		for s, k := range found {
			out[s] = k
		}
		if len(missing) > 0 {
			if err := r.CheckKEK(); err != nil {
				return nil, err
			}
			made, written, err := r.create(ctx, missing, want)
			if err != nil {
				return nil, err
			}
			if err := r.waitRead(ctx, written); err != nil {
				return nil, err
			}
			if err := r.staleErasure(want); err != nil {
				return nil, err
			}
			r.mu.Lock()
			for s, k := range made {
				if _, alive := r.keys[k.ID]; alive {
					out[s] = k
				}
			}
			r.mu.Unlock()
		}
		if complete(out, subjects) {
			return out, nil
		}
	}
	return nil, errors.New("shred: data keys were erased as they were chosen or written; retry")
}

// verifyAfterError fails for good when the topic lost records the ring
// read; and when a partition's reader failed since its last record (a
// broker restarted, replaced, or the topic recreated), it asks the brokers
// for the partitions' end offsets before any key is handed out: an end
// below what was read means the records (keys among them) are gone, and
// the ring is lost; otherwise the partition counts as healthy again.
func (r *Ring) verifyAfterError(ctx context.Context) error {
	r.mu.Lock()
	lost := r.lost
	var failing []int
	for _, p := range r.parts {
		if r.errAt[p].After(r.active[p]) {
			failing = append(failing, p)
		}
	}
	r.mu.Unlock()
	if lost != "" {
		return errors.New("shred: " + lost)
	}
	if len(failing) == 0 {
		return nil
	}
	ranges, err := r.tr.Offsets(ctx, r.cfg.Topic)
	if err != nil {
		return fmt.Errorf("shred: keys topic: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range failing {
		rg, ok := ranges[int32(p)]
		if !ok || rg.End < r.pos[p] {
			if r.lost == "" {
				r.lost = fmt.Sprintf("keys topic partition %d no longer holds the offsets read (the topic was recreated or replaced?): restart the service to read it anew", p)
				r.log.Error("shred: " + r.lost)
			}
			return errors.New("shred: " + r.lost)
		}
		r.active[p] = time.Now()
	}
	return nil
}

// staleErasure returns ErrStaleErasure when a subject of want has an
// erasure marker newer than the erasure the caller knows.
func (r *Ring) staleErasure(want map[string]Erasure) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s, known := range want {
		if m, ok := r.markers[s]; ok && known.Before(m.erasure) {
			return ErrStaleErasure
		}
	}
	return nil
}

// waitRead returns once every partition of written has been read past its
// offset: every record before the written ones (an erasure marker
// included) is then in the view.
func (r *Ring) waitRead(ctx context.Context, written map[int]int64) error {
	// Bounded: a reader that cannot fetch fails the call (retried), it
	// does not hold the caller's batch for ever.
	ctx, cancel := context.WithTimeout(ctx, 3*r.cfg.Timeout)
	defer cancel()
	for {
		r.mu.Lock()
		done := true
		for p, off := range written {
			if r.pos[p] <= off {
				done = false
			}
		}
		wait := r.progress
		lost := r.lost
		r.mu.Unlock()
		if lost != "" {
			return errors.New("shred: " + lost)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shred: reading the new data keys back: %w", ctx.Err())
		case <-wait:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func complete(out map[string]*DataKey, subjects []string) bool {
	for _, s := range subjects {
		if _, ok := out[s]; !ok {
			return false
		}
	}
	return true
}

// current finds the usable key of each subject not yet in have; missing
// lists the subjects that need a new key, with its version.
func (r *Ring) current(ctx context.Context, subjects []string, want map[string]Erasure, have map[string]*DataKey) (map[string]*DataKey, map[string]uint32, error) {
	now := r.cfg.Now()
	stale := false
	chosen := map[string]*keyRec{}
	missing := map[string]uint32{}
	r.mu.Lock()
	for _, s := range subjects {
		if _, ok := have[s]; ok {
			continue
		}
		if _, ok := chosen[s]; ok {
			continue
		}
		if _, ok := missing[s]; ok {
			continue
		}
		st := r.subjects[s]
		var best *keyRec
		if st != nil {
			for _, k := range st.keys {
				// Only a key made knowing exactly the caller's
				// erasure: an older one may hold data from before it
				// (its marker may not be read yet); a newer one means
				// the caller's state is older than another caller's,
				// and its data would live under a key that the marker
				// of the erasure the caller missed spares.
				if k.known.Before(want[s]) {
					continue
				}
				if want[s].Before(k.known) {
					stale = true
					break
				}
				if best == nil || newer(k, best) {
					best = k
				}
			}
		}
		if best != nil && (r.cfg.RotateAfter <= 0 || now.Sub(best.createdAt) < r.cfg.RotateAfter) {
			chosen[s] = best
			continue
		}
		v := uint32(1)
		if st != nil {
			v = st.maxVersion + 1
		}
		missing[s] = v
	}
	r.mu.Unlock()
	if stale {
		return nil, nil, ErrStaleErasure
	}
	found := make(map[string]*DataKey, len(chosen))
	for s, k := range chosen {
		dk, err := r.unwrap(ctx, k)
		if errors.Is(err, ErrErased) {
			continue // destroyed meanwhile: the next round creates one
		}
		if err != nil {
			return nil, nil, err
		}
		found[s] = dk
	}
	return found, missing, nil
}

func newer(a, b *keyRec) bool {
	if a.version != b.version {
		return a.version > b.version
	}
	if !a.createdAt.Equal(b.createdAt) {
		return a.createdAt.After(b.createdAt)
	}
	return bytes.Compare(a.id[:], b.id[:]) > 0
}

// unwrap returns the DataKey of a record, from the cache or the KEK.
func (r *Ring) unwrap(ctx context.Context, k *keyRec) (*DataKey, error) {
	r.mu.Lock()
	dk, ok := r.cache[k.id]
	r.mu.Unlock()
	if ok {
		return dk, nil
	}
	if r.cfg.KEK == nil {
		return nil, ErrNoKEK
	}
	dek, err := r.cfg.KEK.Unwrap(ctx, k.kekID, k.wrapped, dekAD(k.id, k.version, k.subject))
	if err != nil {
		return nil, fmt.Errorf("shred: data key %x does not unwrap (is the KEK the one it was wrapped with?): %w", k.id, err)
	}
	dk, err = NewDataKey(k.subject, k.id, k.version, k.createdAt, dek)
	clear(dek)
	if err != nil {
		return nil, fmt.Errorf("shred: data key %x: %w", k.id, err)
	}
	r.mu.Lock()
	_, alive := r.keys[k.id]
	if alive {
		r.cacheKey(dk)
	}
	r.mu.Unlock()
	if !alive {
		return nil, ErrErased // destroyed while it was unwrapped
	}
	return dk, nil
}

// cacheKey keeps an unwrapped key, evicting an arbitrary one when the
// cache is full. r.mu must be held.
func (r *Ring) cacheKey(dk *DataKey) {
	if _, ok := r.cache[dk.ID]; !ok && len(r.cache) >= r.cfg.CacheSize {
		for id := range r.cache {
			delete(r.cache, id)
			break
		}
	}
	r.cache[dk.ID] = dk
}

type newKey struct {
	rec *keyRec
	dk  *DataKey
}

// create makes, wraps and produces a key for each subject of missing, then
// takes the written ones into memory and returns them; a key an erasure
// marker read meanwhile killed is not returned.
func (r *Ring) create(ctx context.Context, missing map[string]uint32, want map[string]Erasure) (map[string]*DataKey, map[int]int64, error) {
	if r.cfg.KEK == nil {
		return nil, nil, ErrNoKEK
	}
	now := r.cfg.Now().UTC().Truncate(time.Millisecond)
	byPart := map[int][]newKey{}
	for s, v := range missing {
		var id [16]byte
		dek := make([]byte, dekLen)
		if _, err := rand.Read(id[:]); err != nil {
			return nil, nil, errors.New("shred: no randomness for a key id")
		}
		if _, err := rand.Read(dek); err != nil {
			return nil, nil, errors.New("shred: no randomness for a data key")
		}
		kekID, wrapped, err := r.cfg.KEK.Wrap(ctx, dek, dekAD(id, v, s))
		if err != nil {
			clear(dek)
			return nil, nil, fmt.Errorf("shred: wrap a new data key: %w", err)
		}
		dk, err := NewDataKey(s, id, v, now, dek)
		clear(dek)
		if err != nil {
			return nil, nil, err
		}
		p := balance(s, r.parts)
		byPart[p] = append(byPart[p], newKey{rec: &keyRec{subject: s, id: id, version: v, createdAt: now,
			kekID: kekID, wrapped: wrapped, partition: p, offset: -1, known: want[s]}, dk: dk})
	}
	recs := map[int][]kafka.Record{}
	for p, ks := range byPart {
		for _, k := range ks {
			val, err := r.codec.encode(event{kind: KindDataKey, subject: k.rec.subject, keyID: k.rec.id, hasKeyID: true,
				version: k.rec.version, createdAt: now, kekID: k.rec.kekID, wrapped: k.rec.wrapped, erasure: k.rec.known})
			if err != nil {
				return nil, nil, fmt.Errorf("shred: %w", err)
			}
			recs[p] = append(recs[p], kafka.Record{Time: now, Key: kafka.NewBytes(dataKeyKafkaKey(k.rec.id, k.rec.subject)), Value: kafka.NewBytes(val)})
		}
	}
	base, err := r.produce(ctx, recs)
	if err != nil {
		return nil, nil, fmt.Errorf("shred: write %d new data keys: %w", len(missing), err)
	}
	made := make(map[string]*DataKey, len(missing))
	written := make(map[int]int64, len(byPart))
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.changed()
	for p, ks := range byPart {
		written[p] = base[p] + int64(len(ks)) - 1
		for i, k := range ks {
			k.rec.offset = base[p] + int64(i)
			r.addKey(k.rec)
			if _, alive := r.keys[k.rec.id]; alive {
				r.cacheKey(k.dk)
				made[k.rec.subject] = k.dk
			}
		}
	}
	return made, written, nil
}

// produce writes each partition's records as one batch, acks=all, and
// returns each batch's base offset. All partitions are written at once.
func (r *Ring) produce(ctx context.Context, recs map[int][]kafka.Record) (map[int]int64, error) {
	type result struct {
		p    int
		base int64
		err  error
	}
	ch := make(chan result, len(recs))
	for p, rs := range recs {
		go func() {
			res, err := r.client.Produce(ctx, &kafka.ProduceRequest{Topic: r.cfg.Topic, Partition: p,
				RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(rs...)})
			if err == nil && res.Error != nil {
				err = res.Error
			}
			if err == nil {
				for _, e := range res.RecordErrors {
					err = e
					break
				}
			}
			if err != nil {
				ch <- result{p: p, err: err}
				return
			}
			ch <- result{p: p, base: res.BaseOffset}
		}()
	}
	base := make(map[int]int64, len(recs))
	var errs []error
	for range recs {
		res := <-ch
		if res.err != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", res.p, res.err))
			continue
		}
		base[res.p] = res.base
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return nil, errors.Join(errs...)
	}
	return base, nil
}

// Key returns the data key with this id, for decryption. ErrErased: the
// key is dead, or unknown once the topic is read to its end (a ciphertext
// is published only after its key was written, so an unknown id in a fully
// read topic was destroyed). Other errors (brokers unreachable, KEK) say
// nothing about the key.
func (r *Ring) Key(ctx context.Context, id [16]byte) (*DataKey, error) {
	for attempt := 0; attempt < 2; attempt++ {
		r.mu.Lock()
		k, alive := r.keys[id]
		_, dead := r.dead[id]
		r.mu.Unlock()
		if alive {
			return r.unwrap(ctx, k)
		}
		if dead {
			return nil, ErrErased
		}
		if attempt == 0 {
			if err := r.WaitCaughtUp(ctx); err != nil {
				return nil, err
			}
		}
	}
	// Unknown in the topic read to its end: destroyed (compacted away).
	// Remembered, so that the next ciphertext under it asks no broker.
	r.mu.Lock()
	if _, alive := r.keys[id]; !alive {
		r.dead[id] = struct{}{}
	}
	r.mu.Unlock()
	return nil, ErrErased
}

// DecryptBytes decrypts a binary ciphertext with its key from the ring;
// ErrErased when its subject was erased.
func (r *Ring) DecryptBytes(ctx context.Context, c []byte) ([]byte, error) {
	h, err := Parse(c)
	if err != nil {
		return nil, err
	}
	k, err := r.Key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	return k.DecryptBytes(c)
}

// DecryptString decrypts the string form of a ciphertext; ErrErased when
// its subject was erased.
func (r *Ring) DecryptString(ctx context.Context, s string) (string, error) {
	h, err := ParseString(s)
	if err != nil {
		return "", err
	}
	k, err := r.Key(ctx, h.KeyID)
	if err != nil {
		return "", err
	}
	return k.DecryptString(s)
}

// Erase produces a SUBJECT_ERASED marker for the erasure e of subject
// (acks=all) and applies it at once: every data key of the subject made
// without knowing e (or a newer erasure) is dead. consent-sync calls it
// for every ERASE it consumes, before it commits the change.
//
// It is idempotent: when the ring has read (or written) a marker of the
// subject for e or a newer erasure, nothing is written. Marking an
// erasure again is harmless anyway: it kills only keys made without
// knowing it. It waits for the first catch-up.
func (r *Ring) Erase(ctx context.Context, subject string, e Erasure) error {
	if r.isClosed() {
		return ErrClosed
	}
	if e.IsZero() {
		return errors.New("shred: Erase of no erasure")
	}
	// Read to the topic's end first: a newer marker of the subject
	// written by another instance (a rebalance) is then known, and this
	// one is not written after it (all markers of a subject share one
	// Kafka key: compaction keeps the last written).
	if err := r.WaitCaughtUp(ctx); err != nil {
		return err
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	r.mu.Lock()
	m, marked := r.markers[subject]
	r.mu.Unlock()
	if marked && !m.erasure.Before(e) {
		return nil
	}
	now := r.cfg.Now().UTC().Truncate(time.Millisecond)
	val, err := r.codec.encode(event{kind: KindSubjectErased, subject: subject, createdAt: now, erasure: e})
	if err != nil {
		return fmt.Errorf("shred: %w", err)
	}
	p := balance(subject, r.parts)
	base, err := r.produce(ctx, map[int][]kafka.Record{p: {{Time: now, Key: kafka.NewBytes(erasedKafkaKey(subject)), Value: kafka.NewBytes(val)}}})
	if err != nil {
		return fmt.Errorf("shred: write an erasure marker: %w", err)
	}
	r.mu.Lock()
	r.erase(subject, marker{partition: p, offset: base[p], changeID: e.ChangeID, at: now, erasure: e})
	r.changed()
	r.mu.Unlock()
	return nil
}

// Destroyed tells Shred's caller that a data key is gone: its tombstone was
// written (at) for the erasure with changeID. No key material.
type Destroyed struct {
	Subject  string
	KeyID    [16]byte
	Version  uint32
	ChangeID string
	At       time.Time
}

// Shred runs until ctx ends: for every erasure marker read, it tombstones
// every data key of the subject written before it (again after a restart,
// for the keys still in the topic), and calls onDestroyed (may be nil)
// after each tombstone is written. Failed writes are retried. It returns
// ctx's error.
func (r *Ring) Shred(ctx context.Context, onDestroyed func(Destroyed)) error {
	if err := r.waitFirstCatchUpRetry(ctx); err != nil {
		return err
	}
	backoff := time.Second
	for {
		r.mu.Lock()
		wait := r.progress
		batch := map[int][]*keyRec{}
		n := 0
		for _, k := range r.pending {
			if n == 1000 {
				break
			}
			batch[k.partition] = append(batch[k.partition], k)
			n++
		}
		r.mu.Unlock()
		if n > 0 {
			if err := r.tombstone(ctx, batch, onDestroyed); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.log.Warn("keys topic: writing tombstones failed; retrying", "keys", n, "error", err)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			backoff = time.Second
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		}
	}
}

func (r *Ring) waitFirstCatchUpRetry(ctx context.Context) error {
	for {
		err := r.waitFirstCatchUp(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return err
		}
		r.log.Warn("keys topic: not readable yet; retrying", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (r *Ring) tombstone(ctx context.Context, batch map[int][]*keyRec, onDestroyed func(Destroyed)) error {
	now := r.cfg.Now().UTC()
	recs := map[int][]kafka.Record{}
	for p, ks := range batch {
		for _, k := range ks {
			recs[p] = append(recs[p], kafka.Record{Time: now, Key: kafka.NewBytes(dataKeyKafkaKey(k.id, k.subject))})
		}
	}
	if _, err := r.produce(ctx, recs); err != nil {
		return err
	}
	r.mu.Lock()
	changes := map[string]string{}
	for _, ks := range batch {
		for _, k := range ks {
			delete(r.pending, k.id)
			changes[k.subject] = r.markers[k.subject].changeID
		}
	}
	r.mu.Unlock()
	if onDestroyed != nil {
		for _, ks := range batch {
			for _, k := range ks {
				onDestroyed(Destroyed{Subject: k.subject, KeyID: k.id, Version: k.version, ChangeID: changes[k.subject], At: now})
			}
		}
	}
	n := 0
	for _, ks := range batch {
		n += len(ks)
	}
	r.log.Info("keys topic: data keys destroyed", "keys", n)
	return nil
}
