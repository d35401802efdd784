package shred

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
