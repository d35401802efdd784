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

	// inUse: the watermark hashes carry the "used" field (markInUse).
	inUseMu sync.Mutex
	inUse   bool
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
	// crash, or a duplicate.
	Redelivered bool
	// NoticeDue is true when the change owes a revocation notice that no
	// one has acknowledged yet ([Store.AckNotice]); Notice says what it is.
	NoticeDue bool
	// Notice is the outbox entry of the change when NoticeDue.
	Notice Notice
}

// NoticeReason says why a change owes a revocation notice. The values are
// stable: they go into the reason of the notice.
type NoticeReason string

// The reasons a WITHDRAW, DENY or ERASE owes a notice.
const (
	// NoticeGrantReplaced: a WITHDRAW or DENY replaced a stored grant.
	NoticeGrantReplaced NoticeReason = "grant_replaced"
	// NoticeErased: an ERASE took effect.
	NoticeErased NoticeReason = "erased"
	// NoticeLate: the change arrived after a newer change for its purpose
	// (or a newer erasure) was stored. In captured_at order it may have
	// ended a grant that was in effect, which the store no longer knows.
	NoticeLate NoticeReason = "late_change"
	// NoticeStateIncomplete: the change was applied while the store was
	// not known to hold the whole consent topic (ApplyOptions
	// .StateIncomplete: the warm marker was missing, a rebuild was
	// running), so a grant it ended may not have been replayed yet.
	NoticeStateIncomplete NoticeReason = "state_incomplete"
)

// Notice is an outbox entry: a revocation notice that a change owes. It is
// written by the same atomic script that applies the change and is kept,
// whatever is stored later, until [Store.AckNotice] removes it (or
// NoticeMemory passes). A notice is built from it, never from the current
// state, so a redelivery publishes the same notice.
type Notice struct {
	ChangeID   string
	Action     Action
	Purpose    string // empty for ERASE
	CapturedAt time.Time
	Reason     NoticeReason
}

// ApplyOptions tune [Store.ApplyWith].
type ApplyOptions struct {
	// StateIncomplete says that the store is not known to hold the whole
	// consent topic (the warm marker is missing: Redis restarted empty, a
	// rebuild is running). A WITHDRAW, DENY or ERASE then owes a notice
	// whatever it finds stored: the grant it ends may not be there yet.
	StateIncomplete bool
}

// applyScript is the compare-and-set of Apply. It runs atomically in Redis.
//
//	KEYS[1]  the subject's hash
//	KEYS[2]  the subject's notice outbox (change id -> JSON entry)
//	ARGV[1]  "E" for ERASE, "P" for a purpose change
//	ARGV[2]  the hash field: the purpose id, or the tombstone field
//	ARGV[3]  captured_at in Unix milliseconds (integer)
//	ARGV[4]  change_id
//	ARGV[5]  the encoded value to store in ARGV[2]
//	ARGV[6]  the invalidation channel
//	ARGV[7]  the subject id, published on ARGV[6] when the state changed
//	ARGV[8]  "1" for a WITHDRAW, DENY or ERASE (a change that takes consent away)
//	ARGV[9]  milliseconds to keep an outbox entry that nobody acknowledges
//	ARGV[10] "1" when the state is not known to be complete
//	ARGV[11] the outbox entry without its reason: JSON {"a":..,"p":..,"t":..}
//
// It returns {applied (0/1), previous value of the purpose field or false,
// the tombstone's change id when the tombstone stopped the change or false,
// the change's outbox entry or false}, or the error "CORRUPT <field>" when a
// stored value cannot be read.
//
// A change that takes consent away records its outbox entry (HSETNX: the
// first reason stays) when it replaces a grant, when an ERASE takes effect,
// when it arrives after a newer change (late), or when the state is not known
// to be complete. The entry does not depend on what is stored later; the
// caller removes it once the notice is acknowledged.
//
// Change ids are compared byte by byte: Lua's string "<" follows the server's
// collation locale, which need not be bytewise like Go's.
var applyScript = redis.NewScript(`
local key, box = KEYS[1], KEYS[2]
local kind, field, t, c, value = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local channel, subject, revokes, ttl = ARGV[6], ARGV[7], ARGV[8] == '1', ARGV[9]
local incomplete, entry = ARGV[10] == '1', ARGV[11]
local TOMB = '` + TombstoneField + `'
-- MaxCapturedAt: a stored time after it was written before the bound (the
-- clock rule now refuses such a GRANT and moves a restrictive change back
-- to it); it is read as the rule would have stored it.
local MAX = ` + strconv.FormatInt(maxCapturedMS, 10) + `

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

-- owe records the notice the change owes in the outbox.
local function owe(why)
  redis.call('HSETNX', box, c, '{"r":"' .. why .. '",' .. string.sub(entry, 2))
  redis.call('PEXPIRE', box, ttl)
end

-- notApplied handles a change that an equal or newer stored change (with
-- change id storedID) stops.
local function notApplied(storedID)
  if not revokes then return end
  if storedID ~= c then
    owe(incomplete and 'state_incomplete' or 'late_change')
  elseif incomplete then
    owe('state_incomplete')
  end
end

local function result(applied, prev, tombID)
  return {applied, prev, tombID, redis.call('HGET', box, c)}
end

local tomb = redis.call('HGET', key, TOMB)
if tomb then
  local v = decode(tomb)
  if not v then return redis.error_reply('CORRUPT ' .. TOMB) end
  if not newer(t, c, math.min(v.t, MAX), v.c) then
    notApplied(v.c)
    return result(0, false, v.c)
  end
end

if kind == 'E' then
  local all = redis.call('HGETALL', key)
  local stale = {}
  for i = 1, #all, 2 do
    local f = all[i]
    if f ~= TOMB then
      local v = decode(all[i + 1])
      if not v then return redis.error_reply('CORRUPT ' .. f) end
      if (v.t > MAX and v.s == 'granted') or not newer(math.min(v.t, MAX), v.c, t, c) then stale[#stale + 1] = f end
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  redis.call('HSET', key, TOMB, value)
  redis.call('PUBLISH', channel, subject)
  owe('erased')
  return result(1, false, false)
end

local cur = redis.call('HGET', key, field)
local granted = false
if cur then
  local v = decode(cur)
  if not v then return redis.error_reply('CORRUPT ' .. field) end
  -- A grant dated after MAX is one the rule refuses: any change replaces
  -- it (and a restrictive one owes the notice of a replaced grant).
  if not (v.t > MAX and v.s == 'granted') and not newer(t, c, math.min(v.t, MAX), v.c) then
    notApplied(v.c)
    return result(0, cur, false)
  end
  granted = v.s == 'granted'
end
if revokes then
  if granted then
    owe('grant_replaced')
  elseif incomplete then
    owe('state_incomplete')
  end
end
redis.call('HSET', key, field, value)
redis.call('PUBLISH', channel, subject)
return result(1, cur or false, false)
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

// storedNotice is the JSON value of an outbox entry. The script writes "r"
// in front of what Apply encodes.
type storedNotice struct {
	Reason     NoticeReason `json:"r,omitempty"`
	Action     Action       `json:"a"`
	Purpose    string       `json:"p,omitempty"`
	CapturedAt int64        `json:"t"`
}

// NoticeMemory is how long an outbox entry that nobody acknowledges is kept
// (counted from the subject's last recorded notice): long enough for any
// redelivery of its change after a crash to find it.
const NoticeMemory = 7 * 24 * time.Hour

// OutboxKey returns the Redis key of a subject's notice outbox: prefix +
// "consent-outbox:{" + subject + "}", a hash of change id -> JSON entry
// {"r":reason,"a":action,"p":purpose,"t":captured_at_ms}. The same hash tag
// as its state key keeps both in one Redis Cluster slot, as the script
// needs.
func (s *Store) OutboxKey(subject string) string {
	return s.prefix + "consent-outbox:{" + subject + "}"
}

// takesConsentAway reports whether a change of action a can owe a notice.
func takesConsentAway(a Action) bool {
	return a == ActionWithdraw || a == ActionDeny || a == ActionErase
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// storedTombstone is the JSON value of TombstoneField.
type storedTombstone struct {
	ChangeID   string `json:"c"`
	CapturedAt int64  `json:"t"`
}

// Apply is ApplyWith with zero options: the state is taken to be complete.
func (s *Store) Apply(ctx context.Context, c Change) (Outcome, error) {
	return s.ApplyWith(ctx, c, ApplyOptions{})
}

// ApplyWith stores change c if it is newer than what is stored, atomically:
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
// The state depends only on the set of changes applied, not on their order
// or on concurrent appliers.
//
// In the same atomic step, a WITHDRAW, DENY or ERASE that owes a revocation
// notice records it in the subject's outbox (see [NoticeReason] for when),
// and every call returns the change's outbox entry, if any, as
// Outcome.Notice: a redelivered change finds the notice that was due the
// first time even when a newer change was stored since. Remove the entry
// with [Store.AckNotice] once the notice is acknowledged.
//
// c is validated first (and a captured_at after [MaxCapturedAt] refused);
// an invalid change returns an error matching
// ErrInvalidChange and touches nothing. Redis failures are returned wrapped
// (retry them); a stored value that cannot be read returns a
// *[CorruptError].
func (s *Store) ApplyWith(ctx context.Context, c Change, opts ApplyOptions) (Outcome, error) {
	if err := c.Validate(); err != nil {
		return Outcome{}, err
	}
	if err := s.markInUse(ctx); err != nil {
		return Outcome{}, err
	}
	if c.CapturedAt.UnixMilli() > maxCapturedMS {
		// The script's times are doubles: past 2^53 ms two changes a
		// millisecond apart compare equal.
		return Outcome{}, fieldErr("captured_at", "lies after "+MaxCapturedAt.Format(time.RFC3339Nano)+", which the store cannot order to the millisecond: bound it first (Change.BoundCapturedAt)")
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
	entry, err := json.Marshal(storedNotice{Action: c.Action, Purpose: c.Purpose, CapturedAt: c.CapturedAt.UnixMilli()})
	if err != nil {
		return Outcome{}, fmt.Errorf("apply consent change: encode notice: %w", err)
	}
	res, err := applyScript.Run(ctx, s.rdb, []string{s.Key(c.SubjectID), s.OutboxKey(c.SubjectID)},
		kind, field, strconv.FormatInt(c.CapturedAt.UnixMilli(), 10), c.ChangeID, value,
		s.InvalidationChannel(), c.SubjectID, flag(takesConsentAway(c.Action)),
		strconv.FormatInt(NoticeMemory.Milliseconds(), 10), flag(opts.StateIncomplete), entry).Slice()
	if err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "CORRUPT "); ok && isRedisError(err) {
			return Outcome{}, &CorruptError{Field: f}
		}
		return Outcome{}, fmt.Errorf("apply consent change: %w", err)
	}
	if len(res) != 4 {
		return Outcome{}, fmt.Errorf("apply consent change: script returned %d values, want 4", len(res))
	}
	applied, _ := res[0].(int64)
	out := Outcome{Applied: applied == 1}
	out.Erased = out.Applied && c.Action == ActionErase
	if tombID, ok := res[2].(string); ok { // not applied because of the tombstone
		out.Redelivered = c.Action == ActionErase && tombID == c.ChangeID
	}
	if prev, ok := res[1].(string); ok {
		ps, err := decodePurpose(field, prev)
		if err != nil {
			return out, err
		}
		out.Previous = ps
		out.Redelivered = !out.Applied && c.Action != ActionErase && ps.ChangeID == c.ChangeID
	}
	if raw, ok := res[3].(string); ok {
		n, err := decodeNotice(c.ChangeID, raw)
		if err != nil {
			return out, err
		}
		out.NoticeDue, out.Notice = true, n
	}
	return out, nil
}

func decodeNotice(changeID, raw string) (Notice, error) {
	var sn storedNotice
	if err := json.Unmarshal([]byte(raw), &sn); err != nil || sn.CapturedAt <= 0 || !takesConsentAway(sn.Action) {
		return Notice{}, &CorruptError{Field: ReservedPrefix + "outbox", Err: errors.New("not a notice outbox entry")}
	}
	return Notice{ChangeID: changeID, Action: sn.Action, Purpose: sn.Purpose, CapturedAt: msTime(sn.CapturedAt), Reason: sn.Reason}, nil
}

// AckNotice removes the outbox entry of change changeID of subject: call it
// once the notice the entry owes is acknowledged by the brokers (acks=all),
// never before. Removing an entry that is not there is not an error.
func (s *Store) AckNotice(ctx context.Context, subject, changeID string) error {
	if err := s.rdb.HDel(ctx, s.OutboxKey(subject), changeID).Err(); err != nil {
		return fmt.Errorf("acknowledge revocation notice: %w", err)
	}
	return nil
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
			// A tombstone dated after MaxCapturedAt (stored before the
			// bound) compares in the script as MaxCapturedAt: Check must
			// compare it so too, or it decides otherwise than Apply did.
			st.ErasedAt, st.ErasedBy = msTime(min(tb.CapturedAt, maxCapturedMS)), tb.ChangeID
			continue
		}
		if strings.HasPrefix(f, ReservedPrefix) {
			return nil, &CorruptError{Field: f, Err: errors.New("unknown reserved field")}
		}
		ps, err := decodePurpose(f, raw)
		if err != nil {
			return nil, err
		}
		if ps.Status == StatusGranted && ps.CapturedAt.UnixMilli() > maxCapturedMS {
			// Stored before MaxCapturedAt bounded every change: the clock
			// rule refuses such a grant, which is not in force (fail
			// closed); the next change of the purpose replaces it.
			continue
		}
		if ps.CapturedAt.UnixMilli() > maxCapturedMS {
			// A restrictive state from before the bound: the script
			// compares it as MaxCapturedAt (with the tombstone too).
			ps.CapturedAt = MaxCapturedAt
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
