package decision

import (
	"slices"
	"strings"
	"sync"

	"github.com/consentgate/consentgate/pkg/policy"
)

// The Plan of an event depends only on the fields its bytes carry (the
// Carried of its writer and reader schemas, shared per pair by FieldsOf),
// the stream's unannotated_fields and rules (field rules, and the category
// rules that say encrypt), and the grant's exclusions: planFields computes it once per such combination and shares
// it, so that deciding an event does not walk the schema's fields.

// maxPlans bounds the plan memo; when it is full it is emptied (a policy
// reload, or unusual exclusion sets, refill it).
const maxPlans = 4096

// planKey identifies a memoised plan. Fields slices are identified by their
// first element and length (FieldsOf's are shared and never modified);
// stream rules by their slice and then, on a hit, by content (every rule,
// category rules and the encrypt ones included), so that rules changed in
// place are not served a stale plan.
type planKey struct {
	fields      *Field
	nfields     int
	unannotated string
	treat       *policy.Treatment
	ntreat      int
	excluded    string // the exclusion patterns, joined by NUL
}

type memoPlan struct {
	treatments []policy.Treatment
	patterns   []string
	plan       Plan
}

var planMemo struct {
	mu    sync.RWMutex
	plans map[planKey]*memoPlan
}

// planFields returns computePlan(fields, s, x), memoised. The result is
// shared: callers must not modify it.
func planFields(fields []Field, s policy.Stream, x Exclusions) Plan {
	if x.Empty() && s.Unannotated != policy.UnannotatedRemove && !hasEncryptRule(s) {
		return nil // nothing excluded, nothing unannotated to remove, nothing to encrypt
	}
	if len(fields) == 0 {
		return nil
	}
	k := planKey{fields: &fields[0], nfields: len(fields), unannotated: s.Unannotated, ntreat: len(s.Treatments)}
	if len(s.Treatments) > 0 {
		k.treat = &s.Treatments[0]
	}
	switch len(x.patterns) {
	case 0:
	case 1:
		k.excluded = x.patterns[0]
	default:
		k.excluded = strings.Join(x.patterns, "\x00")
	}
	planMemo.mu.RLock()
	m, ok := planMemo.plans[k]
	planMemo.mu.RUnlock()
	if ok && slices.Equal(m.treatments, s.Treatments) && slices.Equal(m.patterns, x.patterns) {
		return m.plan
	}
	m = &memoPlan{
		treatments: slices.Clone(s.Treatments),
		patterns:   slices.Clone(x.patterns),
		plan:       computePlan(fields, s, x),
	}
	planMemo.mu.Lock()
	if planMemo.plans == nil || len(planMemo.plans) >= maxPlans {
		planMemo.plans = map[planKey]*memoPlan{}
	}
	planMemo.plans[k] = m
	planMemo.mu.Unlock()
	return m.plan
}

// singles memoises the Exclusions of one pattern (bounded like the plans):
// grants exclude a few categories of the taxonomy, and matching a pattern
// against the taxonomy (exclusionBase) is what NewExclusions spends its
// time on.
var singles struct {
	mu sync.RWMutex
	m  map[string]Exclusions
}

// singleExclusion returns newExclusions([]string{p}), memoised. The
// Exclusions is shared; it is never modified.
func singleExclusion(p string) Exclusions {
	singles.mu.RLock()
	x, ok := singles.m[p]
	singles.mu.RUnlock()
	if ok {
		return x
	}
	x = newExclusions([]string{p})
	singles.mu.Lock()
	if singles.m == nil || len(singles.m) >= maxPlans {
		singles.m = map[string]Exclusions{}
	}
	singles.m[p] = x
	singles.mu.Unlock()
	return x
}
