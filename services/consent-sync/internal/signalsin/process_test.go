package signalsin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
	"github.com/consentgate/consentgate/services/consent-sync/internal/intake"
)

const (
	signalsTopic = "consent.signals"
	changesTopic = "consent.changes"
)

// t0 is the captured_at of the test submissions; received their records'
// timestamp (5 s later: no clock rule applies).
var (
	t0       = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	received = t0.Add(5 * time.Second)
)

// devPolicy is the dev stack's policy (it has a signals section).
func devPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	pol, err := policy.Load(filepath.Join("..", "..", "..", "..", "pkg", "policy", "testdata", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

func newCodec(t testing.TB) *avrocodec.Codec {
	t.Helper()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return avrocodec.New(cat, nil)
}

func newConsumer(t testing.TB, codec Codec) *Consumer {
	t.Helper()
	c, err := New(Options{ChangesTopic: changesTopic, DLQSuffix: ".dlq", Policy: devPolicy(t)}, codec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The test submissions, in the JSON form of POST /v1/consent-signals too,
// so that both intakes can be given the same one.
const (
	// US-CA: GPC takes sale away, Consent Mode grants marketing and denies
	// analytics.
	decidingJSON = `{"subject_id":"sig-subject-1","captured_at":"2026-12-01T10:00:00.000Z","jurisdiction":"US-CA",
		"signals":[{"type":"gpc","value":"1"},{"type":"consent_mode","states":{"ad_user_data":"granted","ad_personalization":"granted","analytics_storage":"denied"}}]}`
	// ad_storage alone decides no purpose of the policy.
	nothingJSON = `{"subject_id":"sig-subject-2","captured_at":"2026-12-01T10:00:00.000Z","jurisdiction":"US",
		"signals":[{"type":"consent_mode","states":{"ad_storage":"granted"}}]}`
	// GPC alone: a WITHDRAW of sale only.
	gpcJSON = `{"subject_id":"sig-subject-3","captured_at":"2026-12-01T10:00:00.000Z","jurisdiction":"US-CA","signals":[{"type":"gpc","value":"1"}]}`
	// Consent Mode grants only.
	grantJSON = `{"subject_id":"sig-subject-4","captured_at":"2026-12-01T10:00:00.000Z",
		"signals":[{"type":"consent_mode","states":{"ad_user_data":"granted","ad_personalization":"granted"}}]}`
)

// submission reads a JSON body with the HTTP intake's parser.
func submission(t testing.TB, body string) signals.Submission {
	t.Helper()
	sub, problems := intake.ParseSignals([]byte(body))
	if len(problems) > 0 {
		t.Fatalf("the test body does not parse: %v", problems)
	}
	return sub
}

// encode is a producer's record value for sub.
func encode(t testing.TB, codec *avrocodec.Codec, sub signals.Submission) []byte {
	t.Helper()
	b, err := codec.EncodeSingle(SubmissionSchema, Native(sub))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// record is a signal record as the reader delivers it.
func record(offset int64, key string, value []byte, at time.Time) kafka.Message {
	return kafka.Message{Topic: signalsTopic, Partition: 0, Offset: offset, Key: []byte(key), Value: value, Time: at,
		Headers: []kafka.Header{{Key: "producer-trace", Value: []byte("abc")}}}
}

// decodeChange reads a produced change record.
func decodeChange(t testing.TB, codec *avrocodec.Codec, m kafka.Message) consent.Change {
	t.Helper()
	rec, err := codec.Decode(context.Background(), m.Value)
	if err != nil {
		t.Fatalf("produced change does not decode: %v", err)
	}
	if rec.Schema.FullName != ChangeSchema || rec.Framing != avrocodec.FramingSingleObject {
		t.Fatalf("produced %s in %v, want %s single-object", rec.Schema.FullName, rec.Framing, ChangeSchema)
	}
	c, err := consent.ChangeFromNative(rec.Value)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func header(m kafka.Message, key string) string {
	v, _ := stream.Header(m, key)
	return v
}

// TestSubmissionRoundTrip: a submission sent through the Avro record reads
// back as the very submission the HTTP intake's JSON parser makes of the
// same content, so that both intakes make the same change ids.
func TestSubmissionRoundTrip(t *testing.T) {
	t.Parallel()
	codec := newCodec(t)
	pol := devPolicy(t)
	for _, body := range []string{decidingJSON, nothingJSON, gpcJSON, grantJSON,
		`{"subject_id":"s","captured_at":"2026-12-01T10:00:00.123Z","notice_version":"privacy-2026-11","signals":[{"type":"usp","value":"1YYN"},{"type":"tcf","value":"x"}]}`} {
		want := submission(t, body)
		rec, err := codec.Decode(context.Background(), encode(t, codec, want))
		if err != nil {
			t.Fatal(err)
		}
		got, err := SubmissionFromNative(rec.Value)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, want)
		}
		wc, werr := signals.Changes(pol, want)
		gc, gerr := signals.Changes(pol, got)
		if (werr == nil) != (gerr == nil) || !slices.EqualFunc(wc, gc, func(a, b consent.Change) bool { return a.ChangeID == b.ChangeID }) {
			t.Errorf("changes differ: %v %v / %v %v", wc, werr, gc, gerr)
		}
	}
}

// TestSubmissionFromNativeRefuses: every rule of the HTTP intake's parser,
// each problem named, no value repeated.
func TestSubmissionFromNativeRefuses(t *testing.T) {
	t.Parallel()
	good := func() map[string]any {
		return Native(signals.Submission{SubjectID: "subject-x", CapturedAt: t0, Jurisdiction: "DE", NoticeVersion: "n1",
			Signals: []signals.Signal{{Type: "gpc", Value: "1"}}})
	}
	if _, err := SubmissionFromNative(good()); err != nil {
		t.Fatalf("the good record is refused: %v", err)
	}
	many := make([]any, signals.MaxSignals+1)
	for i := range many {
		many[i] = map[string]any{"type": "gpc", "value": map[string]any{"string": "1"}, "states": nil}
	}
	for _, tc := range []struct {
		name  string
		edit  func(m map[string]any)
		wants []string
	}{
		{"empty subject", func(m map[string]any) { m["subject_id"] = "" }, []string{"subject_id is empty"}},
		{"no subject", func(m map[string]any) { delete(m, "subject_id") }, []string{"subject_id is missing"}},
		{"long subject", func(m map[string]any) { m["subject_id"] = strings.Repeat("s", consent.MaxIDBytes+1) }, []string{"subject_id is longer than 256 bytes"}},
		{"subject not UTF-8", func(m map[string]any) { m["subject_id"] = "subject-\xff" }, []string{"subject_id is not valid UTF-8"}},
		{"no captured_at", func(m map[string]any) { delete(m, "captured_at") }, []string{"captured_at is missing"}},
		{"lower-case jurisdiction", func(m map[string]any) { m["jurisdiction"] = map[string]any{"string": "california"} }, []string{"jurisdiction is not an assigned ISO 3166-1"}},
		{"long notice version", func(m map[string]any) {
			m["notice_version"] = map[string]any{"string": strings.Repeat("n", MaxNoticeVersionBytes+1)}
		}, []string{"notice_version is longer than 256 bytes"}},
		{"no signals", func(m map[string]any) { m["signals"] = []any{} }, []string{"signals holds 0 signals: send 1 to 16"}},
		{"too many signals", func(m map[string]any) { m["signals"] = many }, []string{"signals holds 17 signals"}},
		{"empty type", func(m map[string]any) {
			m["signals"] = []any{map[string]any{"type": "", "value": nil, "states": nil}}
		}, []string{"signals[0].type is empty"}},
		{"everything at once", func(m map[string]any) {
			m["subject_id"] = ""
			m["jurisdiction"] = map[string]any{"string": "xx"}
			m["signals"] = []any{}
		}, []string{"subject_id is empty", "jurisdiction is not", "signals holds 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.edit(m)
			sub, err := SubmissionFromNative(m)
			if err == nil {
				t.Fatalf("accepted: %+v", sub)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, secret := range []string{"subject-\xff", "california", "nnnnnnnnnn"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q repeats a value", err)
				}
			}
			if sub.SubjectID != "" || sub.Signals != nil {
				t.Errorf("a partial submission came back with the error: %+v", sub)
			}
		})
	}
}

// TestProcess: each kind of record becomes what the package documentation
// says, in one batch: changes for the deciding record (keys, timestamps,
// headers, the HTTP intake's change ids), nothing for the one that decides
// nothing, a whole dead letter with the reason for every unusable one, and
// the clock rule per change against the record's timestamp.
func TestProcess(t *testing.T) {
	t.Parallel()
	codec := newCodec(t)
	c := newConsumer(t, codec)
	pol := devPolicy(t)

	wrongSchema, err := codec.EncodeSingle(ChangeSchema, consent.Change{ChangeID: "c1", SubjectID: "s", Purpose: "marketing",
		Action: consent.ActionGrant, LegalBasis: consent.BasisConsent, Source: "x", NoticeVersion: "1", CapturedAt: t0}.Native())
	if err != nil {
		t.Fatal(err)
	}
	emptySubject := submission(t, gpcJSON)
	emptySubject.SubjectID = ""
	badTCF := submission(t, gpcJSON)
	badTCF.Signals = append(badTCF.Signals, signals.Signal{Type: "tcf", Value: "CPxx!!secret"})
	batch := []kafka.Message{
		record(0, "sig-subject-1", encode(t, codec, submission(t, decidingJSON)), received),
		record(1, "sig-subject-2", encode(t, codec, submission(t, nothingJSON)), received),
		record(2, "junk", []byte("not avro"), received),
		record(3, "s", wrongSchema, received),
		record(4, "", encode(t, codec, emptySubject), received),
		record(5, "sig-subject-3", encode(t, codec, badTCF), received),
		// Received an hour before captured_at: the GRANT is refused (the
		// whole record), the WITHDRAW is moved to receipt + 15m.
		record(6, "sig-subject-4", encode(t, codec, submission(t, grantJSON)), t0.Add(-time.Hour)),
		record(7, "sig-subject-3", encode(t, codec, submission(t, gpcJSON)), t0.Add(-time.Hour)),
	}
	out, err := c.Process(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}

	var changes, letters []kafka.Message
	for _, m := range out {
		switch m.Topic {
		case changesTopic:
			changes = append(changes, m)
		case signalsTopic + ".dlq":
			letters = append(letters, m)
		default:
			t.Errorf("record on %s", m.Topic)
		}
	}
	want, err := signals.Changes(pol, submission(t, decidingJSON))
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != len(want)+1 {
		t.Fatalf("%d changes, want %d (the deciding record's) + 1 (the late WITHDRAW)", len(changes), len(want)+1)
	}
	actions := map[string]consent.Action{}
	for i, m := range changes[:len(want)] {
		ch := decodeChange(t, codec, m)
		actions[ch.Purpose] = ch.Action
		if ch.ChangeID != want[i].ChangeID || !ch.CapturedAt.Equal(t0) || string(m.Key) != "sig-subject-1" || !m.Time.Equal(received) {
			t.Errorf("change %d: %+v key %q time %v, want id %s captured %v key sig-subject-1 time %v", i, ch, m.Key, m.Time, want[i].ChangeID, t0, received)
		}
		if got := header(m, intake.HeaderSignalSubmission); len(got) != 16 || got != header(changes[0], intake.HeaderSignalSubmission) {
			t.Errorf("change %d: %s = %q", i, intake.HeaderSignalSubmission, got)
		}
		if got := header(m, HeaderSignalSource); got != "consent.signals/0/0" {
			t.Errorf("change %d: %s = %q", i, HeaderSignalSource, got)
		}
		if _, ok := stream.Header(m, intake.HeaderClaimedCapturedAt); ok {
			t.Errorf("change %d has %s, but the clock rule moved nothing", i, intake.HeaderClaimedCapturedAt)
		}
		if _, ok := stream.Header(m, "producer-trace"); ok {
			t.Errorf("change %d carries the producer's headers", i)
		}
		if coord, ok := Origin(m); !ok || coord != (stream.Coordinates{Topic: signalsTopic, Partition: 0, Offset: 0}) {
			t.Errorf("Origin(change %d) = %v %v", i, coord, ok)
		}
	}
	if actions["sale"] != consent.ActionWithdraw || actions["marketing"] != consent.ActionGrant || actions["analytics"] != consent.ActionDeny {
		t.Errorf("actions %v, want sale WITHDRAW, marketing GRANT, analytics DENY", actions)
	}
	late := changes[len(want)]
	lc := decodeChange(t, codec, late)
	// The record's timestamp is an hour behind its captured_at, but the
	// consumer's clock is not: an objection is bounded by the later of the
	// two, so it keeps its time (a producer clock behind must not move it
	// back behind a grant it came after).
	if lc.Action != consent.ActionWithdraw || !lc.CapturedAt.Equal(t0) || !late.Time.Equal(t0.Add(-time.Hour)) {
		t.Errorf("late withdrawal %+v at %v, want captured at %v as sent", lc, late.Time, t0)
	}
	if got, ok := stream.Header(late, intake.HeaderClaimedCapturedAt); ok {
		t.Errorf("late withdrawal %s = %q, but nothing was moved", intake.HeaderClaimedCapturedAt, got)
	}

	wantLetters := []struct {
		offset int64
		reason string
		says   string
	}{
		{2, ReasonUndecodable, "single-object"},
		{3, ReasonWrongSchema, "consentgate.consent.ConsentChange"},
		{4, ReasonInvalidSubmission, "subject_id is empty"},
		{5, ReasonMalformedSignal, "signals[1] (tcf)"},
		{6, ReasonRefusedGrant, "a GRANT dated that far ahead is refused"},
	}
	if len(letters) != len(wantLetters) {
		t.Fatalf("%d dead letters, want %d", len(letters), len(wantLetters))
	}
	for i, w := range wantLetters {
		m, in := letters[i], batch[w.offset]
		if header(m, stream.HeaderDLQReason) != w.reason || !strings.Contains(header(m, stream.HeaderDLQError), w.says) {
			t.Errorf("dead letter %d: reason %q error %q, want %s saying %q", i, header(m, stream.HeaderDLQReason), header(m, stream.HeaderDLQError), w.reason, w.says)
		}
		if string(m.Value) != string(in.Value) || string(m.Key) != string(in.Key) || header(m, "producer-trace") != "abc" {
			t.Errorf("dead letter %d does not carry the original key, value and headers", i)
		}
		if header(m, stream.HeaderSourceOffset) != fmt.Sprint(w.offset) || header(m, stream.HeaderSourceTopic) != signalsTopic {
			t.Errorf("dead letter %d: coordinates %s/%s", i, header(m, stream.HeaderSourceTopic), header(m, stream.HeaderSourceOffset))
		}
		if strings.Contains(header(m, stream.HeaderDLQError), "secret") {
			t.Errorf("dead letter %d's error repeats the signal", i)
		}
		if coord, ok := Origin(m); !ok || coord.Offset != w.offset {
			t.Errorf("Origin(dead letter %d) = %v %v", i, coord, ok)
		}
	}
	if c.Decided.Load() != 2 || c.Ignored.Load() != 1 || c.DeadLettered.Load() != 5 || c.Changes.Load() != int64(len(want)+1) || c.ClockAdjusted.Load() != 0 {
		t.Errorf("counters decided %d ignored %d dead-lettered %d changes %d adjusted %d", c.Decided.Load(), c.Ignored.Load(), c.DeadLettered.Load(), c.Changes.Load(), c.ClockAdjusted.Load())
	}
	for _, r := range Reasons {
		if r == ReasonInvalidChange {
			continue // a bug's reason: no record of the batch makes an invalid change
		}
		if c.DeadLetteredBy(r) != 1 {
			t.Errorf("dead-lettered for %s: %d, want 1", r, c.DeadLetteredBy(r))
		}
	}
}

// TestProcessRetriesWhatMayDecodeLater: a Confluent-framed record whose
// writer schema the registry cannot give now (it is down) fails the batch,
// so that the runner pauses and retries it: nothing is dead-lettered,
// nothing counted.
func TestProcessRetriesWhatMayDecodeLater(t *testing.T) {
	t.Parallel()
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	down := fmt.Sprintf("http://127.0.0.1:%d", brokertest.FreePort(t))
	codec := avrocodec.New(cat, schemaregistry.New(down, &http.Client{Timeout: time.Second}))
	c := newConsumer(t, codec)
	good := encode(t, codec, submission(t, decidingJSON))
	out, err := c.Process(context.Background(), []kafka.Message{
		record(0, "sig-subject-1", good, received),
		record(1, "s", []byte{0, 0, 0, 0, 7, 2, 3}, received),
	})
	if err == nil || !errors.Is(err, avrocodec.ErrRegistryUnavailable) || out != nil {
		t.Fatalf("Process = %d records, %v; want nothing and the registry's error", len(out), err)
	}
	if c.Decided.Load()+c.Changes.Load()+c.DeadLettered.Load() != 0 {
		t.Errorf("a failed batch was counted")
	}
}

// TestNewRefusesAPolicyWithoutSignals: with the topic on, a policy that
// maps no signals (or none at all) stops consent-sync at start, saying what
// to set.
func TestNewRefusesAPolicyWithoutSignals(t *testing.T) {
	t.Parallel()
	noSignals, err := policy.Parse([]byte("purposes:\n  - id: marketing\nstreams:\n  - purposes: [marketing]\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, pol := range map[string]*policy.Policy{"no policy": nil, "no signals section": noSignals} {
		_, err := New(Options{ChangesTopic: changesTopic, Policy: pol}, newCodec(t))
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		for _, w := range []string{"CONSENT_SIGNALS_TOPIC", "set POLICY_FILE to a policy with a signals: section", "CONSENT_SIGNALS_TOPIC=off"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", name, err, w)
			}
		}
	}
	if err := CheckPolicy(devPolicy(t)); err != nil {
		t.Errorf("the dev policy is refused: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    Config
		want string // "" valid
	}{
		{"defaults", DefaultConfig(), ""},
		{"empty", Config{}, ""},
		{"off with a bad group", Config{Topic: Off, GroupID: "a b"}, ""},
		{"bad topic", Config{Topic: "a,b", GroupID: "g"}, "fix CONSENT_SIGNALS_TOPIC"},
		{"no group", Config{Topic: "consent.signals"}, "set CONSENT_SIGNALS_GROUP_ID"},
	} {
		err := tc.c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestOriginRefusesMalformedSources(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "consent.signals", "consent.signals/0", "/0/1", "t/x/1", "t/0/y"} {
		m := kafka.Message{Headers: []kafka.Header{{Key: HeaderSignalSource, Value: []byte(v)}}}
		if c, ok := Origin(m); ok {
			t.Errorf("Origin(%q) = %v", v, c)
		}
	}
}
