package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// csChangesTopic is consent-sync's default input topic.
const csChangesTopic = "consent.changes"

// csStack is a broker process, a redis-server process and what the tests of
// this file need to talk to them.
type csStack struct {
	broker *brokertest.Broker
	redis  *redistest.Server
	rdb    *redis.Client
	codec  *avrocodec.Codec
	writer *kafka.Writer
	bin    string
	policy string
}

func csStart(t *testing.T, partitions int) *csStack {
	t.Helper()
	s := &csStack{
		broker: brokertest.Start(t, brokertest.Options{Partitions: partitions, Topics: []string{csChangesTopic + ".dlq"}}),
		redis:  redistest.Start(t),
		bin:    proctest.Build(t, "services/consent-sync"),
	}
	t.Logf("redis: local redis-server process at %s (no Docker engine here)", s.redis.Addr())
	s.rdb = s.redis.Client(t)
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	s.codec = avrocodec.New(cat, nil)
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{s.broker.Addr}
	s.writer = stream.NewWriter(cfg)
	t.Cleanup(func() { s.writer.Close() })
	if s.policy, err = filepath.Abs("testdata/policy.yaml"); err != nil {
		t.Fatal(err)
	}
	return s
}

// env is consent-sync's environment for a key prefix and consumer group.
func (s *csStack) env(prefix, group string, extra ...string) []string {
	return append([]string{
		"KAFKA_BROKERS=" + s.broker.Addr,
		"REDIS_ADDR=" + s.redis.Addr(),
		"POLICY_FILE=" + s.policy,
		"CONSENT_KEY_PREFIX=" + prefix,
		"CONSENT_SYNC_GROUP_ID=" + group,
		"CONSENT_SYNC_SESSION_TIMEOUT=6s",
	}, extra...)
}

func (s *csStack) produce(t *testing.T, msgs []kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := stream.WriteAll(ctx, s.writer, msgs, nil); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func (s *csStack) changeMsg(t *testing.T, c consent.Change) kafka.Message {
	t.Helper()
	b, err := s.codec.EncodeSingle("consentgate.consent.ConsentChange", c.Native())
	if err != nil {
		t.Fatalf("encode change: %v", err)
	}
	return kafka.Message{Topic: csChangesTopic, Key: []byte(c.SubjectID), Value: b}
}

// waitCommitted polls until group has committed the high watermark of every
// partition of topic: every record there has been applied.
func (s *csStack) waitCommitted(t *testing.T, group, topic string, timeout time.Duration) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(s.broker.Addr), Timeout: 10 * time.Second}
	ctx := context.Background()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %v %+v", topic, err, meta)
	}
	var ids []int
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		ids = append(ids, p.ID)
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatalf("high watermarks of %s: %v", topic, err)
	}
	want := map[int]int64{}
	for _, p := range offs.Topics[topic] {
		want[p.Partition] = p.LastOffset
	}
	deadline := time.Now().Add(timeout)
	var got map[int]int64
	for time.Now().Before(deadline) {
		res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
		if err == nil {
			got = map[int]int64{}
			for _, p := range res.Topics[topic] {
				got[p.Partition] = p.CommittedOffset
			}
			if reflect.DeepEqual(got, want) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("group %s did not commit the high watermarks %v of %s within %s (committed %v)", group, want, topic, timeout, got)
}

// dump returns every consent hash under prefix, keyed by the key without the
// prefix.
func (s *csStack) dump(t *testing.T, prefix string) map[string]map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[string]string{}
	iter := s.rdb.Scan(ctx, 0, prefix+"consent:{*", 500).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		h, err := s.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatalf("hgetall: %v", err)
		}
		out[strings.TrimPrefix(key, prefix)] = h
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return out
}

func (s *csStack) count(t *testing.T, topic string) int {
	t.Helper()
	return len(s.broker.ReadAll(t, topic, 500*time.Millisecond, 20*time.Second))
}

// csLogLine returns the JSON log line of p whose msg is msg, decoded.
func csLogLine(t *testing.T, p *proctest.Proc, msg string) map[string]any {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("%s printed no %q line", p.Name, msg)
	return nil
}

// csChanges returns n consent changes over a few subjects and purposes, in a
// shuffled order: duplicates, captured_at out of order and tied in the same
// millisecond, grants with expiries and excluded categories, erasures
// followed by late changes captured before them, and changes after them.
func csChanges(n int) []consent.Change {
	rng := rand.New(rand.NewPCG(7, 11))
	purposes := []string{"marketing", "analytics", "personalisation", "ads"}
	actions := []consent.Action{consent.ActionGrant, consent.ActionGrant, consent.ActionGrant, consent.ActionDeny, consent.ActionWithdraw, consent.ActionWithdraw}
	base := time.UnixMilli(1_790_000_000_000).UTC()
	var out []consent.Change
	for i := 0; len(out) < n; i++ {
		subject := fmt.Sprintf("rb-subj-%02d", rng.IntN(24))
		at := base.Add(time.Duration(rng.IntN(3600)) * time.Second)
		if rng.IntN(8) == 0 {
			at = base.Add(30 * time.Minute) // ties in the same millisecond
		}
		c := consent.Change{
			ChangeID: fmt.Sprintf("rb-%08x", rng.Uint32()), SubjectID: subject, Purpose: purposes[rng.IntN(len(purposes))],
			Action: actions[rng.IntN(len(actions))], LegalBasis: consent.BasisConsent, Source: "preference-centre",
			NoticeVersion: "2026-0" + strconv.Itoa(1+rng.IntN(3)), CapturedAt: at,
		}
		if c.Action == consent.ActionGrant {
			if rng.IntN(3) == 0 {
				c.ExpiresAt = at.Add(time.Duration(1+rng.IntN(48)) * time.Hour)
			}
			if rng.IntN(4) == 0 {
				c.ExcludedCategories = []string{"user.health.*"}
			}
		}
		if rng.IntN(12) == 0 {
			c = consent.Change{ChangeID: c.ChangeID, SubjectID: subject, Action: consent.ActionErase, CapturedAt: at, Source: "support-agent"}
		}
		out = append(out, c)
		if rng.IntN(8) == 0 && len(out) < n { // a duplicate, later in the log
			out = append(out, out[rng.IntN(len(out))])
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	// Erasures of a few subjects late in the log, then changes captured before
	// them (late arrivals, ignored) and after them (applied).
	for i := 0; i < 4; i++ {
		subject := fmt.Sprintf("rb-subj-%02d", i)
		erasedAt := base.Add(45 * time.Minute)
		out = append(out, consent.Change{ChangeID: fmt.Sprintf("rb-erase-%d", i), SubjectID: subject, Action: consent.ActionErase, CapturedAt: erasedAt})
		for j, d := range []time.Duration{-time.Minute, -time.Hour, time.Minute} {
			out = append(out, consent.Change{
				ChangeID: fmt.Sprintf("rb-after-erase-%d-%d", i, j), SubjectID: subject, Purpose: "marketing", Action: consent.ActionGrant,
				LegalBasis: consent.BasisConsent, Source: "cookie-banner", NoticeVersion: "2026-03", CapturedAt: erasedAt.Add(d),
			})
		}
	}
	return out
}

// TestRebuildEqualsLiveState applies a few hundred consent changes with the
// live consent-sync, then rebuilds them with consent-sync --rebuild into a
// fresh key prefix, and checks that both states are the same byte for byte;
// that the rebuild refuses a prefix that holds keys, publishes no notices and
// dead letters, and logs no subject ids.
func TestRebuildEqualsLiveState(t *testing.T) {
	s := csStart(t, 3)
	n := 600
	if v, err := strconv.Atoi(os.Getenv("E2E_REBUILD_CHANGES")); err == nil && v > 0 {
		n = v // for measuring the rebuild rate on a bigger topic
	}
	changes := csChanges(n)
	var msgs []kafka.Message
	for _, c := range changes {
		msgs = append(msgs, s.changeMsg(t, c))
	}
	invalid := []kafka.Message{
		{Topic: csChangesTopic, Key: []byte("rb-junk"), Value: []byte("\xc3\x01not avro")},
		s.changeMsg(t, consent.Change{ChangeID: "", SubjectID: "rb-subj-01", Purpose: "marketing", Action: consent.ActionGrant, CapturedAt: time.UnixMilli(1_790_000_000_000)}),
		s.changeMsg(t, consent.Change{ChangeID: "rb-no-purpose", SubjectID: "rb-subj-02", Action: consent.ActionWithdraw, CapturedAt: time.UnixMilli(1_790_000_000_000)}),
	}
	msgs = append(msgs, invalid...)
	total := len(msgs)

	live := "live:" + redistest.PrefixFor(t)
	group := "cs-live-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	sync := proctest.Start(t, "consent-sync", s.bin, s.env(live, group))
	if err := sync.WaitFor(`"msg":"syncing consent"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(msgs); i += 200 {
		s.produce(t, msgs[i:min(i+200, len(msgs))])
	}
	s.waitCommitted(t, group, csChangesTopic, 5*time.Minute)
	if err := sync.Stop(30 * time.Second); err != nil {
		t.Fatalf("live consent-sync did not stop cleanly: %v", err)
	}
	want := s.dump(t, live)
	if len(want) == 0 {
		t.Fatal("the live consent-sync stored nothing")
	}
	revocations, dlq := s.count(t, "consent.revocations"), s.count(t, csChangesTopic+".dlq")
	if revocations == 0 || dlq != len(invalid) {
		t.Fatalf("live run published %d notices and %d dead letters, want some and %d", revocations, dlq, len(invalid))
	}

	// Into the live prefix, which holds keys: refused without --rebuild-force.
	refused := proctest.Start(t, "consent-sync-rebuild-refused", s.bin, s.env(live, group), "--rebuild")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	_ = refused.Wait(ctx)
	cancel()
	if refused.ExitCode() != 1 || !strings.Contains(refused.Output(), "CONSENT_SYNC_REBUILD_FORCE") {
		t.Fatalf("rebuild into a prefix holding keys: exit %d, want 1 and a message naming CONSENT_SYNC_REBUILD_FORCE", refused.ExitCode())
	}

	fresh := "rebuilt:" + redistest.PrefixFor(t)
	rb := proctest.Start(t, "consent-sync-rebuild", s.bin, s.env(fresh, "cs-unused-group"), "--rebuild")
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	err := rb.Wait(ctx)
	cancel()
	if err != nil || rb.ExitCode() != 0 {
		t.Fatalf("consent-sync --rebuild: exit %d (%v), want 0", rb.ExitCode(), err)
	}
	summary, _ := csLogLine(t, rb, "rebuild finished")["summary"].(map[string]any)
	num := func(k string) int {
		v, ok := summary[k].(float64)
		if !ok {
			t.Fatalf("rebuild summary lacks %s: %v", k, summary)
		}
		return int(v)
	}
	if num("records") != total || num("invalid") != len(invalid) || num("applied")+num("ignored")+num("invalid") != total {
		t.Errorf("rebuild summary %v: want %d records, %d invalid, applied+ignored+invalid = records", summary, total, len(invalid))
	}
	t.Logf("rebuild: %d records in %v: %v changes/s", num("records"), summary["duration"], summary["changes_per_sec"])

	got := s.dump(t, fresh)
	if len(got) != len(want) {
		t.Errorf("rebuilt %d keys, live state has %d", len(got), len(want))
	}
	tombstones := 0
	for k, w := range want {
		if _, ok := w[consent.TombstoneField]; ok {
			tombstones++
		}
		if g, ok := got[k]; !ok {
			t.Errorf("key %s missing from the rebuilt state", k)
		} else if !reflect.DeepEqual(g, w) {
			t.Errorf("key %s differs:\n rebuilt %v\n live    %v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("key %s only in the rebuilt state", k)
		}
	}
	if tombstones == 0 {
		t.Error("no erasure tombstone in the state: the test data lacks erasures")
	}
	if r, d := s.count(t, "consent.revocations"), s.count(t, csChangesTopic+".dlq"); r != revocations || d != dlq {
		t.Errorf("the rebuild published %d notices and %d dead letters, want none", r-revocations, d-dlq)
	}
	for _, p := range []*proctest.Proc{sync, refused, rb} {
		if strings.Contains(p.Output(), "rb-subj-") {
			t.Errorf("%s logged a subject id", p.Name)
		}
	}
}

// csPost posts body as JSON to the intake and returns the status and the
// decoded answer.
func csPost(t *testing.T, url, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if csIntakeToken != "" {
		req.Header.Set("Authorization", "Bearer "+csIntakeToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// csIntakeToken is the bearer token csPost sends ("" for none).
var csIntakeToken = "e2e-intake-token-0123456789abcdef"

// csErrorFields returns the fields named by a 400 answer.
func csErrorFields(m map[string]any) []string {
	var fields []string
	list, _ := m["errors"].([]any)
	for _, e := range list {
		if f, ok := e.(map[string]any)["field"].(string); ok {
			fields = append(fields, f)
		}
	}
	sort.Strings(fields)
	return fields
}

// TestIntakeGrantReachesRedis posts a GRANT to the HTTP intake and sees the
// live consent-sync apply it from the topic; invalid JSON and a change with
// missing fields get 400 answers naming the problems, and nothing of them is
// produced.
func TestIntakeGrantReachesRedis(t *testing.T) {
	s := csStart(t, 2)
	prefix := redistest.PrefixFor(t)
	addr := fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t))
	tokens := filepath.Join(t.TempDir(), "intake-tokens")
	if err := os.WriteFile(tokens, []byte("# e2e\n"+csIntakeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := proctest.Start(t, "consent-sync", s.bin, s.env(prefix, "cs-intake", "CONSENT_INTAKE_ADDR="+addr, "CONSENT_INTAKE_TOKENS_FILE="+tokens))
	for _, line := range []string{`"msg":"intake listening"`, `"msg":"syncing consent"`} {
		if err := proc.WaitFor(line, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	url := "http://" + addr + "/v1/consent-changes"
	if resp, err := http.Post(url, "application/json", strings.NewReader(`{}`)); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("post without a token: %v, want 401", err)
	} else {
		resp.Body.Close()
	}

	code, ans := csPost(t, url, "application/json", `{
		"change_id": "intake-1", "subject_id": "intake-subject-7", "purpose": "marketing", "action": "GRANT",
		"legal_basis": "CONSENT", "excluded_categories": ["user.health.*"], "source": "preference-centre",
		"notice_version": "2026-09", "captured_at": "2026-11-22T08:00:00.123Z", "expires_at": null}`)
	if code != http.StatusAccepted {
		t.Fatalf("grant: %d %v, want 202", code, ans)
	}
	if ans["change_id"] != "intake-1" || ans["topic"] != csChangesTopic {
		t.Errorf("grant answer %v", ans)
	}
	part, off := int(ans["partition"].(float64)), int64(ans["offset"].(float64))

	// The answer's coordinates hold the record, keyed by subject, in the
	// single-object encoding.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{s.broker.Addr}, Topic: csChangesTopic, Partition: part, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(off); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	m, err := r.ReadMessage(ctx)
	cancel()
	if err != nil {
		t.Fatalf("read the record at %d/%d: %v", part, off, err)
	}
	if string(m.Key) != "intake-subject-7" || !bytes.HasPrefix(m.Value, []byte{0xc3, 0x01}) {
		t.Errorf("record at the answered offset: key %q, value prefix % x", m.Key, m.Value[:2])
	}
	rec, err := s.codec.Decode(context.Background(), m.Value)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := avrocodec.StringField(rec.Value, "change_id"); id != "intake-1" {
		t.Errorf("record at the answered offset has change_id %q", id)
	}

	store := consent.NewStore(s.rdb, prefix)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := store.Lookup(context.Background(), []string{"intake-subject-7"})
		if err == nil && st["intake-subject-7"] != nil {
			ps := st["intake-subject-7"].Purposes["marketing"]
			if ps.Status == consent.StatusGranted && ps.ChangeID == "intake-1" && ps.CapturedAt.Equal(time.Date(2026, 11, 22, 8, 0, 0, 123e6, time.UTC)) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the grant posted to the intake was not applied to Redis within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	code, ans = csPost(t, url, "application/json", `{"change_id": "intake-2",`)
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(ans["errors"]), "not valid JSON") {
		t.Errorf("invalid JSON: %d %v, want 400 saying it is not valid JSON", code, ans)
	}
	code, ans = csPost(t, url, "application/json", `{"subject_id": "intake-subject-8", "purpose": "marketing", "action": "GRANT", "colour": "red", "expires_at": 1795334400000}`)
	wantFields := []string{"captured_at", "change_id", "colour", "expires_at", "legal_basis", "notice_version", "source"}
	if got := csErrorFields(ans); code != http.StatusBadRequest || !reflect.DeepEqual(got, wantFields) {
		t.Errorf("change with missing fields: %d, fields %v, want 400 naming %v (%v)", code, got, wantFields, ans)
	}
	code, _ = csPost(t, url, "text/plain", `{}`)
	if code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d, want 415", code)
	}

	if err := proc.Stop(30 * time.Second); err != nil {
		t.Fatalf("consent-sync did not stop cleanly: %v", err)
	}
	if n := s.count(t, csChangesTopic); n != 1 {
		t.Errorf("consent topic holds %d records, want only the accepted grant", n)
	}
	stopped := csLogLine(t, proc, "stopped")
	if stopped["intake_accepted"] != 1.0 || stopped["intake_rejected"] != 3.0 {
		t.Errorf("stopped line counts %v, want 1 accepted and 3 rejected", stopped)
	}
	if strings.Contains(proc.Output(), "intake-subject") {
		t.Error("consent-sync logged a subject id")
	}
}
