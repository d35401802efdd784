package intake

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
)

// devPolicy is the dev stack's policy (it has a signals section).
func devPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	pol, err := policy.Load(filepath.Join("..", "..", "..", "..", "pkg", "policy", "testdata", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// TestSignalsHandler posts signals to the real handler against a real
// broker process: the changes the policy maps are produced, keyed by the
// subject, decoding to the expected actions; a resend gives the same
// change ids; a malformed signal, an unknown member or a policy without
// signals produce nothing.
func TestSignalsHandler(t *testing.T) {
	t.Parallel()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	const topic = "intake.signals.test"
	broker.CreateTopics(t, 1, topic)
	codec := newCodec(t)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	pol := devPolicy(t)
	known := map[string]bool{}
	for _, p := range pol.Purposes {
		known[p.ID] = true
	}
	now := time.Date(2026, 12, 1, 10, 0, 5, 0, time.UTC)
	h := New(Options{Topic: topic, ProduceTimeout: 10 * time.Second, Purposes: known, Policy: pol, Now: func() time.Time { return now }}, codec, kc)
	defer h.Close()
	mux := http.NewServeMux()
	mux.Handle(SignalsPath, h.Signals())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := srv.URL + SignalsPath

	const body = `{"subject_id":"sig-subject-1","captured_at":"2026-12-01T10:00:00.000Z","jurisdiction":"US-CA",
		"signals":[{"type":"gpc","value":"1"},{"type":"consent_mode","states":{"ad_user_data":"granted","ad_personalization":"granted","analytics_storage":"denied"}}]}`

	t.Run("rejected", func(t *testing.T) {
		for _, tc := range []struct {
			name, body string
			code       int
			fields     []string
		}{
			{"bad tc string", `{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z","signals":[{"type":"gpc","value":"1"},{"type":"tcf","value":"CPxx!!"}]}`, 400, []string{"signals[1]"}},
			{"bad gpp string", `{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z","signals":[{"type":"gpp","value":"DBABM"}]}`, 400, []string{"signals[0]"}},
			{"unknown type", `{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z","signals":[{"type":"iab","value":"x"}]}`, 400, []string{"signals[0]"}},
			{"missing everything", `{"signals":[]}`, 400, []string{"subject_id", "captured_at", "signals"}},
			{"unknown member", `{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z","signals":[{"type":"gpc","value":"1","extra":1}],"gdpr":1}`, 400, []string{"signals[0]", "gdpr"}},
			{"bad jurisdiction", `{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z","jurisdiction":"california","signals":[{"type":"gpc","value":"1"}]}`, 400, []string{"jurisdiction"}},
			{"epoch time", `{"subject_id":"s","captured_at":1764583200000,"signals":[{"type":"gpc","value":"1"}]}`, 400, []string{"captured_at"}},
			{"grant from the future", `{"subject_id":"s","captured_at":"2027-12-01T10:00:00Z","signals":[{"type":"consent_mode","states":{"ad_user_data":"granted","ad_personalization":"granted"}}]}`, 400, []string{"captured_at"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := post(t, url, http.MethodPost, "application/json", tc.body)
				if a.code != tc.code {
					t.Fatalf("status %d, want %d (%v)", a.code, tc.code, a.body)
				}
				var fields []string
				for _, e := range a.body["errors"].([]any) {
					m := e.(map[string]any)
					fields = append(fields, m["field"].(string))
					if r, _ := m["reason"].(string); r == "" || strings.Contains(r, "CPxx") {
						t.Errorf("reason %q (empty, or repeats the signal)", r)
					}
				}
				if !slices.Equal(fields, tc.fields) {
					t.Errorf("fields %q, want %q", fields, tc.fields)
				}
			})
		}
	})

	t.Run("nothing decided", func(t *testing.T) {
		a := post(t, url, http.MethodPost, "application/json",
			`{"subject_id":"s","captured_at":"2026-12-01T10:00:00Z","jurisdiction":"US","signals":[{"type":"consent_mode","states":{"ad_storage":"granted"}}]}`)
		if a.code != http.StatusOK || len(a.body["changes"].([]any)) != 0 || a.body["reason"] == "" {
			t.Fatalf("answer %d %v, want 200 with no changes", a.code, a.body)
		}
	})

	var firstIDs []string
	t.Run("accepted", func(t *testing.T) {
		for round := range 2 {
			a := post(t, url, http.MethodPost, "application/json", body)
			if a.code != http.StatusAccepted {
				t.Fatalf("status %d, want 202 (%v)", a.code, a.body)
			}
			got := map[string]string{}
			var ids []string
			for _, e := range a.body["changes"].([]any) {
				m := e.(map[string]any)
				got[m["purpose"].(string)] = m["action"].(string)
				ids = append(ids, m["change_id"].(string))
				if m["offset"].(float64) < 0 {
					t.Errorf("change without coordinates: %v", m)
				}
			}
			want := map[string]string{"sale": "WITHDRAW", "marketing": "GRANT", "analytics": "DENY"}
			if len(got) != len(want) {
				t.Fatalf("changes %v, want %v", got, want)
			}
			for p, act := range want {
				if got[p] != act {
					t.Errorf("%s: %s, want %s", p, got[p], act)
				}
			}
			if round == 0 {
				firstIDs = ids
			} else if !slices.Equal(ids, firstIDs) {
				t.Errorf("resend gave change ids %v, first %v", ids, firstIDs)
			}
		}
	})

	// The topic holds exactly the two accepted submissions' changes.
	msgs := broker.ReadAll(t, topic, 500*time.Millisecond, 20*time.Second)
	if len(msgs) != 6 {
		t.Fatalf("topic holds %d records, want 6 (3 changes, sent twice)", len(msgs))
	}
	for i, m := range msgs {
		if string(m.Key) != "sig-subject-1" {
			t.Errorf("record %d key %q", i, m.Key)
		}
		rec, err := codec.Decode(context.Background(), m.Value)
		if err != nil || rec.Framing != avrocodec.FramingSingleObject {
			t.Fatalf("record %d: %v", i, err)
		}
		c, err := consent.ChangeFromNative(rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		if c.ChangeID != firstIDs[i%3] || !strings.HasPrefix(c.Source, "signal:") || !c.CapturedAt.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("record %d: %+v", i, c)
		}
		if c.Purpose == "marketing" && (c.Action != consent.ActionGrant || c.NoticeVersion != "consent-mode-v2" || c.LegalBasis != consent.BasisConsent) {
			t.Errorf("marketing change %+v", c)
		}
		hasHeader := false
		for _, hd := range m.Headers {
			hasHeader = hasHeader || (hd.Key == HeaderSignalSubmission && len(hd.Value) == 16)
		}
		if !hasHeader {
			t.Errorf("record %d lacks %s", i, HeaderSignalSubmission)
		}
	}

	// A policy without signals answers 404 and produces nothing.
	noSignals, err := policy.Parse([]byte("purposes:\n  - id: marketing\nstreams:\n  - purposes: [marketing]\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h2 := New(Options{Topic: topic, Purposes: known, Policy: noSignals}, codec, kc)
	defer h2.Close()
	srv2 := httptest.NewServer(h2.Signals())
	defer srv2.Close()
	if a := post(t, srv2.URL, http.MethodPost, "application/json", body); a.code != http.StatusNotFound {
		t.Errorf("no signals section: %d %v, want 404", a.code, a.body)
	}
	if n := len(broker.ReadAll(t, topic, 500*time.Millisecond, 20*time.Second)); n != 6 {
		t.Errorf("topic holds %d records after the 404, want 6", n)
	}
}
