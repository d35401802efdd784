package avrocodec_test

import (
	"testing"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// A registry schema without a namespace: its named types have full names
// without a dot, so goavro's union wrapper of an enum ({"Kind": "A"}) is
// not one StringField unwraps, and the decoded record has no string
// subject_id or event_id. The envelope must say the same (the enforcer then
// dead-letters the event for its missing subject), not read the symbol.
func TestEnvelopeNamespacelessEnumInUnion(t *testing.T) {
	t.Parallel()
	reg := staticRegistry{
		// Not resolved (the catalog does not know the name).
		1: `{"type":"record","name":"Loose","fields":[
 {"name":"event_id","type":"string"},
 {"name":"subject_id","type":["null",{"type":"enum","name":"Kind","symbols":["A","B"]}]}
]}`,
		2: `{"type":"record","name":"Loose2","fields":[
 {"name":"event_id","type":["null",{"type":"enum","name":"Kind","symbols":["A","B"]}]},
 {"name":"subject_id","type":"string"}
]}`,
	}
	codec := avrocodec.New(loadCatalog(t), reg)
	cases := map[string][]byte{
		"subject_id enum": {0, 0, 0, 0, 1, 0x02, 'e', 0x02, 0x00},
		"subject_id null": {0, 0, 0, 0, 1, 0x02, 'e', 0x00},
		"event_id enum":   {0, 0, 0, 0, 2, 0x02, 0x02, 0x02, 's'},
		"event_id enum B": {0, 0, 0, 0, 2, 0x02, 0x00, 0x02, 's'},
		"event_id null":   {0, 0, 0, 0, 2, 0x00, 0x02, 's'},
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if got := verdict(t, codec, data); got != "ok" {
				t.Fatalf("outcome = %s, want ok", got)
			}
		})
	}
}
