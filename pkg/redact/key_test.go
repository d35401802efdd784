package redact

import (
	"errors"
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
)

// TestNeedsKey: every rewriting action can make a pseudonym (of the value,
// or of the keys of a map it applies to); keep and remove cannot.
func TestNeedsKey(t *testing.T) {
	t.Parallel()
	for _, a := range []policy.Action{policy.ActionPseudonymise, policy.ActionMask, policy.ActionTruncateIP, policy.ActionGeneraliseHour, policy.ActionGeneraliseDay} {
		if !ActionNeedsKey(a) {
			t.Errorf("ActionNeedsKey(%s) = false", a)
		}
		if !NeedsKey(&policy.Policy{Streams: []policy.Stream{{}, keepAll(fieldRule("attrs", a))}}) {
			t.Errorf("a policy with a %s rule does not need a key", a)
		}
		if !NeedsKey(&policy.Policy{Streams: []policy.Stream{{DefaultTreatment: a}}}) {
			t.Errorf("a policy with default_treatment %s does not need a key", a)
		}
	}
	for _, a := range []policy.Action{policy.ActionKeep, policy.ActionRemove, ""} {
		if ActionNeedsKey(a) || NeedsKey(&policy.Policy{Streams: []policy.Stream{keepAll(fieldRule("attrs", a)), {DefaultTreatment: a}}}) {
			t.Errorf("%q needs a key", a)
		}
	}
}

// TestWithoutKeyNeverMakesAPseudonym: a redactor without a key fails
// closed where a pseudonym would be needed (a value, the keys of a map
// under a rewriting action) and works where none is.
func TestWithoutKeyNeverMakesAPseudonym(t *testing.T) {
	t.Parallel()
	r := NewWithoutKey()
	s := schemaOf(t, kitchenName, 0)
	for _, tc := range []struct {
		name   string
		stream policy.Stream
		want   error
	}{
		{"pseudonymise a string", keepAll(fieldRule("event_id", policy.ActionPseudonymise)), ErrNoKey},
		{"mask a map", keepAll(fieldRule("attrs", policy.ActionMask)), ErrNoKey},
		{"generalise a map of records", keepAll(fieldRule("contacts", policy.ActionGeneraliseDay)), ErrNoKey},
		{"remove a map", keepAll(fieldRule("attrs", policy.ActionRemove)), nil},
		{"keep everything", keepAll(), nil},
	} {
		_, err := r.Apply(Request{Schema: s, Value: kitchen(), Stream: tc.stream, Mode: ModeRedact})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}
