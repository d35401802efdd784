package consent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// # The state watermark
//
// Redis is a cache of the consent topic, and a cache can go back in time
// without anyone deleting anything: a restart from an older RDB/AOF snapshot,
// a failover to a replica that lagged, one Redis Cluster shard restarting
// empty while the others keep their data. The warm marker of earlier
// versions (one key saying "rebuilt") only caught a server that came back
// empty. The watermark catches all of them, per Redis node:
//
//   - Every master node holds a watermark hash (WatermarkKeys). Its field
//     "w:<topic>/<partition>" is W: every consent change at an offset below W
//     on that partition is reflected in that node's consent keys. W is
//     written on the same node as the state it vouches for, so a snapshot, a
//     replica or an empty restart of that node takes W back in time (or
//     away) together with the state.
//   - consent-sync raises W after it has applied a batch and before it
//     commits the batch's offsets ([Store.Advance]), and only contiguously:
//     W moves from at least the batch's first offset to past its last. So in
//     normal operation W >= the consumer group's committed offset, and a W
//     below the committed offset means the node lost changes that
//     consent-sync had already committed.
//   - The enforcer compares, on every lookup, the W of every node with the
//     committed offsets of consent-sync's consumer group (read from Kafka,
//     [Freshness]); below, missing, or a committed view too old to trust: the
//     lookup fails with ErrCold and the enforcer pauses, failing closed.
//   - consent-sync does the same comparison every second; when a node is
//     behind it replays the topic from the lowest W (from the beginning for
//     a node without a watermark) up to the end it sees at the start of the
//     replay, then sets W ([Store.SetWatermark]). The compare-and-set makes
//     the replay harmless for nodes that were not behind.
//
// The field "a:<topic>/<partition>" (A) is raised by every batch, whether or
// not W can move: a replay that ends at E leaves W = max(E, A), because the
// live consumer, which never stops, applied every record between E and A
// after the loss.
//
// A Redis server can also lose writes it has already acknowledged without
// losing the watermark written before them: a crash with AOF "everysec"
// loses the last second, a restart from the last RDB loses what came after
// it, a replica promoted by a failover lacks what it had not received. A W
// written before the loss is then still contiguous with the batch in flight,
// and raising it would vouch for the lost writes. So the watermark is tied to
// one run of the server: "rid" holds the server's run_id (INFO server, new
// on every start and different on every replica) of the replay that last set
// W, and Advance raises W only while the server's run_id is still that one.
// After any restart or failover W stays where it was until consent-sync has
// replayed the topic from it (consent-sync replays as soon as it sees a node
// whose run_id changed; [NodeWatermark.Restarted]). Likewise a replay writes
// its own token field "rebuild:<token>" holding the run_id at its start, and
// SetWatermark marks only a node still on that run: a node that restarted
// during the replay (empty, or from a snapshot that holds the token) has lost
// some of what the replay wrote. Each replay has its own token, so replays
// by several consent-sync instances do not cancel each other.

// ErrCold is returned by Lookup on a store that requires a fresh state
// ([Store.RequireFresh]) while some Redis node's consent state is older than
// what consent-sync has committed from the consent topic (restarted empty,
// restored from an old snapshot, failed over to a lagging replica, never
// filled), or while the committed offsets cannot be read. The enforcer
// treats it like Redis being down: it pauses, failing closed, until
// consent-sync has replayed the topic and raised the watermark.
var ErrCold = errors.New("consent state is behind the consent topic (a Redis node restarted empty or from an old snapshot, or was never filled) or its freshness cannot be checked; waiting for consent-sync to replay it")

// TopicPartition names a partition of a consent topic.
type TopicPartition struct {
	Topic     string
	Partition int
}

func (tp TopicPartition) String() string { return tp.Topic + "/" + strconv.Itoa(tp.Partition) }

// Offsets maps a consent-topic partition to an offset: the next offset to
// read (committed offset, watermark), or an end.
type Offsets map[TopicPartition]int64

// OffsetsOf converts offsets by topic and partition (as stream.Committed
// returns them) to Offsets.
func OffsetsOf(byTopic map[string]map[int]int64) Offsets {
	out := Offsets{}
	for t, ps := range byTopic {
		for p, off := range ps {
			out[TopicPartition{Topic: t, Partition: p}] = off
		}
	}
	return out
}

// Range is the span of one partition a batch covered: offsets First up to,
// not including, Next.
type Range struct {
	TopicPartition
	First, Next int64
}

const (
	wmVersionField = "v"
	wmRunField     = "rid" // run_id of the server when SetWatermark last ran
	wmTokenPrefix  = "rebuild:"
	wmMarkField    = "at" // when SetWatermark last ran, Unix ms (for operators)
)

// luaRunID is Lua that sets the local rid to the server's run_id, which
// changes on every start of the server and differs between a master and its
// replicas.
const luaRunID = `local rid = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or ''
`

func wField(tp TopicPartition) string { return "w:" + tp.String() }
func aField(tp TopicPartition) string { return "a:" + tp.String() }

// WatermarkKeys returns the key of the watermark hash on every master node:
// one key for a single server, one per master (a hash tag that maps to a slot
// the master owns) for a Redis Cluster.
func (s *Store) WatermarkKeys(ctx context.Context) ([]string, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return []string{s.prefix + "consent:!watermark"}, nil
	}
	s.wmMu.Lock()
	defer s.wmMu.Unlock()
	if s.wmKeys != nil && time.Since(s.wmKeysAt) < clusterTopologyTTL {
		return s.wmKeys, nil
	}
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("read the cluster's slots: %w", err)
	}
	byMaster := map[string]int{}
	for _, r := range slots {
		if len(r.Nodes) == 0 {
			continue
		}
		m := r.Nodes[0].Addr
		if first, ok := byMaster[m]; !ok || r.Start < first {
			byMaster[m] = r.Start
		}
	}
	keys := make([]string, 0, len(byMaster))
	for _, slot := range byMaster {
		keys = append(keys, s.prefix+"consent:!watermark:{"+tagForSlot(slot)+"}")
	}
	sort.Strings(keys)
	s.wmKeys, s.wmKeysAt = keys, time.Now()
	return keys, nil
}

// wmUsedField marks a watermark hash whose prefix holds consent state: the
// store sets it on every master before its first write ([Store.HasWatermark]
// looks for the hash). It does not make the watermark valid.
const wmUsedField = "used"

// markInUse sets the "used" field of the watermark hash of every master,
// once per Store, before the store's first write: consent state is then
// never in Redis without a watermark hash of its prefix.
func (s *Store) markInUse(ctx context.Context) error {
	s.inUseMu.Lock()
	defer s.inUseMu.Unlock()
	if s.inUse {
		return nil
	}
	keys, err := s.WatermarkKeys(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	for _, k := range keys {
		if err := s.rdb.HSetNX(ctx, k, wmUsedField, now).Err(); err != nil {
			return fmt.Errorf("mark the consent state watermark in use: %w", err)
		}
	}
	s.inUse = true
	return nil
}

// HasWatermark reports whether any Redis node holds a watermark hash of the
// store's prefix: the sign that consent-sync has written consent state
// there (a store marks the hash of every master before its first write,
// every batch raises the watermark, [Store.Advance], and every replay begins
// by writing its token into it, [Store.BeginReplay]).
// It reads the one watermark key of a single server, or on a Redis Cluster
// the watermark key of every slot (16384 EXISTS in one pipeline, split per
// master), so that a key left on another master by a reshard is found too.
// It needs no SCAN, which Redis does not limit to an ACL user's keys.
func (s *Store) HasWatermark(ctx context.Context) (bool, error) {
	var keys []string
	if _, ok := s.rdb.(*redis.ClusterClient); ok {
		keys = make([]string, 0, clusterSlots)
		for slot := 0; slot < clusterSlots; slot++ {
			keys = append(keys, s.prefix+"consent:!watermark:{"+tagForSlot(slot)+"}")
		}
	} else {
		keys = []string{s.prefix + "consent:!watermark"}
	}
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Exists(ctx, k)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("look for consent state watermarks: %w", err)
	}
	for _, c := range cmds {
		if c.Val() > 0 {
			return true, nil
		}
	}
	return false, nil
}

// clusterTopologyTTL is how long the watermark keys of a cluster are reused
// before its slots are read again (a resharding moves them).
const clusterTopologyTTL = 10 * time.Second

// advanceScript raises A for every range and W where it is contiguous.
//
//	KEYS[1]  a watermark hash
//	ARGV     triples: topic/partition, first, next
var advanceScript = redis.NewScript(luaRunID + `
local same = redis.call('HGET', KEYS[1], 'v') == '1' and redis.call('HGET', KEYS[1], 'rid') == rid
for i = 1, #ARGV, 3 do
  local tp, first, nxt = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local a = tonumber(redis.call('HGET', KEYS[1], 'a:' .. tp) or '-1')
  if nxt > a then redis.call('HSET', KEYS[1], 'a:' .. tp, nxt) end
  if same then
    local w = tonumber(redis.call('HGET', KEYS[1], 'w:' .. tp) or '0')
    if w >= first and nxt > w then redis.call('HSET', KEYS[1], 'w:' .. tp, nxt) end
  end
end
return 1
`)

// Advance records that the batch covering ranges has been applied to Redis:
// call it after the batch's changes are stored and before its offsets are
// committed. It raises W only where it is contiguous with the batch (W >=
// First), and only while the server is in the run in which a replay last
// set W; a node that lost changes, or restarted or failed over (and may have
// lost acknowledged writes), keeps its old W until a replay.
func (s *Store) Advance(ctx context.Context, ranges []Range) error {
	if len(ranges) == 0 {
		return nil
	}
	keys, err := s.WatermarkKeys(ctx)
	if err != nil {
		return err
	}
	args := make([]any, 0, 3*len(ranges))
	for _, r := range ranges {
		args = append(args, r.String(), r.First, r.Next)
	}
	for _, k := range keys {
		if err := advanceScript.Run(ctx, s.rdb, []string{k}, args...).Err(); err != nil {
			return fmt.Errorf("advance the consent state watermark: %w", err)
		}
	}
	return nil
}

// BatchRanges returns the ranges of offsets a batch of records covers.
func BatchRanges(topic func(i int) (string, int, int64), n int) []Range {
	idx := map[TopicPartition]int{}
	var out []Range
	for i := 0; i < n; i++ {
		t, p, off := topic(i)
		tp := TopicPartition{t, p}
		j, ok := idx[tp]
		if !ok {
			idx[tp] = len(out)
			out = append(out, Range{TopicPartition: tp, First: off, Next: off + 1})
			continue
		}
		out[j].First = min(out[j].First, off)
		out[j].Next = max(out[j].Next, off+1)
	}
	return out
}

// NodeWatermark is the watermark of one Redis node.
type NodeWatermark struct {
	Key string
	// Valid is false when the node has no watermark (empty, or never
	// replayed): nothing it holds can be trusted.
	Valid bool
	// W and A are the fields described in the package's watermark notes.
	W, A Offsets
	// Gen is the token of the replay that last set the watermark.
	Gen string
	// MarkedRun is the server's run_id when the watermark was last set;
	// RunID the server's run_id now (filled by [Store.Watermarks] only).
	MarkedRun, RunID string
}

// Restarted reports whether the server restarted or failed over since a
// replay last set its watermark: it may have lost acknowledged writes after
// W, so W no longer rises until a replay from W. Only meaningful on what
// [Store.Watermarks] returns.
func (n NodeWatermark) Restarted() bool { return n.Valid && n.MarkedRun != n.RunID }

// Behind reports the partitions whose W is below committed (missing counts
// as 0), or all of them when the node has no valid watermark.
func (n NodeWatermark) Behind(committed Offsets) []TopicPartition {
	var out []TopicPartition
	for tp, c := range committed {
		if c <= 0 {
			continue
		}
		if !n.Valid || n.W[tp] < c {
			out = append(out, tp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// readWatermarkScript returns the watermark hash (HGETALL) and the server's
// run_id, read atomically on the node that holds KEYS[1].
const readWatermarkSrc = luaRunID + `
return {redis.call('HGETALL', KEYS[1]), rid}
`

var readWatermarkScript = redis.NewScript(readWatermarkSrc)

// Watermarks reads the watermark of every node, with the node's run_id.
func (s *Store) Watermarks(ctx context.Context) ([]NodeWatermark, error) {
	keys, err := s.WatermarkKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]NodeWatermark, len(keys))
	for i, k := range keys {
		res, err := readWatermarkScript.Run(ctx, s.rdb, []string{k}).Slice()
		if err != nil {
			return nil, fmt.Errorf("read the consent state watermark: %w", err)
		}
		if out[i], err = parseWatermarkReply(k, res); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseWatermarkReply parses the reply of readWatermarkScript.
func parseWatermarkReply(key string, res []any) (NodeWatermark, error) {
	if len(res) != 2 {
		return NodeWatermark{}, &CorruptError{Field: key, Err: errors.New("unexpected watermark reply")}
	}
	flat, _ := res[0].([]any)
	rid, _ := res[1].(string)
	fields := make(map[string]string, len(flat)/2)
	for j := 0; j+1 < len(flat); j += 2 {
		f, _ := flat[j].(string)
		v, _ := flat[j+1].(string)
		fields[f] = v
	}
	n, err := parseWatermark(key, fields)
	if err != nil {
		return n, err
	}
	n.RunID = rid
	return n, nil
}

func parseWatermark(key string, fields map[string]string) (NodeWatermark, error) {
	n := NodeWatermark{Key: key, W: Offsets{}, A: Offsets{}}
	for f, v := range fields {
		switch {
		case f == wmVersionField:
			n.Valid = v == "1"
		case f == wmRunField:
			n.MarkedRun = v
		case f == "gen":
			n.Gen = v
		case strings.HasPrefix(f, "w:"), strings.HasPrefix(f, "a:"):
			tp, ok := parseTP(f[2:])
			off, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				return n, &CorruptError{Field: f, Err: errors.New("unreadable watermark field")}
			}
			if f[0] == 'w' {
				n.W[tp] = off
			} else {
				n.A[tp] = off
			}
		}
	}
	return n, nil
}

func parseTP(s string) (TopicPartition, bool) {
	i := strings.LastIndexByte(s, '/')
	if i <= 0 {
		return TopicPartition{}, false
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p < 0 {
		return TopicPartition{}, false
	}
	return TopicPartition{s[:i], p}, true
}

// beginReplayScript writes the replay's token field with the server's
// run_id.
//
//	KEYS[1]  a watermark hash
//	ARGV[1]  the token field
var beginReplayScript = redis.NewScript(luaRunID + `
redis.call('HSET', KEYS[1], ARGV[1], rid)
return 1
`)

// BeginReplay writes a new rebuild token on every node, with the server's
// run_id, and returns it. Read the watermarks to replay from after it:
// SetWatermark marks only the nodes still on that run (a node that restarted
// during the replay, empty or from a snapshot that holds the token, has lost
// some of what the replay wrote). Each replay has its own token.
func (s *Store) BeginReplay(ctx context.Context) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b)
	keys, err := s.WatermarkKeys(ctx)
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if err := beginReplayScript.Run(ctx, s.rdb, []string{k}, wmTokenPrefix+token).Err(); err != nil {
			return "", fmt.Errorf("begin the consent state replay: %w", err)
		}
	}
	return token, nil
}

// setWatermarkScript sets W = max(W, end, A) for every partition, if the
// node still holds the replay's token and is still in the run in which the
// replay began. It removes the token either way.
//
//	KEYS[1]  a watermark hash
//	ARGV[1]  the token; ARGV[2] the time (Unix ms)
//	ARGV     then pairs: topic/partition, end
var setWatermarkScript = redis.NewScript(luaRunID + `
local tf = 'rebuild:' .. ARGV[1]
local began = redis.call('HGET', KEYS[1], tf)
redis.call('HDEL', KEYS[1], tf)
if began ~= rid or rid == '' then return 0 end
for i = 3, #ARGV, 2 do
  local tp, e = ARGV[i], tonumber(ARGV[i + 1])
  local a = tonumber(redis.call('HGET', KEYS[1], 'a:' .. tp) or '0')
  local w = tonumber(redis.call('HGET', KEYS[1], 'w:' .. tp) or '0')
  if redis.call('HGET', KEYS[1], 'v') ~= '1' then w = 0 end
  redis.call('HSET', KEYS[1], 'w:' .. tp, math.max(w, e, a))
end
redis.call('HSET', KEYS[1], 'v', '1', 'at', ARGV[2], 'gen', ARGV[1], 'rid', rid)
return 1
`)

// SetWatermark marks the state as reflecting every change below ends (the
// ends a replay started by BeginReplay has applied, for every partition of
// the consent topics). It reports whether every node still held the token
// and was still in the run in which the replay began; false means a node
// restarted or failed over during the replay and may have lost some of it:
// replay again.
func (s *Store) SetWatermark(ctx context.Context, token string, ends Offsets) (bool, error) {
	keys, err := s.WatermarkKeys(ctx)
	if err != nil {
		return false, err
	}
	args := []any{token, time.Now().UnixMilli()}
	tps := make([]TopicPartition, 0, len(ends))
	for tp := range ends {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool { return tps[i].String() < tps[j].String() })
	for _, tp := range tps {
		args = append(args, tp.String(), ends[tp])
	}
	all := true
	for _, k := range keys {
		n, err := setWatermarkScript.Run(ctx, s.rdb, []string{k}, args...).Int()
		if err != nil {
			return false, fmt.Errorf("set the consent state watermark: %w", err)
		}
		all = all && n == 1
	}
	return all, nil
}

// StateGeneration tells consent-sync whether the state is known to be
// complete for a batch covering ranges: "" when some node has no watermark,
// restarted or failed over since a replay last set it (it may have lost
// changes on any partition, not only the batch's), or has a watermark below
// a range's first offset (it lost changes that came before the batch), else
// a value that changes whenever a replay sets the watermark again or a
// server restarts. Two equal, non-empty values read before and after a
// batch's applies mean that the state was complete all along.
func (s *Store) StateGeneration(ctx context.Context, ranges []Range) (string, error) {
	nodes, err := s.Watermarks(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, n := range nodes {
		if !n.Valid || n.Restarted() {
			return "", nil
		}
		for _, r := range ranges {
			if n.W[r.TopicPartition] < r.First {
				return "", nil
			}
		}
		b.WriteString(n.Key + "=" + n.Gen + "@" + n.RunID + ";")
	}
	return b.String(), nil
}

// Freshness is what the enforcer knows of consent-sync's progress: the
// offsets its consumer group has committed on the consent topics, refreshed
// by the caller ([Freshness.Set]) from Kafka.
type Freshness struct {
	// MaxAge is how old the committed offsets may be before lookups fail
	// closed (ErrCold): a view that cannot be refreshed cannot vouch for
	// anything.
	MaxAge time.Duration
	now    func() time.Time

	mu        sync.Mutex
	committed Offsets
	at        time.Time
	err       error
}

// NewFreshness returns a Freshness whose offsets are trusted for maxAge.
func NewFreshness(maxAge time.Duration) *Freshness {
	return &Freshness{MaxAge: maxAge, now: time.Now}
}

// Set records committed offsets read at time at (err: the read failed).
func (f *Freshness) Set(committed Offsets, at time.Time, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.err = err
		return
	}
	f.committed, f.at, f.err = committed, at, nil
}

// Committed returns the latest committed offsets, or an error when they are
// missing or older than MaxAge.
func (f *Freshness) Committed() (Offsets, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.committed == nil {
		if f.err != nil {
			return nil, fmt.Errorf("%w (committed offsets of consent-sync: %v)", ErrCold, f.err)
		}
		return nil, fmt.Errorf("%w (committed offsets of consent-sync not read yet)", ErrCold)
	}
	if age := f.now().Sub(f.at); age > f.MaxAge {
		return nil, fmt.Errorf("%w (committed offsets of consent-sync last read %v ago)", ErrCold, age.Round(time.Millisecond))
	}
	return f.committed, nil
}

// RequireFresh makes Lookup fail with ErrCold unless every Redis node's
// watermark is at or above the committed offsets f holds; the watermarks ride
// in the same pipelined round trip as the reads. It returns s.
func (s *Store) RequireFresh(f *Freshness) *Store {
	s.fresh = f
	return s
}

// freshCheck is the part of a lookup that checks the watermarks.
type freshCheck struct {
	committed Offsets
	keys      []string
	cmds      []*redis.Cmd
}

// queueFresh adds the watermark reads to pipe, or returns the reason the
// lookup must fail closed before any read.
func (s *Store) queueFresh(ctx context.Context, pipe redis.Pipeliner) (*freshCheck, error) {
	if s.fresh == nil {
		return nil, nil
	}
	committed, err := s.fresh.Committed()
	if err != nil {
		return nil, err
	}
	keys, err := s.WatermarkKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("lookup consent: %w", err)
	}
	fc := &freshCheck{committed: committed, keys: keys, cmds: make([]*redis.Cmd, len(keys))}
	for i, k := range keys {
		// With the server's run_id, so that a node that restarted (from a
		// snapshot, or failed over) since its watermark was set is
		// caught at once, whatever the committed offsets last read say.
		fc.cmds[i] = pipe.EvalRO(ctx, readWatermarkSrc, []string{k})
	}
	return fc, nil
}

// check fails with ErrCold when a node is behind.
func (fc *freshCheck) check() error {
	if fc == nil {
		return nil
	}
	for i, k := range fc.keys {
		res, err := fc.cmds[i].Slice()
		if err != nil {
			return fmt.Errorf("lookup consent: %w", err)
		}
		n, err := parseWatermarkReply(k, res)
		if err != nil {
			return err
		}
		if !n.Valid {
			return fmt.Errorf("%w (a Redis node holds no watermark)", ErrCold)
		}
		if n.Restarted() {
			return fmt.Errorf("%w (a Redis node restarted or failed over since its watermark was set)", ErrCold)
		}
		if behind := n.Behind(fc.committed); len(behind) > 0 {
			return fmt.Errorf("%w (a Redis node is behind on %d consent-topic partitions)", ErrCold, len(behind))
		}
	}
	return nil
}

// tagForSlot returns a short hash tag that Redis Cluster maps to slot.
func tagForSlot(slot int) string {
	tagMu.Lock()
	defer tagMu.Unlock()
	if tagCache == nil {
		tagCache = make(map[int]string)
		for i := 0; len(tagCache) < clusterSlots; i++ {
			t := "wm" + strconv.Itoa(i)
			sl := int(crc16([]byte(t)) % clusterSlots)
			if _, ok := tagCache[sl]; !ok {
				tagCache[sl] = t
			}
		}
	}
	return tagCache[slot]
}

const clusterSlots = 16384

var (
	tagMu    sync.Mutex
	tagCache map[int]string
)

// crc16 is CRC-16/XMODEM, the hash of Redis Cluster key slots.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for i := 0; i < 8; i++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
