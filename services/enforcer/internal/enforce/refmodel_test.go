package enforce

// Property test of the enforcer against the reference model
// (refmodel_model_test.go): random consent histories go through the real
// consent.Store on a real Redis, random events through the real Enforcer
// (codec, policy testdata/refmodel_policy.yaml, redactor), and every
// decision, reason and output byte is compared with what the model says.
//
//	REFMODEL_CASES  number of events (each decided on every stream; default 10000)
//	REFMODEL_SEED   seed to replay (printed on failure)
//	REFMODEL_ROUND  run only this round of the seed (printed on failure)

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/redistest"
	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/consentgate/consentgate/pkg/schemaregistry/registrytest"
	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/schemas"
)

const (
	refKey            = "refmodel-fixed-pseudonymisation-key"
	refEventsPerRound = 50
	refSubjects       = 25
	refInputTopic     = "customer.events"
)

// refWriter is one way an event can be written: a writer schema, the
// framing, the world (codec) that reads it, and its reader schema.
type refWriter struct {
	name     string // for messages: "PageView v1 single-object (reader v2)"
	world    *refWorld
	schema   string // full name
	wFile    string // writer .avsc
	rFile    string // reader .avsc of the world
	regID    int    // Confluent id, 0: single-object
	catalogV *avrocodec.Schema
}

type refWorld struct {
	name  string
	codec *avrocodec.Codec
	e     *Enforcer // on 4 workers
	seq   *Enforcer // the same on 1 worker
}

type refEnv struct {
	t       testing.TB     // of the round being run
	seen    map[string]int // stream outcome reason [copy kind] -> count
	rdb     *redistest.Server
	store   func(prefix string) *consent.Store // on one client of rdb
	worlds  []*refWorld
	writers []refWriter
	model   map[string]*mSchema // by file
	// The round's policy: the file's streams and random encrypt streams
	// (refmodel_encrypt_streams_test.go), restated by streams.
	polText []byte
	streams []mStream
	red     *redact.Redactor
	keys    *memKeys // real shred data keys, shared by every enforcer
}

func schemaText(t testing.TB, file string) string {
	t.Helper()
	var b []byte
	var err error
	if strings.HasPrefix(file, "refmodel_") {
		b, err = os.ReadFile("testdata/" + file)
	} else {
		b, err = fs.ReadFile(schemas.FS, file)
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newRefEnv(t testing.TB) *refEnv {
	t.Helper()
	polText, err := os.ReadFile("testdata/refmodel_policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse(polText, "refmodel_policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkRefPolicy(t, pol)
	env := &refEnv{t: t, rdb: redistest.Start(t), model: map[string]*mSchema{}, seen: map[string]int{},
		polText: polText, streams: refStreams, keys: &memKeys{keys: map[string]*shred.DataKey{}}}
	client := env.rdb.Client(t)
	env.store = func(prefix string) *consent.Store { return consent.NewStore(client, prefix) }
	files := []string{"page_view.v1.avsc", "page_view.v2.avsc", "purchase.v1.avsc", "email_engagement.v1.avsc",
		"refmodel_profile.v1.avsc", "refmodel_profile.v2.avsc"}
	for _, f := range files {
		ms, err := parseModelSchema(schemaText(t, f))
		if err != nil {
			t.Fatalf("model: %s: %v", f, err)
		}
		env.model[f] = ms
	}
	reg := registrytest.New()
	url := registrytest.Start(t, reg)
	ids := map[string]int{}
	for _, f := range files {
		ids[f] = reg.Add("customer.events-value", schemaText(t, f))
	}
	red, err := redact.New([]byte(refKey))
	if err != nil {
		t.Fatal(err)
	}
	env.red = red
	catalog := func(files ...string) *avrocodec.Catalog {
		m := fstest.MapFS{}
		for _, f := range files {
			m[f] = &fstest.MapFile{Data: []byte(schemaText(t, f))}
		}
		c, err := avrocodec.LoadCatalog(m)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// World "full": the catalog has every schema (PageView and the test's
	// Profile read as v2).
	full := catalog(append([]string{"audit_record.v2.avsc"}, files...)...)
	// World "old": the catalog lacks the v2 schemas (PageView and Profile
	// read as v1), and v2 comes from the registry: a writer newer than the
	// reader.
	old := catalog("audit_record.v2.avsc", "page_view.v1.avsc", "purchase.v1.avsc", "email_engagement.v1.avsc", "refmodel_profile.v1.avsc")
	mk := func(name string, cat *avrocodec.Catalog) *refWorld {
		codec := avrocodec.New(cat, schemaregistry.New(url, nil))
		// Four workers on batches of a few dozen events: chunks of one
		// event, so that the events of a batch are decided interleaved
		// across goroutines; seq decides the same batches on one.
		w := &refWorld{name: name, codec: codec}
		env.build(w, pol)
		return w
	}
	wFull, wOld := mk("full", full), mk("old", old)
	env.worlds = []*refWorld{wFull, wOld}
	version := func(cat *avrocodec.Catalog, name string, v int) *avrocodec.Schema {
		s, ok := cat.Version(name, v)
		if !ok {
			t.Fatalf("no %s v%d", name, v)
		}
		return s
	}
	const pv, pu, em, pr = "consentgate.events.PageView", "consentgate.events.Purchase", "consentgate.events.EmailEngagement", "consentgate.test.Profile"
	env.writers = []refWriter{
		{name: "PageView v1 single-object, reader v2", world: wFull, schema: pv, wFile: "page_view.v1.avsc", rFile: "page_view.v2.avsc", catalogV: version(full, pv, 1)},
		{name: "PageView v2 single-object, reader v2", world: wFull, schema: pv, wFile: "page_view.v2.avsc", rFile: "page_view.v2.avsc", catalogV: version(full, pv, 2)},
		{name: "PageView v1 Confluent, reader v2", world: wFull, schema: pv, wFile: "page_view.v1.avsc", rFile: "page_view.v2.avsc", regID: ids["page_view.v1.avsc"]},
		{name: "PageView v2 Confluent, reader v1", world: wOld, schema: pv, wFile: "page_view.v2.avsc", rFile: "page_view.v1.avsc", regID: ids["page_view.v2.avsc"]},
		{name: "PageView v1 single-object, reader v1", world: wOld, schema: pv, wFile: "page_view.v1.avsc", rFile: "page_view.v1.avsc", catalogV: version(old, pv, 1)},
		{name: "Purchase single-object", world: wFull, schema: pu, wFile: "purchase.v1.avsc", rFile: "purchase.v1.avsc", catalogV: version(full, pu, 1)},
		{name: "Purchase Confluent", world: wFull, schema: pu, wFile: "purchase.v1.avsc", rFile: "purchase.v1.avsc", regID: ids["purchase.v1.avsc"]},
		{name: "EmailEngagement single-object", world: wFull, schema: em, wFile: "email_engagement.v1.avsc", rFile: "email_engagement.v1.avsc", catalogV: version(full, em, 1)},
		{name: "EmailEngagement Confluent", world: wOld, schema: em, wFile: "email_engagement.v1.avsc", rFile: "email_engagement.v1.avsc", regID: ids["email_engagement.v1.avsc"]},
		{name: "Profile v1 single-object, reader v2", world: wFull, schema: pr, wFile: "refmodel_profile.v1.avsc", rFile: "refmodel_profile.v2.avsc", catalogV: version(full, pr, 1)},
		{name: "Profile v2 single-object, reader v2", world: wFull, schema: pr, wFile: "refmodel_profile.v2.avsc", rFile: "refmodel_profile.v2.avsc", catalogV: version(full, pr, 2)},
		{name: "Profile v1 Confluent, reader v2", world: wFull, schema: pr, wFile: "refmodel_profile.v1.avsc", rFile: "refmodel_profile.v2.avsc", regID: ids["refmodel_profile.v1.avsc"]},
		{name: "Profile v2 Confluent, reader v1", world: wOld, schema: pr, wFile: "refmodel_profile.v2.avsc", rFile: "refmodel_profile.v1.avsc", regID: ids["refmodel_profile.v2.avsc"]},
		{name: "Profile v1 single-object, reader v1", world: wOld, schema: pr, wFile: "refmodel_profile.v1.avsc", rFile: "refmodel_profile.v1.avsc", catalogV: version(old, pr, 1)},
	}
	return env
}

// checkRefPolicy keeps the model's restatement of the policy in step with
// the file: same purposes, same streams with the same settings.
func checkRefPolicy(t testing.TB, pol *policy.Policy) {
	t.Helper()
	checkRefPolicyStreams(t, pol, refStreams)
}

// build (re)makes a world's enforcers on policy pol.
func (env *refEnv) build(w *refWorld, pol *policy.Policy) {
	w.e = New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: env.red, Keys: env.keys, Workers: 4}, w.codec, nil, pol)
	w.seq = New(Options{AuditTopic: "consent.audit", DLQSuffix: ".dlq", Redactor: env.red, Keys: env.keys, Workers: 1}, w.codec, nil, pol)
}

func checkRefPolicyStreams(t testing.TB, pol *policy.Policy, refStreams []mStream) {
	t.Helper()
	if len(pol.Purposes) != len(refPurposes) {
		t.Fatalf("policy has %d purposes, the model %d", len(pol.Purposes), len(refPurposes))
	}
	for _, p := range pol.Purposes {
		m, ok := refPurposes[p.ID]
		if !ok || m.optOut != p.OptOut || !slices.Equal(m.bases, p.LegalBases) {
			t.Fatalf("purpose %s: the model says %+v, the policy %+v", p.ID, m, p)
		}
	}
	if len(pol.Streams) != len(refStreams) {
		t.Fatalf("policy has %d streams, the model %d", len(pol.Streams), len(refStreams))
	}
	for i, s := range pol.Streams {
		m := refStreams[i]
		var rules []mRule
		for _, r := range s.Treatments {
			m := mRule{category: r.Category, field: r.Field, action: string(r.Action)}
			if r.Action == policy.ActionEncrypt {
				m.encryption = string(r.Encryption)
				if m.encryption == "randomised" {
					m.encryption = "" // the model's default
				}
			}
			rules = append(rules, m)
		}
		if s.Topic != m.topic || !slices.Equal(s.Purposes, m.purposes) || !slices.Equal(s.Schemas, m.schemas) ||
			(s.OnMissing == policy.OnMissingRedact) != m.redact || (s.Unannotated == policy.UnannotatedRemove) != m.removeUnannot ||
			(s.Excluded == policy.ExcludedDrop) != m.dropExcluded || string(s.DefaultTreatment) != m.defaultTreatment ||
			!slices.Equal(rules, m.rules) || s.GoogleConsentMode != m.google {
			t.Fatalf("stream %d: the model (%+v) does not restate the policy (%+v)", i, m, s)
		}
	}
}

// ---------------------------------------------------------------------------
// Random histories and events.

type refGen struct {
	rnd *rand.Rand
	now int64
}

func (g *refGen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.rnd.IntN(16)]
	}
	return string(b)
}

// exclusionNodes: every node of the taxonomy (categories and their
// ancestors), each as "x" and "x.*".
func exclusionNodes() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range policy.KnownCategories() {
		parts := strings.Split(c, ".")
		for i := 1; i <= len(parts); i++ {
			n := strings.Join(parts[:i], ".")
			if !seen[n] {
				seen[n] = true
				out = append(out, n, n+".*")
			}
		}
	}
	return out
}

var (
	refNodes      = exclusionNodes()
	refBadExclude = []string{"health", "User.Health", "*", "user.*.email", "user.contact.*.city", "user.healt", ""}
	refIDChars    = []string{"a", "A", "z", "Z", "0", "9", "é", "~", "_", "-", "ü", ",", "=", "%", " ", ":"}
)

// history returns the changes to apply (in the order drawn: the caller
// shuffles) and which of them are valid (the model's history).
type refChange struct {
	c     mChange
	valid bool
}

func (g *refGen) history(n int, counter *int) []refChange {
	purposes := []string{"marketing", "analytics", "personalisation", "sale", "ads", "other"}
	offsets := []int64{-9000, -5000, -5000, -2000, -2000, -1, 0, 1, 3000}
	var out []refChange
	for range n {
		*counter++
		id := ""
		for range 1 + g.rnd.IntN(2) {
			id += refIDChars[g.rnd.IntN(len(refIDChars))]
		}
		if g.rnd.IntN(16) == 0 {
			// A long id (at most 158 bytes and the counter): written
			// escaped, or past 256 escaped bytes as its digest.
			id = strings.Repeat(refIDChars[g.rnd.IntN(len(refIDChars))], 30+g.rnd.IntN(50))
		}
		c := mChange{id: id + strconv.Itoa(*counter), purpose: purposes[g.rnd.IntN(len(purposes))],
			at: g.now + offsets[g.rnd.IntN(len(offsets))]}
		if g.rnd.IntN(4) == 0 {
			c.at += int64(g.rnd.IntN(3)) // ties in the same millisecond, or not
		}
		valid := true
		switch r := g.rnd.IntN(100); {
		case r < 45:
			c.action = "GRANT"
			c.basis = []string{"CONSENT", "CONSENT", "CONSENT", "LEGITIMATE_INTEREST", "CONTRACT"}[g.rnd.IntN(5)]
			if g.rnd.IntN(5) < 2 {
				for range 1 + g.rnd.IntN(2) {
					c.excluded = append(c.excluded, refNodes[g.rnd.IntN(len(refNodes))])
				}
			}
			if g.rnd.IntN(20) == 0 {
				c.excluded = append(c.excluded, refBadExclude[g.rnd.IntN(len(refBadExclude))])
				valid = false
			}
			if g.rnd.IntN(3) == 0 {
				exp := g.now + []int64{-3_600_000, -1, 0, 1, 3_600_000}[g.rnd.IntN(5)]
				if exp > c.at {
					c.expires = exp
				}
			}
		case r < 60:
			c.action = "DENY"
		case r < 90:
			c.action = "WITHDRAW"
		default:
			c.action = "ERASE"
			if g.rnd.IntN(2) == 0 {
				c.purpose = "" // null for ERASE; a purpose is ignored
			}
		}
		if c.action != "GRANT" && g.rnd.IntN(4) == 0 {
			// Exclusions on DENY, WITHDRAW and ERASE mean nothing.
			c.excluded = []string{refNodes[g.rnd.IntN(len(refNodes))]}
			if g.rnd.IntN(2) == 0 {
				c.basis = "CONSENT"
			}
		}
		out = append(out, refChange{c: c, valid: valid})
	}
	return out
}

func toChange(subject string, c mChange) consent.Change {
	ch := consent.Change{ChangeID: c.id, SubjectID: subject, Purpose: c.purpose, Action: consent.Action(c.action),
		LegalBasis: consent.LegalBasis(c.basis), ExcludedCategories: c.excluded, Source: "refmodel", NoticeVersion: "n1",
		CapturedAt: time.UnixMilli(c.at).UTC()}
	if c.expires != 0 {
		ch.ExpiresAt = time.UnixMilli(c.expires).UTC()
	}
	return ch
}

// value draws a value of model type ty for the field at path; strings are
// unique per field ("v<random>-<path>~"), other leaves differ from their
// removal value.
func (g *refGen) value(ty *mType, path, fieldName string, ev *refEvent) any {
	switch ty.kind {
	case "record":
		m := map[string]any{}
		for _, f := range ty.fields {
			m[f.name] = g.value(f.typ, joinPath(path, f.name), f.name, ev)
		}
		return m
	case "union":
		var alts []*mType
		for _, b := range ty.branches {
			if b.kind != "null" {
				alts = append(alts, b)
			}
		}
		if len(alts) < len(ty.branches) && g.rnd.IntN(5) == 0 {
			return nil
		}
		b := alts[g.rnd.IntN(len(alts))]
		return map[string]any{unionKey(b): g.value(b, path, fieldName, ev)}
	case "map":
		m := map[string]any{}
		for range g.rnd.IntN(3) {
			m["k"+g.hex(10)+"-"+path+"~"] = g.value(ty.items, path+"{}", fieldName, ev)
		}
		return m
	case "array":
		n := g.rnd.IntN(4)
		items := make([]any, 0, n)
		for i := range n {
			items = append(items, g.value(ty.items, fmt.Sprintf("%s[%d]", path, i), fieldName, ev))
		}
		return items
	case "string":
		switch {
		case path == "subject_id":
			return ev.subject
		case path == "event_id":
			return ev.id
		case fieldName == "ip_address" && g.rnd.IntN(6) != 0:
			return fmt.Sprintf("10.%d.%d.%d", 1+g.rnd.IntN(254), 1+g.rnd.IntN(254), 1+g.rnd.IntN(254))
		}
		return "v" + g.hex(10) + "-" + path + "~"
	case "int":
		return int32(1 + g.rnd.IntN(1_000_000))
	case "long":
		return int64(1 + g.rnd.Int64N(1_000_000_000_000))
	case "boolean":
		return true
	case "enum":
		return ty.symbols[1+g.rnd.IntN(len(ty.symbols)-1)]
	case "timestamp-millis":
		// Never on a whole second, minute, hour or day.
		return time.UnixMilli(g.now - 86_400_000*int64(g.rnd.IntN(30)) - int64(1+g.rnd.IntN(3_600_000-1))*997).UTC()
	}
	panic("refmodel: no generator for " + ty.kind)
}

type refEvent struct {
	w       refWriter
	subject string
	id      string
	value   map[string]any
	msg     kafka.Message
	hist    []mChange // the model's history of the subject (valid changes)
}

// ---------------------------------------------------------------------------
// The test.

func refInt(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: not a number", name, s)
	}
	return n
}

func TestReferenceModel(t *testing.T) {
	cases := refInt(t, "REFMODEL_CASES", 10000)
	seed := refInt(t, "REFMODEL_SEED", uint64(time.Now().UnixNano()))
	rounds := (cases + refEventsPerRound - 1) / refEventsPerRound
	first := uint64(0)
	if os.Getenv("REFMODEL_ROUND") != "" {
		first = refInt(t, "REFMODEL_ROUND", 0)
		rounds = first + 1
	}
	env := newRefEnv(t)
	start := time.Now()
	var events, decisions int
	for round := first; round < rounds; round++ {
		n, d := env.round(seed, round)
		events, decisions = events+n, decisions+d
		if t.Failed() {
			t.Fatalf("reference model disagrees; replay with REFMODEL_SEED=%d REFMODEL_ROUND=%d", seed, round)
		}
	}
	keys := make([]string, 0, len(env.seen))
	for k := range env.seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Logf("  %6d  %s", env.seen[k], k)
	}
	t.Logf("reference model: %d events, %d stream decisions, %d rounds, seed %d, %v", events, decisions, rounds-first, seed, time.Since(start).Round(time.Millisecond))
}

// FuzzReferenceModel runs one round per input (seed, round): make fuzz
// explores further than the fixed rounds of TestReferenceModel.
func FuzzReferenceModel(f *testing.F) {
	env := newRefEnv(f)
	for i := range uint64(4) {
		f.Add(i, i)
	}
	f.Fuzz(func(t *testing.T, seed, round uint64) {
		env.t = t
		env.round(seed, round)
		if t.Failed() {
			t.Logf("replay with REFMODEL_SEED=%d REFMODEL_ROUND=%d go test -run TestReferenceModel", seed, round)
		}
	})
}

// round draws one set of histories and events, applies and processes them,
// and compares; it returns the number of events and decisions checked.
func (env *refEnv) round(seed, round uint64) (int, int) {
	t := env.t
	ctx := context.Background()
	g := &refGen{rnd: rand.New(rand.NewPCG(seed, round)), now: 1_780_000_000_000 + int64(round%1_000_000)*1000}
	store := env.store(redistest.PrefixFor(t))
	now := time.UnixMilli(g.now).UTC()
	env.drawPolicy(g)
	for _, w := range env.worlds {
		w.e.consent, w.seq.consent = store, store
		w.e.now = func() time.Time { return now }
		w.seq.now = w.e.now
	}

	// Histories: shuffled, with duplicates, applied to the real store.
	counter := 0
	subjects := make([]string, refSubjects)
	hists := map[string][]mChange{}
	type applied struct {
		subject string
		rc      refChange
	}
	var todo []applied
	for i := range subjects {
		subjects[i] = fmt.Sprintf("s%d-%d-%s", round, i, g.hex(6))
		n := g.rnd.IntN(9)
		if i == 0 {
			n = 0 // always one unknown subject
		}
		for _, rc := range g.history(n, &counter) {
			if g.rnd.IntN(8) == 0 {
				// An id that holds the subject id: never in a header.
				rc.c.id = "for-" + subjects[i] + "-" + rc.c.id
			}
			todo = append(todo, applied{subjects[i], rc})
			if rc.valid {
				hists[subjects[i]] = append(hists[subjects[i]], rc.c)
			}
			if g.rnd.IntN(5) == 0 {
				todo = append(todo, applied{subjects[i], rc})
			}
		}
	}
	g.rnd.Shuffle(len(todo), func(i, j int) { todo[i], todo[j] = todo[j], todo[i] })
	for _, a := range todo {
		_, err := store.Apply(ctx, toChange(a.subject, a.rc.c))
		switch {
		case a.rc.valid && err != nil:
			t.Fatalf("Apply of a valid change %+v: %v", a.rc.c, err)
		case !a.rc.valid && !errors.Is(err, consent.ErrInvalidChange):
			t.Errorf("Apply of a change with an invalid exclusion %q: err %v, want ErrInvalidChange", a.rc.c.excluded, err)
		}
	}

	// Events, batched per world.
	batches := map[*refWorld][]*refEvent{}
	for i := range refEventsPerRound {
		w := env.writers[g.rnd.IntN(len(env.writers))]
		ev := &refEvent{w: w, subject: subjects[g.rnd.IntN(len(subjects))], id: fmt.Sprintf("e%d-%d-%s", round, i, g.hex(6))}
		ev.hist = hists[ev.subject]
		ev.value = g.value(env.model[w.wFile].root, "", "", ev).(map[string]any)
		var b []byte
		var err error
		if w.regID != 0 {
			b, err = w.world.codec.EncodeConfluent(ctx, w.regID, ev.value)
		} else {
			b, err = w.catalogV.EncodeSingle(ev.value)
		}
		if err != nil {
			t.Fatalf("encode %s: %v", w.name, err)
		}
		ev.msg = kafka.Message{Topic: refInputTopic, Partition: int(round % 3), Offset: int64(i), Key: []byte(ev.subject), Value: b,
			Headers: []kafka.Header{
				{Key: "traceparent", Value: []byte("00-" + g.hex(32) + "-" + g.hex(16) + "-01")},
				{Key: "tracestate", Value: []byte("vendor=" + g.hex(8))},
				{Key: "x-customer", Value: []byte("h" + g.hex(10) + "-header~")},
			}}
		batches[w.world] = append(batches[w.world], ev)
	}
	decisions := 0
	for _, w := range env.worlds {
		evs := batches[w]
		if len(evs) == 0 {
			continue
		}
		msgs := make([]kafka.Message, len(evs))
		for i, ev := range evs {
			msgs[i] = ev.msg
		}
		out, err := w.e.Process(ctx, msgs)
		if err != nil {
			t.Fatalf("Process (%s): %v", w.name, err)
		}
		decisions += env.compare(w, evs, out)
		env.sameOnOneWorker(w, g, msgs, evs)
	}
	// An erased subject with no grant after the erasure is given no key
	// (one made now would outlive the erasure).
	for _, sub := range subjects {
		if !mayHaveKey(hists[sub], g.now) && env.keys.key(sub) != nil {
			t.Errorf("subject %s was erased with no grant since, yet was given a data key", sub)
		}
	}
	return refEventsPerRound, decisions
}

// sameOnOneWorker checks that deciding a batch on several workers writes
// exactly what one worker writes: the same records, in the same order,
// byte for byte. The batch is msgs with undecodable records and events
// without a subject id mixed in.
func (env *refEnv) sameOnOneWorker(w *refWorld, g *refGen, msgs []kafka.Message, evs []*refEvent) {
	t := env.t
	subjectOf := map[string]string{}
	for _, ev := range evs {
		subjectOf[ev.id] = ev.subject
	}
	ctx := context.Background()
	mixed := make([]kafka.Message, 0, len(msgs)+len(msgs)/4)
	for i, m := range msgs {
		mixed = append(mixed, m)
		if g.rnd.IntN(5) == 0 {
			bad := m
			bad.Offset = int64(1000 + i)
			switch g.rnd.IntN(3) {
			case 0:
				bad.Value = m.Value[:len(m.Value)/2] // truncated
			case 1:
				bad.Value = append(slices.Clone(m.Value), 0) // a byte after the datum
			default:
				bad.Value = []byte{0xC3, 0x01, 9, 9, 9, 9, 9, 9, 9, 9, 0} // unknown fingerprint
			}
			mixed = append(mixed, bad)
		}
	}
	par, err := w.e.Process(ctx, mixed)
	if err != nil {
		t.Fatalf("Process on 4 workers (%s): %v", w.name, err)
	}
	seq, err := w.seq.Process(ctx, mixed)
	if err != nil {
		t.Fatalf("Process on 1 worker (%s): %v", w.name, err)
	}
	if len(par) != len(seq) {
		t.Fatalf("%s: 4 workers wrote %d records, 1 worker %d", w.name, len(par), len(seq))
	}
	for i := range par {
		a, b := par[i], seq[i]
		sameValue := bytes.Equal(a.Value, b.Value)
		if !sameValue && a.Topic == b.Topic && a.Topic != "consent.audit" {
			// A treated copy is re-encoded, and goavro writes the entries
			// of an Avro map in Go's map order: compare what it says.
			// Randomised ciphertexts differ on every encryption: compare
			// what they decrypt to.
			va, erra := w.codec.Decode(ctx, a.Value)
			vb, errb := w.codec.Decode(ctx, b.Value)
			id, _ := headerOf(a, HeaderEventID)
			k := env.keys.key(subjectOf[id])
			sameValue = erra == nil && errb == nil && reflect.DeepEqual(decrypted(va.Value, k), decrypted(vb.Value, k))
		}
		if a.Topic != b.Topic || !bytes.Equal(a.Key, b.Key) || !sameValue || len(a.Headers) != len(b.Headers) {
			t.Fatalf("%s: record %d differs between 4 workers (%s, key %q, %d bytes) and 1 worker (%s, key %q, %d bytes)",
				w.name, i, a.Topic, a.Key, len(a.Value), b.Topic, b.Key, len(b.Value))
		}
		for j := range a.Headers {
			if a.Headers[j].Key != b.Headers[j].Key || !bytes.Equal(a.Headers[j].Value, b.Headers[j].Value) {
				t.Fatalf("%s: record %d header %d differs between 4 workers (%s) and 1 worker (%s)", w.name, i, j, a.Headers[j].Key, b.Headers[j].Key)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Comparison.

type refOut struct {
	outputs map[string][]kafka.Message // stream topic -> records
	audits  map[string]StreamDecision  // stream topic -> audited decision
	audit   *AuditRecord               // the event's one audit record
	auditM  kafka.Message
}

func headerOf(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func (env *refEnv) compare(w *refWorld, evs []*refEvent, out []kafka.Message) int {
	t := env.t
	t.Helper()
	byEvent := map[string]*refOut{}
	for _, ev := range evs {
		byEvent[ev.id] = &refOut{outputs: map[string][]kafka.Message{}, audits: map[string]StreamDecision{}}
	}
	for _, m := range out {
		id, _ := headerOf(m, HeaderEventID)
		o, ok := byEvent[id]
		if !ok {
			t.Errorf("record on %s for an unknown event (dead letter? reason %v)", m.Topic, m.Headers)
			continue
		}
		if m.Topic != "consent.audit" {
			o.outputs[m.Topic] = append(o.outputs[m.Topic], m)
			continue
		}
		a, err := ReadAudit(w.codec.Catalog(), m.Value)
		if err != nil {
			t.Fatalf("decode audit: %v", err)
		}
		if o.audit != nil {
			t.Errorf("%s: two audit records for one event", id)
			continue
		}
		o.audit, o.auditM = a, m
		for _, d := range a.Decisions {
			if _, dup := o.audits[d.Stream]; dup {
				t.Errorf("%s: the audit record lists %s twice", id, d.Stream)
			}
			o.audits[d.Stream] = d
		}
	}
	n := 0
	for _, ev := range evs {
		o := byEvent[ev.id]
		if a := o.audit; a == nil {
			t.Errorf("%s: no audit record", ev.id)
		} else {
			var streams []string
			for _, d := range a.Decisions {
				streams = append(streams, d.Stream)
			}
			var want []string
			for _, s := range env.streams {
				want = append(want, s.topic)
			}
			if a.Outcome != AuditDecided || a.DeadLetterReason != "" || a.EventID != ev.id || string(o.auditM.Key) != a.SubjectID ||
				a.SourceTopic != ev.msg.Topic || a.SourcePartition != int32(ev.msg.Partition) || a.SourceOffset != ev.msg.Offset {
				t.Errorf("%s: audit record %+v (key %q) does not describe the input at %s/%d/%d", ev.id, a, o.auditM.Key, ev.msg.Topic, ev.msg.Partition, ev.msg.Offset)
			}
			if !slices.Equal(streams, want) {
				t.Errorf("%s: audit record lists streams %v, want the policy's %v in order", ev.id, streams, want)
			}
		}
		var fields []fieldInfo
		carried(env.model[ev.w.wFile].root, env.model[ev.w.rFile].root, "", "", &fields)
		for _, s := range env.streams {
			n++
			d := decide(s, ev.w.schema, fields, ev.hist, ev.w.world.e.now().UnixMilli())
			kind := ""
			switch {
			case d.outcome == "DROPPED":
			case d.forward:
				kind = " forward"
			case d.redact:
				kind = " redact"
			default:
				kind = " copy"
			}
			env.seen[s.topic+" "+d.outcome+" "+d.reason+kind]++
			env.compareOne(ev, s, d, o)
		}
		for topic := range o.outputs {
			if !slices.ContainsFunc(env.streams, func(s mStream) bool { return s.topic == topic }) {
				t.Errorf("%s: a record on %s, which is no stream of the policy", ev.id, topic)
			}
		}
	}
	return n
}

// describe is the case, for failure messages: synthetic data only.
func (ev *refEvent) describe(s mStream, d mDecision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  event %s (%s), stream %s, model: %s %s (purpose %s, change %q, excluded %q, forward %v, redact %v)\n  history (valid changes, at relative to now):",
		ev.id, ev.w.name, s.topic, d.outcome, d.reason, d.purpose, d.changeID, d.excluded, d.forward, d.redact)
	if len(ev.hist) == 0 {
		b.WriteString(" none")
	}
	now := ev.w.world.e.now().UnixMilli()
	for _, c := range ev.hist {
		fmt.Fprintf(&b, "\n    %-8s %-15q id=%-6q at=%+d", c.action, c.purpose, c.id, c.at-now)
		if c.basis != "" {
			fmt.Fprintf(&b, " basis=%s", c.basis)
		}
		if c.expires != 0 {
			fmt.Fprintf(&b, " expires=%+d", c.expires-now)
		}
		if len(c.excluded) > 0 {
			fmt.Fprintf(&b, " excluded=%q", c.excluded)
		}
	}
	if strings.HasPrefix(s.topic, "compliant.encrypted_") {
		fmt.Fprintf(&b, "\n  stream: redact=%v removeUnannot=%v dropExcluded=%v schemas=%q default=%s rules=%+v",
			s.redact, s.removeUnannot, s.dropExcluded, s.schemas, s.defaultTreatment, s.rules)
	}
	return b.String()
}

func (env *refEnv) compareOne(ev *refEvent, s mStream, d mDecision, o *refOut) {
	t := env.t
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s%s", fmt.Sprintf(format, args...), ev.describe(s, d))
	}
	a, ok := o.audits[s.topic]
	if !ok {
		fail("no audit record")
		return
	}
	if got := string(a.Decision) + " " + a.Reason; got != d.outcome+" "+d.reason {
		fail("audit says %s", got)
	}
	if a.DecidingPurpose != d.purpose {
		fail("audit purpose %q, model %q", a.DecidingPurpose, d.purpose)
	}
	if !slices.Equal(a.Purposes, s.purposes) {
		fail("audit purposes %q, the stream's %q", a.Purposes, s.purposes)
	}
	var consents [][2]string
	changeID := ""
	for _, c := range a.Consents {
		consents = append(consents, [2]string{c.Purpose, c.ChangeID})
		if c.Purpose == a.DecidingPurpose {
			changeID = c.ChangeID
		}
		if c.ChangeID == "" && !c.CapturedAt.IsZero() || c.ChangeID != "" && c.CapturedAt.IsZero() {
			fail("audit consent %+v: a capture time without a change, or a change without one", c)
		}
	}
	if !slices.Equal(consents, d.consents) {
		fail("audit consents %q, model %q", consents, d.consents)
	}
	if changeID != d.changeID {
		fail("audit consent change of the deciding purpose %q, model %q", changeID, d.changeID)
	}
	if d.forward && len(a.TreatedFields) > 0 {
		fail("forwarded unchanged, yet the audit lists treated fields %v", a.TreatedFields)
	}
	// Audit records hold no field value but the event and subject ids.
	env.noValues(ev, o.auditM, "audit record", fail, func(e leafExp) bool {
		return e.wInst != "subject_id" && e.wInst != "event_id"
	}, allLeaves(env.model[ev.w.wFile].root, ev.value))

	recs := o.outputs[s.topic]
	if d.outcome == "DROPPED" {
		if len(recs) != 0 {
			fail("%d records published", len(recs))
		}
		return
	}
	if len(recs) != 1 {
		fail("%d records published, want 1", len(recs))
		return
	}
	m := recs[0]
	if h, _ := headerOf(m, HeaderDecision); h != d.outcome {
		fail("decision header %q", h)
	}
	// The copy is treated as the model says; its consent headers list
	// change ids only when it carries the subject id as it came in.
	var tr *treater
	carried := d.forward
	if !d.forward {
		tr = &treater{s: s, redact: d.redact, excluded: d.excluded, key: []byte(refKey), hasKey: mayHaveKey(ev.hist, ev.w.world.e.now().UnixMilli())}
		tr.record(env.model[ev.w.wFile].root, env.model[ev.w.rFile].root, ev.value, "", "", "", "")
		for _, e := range tr.out {
			if e.wInst == "subject_id" {
				carried = e.want == wantKeep
			}
		}
	}
	checkConsentHeaders(ev, s, d, m, o.auditM, carried, fail)
	if d.forward {
		if !bytes.Equal(m.Value, ev.msg.Value) || !bytes.Equal(m.Key, ev.msg.Key) {
			fail("not forwarded byte for byte")
		}
		for _, h := range ev.msg.Headers {
			if v, _ := headerOf(m, h.Key); v != string(h.Value) {
				fail("forwarded without input header %s", h.Key)
			}
		}
		return
	}
	// Copies keep only the trace context of the input headers.
	for _, h := range ev.msg.Headers {
		v, has := headerOf(m, h.Key)
		switch h.Key {
		case "traceparent", "tracestate":
			if v != string(h.Value) {
				fail("copy lost input header %s", h.Key)
			}
		default:
			if has {
				fail("copy kept input header %s", h.Key)
			}
		}
	}
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, "consentgate.") && h.Key != "traceparent" && h.Key != "tracestate" {
			fail("copy has header %s", h.Key)
		}
	}
	// Nothing removed or rewritten is anywhere in the record.
	env.noValues(ev, m, "published copy", fail, func(e leafExp) bool { return e.want != wantKeep }, tr.out)
	// Every value at its place: kept, treated, or not the input.
	val, layout := env.decodeOutput(ev, m, fail)
	if val == nil {
		return
	}
	for _, e := range tr.out {
		if s, ok := e.input.(string); ok && e.str && e.want == wantKeep && !bytes.Contains(m.Value, []byte(s)) {
			fail("%s (%s) should be kept, its value is not in the published bytes", e.wInst, e.action)
		}
		if s, ok := e.expect.(string); ok && e.str && e.want == wantTransform && !bytes.Contains(m.Value, []byte(s)) {
			fail("%s (%s) should be published as %q, which is not in the published bytes", e.wInst, e.action, s)
		}
		if e.want == wantEncrypt && e.noLocate && e.det {
			// A map's key or value, deterministically encrypted: its
			// ciphertext is in the bytes.
			if c := env.keys.deterministic(ev.subject, e.expect); c != "" && !bytes.Contains(m.Value, []byte(c)) {
				fail("%s (%s) should be published as its deterministic ciphertext, which is not in the published bytes", e.wInst, e.action)
			}
		}
		if e.inMap {
			// An encrypted map's value, under its encrypted key.
			mp := e.mapW
			if layout != ev.w.wFile {
				mp = e.mapR
			}
			got, found := lookupPath(env.model[layout].root, val, mp)
			mm, _ := got.(map[string]any)
			v, ok := mm[env.keys.deterministic(ev.subject, e.mapKey)]
			if u, isU := v.(map[string]any); isU && len(u) == 1 {
				for _, inner := range u {
					v = inner
				}
			}
			if !found || !ok {
				fail("%s (%s): no entry under the encrypted key in the published map", e.wInst, e.action)
			} else if problem := env.keys.checkCiphertext(ev.subject, v, e.expect, e.det); problem != "" {
				fail("%s (%s): %s", e.wInst, e.action, problem)
			}
		}
		if e.noLocate {
			continue
		}
		path := e.wInst
		if layout != ev.w.wFile {
			path = e.rInst
		}
		got, found := lookupPath(env.model[layout].root, val, path)
		switch e.want {
		case wantKeep:
			if !found || !sameValue(got, e.input) {
				fail("%s (%s) should be kept as %v, published %v (found %v)", e.wInst, e.action, e.input, got, found)
			}
		case wantTransform:
			if !found || !sameValue(got, e.expect) {
				fail("%s (%s) should be %v, published %v (found %v)", e.wInst, e.action, e.expect, got, found)
			}
		case wantGone:
			if path != "" && found && got != nil && sameValue(got, e.input) {
				fail("%s (%s) should be removed, published %v", e.wInst, e.action, got)
			}
		case wantEncrypt:
			if !found {
				fail("%s (%s) should be encrypted, not found in the copy", e.wInst, e.action)
				continue
			}
			if problem := env.keys.checkCiphertext(ev.subject, got, e.expect, e.det); problem != "" {
				fail("%s (%s): %s", e.wInst, e.action, problem)
			}
		}
	}
	// The key is the subject id as treated.
	wantKey := ""
	for _, e := range tr.out {
		if e.wInst == "subject_id" {
			switch e.want {
			case wantKeep:
				wantKey = e.input.(string)
			case wantTransform:
				wantKey = e.expect.(string)
			case wantEncrypt:
				// Keyed by the deterministic ciphertext of the subject id.
				wantKey = env.keys.deterministic(ev.subject, ev.subject)
				if wantKey == "" {
					fail("subject_id encrypted, yet the subject has no data key")
				}
			}
		}
	}
	if string(m.Key) != wantKey {
		fail("copy keyed %q, want %q", m.Key, wantKey)
	}
}

// allLeaves lists every leaf of an input value (want keep).
func allLeaves(root *mType, v map[string]any) []leafExp {
	tr := &treater{}
	tr.all(root, v, "", "", wantKeep, "")
	for i := range tr.out {
		tr.out[i].wInst = strings.TrimPrefix(tr.out[i].wInst, ".")
	}
	return tr.out
}

// noValues checks that no string value of exps that pick selects is in m's
// value, key or headers (the event id may be in its header).
func (env *refEnv) noValues(ev *refEvent, m kafka.Message, what string, fail func(string, ...any), pick func(leafExp) bool, exps []leafExp) {
	for _, e := range exps {
		s, ok := e.input.(string)
		if !ok || !e.str || !pick(e) {
			continue
		}
		if bytes.Contains(m.Value, []byte(s)) {
			fail("%s: the value of %s (%s) is in the %s's bytes", ev.id, e.wInst, e.action, what)
		}
		if bytes.Contains(m.Key, []byte(s)) {
			fail("%s: the value of %s (%s) is in the %s's key", ev.id, e.wInst, e.action, what)
		}
		for _, h := range m.Headers {
			if h.Key == HeaderEventID && e.wInst == "event_id" {
				continue
			}
			if bytes.Contains(h.Value, []byte(s)) {
				fail("%s: the value of %s (%s) is in the %s's header %s", ev.id, e.wInst, e.action, what, h.Key)
			}
		}
	}
}

// decodeOutput decodes a published copy with the schema it was written
// with and says which layout (model schema file) that is: the input's
// writer when the framing header is the input's, else the reader.
func (env *refEnv) decodeOutput(ev *refEvent, m kafka.Message, fail func(string, ...any)) (map[string]any, string) {
	rec, err := ev.w.world.codec.Decode(context.Background(), m.Value)
	if err != nil {
		fail("copy does not decode: %v", err)
		return nil, ""
	}
	hl := 10
	if rec.Framing == avrocodec.FramingConfluent {
		hl = 5
	}
	layout := ev.w.rFile
	if bytes.Equal(m.Value[:hl], ev.msg.Value[:hl]) {
		layout = ev.w.wFile
	}
	native, rest, err := rec.Writer().Codec().NativeFromBinary(m.Value[hl:])
	if err != nil || len(rest) != 0 {
		fail("copy does not decode with its writer schema: %v", err)
		return nil, ""
	}
	return native.(map[string]any), layout
}

// lookupPath finds instance path p (items[1].sku) in native value v of
// model record type root, unwrapping unions.
func lookupPath(root *mType, v map[string]any, p string) (any, bool) {
	if p == "" {
		return nil, false
	}
	var cur any = v
	ty := root
	for _, seg := range strings.Split(p, ".") {
		name, idx := seg, -1
		if i := strings.IndexByte(seg, '['); i >= 0 {
			name = seg[:i]
			idx, _ = strconv.Atoi(strings.TrimSuffix(seg[i+1:], "]"))
		}
		ty = nonNull(ty)
		m, ok := cur.(map[string]any)
		if !ok || ty.kind != "record" {
			return nil, false
		}
		var f *mField
		for _, x := range ty.fields {
			if x.name == name {
				f = x
			}
		}
		if f == nil {
			return nil, false
		}
		cur, ok = m[name]
		if !ok {
			return nil, false
		}
		ty = f.typ
		cur = unwrapUnion(ty, cur)
		if idx >= 0 {
			ty = nonNull(ty)
			arr, ok := cur.([]any)
			if !ok || ty.kind != "array" || idx >= len(arr) {
				return nil, false
			}
			cur, ty = unwrapUnion(ty.items, arr[idx]), ty.items
		}
	}
	return cur, true
}

func unwrapUnion(ty *mType, v any) any {
	if ty.kind != "union" {
		return v
	}
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, inner := range m {
			return inner
		}
	}
	return v
}

func sameValue(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.UnixMilli() == tb.UnixMilli()
	}
	return reflect.DeepEqual(a, b)
}
