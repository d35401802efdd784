package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/pgtest"
	"github.com/consentgate/consentgate/pkg/proctest"
	"github.com/consentgate/consentgate/pkg/seal"
)

// TestMain stops the PostgreSQL cluster the ledger tests start (pgtest).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// ctl runs consentctl with args and returns its stdout, stderr and exit
// status.
type ctl struct {
	t   *testing.T
	bin string
	env []string
}

func (c ctl) run(args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("consentctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// must runs consentctl and fails the test unless it exits with want.
func (c ctl) must(want int, args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(args...)
	if code != want {
		c.t.Fatalf("consentctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
	}
	return out
}

// until runs consentctl until it exits with 0, for up to within.
func (c ctl) until(within time.Duration, args ...string) string {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, errs, code := c.run(args...)
		if code == 0 {
			return out
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("consentctl %s still exits %d after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, within, out, errs)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestLedgerAndConsentctlOnThePipeline runs the pipeline with two ledgers,
// one on SQLite that seals the audit and one on a real PostgreSQL that
// trusts its checkpoints, and answers the compliance questions with
// consentctl from both: they must give the same answers. Then it exports
// the audit, alters, drops and reorders records in the copy, and verify
// must name each change.
func TestLedgerAndConsentctlOnThePipeline(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	dir := t.TempDir()
	skey, vkey, err := seal.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile := filepath.Join(dir, "seal.key"), filepath.Join(dir, "seal.pub")
	if err := os.WriteFile(keyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pg := pgtest.Start(t)
	t.Logf("ledgers: SQLite file, and PostgreSQL %s (local cluster from %s; no Docker engine here)", pg.Cluster.Version, pg.Cluster.BinDir)
	sqliteDSN := "sqlite:" + filepath.Join(dir, "ledger.db")
	ledgerBin := proctest.Build(t, "services/ledger")
	common := []string{"KAFKA_BROKERS=" + p.broker.Addr, "LEDGER_LINGER=20ms", "LEDGER_REFRESH=300ms", "LEDGER_SEAL_INTERVAL=300ms"}
	sealing := proctest.Start(t, "ledger-sqlite", ledgerBin, append(common, "LEDGER_DSN="+sqliteDSN, "LEDGER_SEAL_KEY_FILE="+keyFile))
	trusting := proctest.Start(t, "ledger-postgres", ledgerBin, append(common, "LEDGER_DSN="+pg.DSN, "LEDGER_VERIFIER_KEYS_FILE="+pubFile))
	for _, l := range []*proctest.Proc{sealing, trusting} {
		if err := l.WaitFor(`"msg":"consuming"`, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// Consent: alice grants marketing; bob grants, then withdraws.
	now := time.Now().UTC().Truncate(time.Millisecond)
	changes := []consent.Change{
		{ChangeID: "led-a1", SubjectID: "alice", Purpose: "marketing", Action: consent.ActionGrant, LegalBasis: consent.BasisConsent, Source: "banner", NoticeVersion: "n1", CapturedAt: now.Add(-3 * time.Minute)},
		{ChangeID: "led-b1", SubjectID: "bob", Purpose: "marketing", Action: consent.ActionGrant, LegalBasis: consent.BasisConsent, Source: "banner", NoticeVersion: "n1", CapturedAt: now.Add(-2 * time.Minute)},
		{ChangeID: "led-b2", SubjectID: "bob", Purpose: "marketing", Action: consent.ActionWithdraw, LegalBasis: consent.BasisConsent, Source: "preference-centre", NoticeVersion: "n1", CapturedAt: now.Add(-1 * time.Minute)},
	}
	var msgs []kafka.Message
	for _, c := range changes {
		msgs = append(msgs, p.change(t, c))
	}
	p.produce(t, msgs...)
	p.waitConsent(t, "alice", "marketing", consent.StatusGranted)
	p.waitConsent(t, "bob", "marketing", consent.StatusWithdrawn)
	var events []kafka.Message
	for i := range 12 {
		events = append(events, p.email(t, fmt.Sprintf("led-e%02d", i), []string{"alice", "bob", "carol"}[i%3]))
	}
	events = append(events, kafka.Message{Topic: "customer.events", Key: []byte("dave"), Value: []byte("not avro")})
	p.produce(t, events...)
	p.waitAudit(t, len(events), 60*time.Second)

	sq := ctl{t: t, bin: proctest.Build(t, "services/consentctl"), env: []string{"LEDGER_DSN=" + sqliteDSN, "KAFKA_BROKERS=" + p.broker.Addr}}
	pq := sq
	pq.env = []string{"LEDGER_DSN=" + pg.DSN, "KAFKA_BROKERS=" + p.broker.Addr}

	// Completeness over the input topic's whole range, on both ledgers.
	for _, c := range []ctl{sq, pq} {
		out := c.until(60*time.Second, "completeness", "--topic", "customer.events")
		if !strings.Contains(out, "complete") || strings.Contains(out, "NOT complete") {
			t.Fatalf("completeness:\n%s", out)
		}
	}
	// The subject history, the same from both ledgers.
	wait := func(c ctl, id string, ok func(*ledger.SubjectHistory) bool) *ledger.SubjectHistory {
		deadline := time.Now().Add(60 * time.Second)
		for {
			var h ledger.SubjectHistory
			if err := json.Unmarshal([]byte(c.must(0, "subject", id, "--json")), &h); err != nil {
				t.Fatal(err)
			}
			if ok(&h) {
				return &h
			}
			if time.Now().After(deadline) {
				t.Fatalf("subject history incomplete after 60s: %+v", h)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	complete := func(h *ledger.SubjectHistory) bool {
		return len(h.Changes) == 2 && len(h.Audits) == 4 && len(h.Notices) == 1
	}
	bobSQ, bobPQ := wait(sq, "bob", complete), wait(pq, "bob", complete)
	a, _ := json.Marshal(bobSQ.Changes)
	b, _ := json.Marshal(bobPQ.Changes)
	if !bytes.Equal(a, b) {
		t.Errorf("SQLite and PostgreSQL ledgers disagree on bob's changes:\n%s\n%s", a, b)
	}
	grant, withdraw := bobSQ.Changes[0], bobSQ.Changes[1]
	if grant.ChangeID != "led-b1" || grant.Won || grant.Lost != ledger.LostSuperseded || grant.LostTo != "led-b2" || !withdraw.Won {
		t.Errorf("bob's grant should have lost to the withdrawal: %+v / %+v", grant, withdraw)
	}
	for _, au := range bobSQ.Audits {
		if len(au.Decisions) != 1 || au.Decisions[0].Decision != "DROPPED" || au.Decisions[0].Reason != "withdrawn" {
			t.Errorf("bob's event %s: %+v, want DROPPED withdrawn", au.EventID, au.Decisions)
		}
	}
	if n := bobSQ.Notices[0]; n.ChangeID != "led-b2" || n.Action != "WITHDRAW" {
		t.Errorf("bob's notice: %+v", n)
	}
	text := sq.must(0, "subject", "bob")
	for _, want := range []string{"led-b1", "lost: ", "led-b2", "withdrawn", "WITHDRAW"} {
		if !strings.Contains(text, want) {
			t.Errorf("subject text lacks %q:\n%s", want, text)
		}
	}
	export := filepath.Join(dir, "bob.json")
	sq.must(0, "subject", "bob", "--export", export)
	if st, err := os.Stat(export); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("export file: %v, mode %v", err, st.Mode())
	}
	if _, _, code := sq.run("subject", "bob", "--export", export); code == 0 {
		t.Error("an export replaced an existing file")
	}

	// Breach: only alice's events reached compliant.marketing.
	from, to := now.Add(-time.Hour).Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []ctl{sq, pq} {
		var rep ledger.BreachReport
		if err := json.Unmarshal([]byte(c.must(0, "breach", "--stream", "compliant.marketing", "--from", from, "--to", to, "--json")), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Subjects != 1 || rep.Events != 4 || len(rep.BySubject) != 1 || rep.BySubject[0].SubjectID != "alice" {
			t.Errorf("breach: %d subjects, %d events, %+v; want alice's 4", rep.Subjects, rep.Events, rep.BySubject)
		}
	}
	if out := sq.must(0, "policies"); !strings.Contains(out, "13") {
		t.Errorf("policies:\n%s", out)
	}

	// Sealing: the sealer's checkpoints verify against the topic, and a
	// proof of an event's audit record verifies offline.
	verify := sq.until(60*time.Second, "verify", "--verifier-keys-file", pubFile, "--ledger")
	if !strings.Contains(verify, "OK consent.audit/") || strings.Contains(verify, "FAILED") {
		t.Fatalf("verify:\n%s", verify)
	}
	proof := filepath.Join(dir, "proof.json")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, code := pq.run("prove", "led-e00", "--verifier-keys-file", pubFile, "--out", proof)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(pq.must(0, "prove", "led-e00", "--verifier-keys-file", pubFile))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if out := sq.must(0, "verify-proof", proof, "--verifier-keys-file", pubFile); !strings.Contains(out, "OK consent.audit/") {
		t.Errorf("verify-proof:\n%s", out)
	}
	offline := ctl{t: t, bin: sq.bin}
	if out := offline.must(0, "verify-proof", proof, "--verifier-keys-file", pubFile); !strings.Contains(out, "a record with the proof's leaf hash") {
		t.Errorf("offline verify-proof:\n%s", out)
	}

	// A copy of the audit, tampered with three ways: verify names each.
	exp := filepath.Join(dir, "audit.jsonl")
	sq.must(0, "audit-export", "--out", exp)
	if out := offline.must(0, "verify", "--from-file", exp, "--verifier-keys-file", pubFile); strings.Contains(out, "FAILED") {
		t.Fatalf("the untouched export does not verify:\n%s", out)
	}
	lines := readLines(t, exp)
	recs := map[int32][]int{} // partition -> line indexes of its records
	for i, l := range lines {
		var x struct {
			Kind      string
			Partition int32
		}
		_ = json.Unmarshal([]byte(l), &x)
		if x.Kind == "record" {
			recs[x.Partition] = append(recs[x.Partition], i)
		}
	}
	var part int32 = -1
	for p, idx := range recs {
		if len(idx) >= 5 {
			part = p
		}
	}
	if part < 0 {
		t.Fatalf("no audit partition with 5 records: %v", recs)
	}
	idx := recs[part]
	tamper := func(name string, edit func([]string) []string, want ...string) {
		t.Helper()
		file := filepath.Join(dir, name+".jsonl")
		if err := os.WriteFile(file, []byte(strings.Join(edit(append([]string(nil), lines...)), "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out := offline.must(2, "verify", "--from-file", file, "--verifier-keys-file", pubFile, "--partition", fmt.Sprint(part))
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: verify does not say %q:\n%s", name, w, out)
			}
		}
	}
	offsetOf := func(line string) int64 {
		var x struct{ Offset int64 }
		_ = json.Unmarshal([]byte(line), &x)
		return x.Offset
	}
	o1, o2, o3 := offsetOf(lines[idx[1]]), offsetOf(lines[idx[2]]), offsetOf(lines[idx[3]])
	tamper("altered", func(l []string) []string {
		var x map[string]any
		_ = json.Unmarshal([]byte(l[idx[1]]), &x)
		v, _ := x["value"].(string) // base64 of the record
		x["value"] = v[:len(v)-4] + map[bool]string{true: "AAAA", false: "BBBB"}[!strings.HasSuffix(v, "AAAA")]
		b, _ := json.Marshal(x)
		l[idx[1]] = string(b)
		return l
	}, "altered", fmt.Sprint(o1))
	tamper("dropped", func(l []string) []string {
		return append(l[:idx[2]], l[idx[2]+1:]...)
	}, "missing", fmt.Sprint(o2))
	tamper("reordered", func(l []string) []string {
		l[idx[2]], l[idx[3]] = l[idx[3]], l[idx[2]]
		return l
	}, "reordered", fmt.Sprint(o2), fmt.Sprint(o3))
	for _, l := range []*proctest.Proc{sealing, trusting} {
		if l.Exited() {
			t.Errorf("%s exited: %s", l.Name, l.Output())
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 16<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
