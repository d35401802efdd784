package enforce

import (
	"bytes"
	"context"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/consentgate/consentgate/pkg/schemaregistry/registrytest"
	"github.com/consentgate/consentgate/schemas"
)

// TestWriterAnnotationsReachNestedFields: the catalog's older version 1
// annotates a field deep inside the event with user.health and the reader
// (version 2) does not. The writer's annotation must be applied wherever
// that field occurs in the data, however the writer's types are paired with
// the reader's: at every depth of a recursive record, in the record branch
// of a union whose other branch has a field of the same name, and in a
// record that the reader declares in another namespace (Avro matches named
// types by their unqualified name).
func TestWriterAnnotationsReachNestedFields(t *testing.T) {
	t.Parallel()
	audit, err := fs.ReadFile(schemas.FS, "audit_record.v2.avsc")
	if err != nil {
		t.Fatal(err)
	}
	const (
		deepValue   = "HEALTH-deep-reply-unique"
		topValue    = "HEALTH-top-note-unique"
		branchValue = "HEALTH-union-branch-unique"
		nsValue     = "HEALTH-namespace-unique"
	)
	fields := func(cat, ns string) []string {
		ann := ""
		if cat != "" {
			ann = `, "data_category": "` + cat + `"`
		}
		return []string{
			`{"name": "thread", "type": ["null", {"type": "record", "name": "Note", "fields": [
				{"name": "text", "type": "string"` + ann + `},
				{"name": "reply", "type": ["null", "Note"], "default": null}]}], "default": null}`,
			`{"name": "item", "type": ["null",
				{"type": "record", "name": "Diagnosis", "fields": [{"name": "label", "type": "string"` + ann + `}]},
				{"type": "record", "name": "Product", "fields": [{"name": "label", "type": "string"}]}], "default": null}`,
			`{"name": "clinic", "type": ["null",
				{"type": "record", "name": "Site", "namespace": "` + ns + `", "fields": [{"name": "name", "type": "string"` + ann + `}]},
				{"type": "record", "name": "Other", "namespace": "` + ns + `", "fields": [{"name": "id", "type": "string"}]}], "default": null}`,
		}
	}
	v1 := emailSchemaWith(t, fields("user.health", "clinics.v1")...)
	v2 := emailSchemaWith(t, fields("", "clinics.v2")...)
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{
		"audit_record.v2.avsc":     {Data: audit},
		"email_engagement.v1.avsc": {Data: []byte(v1)},
		"email_engagement.v2.avsc": {Data: []byte(v2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := newJudgeFixture(t, cat, nil)
	f.grant(t, "s-nested", "marketing", "user.health")
	old, ok := cat.Version("consentgate.events.EmailEngagement", 1)
	if !ok {
		t.Fatal("no version 1")
	}
	v := emailValue("e-nested", "s-nested")
	v["thread"] = map[string]any{"consentgate.events.Note": map[string]any{
		"text": topValue,
		"reply": map[string]any{"consentgate.events.Note": map[string]any{
			"text": deepValue, "reply": nil}},
	}}
	v["item"] = map[string]any{"consentgate.events.Diagnosis": map[string]any{"label": branchValue}}
	v["clinic"] = map[string]any{"clinics.v1.Site": map[string]any{"name": nsValue}}
	b, err := old.EncodeSingle(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.e.Process(context.Background(), []kafka.Message{{Topic: "customer.events", Key: []byte("s-nested"), Value: b}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range out {
		if m.Topic != "compliant.marketing" {
			continue
		}
		n++
		for name, value := range map[string]string{
			"thread.text": topValue, "thread.reply.text": deepValue,
			"item.label (Diagnosis)": branchValue, "clinic.name (other namespace)": nsValue,
		} {
			if bytes.Contains(m.Value, []byte(value)) {
				t.Errorf("%s, annotated user.health by the writer, is published to a grant excluding user.health", name)
			}
		}
	}
	if n != 1 {
		t.Fatalf("compliant.marketing gets %d records, want 1", n)
	}
}

// TestRegistryWriterWithoutAnnotationsTakesTheCatalogs: registries may
// strip custom properties such as data_category. A producer writes with the
// catalog's older version 1 (which annotates health_note user.health; the
// reader, version 2, dropped the field), registered without its
// annotations. The catalog's annotations of the same canonical form must
// judge the bytes: a grant excluding user.health never sees the value.
func TestRegistryWriterWithoutAnnotationsTakesTheCatalogs(t *testing.T) {
	t.Parallel()
	audit, err := fs.ReadFile(schemas.FS, "audit_record.v2.avsc")
	if err != nil {
		t.Fatal(err)
	}
	v1 := emailSchemaWith(t, `{"name": "health_note", "type": ["null", "string"], "default": null, "data_category": "user.health"}`)
	v2 := emailSchemaWith(t)
	cat, err := avrocodec.LoadCatalog(fstest.MapFS{
		"audit_record.v2.avsc":     {Data: audit},
		"email_engagement.v1.avsc": {Data: []byte(v1)},
		"email_engagement.v2.avsc": {Data: []byte(v2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	stripped := strings.ReplaceAll(v1, `"data_category":`, `"x_stripped":`)
	reg := registrytest.New()
	id := reg.Add("customer.events-value", stripped)
	f := newJudgeFixture(t, cat, schemaregistry.New(registrytest.Start(t, reg), nil))
	f.grant(t, "s-reg", "marketing", "user.health")
	v := emailValue("e-reg", "s-reg")
	v["health_note"] = map[string]any{"string": healthValue}
	b, err := f.codec.EncodeConfluent(context.Background(), id, v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.e.Process(context.Background(), []kafka.Message{{Topic: "customer.events", Key: []byte("s-reg"), Value: b}})
	if err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, f.codec, out, "compliant.marketing", "health_note", healthValue)
	a := f.audits(t, out)
	if d := a["compliant.marketing_strict"].Reason; d != "excluded_category" {
		t.Errorf("compliant.marketing_strict: reason %q, want excluded_category", d)
	}
}

// TestUnjudgedBytesNeverPass: bytes whose writer schema cannot be fetched
// (registry down) leave the batch undecided (an error, nothing to write);
// an unknown schema id and a datum followed by extra bytes go to the dead
// letter topic (and their DEAD_LETTERED audit record to the audit topic),
// never to a purpose stream.
func TestUnjudgedBytesNeverPass(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.New()
	v1, err := fs.ReadFile(schemas.FS, "email_engagement.v1.avsc")
	if err != nil {
		t.Fatal(err)
	}
	id := reg.Add("customer.events-value", string(v1))
	f := newJudgeFixture(t, cat, schemaregistry.New(registrytest.Start(t, reg), nil))
	f.grant(t, "s-u", "marketing")
	f.grant(t, "s-u", "partners")
	good, err := f.codec.EncodeSingle("consentgate.events.EmailEngagement", emailValue("e-u", "s-u"))
	if err != nil {
		t.Fatal(err)
	}
	conf := append([]byte{0, 0, 0, 0, byte(id)}, good[10:]...)
	unknown := append([]byte{0, 0, 0, 0x7f, 0x7f}, good[10:]...)
	trailing := append(append([]byte(nil), good...), []byte(healthValue)...)

	reg.FailWith(503)
	if out, err := f.e.Process(context.Background(), []kafka.Message{{Topic: "customer.events", Value: conf}}); err == nil || len(out) != 0 {
		t.Errorf("registry down: %d records, error %v; want none and an error", len(out), err)
	}
	reg.FailWith(0)
	for name, b := range map[string][]byte{"unknown schema id": unknown, "trailing bytes": trailing} {
		out, err := f.e.Process(context.Background(), []kafka.Message{{Topic: "customer.events", Key: []byte("s-u"), Value: b}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var topics []string
		for _, m := range out {
			topics = append(topics, m.Topic)
		}
		if !slices.Equal(topics, []string{"customer.events.dlq", "consent.audit"}) {
			t.Errorf("%s: written to %v, want the dead letter and its audit record only", name, topics)
			continue
		}
		if a := readAudits(t, f.codec.Catalog(), out); a[0].Outcome != AuditDeadLettered || a[0].DeadLetterReason != DeadLetterUndecodable || len(a[0].Decisions) != 0 {
			t.Errorf("%s: audit record %+v, want DEAD_LETTERED undecodable without decisions", name, a[0])
		}
	}
}
