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
// "(erased)", listed among the erased fields, for a subject that was never
// erased.
//
// This cannot be told apart from a real erasure: compaction removes a
// destroyed key's record and then its tombstone, so after a full read of
// the keys topic an id it destroyed and an id never written look the same
// (the Ring records neither). It is the documented behaviour (package
// documentation, Guarantees; Decrypted.Erased): the test asserts it, and
// that the subject's real ciphertext, under a live key, still decrypts.
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
	if !slices.Contains(rep.Erased, "user_agent") || got["user_agent"] == nil ||
		got["user_agent"].(map[string]any)["string"] != Erased {
		t.Fatalf("a value of ciphertext form under an unknown key id: report %+v, value %v; want it read as %q, as documented",
			rep, got["user_agent"], Erased)
	}
	if got["email"] != "alice@example.com" || !slices.Equal(rep.Fields, []string{"email"}) || len(rep.Erased) != 1 {
		t.Fatalf("the subject's ciphertext under its live key: %v, report %+v", got["email"], rep)
	}
}
