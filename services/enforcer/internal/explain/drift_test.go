package explain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/services/enforcer/internal/enforce"
)

// states is the enforcer's consent reader over fixed states: the subjects
// of this test are not in Redis, they are what explain is given.
type states map[string]*consent.State

func (s states) Lookup(_ context.Context, subjects []string) (map[string]*consent.State, error) {
	out := make(map[string]*consent.State, len(subjects))
	for _, sub := range subjects {
		if st, ok := s[sub]; ok {
			out[sub] = st
		}
	}
	return out, nil
}

type verdict struct {
	Decision, Reason, ChangeID string
	Purposes                   []string
	Consents                   []string // purpose=change id
	Treated                    []string
	Event                      string // the re-encoded event as JSON; "" when the input bytes are published
}

// TestExplainMatchesEnforcer runs the enforcer's Process on every test event
// under every test consent and checks that Explain says exactly what the
// enforcer audited and published, stream by stream.
func TestExplainMatchesEnforcer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := testCatalog(t)
	codec := avrocodec.New(cat, nil)
	// The golden tests' policy plus a stream whose unannotated_fields is
	// remove: passed events are published re-encoded there.
	text := string(readTestdata(t, "policy.yaml")) + `
  - topic: compliant.partners
    purposes: [marketing]
    unannotated_fields: remove
    treatments:
      - field: event_id
        action: keep
`
	pol, err := policy.Parse([]byte(text), "testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("drift-test-key-0123456789")
	red, err := redact.New(key)
	if err != nil {
		t.Fatal(err)
	}
	events := []string{"events/email.json", "events/purchase.json", "events/page_view_v1.json"}
	consents := []string{"consent/marketing_granted.json", "consent/analytics_denied.json", "consent/health_excluded.json", "consent/expired.json", "consent/unknown.json"}

	lookup := states{}
	var batch []kafka.Message
	inputs := map[string][]byte{}           // event id -> input bytes
	want := map[string]map[string]verdict{} // event id -> stream -> what explain says
	for i, ef := range events {
		for j, cf := range consents {
			subject, id := fmt.Sprintf("s-%d-%d", i, j), fmt.Sprintf("e-%d-%d", i, j)
			obj, err := DecodeObject(readTestdata(t, ef))
			if err != nil {
				t.Fatal(err)
			}
			obj["subject_id"], obj["event_id"] = subject, id
			st, err := ParseConsent(readTestdata(t, cf))
			if err != nil {
				t.Fatal(err)
			}
			if st != nil {
				st.SubjectID = subject
				lookup[subject] = st
			}
			ex, err := Explain(ctx, Input{Policy: pol, Source: "p", Catalog: cat, Event: obj, State: st, Now: time.Now(), Key: key, ShowValues: true})
			if err != nil {
				t.Fatal(err)
			}
			want[id] = map[string]verdict{}
			for _, s := range ex.Streams {
				v := verdict{Decision: string(s.Decision), Reason: s.Reason, ChangeID: s.ChangeID, Purposes: s.Purposes}
				for _, c := range s.Consents {
					v.Consents = append(v.Consents, c.Purpose+"="+c.ChangeID)
				}
				for _, tr := range s.Treated {
					v.Treated = append(v.Treated, tr.Path)
				}
				if s.Event != nil {
					b, err := json.Marshal(s.Event)
					if err != nil {
						t.Fatal(err)
					}
					v.Event = string(b)
				}
				want[id][s.Topic] = v
			}
			writer, native, err := ResolveSchema(cat, obj, "")
			if err != nil {
				t.Fatal(err)
			}
			value, err := writer.EncodeSingle(native)
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, kafka.Message{Topic: "customer.events", Offset: int64(len(batch)), Value: value})
			inputs[id] = value
		}
	}

	e := enforce.New(enforce.Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: red}, codec, lookup, pol)
	out, err := e.Process(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]verdict{}
	published := map[[2]string]string{} // event id, stream -> redacted event JSON
	for _, m := range out {
		if m.Topic == "consent.audit" {
			a, err := enforce.ReadAudit(cat, m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if got[a.EventID] != nil {
				t.Errorf("event %s audited twice", a.EventID)
			}
			got[a.EventID] = map[string]verdict{}
			for _, d := range a.Decisions {
				v := verdict{Decision: string(d.Decision), Reason: d.Reason, Purposes: d.Purposes, Treated: d.TreatedFields}
				for _, c := range d.Consents {
					v.Consents = append(v.Consents, c.Purpose+"="+c.ChangeID)
					if c.Purpose == d.DecidingPurpose {
						v.ChangeID = c.ChangeID
					}
				}
				got[a.EventID][d.Stream] = v
			}
			continue
		}
		rec, err := codec.Decode(ctx, m.Value)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case headerOf(m, enforce.HeaderDecision) == "REDACTED" || !bytes.Equal(m.Value, inputs[headerOf(m, enforce.HeaderEventID)]):
			j, err := FromNative(rec.Schema, rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(j)
			if err != nil {
				t.Fatal(err)
			}
			published[[2]string{headerOf(m, enforce.HeaderEventID), m.Topic}] = string(b)
		}
	}
	for id, streams := range got {
		for stream, v := range streams {
			v.Event = published[[2]string{id, stream}]
			got[id][stream] = v
		}
	}
	if len(got) != len(batch) {
		t.Fatalf("audited %d events, want %d", len(got), len(batch))
	}
	seen := map[string]int{}
	for _, streams := range want {
		for _, v := range streams {
			seen[v.Decision]++
			if v.Decision == "REDACTED" && v.Event == "" || v.Decision == "DROPPED" && v.Event != "" {
				t.Errorf("explain gave event %q for a %s decision", v.Event, v.Decision)
			}
			if v.Decision == "PASSED" && v.Event != "" {
				seen["PASSED re-encoded"]++
			}
		}
	}
	if seen["PASSED"] == 0 || seen["REDACTED"] == 0 || seen["DROPPED"] == 0 || seen["PASSED re-encoded"] == 0 {
		t.Errorf("the cases cover only %v; want every outcome", seen)
	}
	for id, w := range want {
		if !reflect.DeepEqual(got[id], w) {
			t.Errorf("event %s:\nenforcer %+v\nexplain  %+v", id, got[id], w)
		}
	}
}

func headerOf(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
