// Package consent holds the consent state model of consentgate and its Redis
// store.
//
// # Model
//
// A [Change] is one record of the consent.changes topic (the Avro record
// schemas/consent_change.avsc; convert with [ChangeFromNative] and
// [Change.Native]). Folding the changes of a subject gives its [State]: per
// purpose, the newest change wins (later captured_at in milliseconds, ties
// broken by the greater change id, compared byte-wise), and an ERASE forgets
// every purpose whose change is not newer than the erasure. The result
// depends only on the set of changes, not on the order they arrive in, so late
// and duplicate changes are harmless. [State.Check] turns a state into a
// [Verdict] for one purpose, denying by default and keeping "never asked"
// apart from "denied".
//
// # Clock rule
//
// captured_at is the customer's claim of when they made the change, and the
// newest wins for ever, so a wrong or forged clock must be bounded without
// losing what takes consent away. [Change.BoundCapturedAt] is the one rule,
// used by the HTTP intake (against its receive time, which it also writes as
// the Kafka record's timestamp) and by consent-sync's consumer and rebuild
// (against the record's timestamp), with one setting, CONSENT_MAX_CLOCK_SKEW:
// a GRANT dated after receipt counts as made at receipt, and one dated more
// than the skew ahead is rejected; a DENY, WITHDRAW or ERASE is never
// rejected for its date, and one dated more than the skew ahead counts as
// made at receipt + skew. So no future date stands more than the skew after
// its receipt, a restrictive change beats every grant received before it,
// and what the intake produced passes the consumer unchanged.
//
// # Exclusions
//
// A grant's excluded_categories name nodes of the data category taxonomy
// (pkg/policy Categories): "x" or "x.*", both meaning x and everything below
// it. [Change.Validate] rejects any other (an unknown name, another case, a
// bare "*"): an exclusion that matched nothing would fail open.
//
// # Redis layout
//
// [Store] keeps one hash per subject:
//
//	key    <prefix>consent:{<subject_id>}
//	field  <purpose id>  ->  JSON {"s":status,"c":change_id,"t":captured_at_ms,
//	                               "e":expires_at_ms,"b":legal_basis,"x":[excluded...],
//	                               "src":source,"n":notice_version}
//	field  !erased       ->  JSON {"c":change_id,"t":captured_at_ms}   (erasure tombstone)
//
// and one notice outbox per subject that has revocation notices due:
//
//	key    <prefix>consent-outbox:{<subject_id>}      (same slot as the state)
//	field  <change_id>  ->  JSON {"r":reason,"a":action,"p":purpose,"t":captured_at_ms}
//
// [Store.Apply] records an entry when a WITHDRAW, DENY or ERASE owes a notice
// ([NoticeReason]); [Store.AckNotice] removes it once the notice is
// acknowledged; the outbox key expires [NoticeMemory] after its last entry.
//
// "e", "b", "x", "src" and "n" are omitted when empty. Times are integer Unix
// milliseconds. The braces make the subject id the Redis Cluster hash tag, so
// one subject is one slot and the store works on a single server and on a
// cluster through redis.UniversalClient. Purpose ids may not start with "!"
// ([ReservedPrefix]); fields starting with it belong to the store.
//
// Nothing but the outbox has a TTL. Purpose entries stay until a newer change or an erasure
// replaces them (an expired grant is still stored, so its verdict can say
// "expired" and name the grant). The erasure tombstone is kept on purpose, for
// ever: it is what makes a change captured before the erasure, arriving late
// (a replay, a lagging partition), be ignored instead of bringing consent
// back. It holds no personal data beyond the key itself, which is the minimum
// needed to honour the erasure. To rebuild the cache, delete the keys and
// apply the topic from the beginning.
//
// # Atomicity
//
// [Store.Apply] is a Lua script (EVALSHA, falling back to EVAL once per
// server) that reads the tombstone and the purpose field, compares, and writes,
// all in one atomic step; any number of consent-sync instances can apply
// concurrently. [Store.Lookup] reads a batch of subjects in one pipelined
// round trip.
//
// # Errors
//
// Invalid changes return errors matching [ErrInvalidChange] (permanent);
// undecodable stored values return [*CorruptError] matching [ErrCorrupt] (fail
// closed); anything else from Redis is returned wrapped and is worth a retry.
// No error message carries a subject id or a field value.
package consent
