package explain

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/redact"
	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/schemas"
)

// Exit codes of RunCheck and RunExplain.
const (
	ExitOK    = 0 // valid policy; explanation printed
	ExitFail  = 1 // invalid policy, or input explain cannot use
	ExitUsage = 2 // bad command line
)

// Env gives the environment variables the commands read (os.Getenv).
type Env func(string) string

// IO is where a command reads "-" from and writes to.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

const checkUsage = `usage: enforcer check [flags] [POLICY_FILE]

Validates a policy file as the enforcer would load it, plus what only the
enforcer knows: every schemas: name of a stream is in the schema catalog, and
every field: path of a treatment exists in a schema the stream accepts.

Prints a summary and exits 0 when the policy is valid; prints every problem
as file:line:col: problem and exits 1 otherwise. A stream that pseudonymises
without a key configured is a warning (the enforcer will not start without
PSEUDONYMISATION_KEY_FILE or PSEUDONYMISATION_KEY). For a policy with a
signals section, the summary lists the signal sources no rule maps, the
rules that only take consent away (on opt-out fields: not objecting grants
nothing) and the unmapped fields of the sources it maps; a category rule
that never applies (no rule that can grant maps its purposes), one on an
opt-out field (it always excludes its categories) and a category no
catalog schema carries are warnings.

The policy is the argument, --policy, or POLICY_FILE; "-" reads standard input.

flags:
`

// RunCheck runs "enforcer check" with args (after the word "check") and
// returns the exit code.
func RunCheck(args []string, env Env, stdio IO) int {
	fs := flag.NewFlagSet("enforcer check", flag.ContinueOnError)
	fs.SetOutput(stdio.Stderr)
	var policyFile, schemasDir, keyFile string
	fs.StringVar(&policyFile, "policy", env("POLICY_FILE"), "policy file (`FILE`, or - for standard input); default POLICY_FILE")
	fs.StringVar(&schemasDir, "schemas-dir", env("SCHEMAS_DIR"), "folder of .avsc schemas instead of the built-in ones; default SCHEMAS_DIR")
	fs.StringVar(&keyFile, "pseudonymisation-key-file", env("PSEUDONYMISATION_KEY_FILE"), "the key file the enforcer will use; default PSEUDONYMISATION_KEY_FILE")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), checkUsage)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stdio); done {
		return code
	}
	switch fs.NArg() {
	case 0:
	case 1:
		policyFile = fs.Arg(0)
	default:
		fmt.Fprintln(stdio.Stderr, "enforcer check: one policy file at a time (see --help)")
		return ExitUsage
	}
	if policyFile == "" {
		fmt.Fprintln(stdio.Stderr, "enforcer check: no policy: give the file as argument, --policy or POLICY_FILE (see --help)")
		return ExitUsage
	}
	data, source, err := readInput(policyFile, stdio.Stdin)
	if err != nil {
		fmt.Fprintf(stdio.Stderr, "enforcer check: read policy: %v\n", err)
		return ExitFail
	}
	cat, err := LoadCatalog(schemasDir)
	if err != nil {
		fmt.Fprintf(stdio.Stderr, "enforcer check: %v\n", err)
		return ExitFail
	}
	haveKey := env("PSEUDONYMISATION_KEY") != ""
	if keyFile != "" {
		if _, err := readKey(keyFile); err != nil {
			fmt.Fprintf(stdio.Stderr, "enforcer check: %v\n", err)
			return ExitFail
		}
		haveKey = true
	}
	res := Check(data, source, cat, haveKey)
	for _, e := range res.Errors {
		fmt.Fprintln(stdio.Stderr, e.Error())
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stdio.Stderr, w.Error())
	}
	if !res.OK() {
		fmt.Fprintf(stdio.Stderr, "%s: %d problem(s)\n", source, len(res.Errors))
		return ExitFail
	}
	if err := res.WriteSummary(stdio.Stdout); err != nil {
		return ExitFail
	}
	return ExitOK
}

const explainUsage = `usage: enforcer explain --policy FILE --event EVENT.json [--consent CONSENT.json]
                        [--tcf TC] [--gpp GPP] [--usp USP] [--gpc] [--consent-mode STATES]
                        [--jurisdiction CODE] [--captured-at TIME] [flags]

Says what the enforcer does with one event for one customer's consent, stream
by stream: PASSED, REDACTED or DROPPED, the reason code and what it means, the
consent change that decided, and for REDACTED the treated fields with the
action applied to each (values only with --show-values). It runs the
enforcer's own decision and redaction code, so the explanation cannot drift
from what the enforcer does. Nothing is read from Redis or Kafka.

One of --policy, --event and --consent may be "-" (standard input).

The event is a plain JSON object with the field names of its schema:
unions are not wrapped (null, or the value itself), nested records are
objects, enums are their symbol, timestamps are RFC 3339 strings or epoch
milliseconds, missing fields take their schema default. The schema is
--schema, or the one catalog schema that accepts the object. Example:

  {"event_id": "e-1", "subject_id": "c-1001", "occurred_at": "2026-05-01T10:00:00Z",
   "email": "jane@example.com", "campaign_id": "spring", "message_id": "m-1",
   "action": "CLICK", "link_url": "https://shop.example/sale", "ip_address": "203.0.113.77"}

The consent is the subject's state as the enforcer reads it from Redis;
omitted, {} or null means nothing is stored (unknown subject). A purpose
that is absent was never asked. status is granted, denied or withdrawn;
legal_basis defaults to CONSENT; expires_at, excluded_categories, erased_at
and erased_by are optional. Example:

  {"subject_id": "c-1001",
   "purposes": {"marketing": {"status": "granted", "change_id": "c1",
                              "captured_at": "2026-01-10T09:00:00Z", "expires_at": "2027-01-10T09:00:00Z",
                              "legal_basis": "CONSENT", "excluded_categories": ["user.health"]}},
   "erased_at": null}

Instead of (or on top of) a consent file, the consent can come from consent
signals, as consent-sync's POST /v1/consent-signals receives them: --tcf,
--gpp, --usp, --gpc (the header Sec-GPC: 1) and --consent-mode, in any
combination, make one submission. --tcf, --gpp, --usp and --consent-mode
may be repeated: several signals of one type are read together, as
consent-sync reads them (a refusal in any of them wins); an empty value is
refused. The submission is decoded (a malformed signal fails with the
reason) and evaluated by the policy's signals section; explain prints, per
purpose, the change the signals make (GRANT, DENY or WITHDRAW, legal basis,
excluded categories, the deciding sources and fields, the change id) or
that no signal decides it, and then decides the event on the consent state
those changes leave. consent-sync's clock rule applies per change, with the
decision time as the time they arrive: a GRANT dated too far ahead is shown
refused and the other changes apply (all of them refused: exit 1, as
consent-sync answers 400). With --consent too, the changes apply on
top of the file's state: the newest captured_at wins, as in the store.
--jurisdiction is where the customer is (DE, US-CA; omitted: not known, so
rules limited to jurisdictions only take consent away), --captured-at when
the signals were given (default: the decision time). Example:

  enforcer explain --policy policy.yaml --event purchase.json --jurisdiction DE \
    --tcf CPTtLAAPTtLAAAKAAAENAAFgALwAAEAAAAAAAOgAgABgAAAA.IAoAAgABgAAEAQAAEAAA.d4AACEAAAAAA \
    --consent-mode ad_user_data=granted,ad_personalization=denied

Pseudonyms are computed with a fixed demo key unless
--pseudonymisation-key-file is given.

flags:
`

// RunExplain runs "enforcer explain" with args (after the word "explain")
// and returns the exit code.
func RunExplain(args []string, env Env, stdio IO) int {
	fs := flag.NewFlagSet("enforcer explain", flag.ContinueOnError)
	fs.SetOutput(stdio.Stderr)
	var (
		policyFile, eventFile, consentFile, schemaName, now, schemasDir, keyFile string
		asJSON, showValues                                                       bool
		sig                                                                      SignalFlags
		capturedAt                                                               string
	)
	fs.StringVar(&policyFile, "policy", env("POLICY_FILE"), "policy `FILE` (- for standard input); default POLICY_FILE")
	fs.StringVar(&eventFile, "event", "", "the event as a plain JSON object (`FILE`, or -)")
	fs.StringVar(&consentFile, "consent", "", "the subject's consent state as JSON (`FILE`, or -); omitted: unknown subject")
	sig.Repeated = map[string][]string{}
	fs.Var(&signalFlag{first: &sig.TCF, more: sig.Repeated, typ: signals.TypeTCF, what: "a TC string"}, "tcf",
		"a consent signal: an IAB TCF v2.2/v2.3 TC `STRING`; repeat for several")
	fs.Var(&signalFlag{first: &sig.GPP, more: sig.Repeated, typ: signals.TypeGPP, what: "a GPP string"}, "gpp",
		"a consent signal: an IAB GPP `STRING`; repeat for several")
	fs.Var(&signalFlag{first: &sig.USP, more: sig.Repeated, typ: signals.TypeUSP, what: "a US Privacy string"}, "usp",
		"a consent signal: an IAB US Privacy `STRING`, such as 1YNN; repeat for several")
	fs.BoolVar(&sig.GPC, "gpc", false, "a consent signal: the header Sec-GPC: 1")
	fs.Var(&signalFlag{first: &sig.ConsentMode, more: sig.Repeated, typ: signals.TypeConsentMode, what: "Consent Mode states"}, "consent-mode",
		"a consent signal: Google Consent Mode v2 `STATES`, such as ad_user_data=granted,ad_personalization=denied; repeat for several")
	fs.StringVar(&sig.Jurisdiction, "jurisdiction", "", "where the customer giving the signals is: a country or subdivision `CODE` such as DE or US-CA; default: not known")
	fs.StringVar(&capturedAt, "captured-at", "", "when the signals were given, an RFC 3339 `TIME` (default: the decision time)")
	fs.StringVar(&schemaName, "schema", "", "full name of the event's schema, e.g. consentgate.events.Purchase; default: guessed")
	fs.StringVar(&now, "now", "", "time of the decision, RFC 3339 (default: now)")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of text")
	fs.BoolVar(&showValues, "show-values", false, "also print each redacted event as published (field values!)")
	fs.StringVar(&schemasDir, "schemas-dir", env("SCHEMAS_DIR"), "folder of .avsc schemas instead of the built-in ones; default SCHEMAS_DIR")
	fs.StringVar(&keyFile, "pseudonymisation-key-file", "", "pseudonymise with the key in this file instead of the demo key")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), explainUsage)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stdio); done {
		return code
	}
	usage := func(msg string) int {
		fmt.Fprintf(stdio.Stderr, "enforcer explain: %s (see --help)\n", msg)
		return ExitUsage
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected arguments")
	case policyFile == "":
		return usage("no policy: set --policy or POLICY_FILE")
	case eventFile == "":
		return usage("no event: set --event")
	}
	stdins := 0
	for _, f := range []string{policyFile, eventFile, consentFile} {
		if f == "-" {
			stdins++
		}
	}
	if stdins > 1 {
		return usage("only one of --policy, --event and --consent may be - (standard input)")
	}
	at := time.Now()
	if now != "" {
		t, err := time.Parse(time.RFC3339Nano, now)
		if err != nil {
			return usage("bad --now: want an RFC 3339 time such as 2026-11-22T08:00:00Z")
		}
		at = t
	}
	if !sig.Any() && (sig.Jurisdiction != "" || capturedAt != "") {
		return usage("--jurisdiction and --captured-at describe signals: give at least one of --tcf, --gpp, --usp, --gpc, --consent-mode")
	}
	if capturedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, capturedAt)
		if err != nil {
			return usage("bad --captured-at: want an RFC 3339 time such as 2026-11-22T08:00:00Z")
		}
		sig.CapturedAt = t
	}
	fail := func(err error) int {
		fmt.Fprintf(stdio.Stderr, "enforcer explain: %v\n", err)
		return ExitFail
	}
	in := Input{Now: at, SchemaName: schemaName, ShowValues: showValues}
	var err error
	if sig.Any() {
		// The subject is the event's: Explain sets it.
		sub, err := sig.Submission("", at)
		if err != nil {
			return usage("bad signal: " + err.Error())
		}
		in.Signals = &sub
	}
	if keyFile != "" {
		if in.Key, err = readKey(keyFile); err != nil {
			return fail(err)
		}
	}
	data, source, err := readInput(policyFile, stdio.Stdin)
	if err != nil {
		return fail(fmt.Errorf("read policy: %w", err))
	}
	if in.Policy, err = policy.Parse(data, source); err != nil {
		return fail(fmt.Errorf("policy is not valid (run enforcer check):\n%w", err))
	}
	in.Source = source
	if in.Catalog, err = LoadCatalog(schemasDir); err != nil {
		return fail(err)
	}
	data, _, err = readInput(eventFile, stdio.Stdin)
	if err != nil {
		return fail(fmt.Errorf("read event: %w", err))
	}
	if in.Event, err = DecodeObject(data); err != nil {
		return fail(fmt.Errorf("event: %w", err))
	}
	if consentFile != "" {
		data, _, err = readInput(consentFile, stdio.Stdin)
		if err != nil {
			return fail(fmt.Errorf("read consent: %w", err))
		}
		if in.State, err = ParseConsent(data); err != nil {
			return fail(err)
		}
	}
	ex, err := Explain(context.Background(), in)
	if err != nil {
		return fail(err)
	}
	if asJSON {
		err = ex.WriteJSON(stdio.Stdout)
	} else {
		err = ex.WriteText(stdio.Stdout)
	}
	if err != nil {
		return fail(err)
	}
	return ExitOK
}

// signalFlag is a signal flag (--tcf, --gpp, --usp, --consent-mode): the
// first value goes to *first, the next ones to more[typ], so that a flag
// given twice makes two signals of the submission, as consent-sync reads
// them, instead of the last one alone. An empty value (an unset shell
// variable, say) is refused: consent-sync refuses an empty signal, and
// explain must not explain the submission without it.
type signalFlag struct {
	first *string
	more  map[string][]string
	typ   string
	what  string
	set   bool
}

func (f *signalFlag) String() string {
	if f == nil || f.first == nil {
		return ""
	}
	return *f.first
}

func (f *signalFlag) Set(v string) error {
	if v == "" {
		return fmt.Errorf("empty: give %s, or leave the flag out", f.what)
	}
	if !f.set {
		*f.first, f.set = v, true
		return nil
	}
	f.more[f.typ] = append(f.more[f.typ], v)
	return nil
}

// parseFlags parses args; done is true when the command should stop with
// code (after --help, or on a bad flag).
func parseFlags(fs *flag.FlagSet, args []string, stdio IO) (code int, done bool) {
	usage := fs.Usage
	fs.Usage = func() {} // the flag package prints its own error; usage only on --help
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdio.Stdout)
		fs.Usage()
		return ExitOK, true
	case err != nil:
		fmt.Fprintf(stdio.Stderr, "%s: see --help\n", fs.Name())
		return ExitUsage, true
	}
	return 0, false
}

// LoadCatalog loads the schema catalog as the enforcer does: the schemas
// built in, or the .avsc files of dir when it is set (SCHEMAS_DIR).
func LoadCatalog(dir string) (*avrocodec.Catalog, error) {
	var fsys fs.FS = schemas.FS
	if dir != "" {
		fsys = os.DirFS(dir)
	}
	cat, err := avrocodec.LoadCatalog(fsys)
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	return cat, nil
}

// readInput reads the file name, or stdin for "-"; source names it in
// messages.
func readInput(name string, stdin io.Reader) (data []byte, source string, err error) {
	if name == "-" {
		data, err = io.ReadAll(stdin)
		return data, "<stdin>", err
	}
	data, err = os.ReadFile(name)
	return data, name, err
}

// readKey reads a pseudonymisation key file as the enforcer does (surrounding
// whitespace ignored) and checks its length.
func readKey(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read pseudonymisation key file: %w", err)
	}
	key := bytes.TrimSpace(b)
	if len(key) < redact.MinKeyLen {
		return nil, fmt.Errorf("pseudonymisation key file: %w", redact.ErrShortKey)
	}
	return key, nil
}
