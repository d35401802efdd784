package intake

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/pkg/stream"
)

// SignalsPath is the URL path of the signals intake.
//
// POST /v1/consent-signals takes the consent signals of one customer at one
// moment, as a JSON object:
//
//	{"subject_id": "c-123",                      required
//	 "captured_at": "2026-12-01T10:00:00.000Z",  required, RFC 3339
//	 "jurisdiction": "DE",                       optional: ISO 3166-1 country or 3166-2 subdivision (US-CA)
//	 "notice_version": "privacy-2026-11",        optional: the notice the customer saw
//	 "signals": [                                required, 1..16
//	   {"type": "tcf", "value": "CQSbk4AQ..."},  an IAB TCF v2.2/v2.3 TC string
//	   {"type": "gpp", "value": "DBABMA~..."},   an IAB GPP string
//	   {"type": "usp", "value": "1YYN"},         an IAB US Privacy string
//	   {"type": "gpc", "value": "1"},            the Sec-GPC header value
//	   {"type": "consent_mode", "states": {"ad_user_data": "granted", "ad_personalization": "denied"}}]}
//
// The policy's signals section maps them to consent changes (see package
// signals: one change per purpose they decide, change ids derived from the
// submission, so that sending it again is idempotent). The handler
// authenticates, reads and decodes everything before it produces anything:
// a signal that does not decode is answered 400 with the reason and nothing
// is produced. The changes pass the clock rule like those of
// [Path], are produced in one batch to the consent topic (acks=all, key =
// subject_id, the receive time as timestamp) and answered:
//
//	202  {"changes": [{"change_id", "purpose", "action", "source",
//	     "partition", "offset"}, ...], "topic", "captured_at",
//	     "captured_at_adjusted", "ignored_sections"} once the brokers
//	     acknowledged every change;
//	200  {"changes": [], "reason": ...}: the signals decide no purpose of
//	     the policy (absence of a signal is never a grant); nothing produced;
//	400  {"errors": [{"field": "signals[1]", "reason": ...}, ...]};
//	404  the policy has no signals section (POLICY_FILE without signals:,
//	     or CONSENT_PURPOSES): nothing maps signals to purposes;
//	401, 405, 413, 415, 503 as for [Path]. After a 503 some of the changes
//	     may have been written: sending the same body again is safe.
const SignalsPath = "/v1/consent-signals"

// HeaderSignalSubmission is the header of every change produced from a
// signal submission: a digest of the submission (its change ids share it),
// so that the changes one submission made can be found together. It is not
// personal data: a hash over the submission, subject included, truncated.
const HeaderSignalSubmission = "consentgate.intake.signal_submission"

// signalFields are the members of a signals body, in report order.
var signalFields = []string{"subject_id", "captured_at", "jurisdiction", "notice_version", "signals"}

// SignalChange is one change of a 202 answer.
type SignalChange struct {
	ChangeID  string `json:"change_id"`
	Purpose   string `json:"purpose"`
	Action    string `json:"action"`
	Source    string `json:"source"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// SignalsAccepted is the body of a 202 (or, with no changes, 200) answer.
type SignalsAccepted struct {
	Changes            []SignalChange `json:"changes"`
	Topic              string         `json:"topic,omitempty"`
	CapturedAt         string         `json:"captured_at,omitempty"`
	CapturedAtAdjusted bool           `json:"captured_at_adjusted,omitempty"`
	// IgnoredSections are GPP section ids that were read but that the
	// catalogue has no field of (tcfcav1, say).
	IgnoredSections []int  `json:"ignored_sections,omitempty"`
	Reason          string `json:"reason,omitempty"`
	// Refused are the grants the clock rule refused (dated too far
	// ahead): not recorded, while the submission's other changes were.
	Refused []RefusedChange `json:"refused,omitempty"`
}

// RefusedChange is a change of a submission that was not recorded.
type RefusedChange struct {
	Purpose string `json:"purpose"`
	Reason  string `json:"reason"`
}

// Signals returns the handler of [SignalsPath]. It shares the handler's
// writer, authentication, body limit and counters.
func (h *Handler) Signals() http.Handler { return http.HandlerFunc(h.serveSignals) }

// readBody runs the checks every POST of the intake shares (credentials,
// method, content type, size, credentials again) and returns the body.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !h.admit(w, r) {
		return nil, false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return nil, false
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" || (params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
		h.fail(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json (UTF-8)")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, http.StatusRequestEntityTooLarge, "body is larger than "+strconv.FormatInt(h.opts.MaxBodyBytes, 10)+" bytes")
			return nil, false
		}
		h.fail(w, http.StatusBadRequest, "body could not be read")
		return nil, false
	}
	// Checked again once the body is in (see ServeHTTP).
	if !h.admit(w, r) {
		return nil, false
	}
	return body, true
}

func (h *Handler) serveSignals(w http.ResponseWriter, r *http.Request) {
	received := h.opts.Now().Truncate(time.Millisecond)
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	pol := h.opts.Policy
	if pol == nil || len(pol.Signals.Rules) == 0 {
		h.fail(w, http.StatusNotFound, "this intake maps no signals: the policy (POLICY_FILE) has no signals section; post consent changes to "+Path)
		return
	}
	sub, problems := ParseSignals(body)
	var d *signals.Decoded
	if len(problems) == 0 {
		var err error
		if d, err = signals.Decode(sub); err != nil {
			problems = signalProblems(err)
		}
	}
	var changes []consent.Change
	var refused []signals.Refused
	var made []consent.Change
	if len(problems) == 0 {
		made = signals.ChangesFrom(pol, sub, d)
		for _, c := range made {
			if err := c.Validate(); err != nil {
				// The policy made a change the consent schema refuses: a
				// bug, never produced.
				h.opts.Log.Error("intake: a signal made an invalid change", "purpose", c.Purpose, "error", err.Error())
				writeJSON(w, http.StatusInternalServerError, map[string]any{"errors": []Problem{{Reason: "the signals made a consent change that is not valid; nothing was recorded"}}})
				return
			}
		}
		// The clock rule per change: a grant dated too far ahead is
		// refused, the objections that came with it are kept.
		changes, refused = signals.BoundChanges(made, received, h.opts.MaxClockSkew)
		if len(changes) == 0 && len(refused) > 0 {
			for _, r := range refused {
				problems = append(problems, Problem{Field: "captured_at", Reason: "the " + r.Purpose + " grant: " + r.Reason})
			}
		}
	}
	if len(problems) > 0 {
		h.Rejected.Add(1)
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": problems})
		return
	}
	// The date each change had before the clock rule, by change id.
	claimed := make(map[string]time.Time, len(made))
	for _, m := range made {
		claimed[m.ChangeID] = m.CapturedAt
	}
	adjusted := false
	for _, c := range changes {
		adjusted = adjusted || !claimed[c.ChangeID].Equal(c.CapturedAt)
	}
	if len(changes) == 0 {
		h.SignalsIgnored.Add(1)
		writeJSON(w, http.StatusOK, SignalsAccepted{Changes: []SignalChange{}, IgnoredSections: d.Ignored,
			Reason: "the signals decide no purpose of the policy's signals rules (a signal that is absent, not applicable or outside its rules' jurisdictions grants nothing and takes nothing away): nothing was recorded"})
		return
	}

	msgs := make([]kafka.Message, 0, len(changes))
	acks := make([]*ack, 0, len(changes))
	digest := hex.EncodeToString(signals.SubmissionDigest(sub)[:8])
	for _, c := range changes {
		value, err := h.enc.EncodeSingle(ChangeSchema, c.Native())
		if err != nil {
			h.opts.Log.Error("intake: encode a valid change", "error", err.Error())
			writeJSON(w, http.StatusInternalServerError, map[string]any{"errors": []Problem{{Reason: "a change could not be encoded; nothing was recorded"}}})
			return
		}
		msg := kafka.Message{Topic: h.opts.Topic, Key: []byte(c.SubjectID), Value: value, Time: received,
			Headers: []kafka.Header{{Key: HeaderSignalSubmission, Value: []byte(digest)}}}
		if at := claimed[c.ChangeID]; !at.Equal(c.CapturedAt) {
			// The clock rule moved it: the date the signals gave.
			msg.Headers = append(msg.Headers, kafka.Header{Key: HeaderClaimedCapturedAt, Value: []byte(at.UTC().Format(rfc3339Milli))})
		}
		msgs = append(msgs, msg)
		acks = append(acks, &ack{})
	}
	h.mu.Lock()
	for i, m := range msgs {
		h.pending[&m.Value[0]] = acks[i]
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		for _, m := range msgs {
			delete(h.pending, &m.Value[0])
		}
		h.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.opts.ProduceTimeout)
	defer cancel()
	if err := stream.WriteAll(ctx, h.w, msgs, nil); err != nil {
		var refused *stream.RejectedError
		if errors.As(err, &refused) {
			h.Rejected.Add(1)
			h.opts.Log.Warn("intake: the consent topic refused a signal's change for good", "topic", h.opts.Topic, "reason", refused.Rejected[0].Reason, "error", err.Error())
			writeJSON(w, http.StatusInternalServerError, map[string]any{"errors": []Problem{{
				Reason: "the consent topic refused a change made from the signals: it is not recorded, and sending it again will not help",
			}}})
			return
		}
		h.Unavailable.Add(1)
		h.opts.Log.Warn("intake: consent topic did not acknowledge a signal's changes; answered 503", "topic", h.opts.Topic, "error", err.Error())
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"errors": []Problem{{
			Reason: "the consent topic did not acknowledge the changes in time: some may not be recorded; send the same signals again (their change ids are the same, so it is safe)",
		}}})
		return
	}
	out := SignalsAccepted{Topic: h.opts.Topic, CapturedAt: sub.CapturedAt.UTC().Format(rfc3339Milli), CapturedAtAdjusted: adjusted, IgnoredSections: d.Ignored}
	for _, r := range refused {
		out.Refused = append(out.Refused, RefusedChange{Purpose: r.Purpose, Reason: r.Reason})
	}
	h.mu.Lock()
	for i, c := range changes {
		a := *acks[i]
		if !a.ok {
			a.partition, a.offset = -1, -1
		}
		out.Changes = append(out.Changes, SignalChange{ChangeID: c.ChangeID, Purpose: c.Purpose, Action: string(c.Action), Source: c.Source, Partition: a.partition, Offset: a.offset})
	}
	h.mu.Unlock()
	h.Accepted.Add(1)
	h.SignalChanges.Add(int64(len(changes)))
	if adjusted {
		h.ClockAdjusted.Add(1)
	}
	writeJSON(w, http.StatusAccepted, out)
}

// signalProblems turns a decode error into problems naming the signal.
func signalProblems(err error) []Problem {
	var se *signals.Error
	if errors.As(err, &se) {
		field := "signals"
		if se.Index >= 0 {
			field = fmt.Sprintf("signals[%d]", se.Index)
		}
		return []Problem{{Field: field, Reason: se.Err.Error()}}
	}
	return []Problem{{Field: "signals", Reason: "could not be read"}}
}

// ParseSignals reads a signals body (see [SignalsPath]) and returns every
// problem it finds; nil problems means sub is complete (its signals are
// decoded by package signals afterwards).
func ParseSignals(body []byte) (signals.Submission, []Problem) {
	var ps problems
	var sub signals.Submission
	if len(bytes.TrimSpace(body)) == 0 {
		return sub, ps.body("is empty: send a JSON object with subject_id, captured_at and signals")
	}
	if !utf8.Valid(body) {
		return sub, ps.body("is not valid UTF-8")
	}
	raw, bodyProblem := readObject(body, &ps)
	if bodyProblem != "" {
		return sub, ps.body(strings.Replace(bodyProblem, "the fields of schemas/consent_change.avsc", "subject_id, captured_at and signals", 1))
	}
	for k := range raw {
		if !slices.Contains(signalFields, k) {
			ps.add(k, "is not a field of a signals submission (subject_id, captured_at, jurisdiction, notice_version, signals)")
		}
	}
	sub.SubjectID = ps.str(raw, "subject_id", true, false)
	if _, ok := raw["subject_id"]; ok && sub.SubjectID == "" {
		ps.add("subject_id", "is empty")
	} else if len(sub.SubjectID) > consent.MaxIDBytes {
		ps.add("subject_id", fmt.Sprintf("is longer than %d bytes", consent.MaxIDBytes))
	}
	sub.CapturedAt = ps.time(raw, "captured_at", true, false)
	if _, ok := raw["captured_at"]; ok && !sub.CapturedAt.IsZero() && sub.CapturedAt.UnixMilli() <= 0 {
		ps.add("captured_at", "is not after 1970-01-01: send the time the customer gave the signals, "+timeExample)
	}
	sub.Jurisdiction = ps.str(raw, "jurisdiction", false, true)
	if sub.Jurisdiction != "" {
		if err := policy.CheckJurisdiction(sub.Jurisdiction); err != nil {
			ps.add("jurisdiction", err.Error())
		}
	}
	sub.NoticeVersion = ps.str(raw, "notice_version", false, true)
	if len(sub.NoticeVersion) > 256 {
		ps.add("notice_version", "is longer than 256 bytes")
	}
	rawSignals, ok := raw["signals"]
	if !ok {
		ps.add("signals", "is missing: a list of {\"type\": ..., \"value\": ...} objects")
	} else {
		sub.Signals = parseSignalList(rawSignals, &ps)
	}
	if len(ps.list) > 0 {
		return signals.Submission{}, ps.sortedBy(signalFields)
	}
	return sub, nil
}

// parseSignalList reads the signals array.
func parseSignalList(raw json.RawMessage, ps *problems) []signals.Signal {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		ps.add("signals", "must be a list of {\"type\": ..., \"value\": ...} objects")
		return nil
	}
	if len(items) == 0 || len(items) > signals.MaxSignals {
		ps.add("signals", fmt.Sprintf("must hold 1 to %d signals", signals.MaxSignals))
		return nil
	}
	out := make([]signals.Signal, 0, len(items))
	for i, it := range items {
		field := fmt.Sprintf("signals[%d]", i)
		m, err := strictObject(it)
		if err != nil {
			ps.add(field, err.Error())
			continue
		}
		var s signals.Signal
		for k, v := range m {
			var err error
			switch k {
			case "type":
				err = json.Unmarshal(v, &s.Type)
			case "value":
				err = json.Unmarshal(v, &s.Value)
			case "states":
				var states map[string]json.RawMessage
				if states, err = strictObject(v); err == nil {
					s.States = make(map[string]string, len(states))
					for sk, sv := range states {
						var str string
						if err = json.Unmarshal(sv, &str); err != nil {
							break
						}
						s.States[sk] = str
					}
				} else if !strings.HasPrefix(err.Error(), "must be") {
					ps.add(field, "states "+err.Error())
					err = nil
				}
			default:
				ps.add(field, "has a member other than type, value and (consent_mode only) states")
			}
			if err != nil {
				ps.add(field, "has a member of the wrong JSON type: type and value are strings, states an object of strings")
			}
		}
		if s.Type == "" {
			ps.add(field, "has no type (one of "+strings.Join(signals.Types, ", ")+")")
		}
		out = append(out, s)
	}
	return out
}

// strictObject reads one JSON object into its raw members, refusing a
// member that appears twice: last-wins would let a "denied" be overridden
// by a "granted" in the same object. Its errors repeat no value.
func strictObject(raw json.RawMessage) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, errors.New("must be a JSON object")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("must be a JSON object with type and value (or states)")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("must be a JSON object")
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("must be a JSON object")
		}
		if _, dup := out[key]; dup {
			return nil, errors.New("has a member that appears more than once")
		}
		out[key] = v
	}
	return out, nil
}
