package enforce

import (
	"reflect"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/schemas"
)

// FuzzReadAudit: ReadAudit on any bytes returns a record or an error, never
// a recovered panic of the decoder, and a version 2 record it returns
// encodes (appendAudit) to bytes it reads back as the same record.
func FuzzReadAudit(f *testing.F) {
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		f.Fatal(err)
	}
	for _, a := range auditCases() {
		b, err := appendAudit(nil, AuditFingerprint, &a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ReadAudit(cat, data)
		if err != nil {
			if strings.Contains(err.Error(), "panicked") {
				t.Fatalf("ReadAudit: %v", err)
			}
			return
		}
		if a.Version != 2 {
			return
		}
		b, err := appendAudit(nil, AuditFingerprint, a)
		if err != nil {
			t.Fatalf("a record ReadAudit returned does not encode: %v (%+v)", err, *a)
		}
		back, err := ReadAudit(cat, b)
		if err != nil {
			t.Fatalf("re-encoded record unreadable: %v", err)
		}
		if want := normalAudit(*a); !reflect.DeepEqual(normalAudit(*back), want) {
			t.Fatalf("read, encoded and read again:\n got %+v\nwant %+v", normalAudit(*back), want)
		}
	})
}
