package explain

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/consentgate/consentgate/pkg/shred"
)

// newIllustrativeKey returns the data key explain encrypts with when it is
// given none: a real data key of package shred (the enforcer's cipher and
// envelope), drawn at random for every explanation and never stored, so
// its ciphertexts show where and in what form fields are encrypted (equal
// values give equal deterministic ciphertexts, as in the enforcer) and
// decrypt with nothing.
func newIllustrativeKey() (*shred.DataKey, error) {
	var id [16]byte
	dek := make([]byte, 32)
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("illustrative data key: %w", err)
	}
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("illustrative data key: %w", err)
	}
	k, err := shred.NewDataKey("explain", id, 1, time.Now(), dek)
	clear(dek)
	if err != nil {
		return nil, fmt.Errorf("illustrative data key: %w", err)
	}
	return k, nil
}
