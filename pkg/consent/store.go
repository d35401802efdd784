package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// TombstoneField is the hash field holding the erasure tombstone of a subject.
// It starts with [ReservedPrefix], which no purpose id may start with.
const TombstoneField = ReservedPrefix + "erased"

// ErrCorrupt matches (with errors.Is) every *[CorruptError].
var ErrCorrupt = errors.New("corrupt consent state")

// CorruptError reports a stored hash field that cannot be decoded. The store
// fails closed: [Store.Lookup] and [Store.Apply] return it rather than treat
// the entry as absent. It names the hash field (a purpose id, or
// TombstoneField), never the subject.
type CorruptError struct {
	// Field is the hash field that cannot be decoded.
	Field string
	// Err is the decoding problem, if known.
	Err error
}

func (e *CorruptError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("corrupt consent state in field %q: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("corrupt consent state in field %q", e.Field)
}

// Unwrap returns the decoding problem.
func (e *CorruptError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Store keeps the current consent state of every subject in Redis, one hash
// per subject (see the package documentation for the layout). It is a cache
// that can be rebuilt at any time by applying the consent topic again: Apply
// is idempotent and order-safe.
//
// A Store is safe for concurrent use, also by many processes on the same
// Redis: every Apply is one atomic Lua script.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	// fresh, when set, gates Lookup on the state watermark (watermark.go).
	fresh *Freshness

	wmMu     sync.Mutex
	wmKeys   []string
	wmKeysAt time.Time
}

// NewStore returns a Store on rdb (a *redis.Client, *redis.ClusterClient or
// *redis.Ring... any redis.UniversalClient) whose keys all start with prefix.
// The prefix isolates tenants and tests (e.g. "t123:"); it may be empty and
// must not contain '{' or '}', which would change the cluster hash tag.
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix}
}

// Key returns the Redis key of a subject's hash: prefix + "consent:{" +
// subject + "}". The braces make the subject id the Redis Cluster hash tag, so
// that everything about one subject lives in one slot.
func (s *Store) Key(subject string) string {
	return s.prefix + "consent:{" + subject + "}"
}

// InvalidationChannel is the Redis pub/sub channel on which Apply publishes
// the subject id of every change that took effect, in the same atomic script
// that writes it: a [Cache] subscribed to it drops the subject's entry before
// any reader can see the old state for long.
func (s *Store) InvalidationChannel() string {
	return s.prefix + "consent:invalidations"
}

// Outcome is the result of [Store.Apply].
type Outcome struct {
	// Applied is false when an equal or newer change for the purpose was
	// already stored (a late or duplicate change), or the subject's erasure
	// tombstone is equal or newer.
	Applied bool
	// Previous is the stored state of the purpose before the call (zero if
	// none, and always zero for ERASE). When Applied is false it is the
	// state that won.
	Previous PurposeState
	// Erased is true when the change was an ERASE that took effect.
	Erased bool
	// Redelivered is true when the change was not applied because this
	// very change (same change id) is what is stored: a replay after a
	// crash, or a duplicate. Whatever the change was due to publish may
	// not have been published the first time.
	Redelivered bool
	// NoticeDue is true for a redelivered WITHDRAW or DENY that replaced a
	// grant when it was first applied (within NoticeMemory).
	NoticeDue bool
}

// applyScript is the compare-and-set of Apply. It runs atomically in Redis.
//
//	KEYS[1]  the subject's hash
//	ARGV[1]  "E" for ERASE, "P" for a purpose change
//	ARGV[2]  the hash field: the purpose id, or the tombstone field
//	ARGV[3]  captured_at in Unix milliseconds (integer)
//	ARGV[4]  change_id
//	ARGV[5]  the encoded value to store in ARGV[2]
//	ARGV[6]  the invalidation channel
//	ARGV[7]  the subject id, published on ARGV[6] when the state changed
//	ARGV[8]  "1" for a WITHDRAW or DENY
//	ARGV[9]  milliseconds to remember that such a change replaced a grant
//	KEYS[2]  the subject's notices-due hash (change id -> 1)
//
// It returns {applied (0/1), previous value of the purpose field or false}
// (plus the tombstone's change id when the tombstone stopped the change), or
// the error "CORRUPT <field>" when a stored value cannot be read.
//
// Change ids are compared byte by byte: Lua's string "<" follows the server's
// collation locale, which need not be bytewise like Go's.
var applyScript = redis.NewScript(`
local key, kind, field, t, c, value = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local channel, subject, revokes, noticeTTL = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local TOMB = '` + TombstoneField + `'

local function gt(a, b)
  if a == b then return false end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

local function newer(t1, c1, t2, c2)
  if t1 ~= t2 then return t1 > t2 end
  return gt(c1, c2)
end

local function decode(raw)
  local ok, v = pcall(cjson.decode, raw)
  if not ok or type(v) ~= 'table' or type(v.t) ~= 'number' or type(v.c) ~= 'string' then
    return nil
  end
  return v
end

local tomb = redis.call('HGET', key, TOMB)
if tomb then
  local v = decode(tomb)
  if not v then return redis.error_reply('CORRUPT ' .. TOMB) end
  if not newer(t, c, v.t, v.c) then return {0, false, v.c} end
end

if kind == 'E' then
  local all = redis.call('HGETALL', key)
  local stale = {}
  for i = 1, #all, 2 do
    local f = all[i]
    if f ~= TOMB then
      local v = decode(all[i + 1])
      if not v then return redis.error_reply('CORRUPT ' .. f) end
      if not newer(v.t, v.c, t, c) then stale[#stale + 1] = f end
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  redis.call('HSET', key, TOMB, value)
  redis.call('PUBLISH', channel, subject)
  return {1, false}
end

local cur = redis.call('HGET', key, field)
if cur then
  local v = decode(cur)
  if not v then return redis.error_reply('CORRUPT ' .. field) end
  if not newer(t, c, v.t, v.c) then
    if v.c == c then
      return {0, cur, redis.call('HEXISTS', KEYS[2], c)}
    end
    return {0, cur}
  end
  -- A withdrawal or denial that replaces a grant owes a revocation
  -- notice. Remember that outside the state (which must not depend on
  -- the order changes arrive in), so that a re-delivery of the change
  -- after a crash knows the notice was due.
  if revokes == '1' and v.s == 'granted' then
    redis.call('HSET', KEYS[2], c, '1')
    redis.call('PEXPIRE', KEYS[2], noticeTTL)
  end
end
redis.call('HSET', key, field, value)
redis.call('PUBLISH', channel, subject)
return {1, cur}
`)

// storedPurpose is the JSON value of a purpose field. The Lua script reads
// "t" and "c"; keep those names.
type storedPurpose struct {
	Status        Status   `json:"s"`
	ChangeID      string   `json:"c"`
	CapturedAt    int64    `json:"t"`
	ExpiresAt     int64    `json:"e,omitempty"`
	LegalBasis    string   `json:"b,omitempty"`
	Excluded      []string `json:"x,omitempty"`
	Source        string   `json:"src,omitempty"`
	NoticeVersion string   `json:"n,omitempty"`
}

// NoticeMemory is how long the store remembers that a withdrawal or
// denial replaced a grant, so that its re-delivery after a crash publishes
// the revocation notice again (Outcome.NoticeDue).
const NoticeMemory = 7 * 24 * time.Hour

// noticeKey is the subject's notices-due hash; the same hash tag as its
// state key keeps both in one Redis Cluster slot, as the script needs.
func (s *Store) noticeKey(subject string) string {
	return s.prefix + "consent-notices:{" + subject + "}"
}

func revokesFlag(a Action) string {
	if a == ActionWithdraw || a == ActionDeny {
		return "1"
	}
	return "0"
}

// storedTombstone is the JSON value of TombstoneField.
type storedTombstone struct {
	ChangeID   string `json:"c"`
	CapturedAt int64  `json:"t"`
}

// Apply stores change c if it is newer than what is stored, atomically:
//
//   - GRANT, DENY, WITHDRAW replace the state of c.Purpose when c is newer
//     (later captured_at in milliseconds, ties broken by the greater change
//     id) than both the stored purpose state and the erasure tombstone;
//     otherwise nothing changes and Outcome.Applied is false.
//   - ERASE, when newer than the stored tombstone, deletes every purpose
//     whose change is not newer than the erasure and writes the tombstone
//     {captured_at, change_id}. Purposes changed after the erasure (captured
//     later, applied earlier) survive: the newest change wins either way.
//
// The result depends only on the set of changes applied, not on their order
// or on concurrent appliers. c is validated first; an invalid change returns
// an error matching ErrInvalidChange and touches nothing. Redis failures are
// returned wrapped (retry them); a stored value that cannot be read returns a
// *[CorruptError].
func (s *Store) Apply(ctx context.Context, c Change) (Outcome, error) {
	if err := c.Validate(); err != nil {
		return Outcome{}, err
	}
	var (
		kind, field string
		value       []byte
		err         error
	)
	if c.Action == ActionErase {
		kind, field = "E", TombstoneField
		value, err = json.Marshal(storedTombstone{ChangeID: c.ChangeID, CapturedAt: c.CapturedAt.UnixMilli()})
	} else {
		ps, _ := PurposeStateOf(c)
		kind, field = "P", c.Purpose
		value, err = json.Marshal(encodePurpose(ps))
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("apply consent change: encode: %w", err)
	}
	res, err := applyScript.Run(ctx, s.rdb, []string{s.Key(c.SubjectID), s.noticeKey(c.SubjectID)},
		kind, field, strconv.FormatInt(c.CapturedAt.UnixMilli(), 10), c.ChangeID, value,
		s.InvalidationChannel(), c.SubjectID, revokesFlag(c.Action), strconv.FormatInt(NoticeMemory.Milliseconds(), 10)).Slice()
	if err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "CORRUPT "); ok && isRedisError(err) {
			return Outcome{}, &CorruptError{Field: f}
		}
		return Outcome{}, fmt.Errorf("apply consent change: %w", err)
	}
	if len(res) != 2 && len(res) != 3 {
		return Outcome{}, fmt.Errorf("apply consent change: script returned %d values, want 2 or 3", len(res))
	}
	applied, _ := res[0].(int64)
	out := Outcome{Applied: applied == 1}
	out.Erased = out.Applied && c.Action == ActionErase
	if len(res) == 3 {
		switch x := res[2].(type) {
		case string: // not applied because of the tombstone, whose change id this is
			out.Redelivered = c.Action == ActionErase && x == c.ChangeID
		case int64: // this very change is stored: was a notice due?
			out.NoticeDue = x == 1
		}
	}
	if prev, ok := res[1].(string); ok {
		ps, err := decodePurpose(field, prev)
		if err != nil {
			return out, err
		}
		out.Previous = ps
		out.Redelivered = !out.Applied && c.Action != ActionErase && ps.ChangeID == c.ChangeID
	}
	return out, nil
}

// isRedisError reports whether err is an error reply of the server (as
// opposed to a network or context error).
func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// Lookup returns the stored state of each subject, in one pipelined round trip
// (one HGETALL per distinct subject; a Redis Cluster client splits the pipeline
// per node). Subjects with nothing stored are absent from the map: a missing
// entry means unknown_subject, and [State.Check] on the nil *State says so.
//
// Any Redis failure fails the whole batch (fail closed; retry it). A stored
// value that cannot be decoded returns a *[CorruptError] naming its field.
func (s *Store) Lookup(ctx context.Context, subjects []string) (map[string]*State, error) {
	out := make(map[string]*State, len(subjects))
	if len(subjects) == 0 {
		return out, nil
	}
	type pending struct {
		subject string
		cmd     *redis.MapStringStringCmd
	}
	cmds := make([]pending, 0, len(subjects))
	seen := make(map[string]struct{}, len(subjects))
	pipe := s.rdb.Pipeline()
	fresh, err := s.queueFresh(ctx, pipe)
	if err != nil {
		return nil, err
	}
	for _, subj := range subjects {
		if _, dup := seen[subj]; dup {
			continue
		}
		seen[subj] = struct{}{}
		cmds = append(cmds, pending{subj, pipe.HGetAll(ctx, s.Key(subj))})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("lookup consent: %w", err)
	}
	if err := fresh.check(); err != nil {
		return nil, err
	}
	for _, p := range cmds {
		fields := p.cmd.Val()
		if len(fields) == 0 {
			continue
		}
		st, err := decodeState(p.subject, fields)
		if err != nil {
			return nil, err
		}
		out[p.subject] = st
	}
	return out, nil
}

func decodeState(subject string, fields map[string]string) (*State, error) {
	st := &State{SubjectID: subject, Purposes: make(map[string]PurposeState, len(fields))}
	for f, raw := range fields {
		if f == TombstoneField {
			var tb storedTombstone
			if sp, ok := parseStored(raw); ok && sp.Status == "" && sp.ExpiresAt == 0 && sp.LegalBasis == "" && sp.Excluded == nil && sp.Source == "" && sp.NoticeVersion == "" {
				tb = storedTombstone{ChangeID: sp.ChangeID, CapturedAt: sp.CapturedAt}
			} else if err := json.Unmarshal([]byte(raw), &tb); err != nil {
				return nil, &CorruptError{Field: f, Err: errors.New("not a JSON tombstone")}
			}
			if tb.ChangeID == "" || tb.CapturedAt <= 0 {
				return nil, &CorruptError{Field: f, Err: errors.New("tombstone lacks change id or time")}
			}
			st.ErasedAt, st.ErasedBy = msTime(tb.CapturedAt), tb.ChangeID
			continue
		}
		if strings.HasPrefix(f, ReservedPrefix) {
			return nil, &CorruptError{Field: f, Err: errors.New("unknown reserved field")}
		}
		ps, err := decodePurpose(f, raw)
		if err != nil {
			return nil, err
		}
		st.Purposes[f] = ps
	}
	return st, nil
}

func encodePurpose(ps PurposeState) storedPurpose {
	sp := storedPurpose{
		Status:        ps.Status,
		ChangeID:      ps.ChangeID,
		CapturedAt:    ps.CapturedAt.UnixMilli(),
		LegalBasis:    string(ps.LegalBasis),
		Excluded:      ps.ExcludedCategories,
		Source:        ps.Source,
		NoticeVersion: ps.NoticeVersion,
	}
	if !ps.ExpiresAt.IsZero() {
		sp.ExpiresAt = ps.ExpiresAt.UnixMilli()
	}
	return sp
}

// decodePurpose decodes a purpose field. The error never carries the value.
func decodePurpose(field, raw string) (PurposeState, error) {
	sp, ok := parseStored(raw)
	if !ok {
		sp = storedPurpose{}
		if err := json.Unmarshal([]byte(raw), &sp); err != nil {
			return PurposeState{}, &CorruptError{Field: field, Err: errors.New("not a JSON purpose state")}
		}
	}
	switch {
	case sp.Status != StatusGranted && sp.Status != StatusDenied && sp.Status != StatusWithdrawn:
		return PurposeState{}, &CorruptError{Field: field, Err: errors.New("unknown status")}
	case sp.ChangeID == "" || sp.CapturedAt <= 0:
		return PurposeState{}, &CorruptError{Field: field, Err: errors.New("lacks change id or time")}
	}
	ps := PurposeState{
		Status:             sp.Status,
		ChangeID:           sp.ChangeID,
		CapturedAt:         msTime(sp.CapturedAt),
		LegalBasis:         LegalBasis(sp.LegalBasis),
		ExcludedCategories: sp.Excluded,
		Source:             sp.Source,
		NoticeVersion:      sp.NoticeVersion,
	}
	if sp.ExpiresAt != 0 {
		ps.ExpiresAt = msTime(sp.ExpiresAt)
	}
	return ps, nil
}

// parseStored is the fast path of decoding a stored purpose state or
// tombstone: the JSON object that encoding/json writes for storedPurpose
// (keys in any order, strings without escapes, integer times, an array of
// strings). It returns ok false, and the caller decodes with encoding/json,
// on anything else: escapes, non-ASCII that is not valid UTF-8, unknown keys,
// nulls, fractions or exponents, whitespace it does not expect. The strings
// it returns share raw's memory.
func parseStored(raw string) (sp storedPurpose, ok bool) {
	p := jsonScan{s: raw}
	if !p.byte('{') {
		return sp, false
	}
	if p.peek() == '}' {
		p.i++
		return sp, p.i == len(p.s)
	}
	for {
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return sp, false
		}
		switch key {
		case "s":
			var v string
			v, ok = p.str()
			sp.Status = Status(v)
		case "c":
			sp.ChangeID, ok = p.str()
		case "t":
			sp.CapturedAt, ok = p.int()
		case "e":
			sp.ExpiresAt, ok = p.int()
		case "b":
			sp.LegalBasis, ok = p.str()
		case "src":
			sp.Source, ok = p.str()
		case "n":
			sp.NoticeVersion, ok = p.str()
		case "x":
			sp.Excluded, ok = p.strs()
		default:
			return sp, false
		}
		if !ok {
			return sp, false
		}
		switch {
		case p.byte(','):
		case p.byte('}'):
			return sp, p.i == len(p.s)
		default:
			return sp, false
		}
	}
}

// jsonScan reads the JSON subset of parseStored.
type jsonScan struct {
	s string
	i int
}

func (p *jsonScan) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *jsonScan) byte(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonScan) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start, ascii := p.i, true
	for ; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			if !ascii && !utf8.ValidString(v) {
				return "", false
			}
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", false
}

func (p *jsonScan) int() (int64, bool) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || n > 18 || (n > 1 && p.s[digits] == '0') {
		return 0, false // not an integer JSON number, or too long to be sure it fits
	}
	v, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
	return v, err == nil
}

func (p *jsonScan) strs() ([]string, bool) {
	if !p.byte('[') {
		return nil, false
	}
	out := []string{}
	if p.byte(']') {
		return out, true
	}
	for {
		v, ok := p.str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		switch {
		case p.byte(','):
		case p.byte(']'):
			return out, true
		default:
			return nil, false
		}
	}
}
