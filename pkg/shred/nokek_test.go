package shred

import (
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// A ring without a KEK (consent-sync's) marks erasures and shreds the keys
// an enforcer's ring made, but can neither make nor read a data key.
func TestRingWithoutKEKShredsButHoldsNoKeys(t *testing.T) {
	b := startBroker(t, brokertest.Options{})
	enf := openRing(t, ringConfig(b, testKEK(t)))
	k := mustKeys(t, enf, "cust-1")["cust-1"]
	c := encrypt(t, k, "jane@example.com", true)

	sync := openRing(t, ringConfig(b, nil))
	if _, err := sync.Keys(tctx(t), []string{"cust-2"}); !errors.Is(err, ErrNoKEK) {
		t.Fatalf("Keys without a KEK = %v, want ErrNoKEK", err)
	}
	if _, err := sync.DecryptString(tctx(t), c); !errors.Is(err, ErrNoKEK) {
		t.Fatalf("DecryptString without a KEK = %v, want ErrNoKEK", err)
	}
	var log destroyedLog
	runShred(t, sync, &log)
	if err := sync.Erase(tctx(t), "cust-1", testErasure("chg-erase")); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, k.ID)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := enf.DecryptString(tctx(t), c)
		if errors.Is(err, ErrErased) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the enforcer's ring still decrypts after the erasure: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !tombstones(t, b)["key:"+hex.EncodeToString(k.ID[:])+":cust-1"] {
		t.Fatal("no tombstone for the key")
	}
}
