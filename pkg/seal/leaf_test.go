package seal

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestLeafDataFormat builds a leaf by hand from the format's documentation
// and checks LeafData and LeafHash against it.
func TestLeafDataFormat(t *testing.T) {
	want := []byte("consentgate audit leaf v1\x00")
	want = append(want, 0, 0, 0, 0, 0, 0, 0, 13)
	want = append(want, "consent.audit"...)
	want = append(want, 0, 0, 0, 3)                          // partition
	want = append(want, 0, 0, 0, 0, 0, 0, 1, 2)              // offset 258
	want = append(want, 1, 0, 0, 0, 0, 0, 0, 0, 2, 'k', 'y') // key "ky"
	want = append(want, 0)                                   // null value
	got := LeafData("consent.audit", 3, 258, []byte("ky"), nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("LeafData =\n%x\nwant\n%x", got, want)
	}
	if len("consentgate audit leaf v1\x00") != 26 {
		t.Fatal("the documented prefix is 26 bytes")
	}
	h := LeafHash("consent.audit", 3, 258, []byte("ky"), nil)
	if sum := sha256.Sum256(append([]byte{0}, want...)); h != sum {
		t.Fatalf("LeafHash = %x, want SHA-256(0x00 || leaf) = %x", h, sum)
	}

	// A null key, an empty value, a negative offset (two's complement).
	want = []byte("consentgate audit leaf v1\x00")
	want = append(want, 0, 0, 0, 0, 0, 0, 0, 1, 't')
	want = append(want, 0x7f, 0xff, 0xff, 0xff)
	want = append(want, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	want = append(want, 0)
	want = append(want, 1, 0, 0, 0, 0, 0, 0, 0, 0)
	if got := LeafData("t", 1<<31-1, -1, nil, []byte{}); !bytes.Equal(got, want) {
		t.Fatalf("LeafData =\n%x\nwant\n%x", got, want)
	}
}

type leafFields struct {
	topic      string
	partition  int32
	offset     int64
	key, value []byte
}

// parseLeaf decodes version 1 leaf data, as another tool would from the
// documentation.
func parseLeaf(b []byte) (leafFields, error) {
	var f leafFields
	bad := errors.New("bad leaf")
	if !bytes.HasPrefix(b, []byte(leafPrefix)) {
		return f, bad
	}
	b = b[len(leafPrefix):]
	u64 := func() (uint64, error) {
		if len(b) < 8 {
			return 0, bad
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v, nil
	}
	field := func() ([]byte, error) {
		if len(b) < 1 {
			return nil, bad
		}
		p := b[0]
		b = b[1:]
		switch p {
		case 0:
			return nil, nil
		case 1:
			n, err := u64()
			if err != nil || uint64(len(b)) < n {
				return nil, bad
			}
			v := append([]byte{}, b[:n]...)
			b = b[n:]
			return v, nil
		}
		return nil, bad
	}
	n, err := u64()
	if err != nil || uint64(len(b)) < n {
		return f, bad
	}
	f.topic, b = string(b[:n]), b[n:]
	if len(b) < 12 {
		return f, bad
	}
	f.partition = int32(binary.BigEndian.Uint32(b))
	f.offset = int64(binary.BigEndian.Uint64(b[4:]))
	b = b[12:]
	if f.key, err = field(); err != nil {
		return f, err
	}
	if f.value, err = field(); err != nil {
		return f, err
	}
	if len(b) != 0 {
		return f, bad
	}
	return f, nil
}

// TestLeafDataUnambiguous: leaf data decodes back to exactly the fields it
// was made of (so two different records never share a leaf), nil and
// empty keys and values included.
func TestLeafDataUnambiguous(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		r := randomRecord(rng, rng.Int64()-1<<62)
		topic := "t" + string(make([]byte, rng.IntN(5)))
		p := int32(rng.Uint32())
		got, err := parseLeaf(LeafData(topic, p, r.Offset, r.Key, r.Value))
		if err != nil {
			t.Fatal(err)
		}
		if got.topic != topic || got.partition != p || !equalRecord(Record{got.offset, got.key, got.value}, r) {
			t.Fatalf("leaf decodes to %+v, want %s/%d %+v", got, topic, p, r)
		}
	}
	// Pairs that a careless encoding would confuse.
	pairs := []struct {
		name string
		a, b []byte
	}{
		{"nil or empty key", LeafData("t", 0, 0, nil, []byte("v")), LeafData("t", 0, 0, []byte{}, []byte("v"))},
		{"nil or empty value", LeafData("t", 0, 0, []byte("k"), nil), LeafData("t", 0, 0, []byte("k"), []byte{})},
		{"key/value boundary", LeafData("t", 0, 0, []byte("ab"), []byte("c")), LeafData("t", 0, 0, []byte("a"), []byte("bc"))},
		{"topic/partition boundary", LeafData("t1", 0, 0, nil, nil), LeafData("t", 1, 0, nil, nil)},
		{"offset", LeafData("t", 0, 1, nil, nil), LeafData("t", 0, 2, nil, nil)},
		{"partition", LeafData("t", 0, 1, nil, nil), LeafData("t", 1, 1, nil, nil)},
	}
	for _, p := range pairs {
		if bytes.Equal(p.a, p.b) {
			t.Errorf("%s: same leaf data", p.name)
		}
	}
}
