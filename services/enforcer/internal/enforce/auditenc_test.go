package enforce

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/schemas"
)

// TestAuditFingerprint: the catalog's AuditRecord (its latest version) is
// the schema the hand-written encoder was written for. When this fails, the
// schema changed: update appendAudit and AuditFingerprint together.
func TestAuditFingerprint(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := cat.SchemaByName(AuditSchema)
	if !ok {
		t.Fatal("no audit schema in the catalog")
	}
	if s.Fingerprint != AuditFingerprint || s.Version != 2 || s.File != "audit_record.v2.avsc" {
		t.Fatalf("catalog AuditRecord %s version %d fingerprint %#x, encoder written for version 2 %#x", s.File, s.Version, s.Fingerprint, AuditFingerprint)
	}
	if ok, why := auditFastPath(avrocodec.New(cat, nil)); !ok {
		t.Fatalf("fast path off with the built-in schemas: %s", why)
	}
	// The fast path writes the specification's fingerprint, computed from
	// the schema text, not goavro's (issue 10 finding 14).
	std, err := avrocodec.SchemaFingerprint(s.Text)
	if err != nil || std != AuditFingerprint {
		t.Fatalf("specification fingerprint of the audit schema %016x (%v), AuditFingerprint %016x", std, err, AuditFingerprint)
	}
	b, err := appendAudit(nil, AuditFingerprint, &AuditRecord{Outcome: AuditDecided})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0xC3, 0x01, 0x77, 0x63, 0xC4, 0xB8, 0x00, 0xED, 0xB2, 0x4E}; !bytes.Equal(b[:10], want) {
		t.Fatalf("audit header % x, want % x", b[:10], want)
	}
	// Version 1 stays in the catalog, found by its fingerprint, so that
	// the records written with it still decode.
	v1, ok := cat.Version(AuditSchema, 1)
	if !ok || v1.Fingerprint != AuditFingerprintV1 {
		t.Fatalf("catalog AuditRecord version 1: %v, want fingerprint %016x", v1, AuditFingerprintV1)
	}
	if got, ok := cat.SchemaByFingerprint(AuditFingerprintV1); !ok || got != v1 {
		t.Fatalf("SchemaByFingerprint(v1) = %v, %v", got, ok)
	}
}

// auditCases are hand-picked records: optional fields null and set, no,
// one and many decisions, treated fields and consents, every decision and
// outcome, edge numbers and multi-byte strings.
func auditCases() []AuditRecord {
	at := time.Date(2026, 11, 22, 8, 0, 0, 123_456_789, time.UTC)
	long := strings.Repeat("é-field[]", 40)
	return []AuditRecord{
		{EventID: "evt-1", SubjectID: "cust-1", Outcome: AuditDecided, EventSchema: "consentgate.events.PageView", PolicyVersion: "v7",
			SourceTopic: "customer.events", SourcePartition: 3, SourceOffset: 42, ProcessedAt: at,
			Decisions: []StreamDecision{{Stream: "compliant.marketing", Purposes: []string{"marketing"}, Decision: decision.Passed, Reason: "granted",
				DecidingPurpose: "marketing", Consents: []decision.PurposeConsent{{Purpose: "marketing", ChangeID: "chg-1", CapturedAt: at}}}}},
		{EventID: "evt-2", SubjectID: "cust-2", Outcome: AuditDecided, EventSchema: "consentgate.events.Purchase", PolicyVersion: "v7",
			SourceTopic: "customer.events", ProcessedAt: at.Add(time.Hour),
			Decisions: []StreamDecision{
				{Stream: "compliant.personalisation", Purposes: []string{"personalisation"}, Decision: decision.Dropped, Reason: "never_asked",
					DecidingPurpose: "personalisation", TreatedFields: []string{}, Consents: []decision.PurposeConsent{{Purpose: "personalisation"}}},
				{Stream: "compliant.analytics", Purposes: []string{"analytics", "sale"}, Decision: decision.Redacted, Reason: "denied", DecidingPurpose: "sale",
					TreatedFields: []string{"subject_id", "ip_address", "geo.city", "items[].health_category", long, "", "x"},
					Consents:      []decision.PurposeConsent{{Purpose: "analytics", ChangeID: "c", CapturedAt: time.UnixMilli(1)}, {Purpose: "sale", ChangeID: "ü", CapturedAt: time.UnixMilli(-5)}}},
				{Stream: "compliant.sale", Decision: decision.Dropped, Reason: "schema_not_accepted"},
			}},
		{Outcome: AuditDeadLettered, DeadLetterReason: "undecodable", PolicyVersion: "v7", SourceTopic: "t", SourcePartition: 2147483647,
			SourceOffset: 9223372036854775807, ProcessedAt: time.UnixMilli(0)},
		{EventID: "e", Outcome: AuditDeadLettered, DeadLetterReason: "missing_subject_id", EventSchema: "consentgate.events.PageView",
			SourcePartition: -1, SourceOffset: -2, ProcessedAt: time.UnixMilli(-1)},
		{SubjectID: strings.Repeat("s", 300), Outcome: AuditDeadLettered, DeadLetterReason: "missing_event_id", ProcessedAt: at},
	}
}

// randomAudit returns a random record: any number of decisions, purposes,
// treated fields and consents, optional strings empty (null) or not,
// multi-byte and long strings, numbers over their whole range.
func randomAudit(r *rand.Rand) AuditRecord {
	str := func() string {
		switch r.IntN(6) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("é", r.IntN(80))
		case 2:
			return strings.Repeat("x", 60+r.IntN(300)) // lengths past one varint byte
		}
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return string(b)
	}
	strs := func(n int) []string {
		if n == 0 && r.IntN(2) == 0 {
			return nil
		}
		out := make([]string, n)
		for i := range out {
			out[i] = str()
		}
		return out
	}
	when := func() time.Time { return time.UnixMilli(r.Int64N(1<<45) - 1<<44) }
	outcomes := []decision.Outcome{decision.Passed, decision.Redacted, decision.Dropped}
	a := AuditRecord{EventID: str(), SubjectID: str(), Outcome: AuditDecided, EventSchema: str(), PolicyVersion: str(), SourceTopic: str(),
		SourcePartition: int32(r.Uint32()), SourceOffset: int64(r.Uint64()), ProcessedAt: when()}
	if r.IntN(4) == 0 {
		a.Outcome, a.DeadLetterReason = AuditDeadLettered, str()
		return a
	}
	for range r.IntN(7) {
		d := StreamDecision{Stream: str(), Purposes: strs(r.IntN(4)), Decision: outcomes[r.IntN(3)], Reason: str(), DecidingPurpose: str(),
			TreatedFields: strs(r.IntN(6))}
		for range r.IntN(4) {
			c := decision.PurposeConsent{Purpose: str(), ChangeID: str()}
			if c.ChangeID != "" || r.IntN(2) == 0 {
				c.CapturedAt = when() // without a change id it is not written
			}
			d.Consents = append(d.Consents, c)
		}
		a.Decisions = append(a.Decisions, d)
	}
	return a
}

// normalAudit is a as ReadAudit returns it: times at millisecond precision
// in UTC, a capture time only with a change id, empty lists nil.
func normalAudit(a AuditRecord) AuditRecord {
	ms := func(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }
	nilEmpty := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	a.Version = 2
	a.ProcessedAt = ms(a.ProcessedAt)
	ds := a.Decisions
	a.Decisions = nil
	for _, d := range ds {
		d.Purposes, d.TreatedFields = nilEmpty(d.Purposes), nilEmpty(d.TreatedFields)
		cs := d.Consents
		d.Consents = nil
		for _, c := range cs {
			if c.ChangeID == "" {
				c.CapturedAt = time.Time{}
			} else {
				c.CapturedAt = ms(c.CapturedAt)
			}
			d.Consents = append(d.Consents, c)
		}
		a.Decisions = append(a.Decisions, d)
	}
	return a
}

// TestAppendAuditMatchesGoavro: for the hand-picked cases and 3,000 random
// records the hand-written encoder produces the very bytes goavro produces
// (the generic path, from auditNative), and ReadAudit gives the record
// back.
func TestAppendAuditMatchesGoavro(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	cases := auditCases()
	r := rand.New(rand.NewPCG(11, 2))
	for range 3000 {
		cases = append(cases, randomAudit(r))
	}
	var ar arena
	for i, a := range cases {
		want, err := codec.EncodeSingle(AuditSchema, auditNative(&a))
		if err != nil {
			t.Fatalf("case %d: goavro: %v", i, err)
		}
		got, err := appendAudit(ar.start(16), AuditFingerprint, &a)
		if err != nil {
			t.Fatal(err)
		}
		got = ar.commit(got)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d %+v: bytes differ:\n got %x\nwant %x", i, a, got, want)
		}
		back, err := ReadAudit(cat, got)
		if err != nil {
			t.Fatalf("case %d: ReadAudit: %v", i, err)
		}
		if w := normalAudit(a); !reflect.DeepEqual(*back, w) {
			t.Fatalf("case %d: read back\n got %+v\nwant %+v", i, *back, w)
		}
		// The generic decoder reads it too (the latest version is the
		// writer's).
		if _, err := codec.Decode(context.Background(), got); err != nil {
			t.Fatalf("case %d: avrocodec Decode: %v", i, err)
		}
	}
	if _, err := appendAudit(nil, AuditFingerprint, &AuditRecord{Outcome: AuditDecided, Decisions: []StreamDecision{{Decision: "MAYBE"}}}); err == nil {
		t.Error("unknown decision encoded")
	}
	if _, err := appendAudit(nil, AuditFingerprint, &AuditRecord{Outcome: "PERHAPS"}); err == nil {
		t.Error("unknown outcome encoded")
	}
}

// TestReadAuditVersion1: records of version 1, which avrocodec's Decode
// cannot resolve into version 2, are read with their writer schema, under
// the specification's fingerprint and under goavro's legacy one.
func TestReadAuditVersion1(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	v1, ok := cat.Version(AuditSchema, 1)
	if !ok {
		t.Fatal("no AuditRecord version 1 in the catalog")
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	native := map[string]any{
		"event_id": "evt-9", "subject_id": "cust-9", "stream": "compliant.analytics", "purpose": "analytics", "decision": "REDACTED",
		"reason": "denied", "treated_fields": []any{"ip_address"}, "consent_change_id": map[string]any{"string": "chg-9"},
		"consent_captured_at": map[string]any{"long.timestamp-millis": at}, "policy_version": "p1", "source_topic": "customer.events",
		"source_partition": int32(4), "source_offset": int64(77), "event_schema": "consentgate.events.PageView", "processed_at": at.Add(time.Second),
	}
	std, err := v1.EncodeSingle(native)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := v1.Codec().SingleFromNative(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(std[:10], legacy[:10]) {
		t.Fatal("the legacy header is the standard one: the test would prove nothing")
	}
	if _, err := avrocodec.New(cat, nil).Decode(context.Background(), std); err == nil {
		t.Log("avrocodec resolves version 1 into version 2 after all; ReadAudit still reads by writer")
	}
	want := AuditRecord{Version: 1, EventID: "evt-9", SubjectID: "cust-9", Outcome: AuditDecided, EventSchema: "consentgate.events.PageView",
		PolicyVersion: "p1", SourceTopic: "customer.events", SourcePartition: 4, SourceOffset: 77, ProcessedAt: at.Add(time.Second),
		Decisions: []StreamDecision{{Stream: "compliant.analytics", Decision: decision.Redacted, Reason: "denied", DecidingPurpose: "analytics",
			TreatedFields: []string{"ip_address"}, Consents: []decision.PurposeConsent{{Purpose: "analytics", ChangeID: "chg-9", CapturedAt: at}}}}}
	for name, b := range map[string][]byte{"standard": std, "legacy": legacy} {
		got, err := ReadAudit(cat, b)
		if err != nil {
			t.Fatalf("%s fingerprint: %v", name, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%s fingerprint: got %+v\nwant %+v", name, *got, want)
		}
	}
	for name, b := range map[string][]byte{
		"empty":      nil,
		"truncated":  std[:len(std)-3],
		"trailing":   append(slices.Clone(std), 0),
		"not audit":  mustEncode(t, cat),
		"unknown fp": append([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, std[10:]...),
	} {
		if _, err := ReadAudit(cat, b); err == nil {
			t.Errorf("%s: ReadAudit accepted it", name)
		}
	}
}

func mustEncode(t *testing.T, cat *avrocodec.Catalog) []byte {
	t.Helper()
	b, err := avrocodec.New(cat, nil).EncodeSingle("consentgate.events.EmailEngagement", map[string]any{
		"event_id": "e1", "subject_id": "s1", "occurred_at": time.Now(), "email": "x@example.test",
		"campaign_id": "c", "message_id": "m", "action": "OPEN", "link_url": nil, "user_agent": nil, "ip_address": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestArenaKeepsHandedOutBytes: slices handed out are never overwritten by
// later ones, also across chunks and for records bigger than a chunk.
func TestArenaKeepsHandedOutBytes(t *testing.T) {
	t.Parallel()
	var ar arena
	var got [][]byte
	var want []string
	for i := range 3000 {
		n := 1 + i%300
		if i%1000 == 999 {
			n = arenaChunk + 10
		}
		b := ar.start(16)
		for j := range n {
			b = append(b, byte(i+j))
		}
		got = append(got, ar.commit(b))
		want = append(want, string(got[len(got)-1]))
	}
	for i := range got {
		if string(got[i]) != want[i] {
			t.Fatalf("slice %d overwritten", i)
		}
		if cap(got[i]) != len(got[i]) {
			t.Fatalf("slice %d has spare capacity", i)
		}
	}
}

// TestAuditFallsBackToGoavro: with a catalog whose AuditRecord is not the
// one the fast encoder knows, the enforcer says so once and encodes audit
// records with goavro in that schema.
func TestAuditFallsBackToGoavro(t *testing.T) {
	t.Parallel()
	files := fstest.MapFS{}
	err := fs.WalkDir(schemas.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".avsc") {
			return err
		}
		b, err := fs.ReadFile(schemas.FS, p)
		if err != nil {
			return err
		}
		if p == "audit_record.v2.avsc" {
			b = bytes.Replace(b, []byte(`"fields": [`), []byte(`"fields": [
    {"name": "region", "type": "string", "default": "eu"},`), 1)
		}
		files[p] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := avrocodec.LoadCatalog(files)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	var logs bytes.Buffer
	f := newFixture(t)
	e := New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: f.e.opts.Redactor, Log: slog.New(slog.NewTextHandler(io.MultiWriter(&logs), nil))}, codec, f.store, f.e.policy)
	if e.fastAudit {
		t.Fatal("fast audit encoder used with a different AuditRecord schema")
	}
	if c := strings.Count(logs.String(), "generic Avro encoder"); c != 1 {
		t.Errorf("fallback logged %d times, want once: %s", c, logs.String())
	}
	b, err := codec.EncodeSingle("consentgate.events.EmailEngagement", map[string]any{
		"event_id": "e1", "subject_id": "s1", "occurred_at": time.Now(), "email": "x@example.test",
		"campaign_id": "c", "message_id": "m", "action": "OPEN", "link_url": nil, "user_agent": nil, "ip_address": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Process(context.Background(), []kafka.Message{{Topic: "customer.events", Key: []byte("s1"), Value: b}})
	if err != nil {
		t.Fatal(err)
	}
	audits := byTopic(out)["consent.audit"]
	if len(audits) != 1 {
		t.Fatalf("%d audit records, want 1", len(audits))
	}
	for _, a := range audits {
		rec, err := codec.Decode(context.Background(), a.Value)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := avrocodec.StringField(rec.Value, "region"); v != "eu" {
			t.Errorf("audit record not in the catalog's schema: region %q", v)
		}
		if ds, _ := avrocodec.Field(rec.Value, "decisions"); len(ds.([]any)) != 2 {
			t.Errorf("audit record lists %d decisions, want one per stream", len(ds.([]any)))
		}
	}
}

// BenchmarkAppendAudit encodes one audit record with the hand-written
// encoder into an arena (compare pkg/avrocodec BenchmarkEncodeAudit, the
// goavro path).
func BenchmarkAppendAudit(b *testing.B) {
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	consents := func(p string) []decision.PurposeConsent {
		return []decision.PurposeConsent{{Purpose: p, ChangeID: "chg-" + p, CapturedAt: at}}
	}
	a := AuditRecord{EventID: "evt-000000001", SubjectID: "cust-0000001", Outcome: AuditDecided, EventSchema: "consentgate.events.PageView",
		PolicyVersion: "v1", SourceTopic: "customer.events", SourcePartition: 3, SourceOffset: 123456, ProcessedAt: at,
		Decisions: []StreamDecision{
			{Stream: "compliant.marketing", Purposes: []string{"marketing"}, Decision: decision.Dropped, Reason: "schema_not_accepted", DecidingPurpose: "marketing"},
			{Stream: "compliant.analytics", Purposes: []string{"analytics"}, Decision: decision.Redacted, Reason: "denied", DecidingPurpose: "analytics",
				TreatedFields: []string{"subject_id", "ip_address"}, Consents: consents("analytics")},
			{Stream: "compliant.personalisation", Purposes: []string{"personalisation"}, Decision: decision.Passed, Reason: "granted", DecidingPurpose: "personalisation", Consents: consents("personalisation")},
		}}
	var ar arena
	b.ReportAllocs()
	for b.Loop() {
		buf, err := appendAudit(ar.start(512), AuditFingerprint, &a)
		if err != nil {
			b.Fatal(err)
		}
		ar.commit(buf)
	}
}
