package shred

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// keySet decrypts with real data keys; ids in erased answer ErrErased (as
// a Ring does for a destroyed key).
type keySet struct {
	keys   map[[16]byte]*DataKey
	erased map[[16]byte]bool
}

func (k *keySet) key(c Header) (*DataKey, error) {
	if k.erased[c.KeyID] {
		return nil, ErrErased
	}
	dk, ok := k.keys[c.KeyID]
	if !ok {
		return nil, ErrErased
	}
	return dk, nil
}

func (k *keySet) DecryptString(_ context.Context, s string) (string, error) {
	h, err := ParseString(s)
	if err != nil {
		return "", err
	}
	dk, err := k.key(h)
	if err != nil {
		return "", err
	}
	return dk.DecryptString(s)
}

func (k *keySet) DecryptBytes(_ context.Context, c []byte) ([]byte, error) {
	h, err := Parse(c)
	if err != nil {
		return nil, err
	}
	dk, err := k.key(h)
	if err != nil {
		return nil, err
	}
	return dk.DecryptBytes(c)
}

func valueKey(t *testing.T, subject string) *DataKey {
	t.Helper()
	var id [16]byte
	dek := make([]byte, 32)
	rand.Read(id[:])
	rand.Read(dek)
	k, err := NewDataKey(subject, id, 1, time.Now(), dek)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const valueSchema = `{"type":"record","name":"Ev","namespace":"t","fields":[
 {"name":"email","type":"string"},
 {"name":"ip","type":["null","string"],"default":null},
 {"name":"blob","type":"bytes"},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":"string"}},
 {"name":"plain","type":"string"},
 {"name":"n","type":"long"}]}`

// DecryptValue decrypts every ciphertext at every depth (union branches,
// arrays, map values and keys, bytes), leaves everything else as it is,
// reports erased fields by path only, and never changes its input.
func TestDecryptValue(t *testing.T) {
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{"ev.avsc": {Data: []byte(valueSchema)}})
	if err != nil {
		t.Fatal(err)
	}
	sch, _ := cat.SchemaByName("t.Ev")
	alive, gone := valueKey(t, "cust-1"), valueKey(t, "cust-2")
	ks := &keySet{keys: map[[16]byte]*DataKey{alive.ID: alive, gone.ID: gone}, erased: map[[16]byte]bool{gone.ID: true}}
	enc := func(k *DataKey, s string, det bool) string {
		c, err := k.EncryptString(s, det)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	blob, err := alive.EncryptBytes([]byte{1, 2, 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	secretKey := enc(alive, "jane@example.com", true)
	in := map[string]any{
		"email": enc(alive, "jane@example.com", true),
		"ip":    map[string]any{"string": enc(gone, "198.51.100.7", false)},
		"blob":  blob,
		"tags":  []any{enc(alive, "vip", false), "public"},
		"attrs": map[string]any{secretKey: enc(alive, "x", true), "k": "v"},
		"plain": "cg1:not-really",
		"n":     int64(7),
	}
	before := fmt.Sprint(in)
	out, rep, err := DecryptValue(context.Background(), ks, sch.Root(), in)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(in) != before {
		t.Fatal("DecryptValue modified its input")
	}
	got := out.(map[string]any)
	want := map[string]string{
		"email": "jane@example.com", "ip": fmt.Sprint(map[string]any{"string": Erased}), "blob": fmt.Sprint([]byte{1, 2, 3}),
		"tags": fmt.Sprint([]any{"vip", "public"}), "attrs": fmt.Sprint(map[string]any{"jane@example.com": "x", "k": "v"}),
		"plain": "cg1:not-really", "n": "7",
	}
	for f, w := range want {
		if g := fmt.Sprint(got[f]); g != w {
			t.Errorf("%s = %s, want %s", f, g, w)
		}
	}
	if w := []string{"attrs{}", "blob", "email", "tags[]"}; !slices.Equal(rep.Fields, w) {
		t.Errorf("Fields = %v, want %v", rep.Fields, w)
	}
	if w := []string{"ip"}; !slices.Equal(rep.Erased, w) {
		t.Errorf("Erased = %v, want %v", rep.Erased, w)
	}
	for _, p := range append(rep.Fields, rep.Erased...) {
		if strings.Contains(p, "@") {
			t.Errorf("a reported path holds a value: %q", p)
		}
	}

	// A ciphertext that does not verify is an error, not a partial value.
	// Tamper with the envelope's bytes (not its base64 text, whose
	// flipped character may stop being base64url and read as plaintext).
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(in["email"].(string), StringPrefix))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	in["email"] = StringPrefix + base64.RawURLEncoding.EncodeToString(raw)
	if out, _, err := DecryptValue(context.Background(), ks, sch.Root(), in); err == nil || out != nil {
		t.Fatalf("tampered ciphertext: %v, %v; want an error and nothing", out, err)
	}
}
