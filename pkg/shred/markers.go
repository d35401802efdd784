package shred

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErasedBy returns the change id of the newest erasure marker of subject
// the ring has read, and whether there is one. An enforcer compares it
// with the consent state it decides on: a state that knows of no erasure
// while the keys topic has one is older than the erasure, and must not get
// the subject a new key (one made after the marker would outlive it).
func (r *Ring) ErasedBy(subject string) (changeID string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.markers[subject]
	return m.changeID, ok
}

// kekIDs is what a KEK can say about itself: the ids of its keys (the
// local provider's IDs). A KMS that cannot list them is not checked.
type kekIDs interface{ IDs() []string }

// CheckKEK returns an error when the keys topic holds alive data keys and
// the ring's KEK can unwrap none of them (a stray KEK: another file, the
// deployment's key missing from it), naming the KEK ids involved (ids are
// fingerprints, not keys). A ring with such a KEK must not create keys:
// the deployment's other instances and its consumers could never read
// them. Keys under some KEK ids it lacks (alongside ones it holds) are
// not an error here; they fail when they are unwrapped. Once a key under
// one of its KEKs is found, the answer is kept (the walk is not repeated).
func (r *Ring) CheckKEK() error {
	ids, ok := r.cfg.KEK.(kekIDs)
	if !ok {
		return nil
	}
	have := map[string]bool{}
	for _, id := range ids.IDs() {
		have[id] = true
	}
	r.mu.Lock()
	if r.kekOK {
		r.mu.Unlock()
		return nil
	}
	used := map[string]int{}
	for _, k := range r.keys {
		used[k.kekID]++
	}
	r.mu.Unlock()
	if len(used) == 0 {
		return nil
	}
	var missing []string
	for id := range used {
		if have[id] {
			r.mu.Lock()
			r.kekOK = true
			r.mu.Unlock()
			return nil
		}
		missing = append(missing, id)
	}
	sort.Strings(missing)
	return fmt.Errorf("shred: the keys topic's data keys are wrapped by key-encryption keys %s, none of which this KEK (%s) holds: "+
		"give CONSENT_KEK_FILE the deployment's key-encryption key", strings.Join(missing, ", "), strings.Join(ids.IDs(), ", "))
}

// Erasure names an ERASE consent change by what orders erasures in the
// consent store: its captured_at (to the millisecond) and then its change
// id, compared byte-wise. The zero Erasure is "no erasure", older than
// every other.
type Erasure struct {
	At       time.Time
	ChangeID string
}

// IsZero reports whether e is "no erasure".
func (e Erasure) IsZero() bool { return e.At.IsZero() && e.ChangeID == "" }

// Before reports whether e is older than o (the consent store's order).
func (e Erasure) Before(o Erasure) bool {
	switch {
	case e.IsZero():
		return !o.IsZero()
	case o.IsZero():
		return false
	}
	a, b := e.At.UnixMilli(), o.At.UnixMilli()
	if a != b {
		return a < b
	}
	return e.ChangeID < o.ChangeID
}
