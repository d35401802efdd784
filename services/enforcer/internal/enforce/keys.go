package enforce

import (
	"context"
	"fmt"
	"time"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/shred"
)

// keys returns the data keys of the batch's subjects that some output of
// theirs encrypts a field on (nil when the policy encrypts nothing or no
// output of the batch does). A subject gets no key, and its fields to
// encrypt are removed, when its consent state shows an erasure that no
// grant came after: an erased subject's data is never encrypted under a
// key made after its erasure (which the erasure would not destroy). The
// error is the key source's: the batch is retried.
func (e *Enforcer) keys(ctx context.Context, events []event, states map[string]*consent.State, now time.Time) (map[string]redact.Encrypter, error) {
	if !e.policy.Encrypts() {
		return nil, nil
	}
	want := map[string]shred.Erasure{}
	for i := range events {
		ev := &events[i]
		if ev.deadLetter != "" {
			continue
		}
		if _, ok := want[ev.subject]; ok {
			continue
		}
		st := states[ev.subject]
		if !MayHaveKey(st, now) || !e.encrypts(ev, st, now) {
			continue
		}
		want[ev.subject] = shred.Erasure{}
		if st != nil {
			want[ev.subject] = shred.Erasure{At: st.ErasedAt, ChangeID: st.ErasedBy}
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	if e.opts.Keys == nil {
		return nil, nil // no key source: fields to encrypt are removed (fail closed)
	}
	keys, err := e.opts.Keys.Encrypters(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("data keys: %w", err)
	}
	return keys, nil
}

// encrypts reports whether some output of ev encrypts a field
// (decision.NeedsDataKey on each stream's decision).
func (e *Enforcer) encrypts(ev *event, st *consent.State, now time.Time) bool {
	in := decision.Input{Schema: ev.env.Schema.FullName, Fields: decision.FieldsOf(ev.env.Writer(), ev.env.Schema).Fields, State: st, Now: now}
	for _, s := range e.policy.Streams {
		if s.Encrypts() && decision.NeedsDataKey(decision.Decide(e.policy, s, in), s) {
			return true
		}
	}
	return false
}

// MayHaveKey reports whether a subject with consent state st may be given
// a data key: it was never erased, or some purpose has a grant newer than
// its newest erasure (State.Check ignores what the erasure forgot).
func MayHaveKey(st *consent.State, now time.Time) bool {
	if st == nil || (st.ErasedAt.IsZero() && st.ErasedBy == "") {
		return true
	}
	for p := range st.Purposes {
		if st.Check(p, now).Allowed {
			return true
		}
	}
	return false
}
