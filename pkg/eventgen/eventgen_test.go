package eventgen

import (
	"math/rand/v2"
	"testing"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/schemas"
)

// TestEventsEncodeWithTheirSchemas: every event the generator draws fits the
// catalog schema it names, and the mix covers every event schema.
func TestEventsEncodeWithTheirSchemas(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]int{}
	for i := range 2000 {
		name, version, v := Event(rng, "evt", "cust-1")
		s, ok := cat.Version(name, version)
		if !ok {
			t.Fatalf("event %d names %s v%d, not in the catalog", i, name, version)
		}
		if _, err := s.EncodeSingle(v); err != nil {
			t.Fatalf("event %d (%s v%d) does not encode: %v", i, name, version, err)
		}
		seen[name+" v"+string(rune('0'+version))]++
	}
	for _, want := range []string{"consentgate.events.PageView v1", "consentgate.events.PageView v2", "consentgate.events.Purchase v1", "consentgate.events.EmailEngagement v1"} {
		if seen[want] == 0 {
			t.Errorf("2000 events and no %s", want)
		}
	}
}
