package avrocodec_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// specFingerprints are CRC-64-AVRO fingerprints of the Parsing Canonical
// Form of catalog schemas, as the Avro specification defines them (and as
// Java Avro, fastavro, avsc and hamba/avro compute them), next to the value
// goavro's Codec.Rabin gives, which consentgate wrote before it computed the
// form itself (goavro keeps {"type":"long"} for a logical type; see
// canonical.go).
//
// The hex forms: std and legacy are the fingerprint as a number, printed
// most significant byte first (fmt's %016x of the uint64, the form the
// decode errors and issue 10 use); frame is the 8 bytes the single-object
// encoding writes after C3 01, which are the same number little-endian, so
// the byte order is reversed (the form the Python Avro tests use).
var specFingerprints = []struct {
	name        string
	version     int
	std, legacy uint64
	frame       string
}{
	{"consentgate.events.EmailEngagement", 1, 0x20433d7956485b6e, 0x83bb45a92d062ba9, "6e5b4856793d4320"},
	{purchase, 1, 0xa2b86ded6ca35442, 0xafab716fb8516a8c, "4254a36ced6db8a2"},
}

// TestCatalogFingerprintsAreTheSpecifications: catalog schemas carry the
// specification's fingerprint, EncodeSingle writes it (little-endian, after
// C3 01), an event framed with it by a spec-compliant producer decodes, and
// the old goavro fingerprint is kept as an alias only.
func TestCatalogFingerprintsAreTheSpecifications(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	codec := avrocodec.New(cat, nil)
	for _, tc := range specFingerprints {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := version(t, cat, tc.name, tc.version)
			if s.Fingerprint != tc.std {
				t.Fatalf("Fingerprint = %016x, want the specification's %016x", s.Fingerprint, tc.std)
			}
			if got := s.Codec().Rabin; got != tc.legacy {
				t.Fatalf("goavro Rabin = %016x, want %016x (the figure of records already written)", got, tc.legacy)
			}
			got, ok := cat.SchemaByFingerprint(tc.std)
			if !ok || got != s {
				t.Fatalf("SchemaByFingerprint(%016x) = %v, %v", tc.std, got, ok)
			}
			wantHeader, _ := hex.DecodeString("c301" + tc.frame)
			value := sample(t, tc.name)
			b, err := s.EncodeSingle(value)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, wantHeader) {
				t.Fatalf("single-object header = % x, want % x", b[:10], wantHeader)
			}
			// A spec-compliant producer frames the goavro binary datum with
			// the standard header.
			datum, err := s.Codec().BinaryFromNative(nil, value)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := codec.Decode(context.Background(), append(wantHeader, datum...))
			if err != nil {
				t.Fatalf("decode a spec-framed event: %v", err)
			}
			if rec.WriterFingerprint != tc.std || rec.Writer() != s {
				t.Fatalf("writer fingerprint %016x (%s v%d), want %016x", rec.WriterFingerprint, rec.Writer().FullName, rec.Writer().Version, tc.std)
			}
		})
	}
}

// TestLegacyFingerprintStillDecodes: records framed with goavro's
// fingerprint (everything consentgate wrote before, and goavro's own
// SingleFromNative) still decode; re-encoding them writes the standard
// fingerprint.
func TestLegacyFingerprintStillDecodes(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	codec := avrocodec.New(cat, nil)
	for _, tc := range specFingerprints {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := version(t, cat, tc.name, tc.version)
			old, err := s.Codec().SingleFromNative(nil, sample(t, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			legacyHeader := []byte{0xC3, 0x01}
			for i := range 8 {
				legacyHeader = append(legacyHeader, byte(tc.legacy>>(8*i)))
			}
			if !bytes.HasPrefix(old, legacyHeader) {
				t.Fatalf("goavro header = % x, want % x", old[:10], legacyHeader)
			}
			rec, err := codec.Decode(context.Background(), old)
			if err != nil {
				t.Fatalf("decode a record with the legacy fingerprint: %v", err)
			}
			if rec.Writer() != s || rec.WriterFingerprint != tc.std {
				t.Fatalf("writer %s v%d fingerprint %016x, want v%d %016x", rec.Writer().FullName, rec.Writer().Version, rec.WriterFingerprint, tc.version, tc.std)
			}
			out, err := codec.EncodeLike(context.Background(), rec, rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(out[2:10]); got != tc.frame {
				t.Fatalf("re-encoded fingerprint bytes %s, want the standard %s", got, tc.frame)
			}
		})
	}
}

func sample(t *testing.T, name string) map[string]any {
	t.Helper()
	switch name {
	case purchase:
		return purchaseV1()
	case "consentgate.events.EmailEngagement":
		return map[string]any{
			"event_id": "ev-3", "subject_id": "subject-3", "occurred_at": occurred,
			"email": "a.person@example.com", "campaign_id": "cmp-1", "message_id": "msg-1",
			"action": "CLICK", "link_url": map[string]any{"string": "https://shop.example/"},
			"user_agent": nil, "ip_address": nil,
		}
	}
	t.Fatalf("no sample for %s", name)
	return nil
}

// TestSameCanonicalFormOtherLogicalType: a writer that differs from the
// reader only by a logical type has the reader's Parsing Canonical Form and
// fingerprint, but not its native values (int64, not time.Time): the codec
// still resolves the data into the reader, and encodes a reader-shaped value
// back into the writer.
func TestSameCanonicalFormOtherLogicalType(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t)
	v2 := version(t, cat, pageView, 2)
	plain := strings.Replace(v2.Text, `{"type": "long", "logicalType": "timestamp-millis"}`, `"long"`, 1)
	if plain == v2.Text {
		t.Fatal("PageView v2 has no timestamp-millis occurred_at to replace")
	}
	reg, client := startRegistry(t)
	id := reg.Add("customer.events-value", plain)
	codec := avrocodec.New(cat, client)
	value := pageViewV2()
	value["occurred_at"] = occurred.UnixMilli()
	data := confluent(t, id, mustCodec(t, plain), value)

	rec, err := codec.Decode(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Writer().Fingerprint != v2.Fingerprint {
		t.Fatalf("writer fingerprint %016x, want the reader's %016x (logical types are not in the canonical form)", rec.Writer().Fingerprint, v2.Fingerprint)
	}
	got, _ := avrocodec.Field(rec.Value, "occurred_at")
	if ts, ok := got.(time.Time); !ok || !ts.Equal(occurred) {
		t.Fatalf("occurred_at = %T %v, want the reader's time.Time %v", got, got, occurred)
	}
	out, err := codec.EncodeLike(context.Background(), rec, rec.Value)
	if err != nil {
		t.Fatalf("encode back into the writer: %v", err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("re-encoded bytes differ:\n got %x\nwant %x", out, data)
	}
}

// TestSchemasREADMEFingerprints: the fingerprint table of schemas/README.md
// lists every catalog file with its fingerprint, its wire bytes and its
// legacy fingerprint, so that producers in other languages can check theirs.
func TestSchemasREADMEFingerprints(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../schemas/README.md")
	if err != nil {
		t.Fatalf("read the schemas README (run from a checkout of the repository): %v", err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Fingerprints\n")
	if !ok {
		t.Fatal("schemas/README.md has no Fingerprints section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.Trim(strings.TrimSpace(c), "`"))
		}
		if len(cells) != 4 {
			t.Fatalf("schemas/README.md: row %q has %d cells, want 4", line, len(cells))
		}
		rows[cells[0]] = cells[1:]
	}
	cat := loadCatalog(t)
	for _, s := range cat.Schemas() {
		wire := make([]string, 8)
		for i := range wire {
			wire[i] = fmt.Sprintf("%02x", byte(s.Fingerprint>>(8*i)))
		}
		want := []string{fmt.Sprintf("%016x", s.Fingerprint), strings.Join(wire, " "), fmt.Sprintf("%016x", s.LegacyFingerprint)}
		got, ok := rows[s.File]
		if !ok {
			t.Errorf("schemas/README.md: no row for %s; add | `%s` | `%s` | `%s` | `%s` |", s.File, s.File, want[0], want[1], want[2])
			continue
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("schemas/README.md: %s row is %v, want %v", s.File, got, want)
		}
		delete(rows, s.File)
	}
	for file := range rows {
		t.Errorf("schemas/README.md: row for %s, which the catalog does not have", file)
	}
}
