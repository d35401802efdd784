package enforce

import (
	"github.com/consentgate/consentgate/pkg/audit"
	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// ReadAudit decodes one audit record of either version (audit.Read).
func ReadAudit(cat *avrocodec.Catalog, data []byte) (*AuditRecord, error) {
	return audit.Read(cat, data)
}
