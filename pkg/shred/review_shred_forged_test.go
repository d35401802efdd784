package shred

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/schemas"
)

// A customer controls some kept, never encrypted fields (a user agent, a
// link). A value there of the ciphertext's form, "cg1:" and base64url of a
// header naming a random key id, is taken by DecryptValue (consentctl
// decrypt) for a ciphertext: the ring, not knowing the id, calls it
// destroyed, and the output shows the customer's plaintext field as
// "(erased)", listed among the fields of an erased subject, for a subject
// that was never erased. An erasure report built on it is wrong, and any
// value can be hidden from the tool this way.
func TestReviewShredForgedCiphertextInAPlaintextFieldReadsAsErased(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	kek := testKEK(t)
	r := openRing(t, ringConfig(b, kek))
	const subject = "subject-never-erased-1"
	email := encrypt(t, mustKeys(t, r, subject)[subject], "alice@example.com", true)

	forged := make([]byte, HeaderLen+nonceLen+tagLen)
	copy(forged, magic[:])
	forged[3] = ModeRandomised
	_, _ = rand.Read(forged[4:20])
	forged[23] = 1
	ua := StringPrefix + base64.RawURLEncoding.EncodeToString(forged)

	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := cat.SchemaByName("consentgate.events.EmailEngagement")
	if !ok {
		t.Fatal("no EmailEngagement")
	}
	v := map[string]any{"event_id": "e1", "subject_id": subject, "occurred_at": time.Now(), "email": email,
		"campaign_id": "c", "message_id": "m", "action": "OPEN", "link_url": nil,
		"user_agent": map[string]any{"string": ua}, "ip_address": nil}
	out, rep, err := DecryptValue(tctx(t), r, s.Root(), v)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(map[string]any)
	if slices.Contains(rep.Erased, "user_agent") {
		t.Fatalf("a plaintext user_agent of a subject never erased is reported erased (report %+v, value %v); email %v",
			rep, got["user_agent"], got["email"])
	}
}
