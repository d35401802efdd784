package redistest

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/internal/testcerts"
)

// Certs are the PEM files of a throwaway CA, a server certificate it
// signed (for 127.0.0.1, ::1 and localhost) and a client certificate it
// signed, written to a t.TempDir() folder (pkg/internal/testcerts).
type Certs = testcerts.Certs

// NewCerts makes a new CA and its server and client certificates, valid
// for a day. Two calls make two CAs that do not trust each other's
// certificates.
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	return testcerts.New(t, "redistest")
}
