package enforce

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/schemas"
)

// TestAuditFingerprint: the catalog's AuditRecord is the schema the
// hand-written encoder was written for. When this fails, the schema
// changed: update appendAudit and AuditFingerprint together.
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
	if s.Fingerprint != AuditFingerprint {
		t.Fatalf("catalog AuditRecord fingerprint %#x, encoder written for %#x", s.Fingerprint, AuditFingerprint)
	}
	if ok, why := auditFastPath(avrocodec.New(cat, nil)); !ok {
		t.Fatalf("fast path off with the built-in schemas: %s", why)
	}
	// The fast path writes the specification's fingerprint, computed from
	// the schema text, not goavro's (f1f9e5bfba6cfe4a, issue 10 finding 14).
	std, err := avrocodec.SchemaFingerprint(s.Text)
	if err != nil || std != AuditFingerprint {
		t.Fatalf("specification fingerprint of the audit schema %016x (%v), AuditFingerprint %016x", std, err, AuditFingerprint)
	}
	b, err := appendAudit(nil, AuditFingerprint, &auditFields{Decision: decision.Passed})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0xC3, 0x01, 0x25, 0xC8, 0xC2, 0x4D, 0xE0, 0xFB, 0x13, 0x30}; !bytes.Equal(b[:10], want) {
		t.Fatalf("audit header % x, want % x", b[:10], want)
	}
}

// TestAppendAuditMatchesGoavro: for a table of records (optional fields null
// and set, treated fields none, one and many, every decision, edge numbers
// and multi-byte strings) the hand-written encoder produces the very bytes
// goavro produces, and they decode to the same value.
func TestAppendAuditMatchesGoavro(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	pageView, _ := cat.SchemaByName("consentgate.events.PageView")
	at := time.Date(2026, 11, 22, 8, 0, 0, 123_456_789, time.UTC)
	long := strings.Repeat("é-field[]", 40)
	tests := []struct {
		name    string
		d       decision.Decision
		treated []string
		msg     kafka.Message
		subject string
		now     time.Time
	}{
		{"passed with change", decision.Decision{Stream: "compliant.marketing", Purpose: "marketing", Outcome: decision.Passed, Reason: "granted", ChangeID: "chg-1", CapturedAt: at},
			nil, kafka.Message{Topic: "customer.events", Partition: 3, Offset: 42}, "cust-1", at},
		{"dropped never asked (nulls)", decision.Decision{Stream: "compliant.personalisation", Purpose: "personalisation", Outcome: decision.Dropped, Reason: "never_asked"},
			[]string{}, kafka.Message{Topic: "customer.events", Partition: 0, Offset: 0}, "cust-2", at.Add(time.Hour)},
		{"redacted one field", decision.Decision{Stream: "compliant.analytics", Purpose: "analytics", Outcome: decision.Redacted, Reason: "denied", ChangeID: "c", CapturedAt: time.UnixMilli(1)},
			[]string{"subject_id"}, kafka.Message{Topic: "t", Partition: 63, Offset: 1 << 40}, "ü", at},
		{"redacted many fields", decision.Decision{Stream: "compliant.analytics", Purpose: "analytics", Outcome: decision.Redacted, Reason: "never_asked"},
			[]string{"subject_id", "ip_address", "geo.city", "items[].health_category", long, "", "x"}, kafka.Message{Topic: "customer.events", Partition: 2147483647, Offset: 9223372036854775807}, strings.Repeat("s", 300), at},
		{"empty strings and negative numbers", decision.Decision{Outcome: decision.Dropped, ChangeID: "z", CapturedAt: time.UnixMilli(-5)},
			nil, kafka.Message{Partition: -1, Offset: -2}, "", time.UnixMilli(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := &event{msg: tt.msg, rec: &avrocodec.Record{Schema: pageView}, subject: tt.subject, id: "evt-" + tt.name}
			want, err := codec.EncodeSingle(AuditSchema, auditNative(ev, tt.d, tt.treated, tt.now, "v7"))
			if err != nil {
				t.Fatal(err)
			}
			a := auditFields{EventID: ev.id, SubjectID: ev.subject, Stream: tt.d.Stream, Purpose: tt.d.Purpose, Decision: tt.d.Outcome,
				Reason: tt.d.Reason, TreatedFields: tt.treated, ChangeID: tt.d.ChangeID, CapturedAt: tt.d.CapturedAt, PolicyVersion: "v7",
				SourceTopic: tt.msg.Topic, SourcePartition: int32(tt.msg.Partition), SourceOffset: tt.msg.Offset, EventSchema: pageView.FullName, ProcessedAt: tt.now}
			var ar arena
			got, err := appendAudit(ar.start(16), AuditFingerprint, &a)
			if err != nil {
				t.Fatal(err)
			}
			got = ar.commit(got)
			if !bytes.Equal(got, want) {
				t.Errorf("bytes differ:\n got %x\nwant %x", got, want)
			}
			g, err := codec.Decode(context.Background(), got)
			if err != nil {
				t.Fatalf("decode fast encoding: %v", err)
			}
			w, err := codec.Decode(context.Background(), want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g.Value, w.Value) {
				t.Errorf("decoded values differ:\n got %v\nwant %v", g.Value, w.Value)
			}
		})
	}
	if _, err := appendAudit(nil, AuditFingerprint, &auditFields{Decision: "MAYBE"}); err == nil {
		t.Error("unknown decision encoded")
	}
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
		if p == "audit_record.avsc" {
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
	if len(audits) != 2 {
		t.Fatalf("%d audit records, want 2", len(audits))
	}
	for _, a := range audits {
		rec, err := codec.Decode(context.Background(), a.Value)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := avrocodec.StringField(rec.Value, "region"); v != "eu" {
			t.Errorf("audit record not in the catalog's schema: region %q", v)
		}
	}
}

// BenchmarkAppendAudit encodes one audit record with the hand-written
// encoder into an arena (compare pkg/avrocodec BenchmarkEncodeAudit, the
// goavro path).
func BenchmarkAppendAudit(b *testing.B) {
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	a := auditFields{EventID: "evt-000000001", SubjectID: "cust-0000001", Stream: "compliant.analytics", Purpose: "analytics",
		Decision: decision.Redacted, Reason: "denied", TreatedFields: []string{"subject_id", "ip_address"}, ChangeID: "chg-1", CapturedAt: at,
		PolicyVersion: "v1", SourceTopic: "customer.events", SourcePartition: 3, SourceOffset: 123456, EventSchema: "consentgate.events.PageView", ProcessedAt: at}
	var ar arena
	b.ReportAllocs()
	for b.Loop() {
		buf, err := appendAudit(ar.start(256), AuditFingerprint, &a)
		if err != nil {
			b.Fatal(err)
		}
		ar.commit(buf)
	}
}
