package avrocodec_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
)

// staticRegistry serves writer schemas from memory. It implements the
// codec's own Registry interface (not a client library), so that the fuzzer
// runs without a network round trip per input.
type staticRegistry map[int]string

func (r staticRegistry) Schema(_ context.Context, id int) (string, error) {
	if s, ok := r[id]; ok {
		return s, nil
	}
	if id == 999 {
		return "", fmt.Errorf("simulated outage: %w", schemaregistry.ErrUnavailable)
	}
	return "", fmt.Errorf("schema %d: %w", id, schemaregistry.ErrNotFound)
}

func FuzzDecode(f *testing.F) {
	cat := loadCatalog(f)
	v1, v2 := version(f, cat, pageView, 1), version(f, cat, pageView, 2)
	p := version(f, cat, purchase, 1)
	reg := staticRegistry{1: v1.Text, 2: v2.Text, 3: p.Text}
	codec := avrocodec.New(cat, reg)

	f.Add(single(f, v1, pageViewV1()))
	f.Add(single(f, v2, pageViewV2()))
	f.Add(single(f, p, purchaseV1()))
	f.Add(confluent(f, 1, v1, pageViewV1()))
	f.Add(confluent(f, 2, v2, pageViewV2()))
	f.Add(confluent(f, 3, p, purchaseV1()))
	f.Add([]byte{})
	f.Add([]byte{0x00, 0, 0, 3, 0xe7, 0x00})
	f.Add([]byte{0xC3, 0x01})

	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := codec.Decode(context.Background(), data)
		if err != nil {
			var de *avrocodec.DecodeError
			if !errors.As(err, &de) && !avrocodec.IsRetryable(err) {
				t.Fatalf("error is neither a *DecodeError nor retryable: %v", err)
			}
			if avrocodec.IsPermanent(err) == avrocodec.IsRetryable(err) {
				t.Fatalf("error is both or neither permanent and retryable: %v", err)
			}
			return
		}
		if rec.Schema == nil || rec.Value == nil {
			t.Fatal("success without schema or value")
		}
		// Whatever decodes must re-encode in its own framing.
		if _, err := codec.EncodeLike(context.Background(), rec, rec.Value); err != nil {
			t.Fatalf("EncodeLike(decoded) error = %v", err)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	cat := loadCatalog(b)
	v1, v2 := version(b, cat, pageView, 1), version(b, cat, pageView, 2)
	p := version(b, cat, purchase, 1)
	reg := staticRegistry{1: v2.Text}
	codec := avrocodec.New(cat, reg)
	cases := []struct {
		name string
		data []byte
	}{
		{"single-object/same-schema", single(b, v2, pageViewV2())},
		{"single-object/resolve-v1-to-v2", single(b, v1, pageViewV1())},
		{"single-object/purchase", single(b, p, purchaseV1())},
		{"confluent/same-schema", confluent(b, 1, v2, pageViewV2())},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.data)))
			ctx := context.Background()
			for b.Loop() {
				if _, err := codec.Decode(ctx, bc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
