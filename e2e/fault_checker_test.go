package e2e

// The checker of the fault suite: after a scenario it reads the input topic,
// every output topic, consent.audit, consent.revocations and both dead-letter
// topics, and accounts for every record (Jepsen style): every input offset
// has its audit record (dead-lettered inputs included), nothing lost, nothing
// leaked, duplicates only as re-deliveries that agree with the first, order
// kept per subject, dead letters byte for byte.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/stream"
)

// Decisions as written in audit records and the consentgate.decision header.
const (
	fsPassed   = "PASSED"
	fsRedacted = "REDACTED"
	fsDropped  = "DROPPED"
)

// Audit outcomes (consentgate.audit.AuditOutcome).
const (
	fsDecided      = "DECIDED"
	fsDeadLettered = "DEAD_LETTERED"
)

// fsAudit is one stream's decision of an audit record, with the record's
// event, subject, source and time.
type fsAudit struct {
	EventID, Subject, Stream, Decision, Reason string
	SrcPart                                    int
	SrcOffset                                  int64
	ProcessedAt                                time.Time
	Treated                                    []string
	// DecidingPurpose, and Consents: the purposes whose consent the
	// decision lists, in its order, with the change id of each ("" for
	// none).
	DecidingPurpose  string
	ConsentPurposes  []string
	ConsentChangeIDs []string
}

// fsAuditRec is one decoded audit record (version 2): one input event.
type fsAuditRec struct {
	EventID, Subject, Outcome, DLQReason, Schema string
	SrcTopic                                     string
	SrcPart                                      int
	SrcOffset                                    int64
	ProcessedAt                                  time.Time
	// Decisions, in the record's order (the policy's stream order); a
	// DEAD_LETTERED record has none.
	Decisions []fsAudit
	// ChangeIDs and Purposes: per stream, the consent change id of the
	// deciding purpose ("" when none), and the deciding purpose.
	ChangeIDs, Purposes map[string]string
}

// fsDecodeAudit decodes an audit record with the catalog's latest
// AuditRecord (version 2, the one the enforcer writes).
func fsDecodeAudit(codec *avrocodec.Codec, m kafka.Message) (fsAuditRec, error) {
	rec, err := codec.Decode(context.Background(), m.Value)
	if err != nil {
		return fsAuditRec{}, err
	}
	if rec.Schema.FullName != "consentgate.audit.AuditRecord" {
		return fsAuditRec{}, fmt.Errorf("the audit topic holds a %s", rec.Schema.FullName)
	}
	str := func(v map[string]any, f string) string { x, _ := avrocodec.StringField(v, f); return x }
	v := rec.Value
	a := fsAuditRec{EventID: str(v, "event_id"), Subject: str(v, "subject_id"), Outcome: str(v, "outcome"), DLQReason: str(v, "dead_letter_reason"),
		Schema: str(v, "event_schema"), SrcTopic: str(v, "source_topic"), ChangeIDs: map[string]string{}, Purposes: map[string]string{}}
	if x, ok := v["source_partition"].(int32); ok {
		a.SrcPart = int(x)
	}
	a.SrcOffset, _ = v["source_offset"].(int64)
	a.ProcessedAt, _ = v["processed_at"].(time.Time)
	list, _ := v["decisions"].([]any)
	for _, item := range list {
		d, _ := item.(map[string]any)
		fa := fsAudit{EventID: a.EventID, Subject: a.Subject, Stream: str(d, "stream"), Decision: str(d, "decision"), Reason: str(d, "reason"),
			SrcPart: a.SrcPart, SrcOffset: a.SrcOffset, ProcessedAt: a.ProcessedAt}
		tf, _ := d["treated_fields"].([]any)
		for _, x := range tf {
			s, _ := x.(string)
			fa.Treated = append(fa.Treated, s)
		}
		fa.DecidingPurpose = str(d, "deciding_purpose")
		a.Purposes[fa.Stream] = fa.DecidingPurpose
		consents, _ := d["consents"].([]any)
		for _, c := range consents {
			cm, _ := c.(map[string]any)
			if str(cm, "purpose") == fa.DecidingPurpose {
				a.ChangeIDs[fa.Stream] = str(cm, "consent_change_id")
			}
			fa.ConsentPurposes = append(fa.ConsentPurposes, str(cm, "purpose"))
			fa.ConsentChangeIDs = append(fa.ConsentChangeIDs, str(cm, "consent_change_id"))
		}
		a.Decisions = append(a.Decisions, fa)
	}
	return a, nil
}

// sameDecisions reports whether two audit records of one input say the
// same: outcome, dead-letter reason and every stream's decision and
// reason.
func (a fsAuditRec) sameDecisions(b fsAuditRec) bool {
	if a.Outcome != b.Outcome || a.DLQReason != b.DLQReason || len(a.Decisions) != len(b.Decisions) {
		return false
	}
	for i := range a.Decisions {
		x, y := a.Decisions[i], b.Decisions[i]
		if x.Stream != y.Stream || x.Decision != y.Decision || x.Reason != y.Reason || !slices.Equal(x.Treated, y.Treated) {
			return false
		}
	}
	return true
}

// fsChecker accounts for a run. Broker, Codec, Policy and Produced are
// required; the rest is optional.
type fsChecker struct {
	Broker *brokertest.Broker
	Codec  *avrocodec.Codec
	Policy *policy.Policy
	// Produced holds every record the test produced to the events topic and
	// saw acknowledged (events and hostile input alike).
	Produced []kafka.Message
	// Changes are the valid consent changes produced, in any order; folding
	// them gives each subject's consent (the system of record).
	Changes []consent.Change
	// ChangeMsgs are the records produced to the consent topic, to check the
	// consent dead letters against.
	ChangeMsgs []kafka.Message
	// Expect, when set, returns the decisions allowed for an audit record
	// (overriding the ones the folded Changes give), e.g. to express what
	// an empty Redis decides. It must never allow more than Changes do:
	// leaks are always judged against Changes.
	Expect func(a fsAudit) []string
	// DLQReasons maps the fs-poison header of hostile inputs to the reason
	// their dead letter must carry.
	DLQReasons map[string]string
}

// fsCounts is what a run comes to.
type fsCounts struct {
	// Decodable and Decided count input records (a producer's retry of an
	// event is a record of its own); Duplicated counts the audit records
	// written again for an input already audited.
	Sent, Decodable, Decided, Lost, Leaked, Wrong, Duplicated, OutputDuplicates, Reordered, DeadLettered, Notices int
}

func (c fsCounts) String() string {
	return fmt.Sprintf("sent %d (decodable %d), decided %d, lost %d, leaked %d, wrong decisions %d, duplicated %d (audit) / %d (outputs), reordered %d, dead-lettered %d, revocation notices %d",
		c.Sent, c.Decodable, c.Decided, c.Lost, c.Leaked, c.Wrong, c.Duplicated, c.OutputDuplicates, c.Reordered, c.DeadLettered, c.Notices)
}

// fsCoord is a record's place in the input topic.
type fsCoord struct {
	Part int
	Off  int64
}

// fsInput is one record of the input topic, classified the way the
// enforcer must classify it.
type fsInput struct {
	Msg         kafka.Message
	ID, Subject string
	Value       map[string]any
	DLQReason   string // "" for a decodable event with subject and id
	dead        bool   // a dead letter of it was found
}

type fsReport struct {
	t        *testing.T
	problems map[string][]string
}

func (r *fsReport) add(kind, format string, args ...any) {
	if len(r.problems[kind]) < 8 {
		r.problems[kind] = append(r.problems[kind], fmt.Sprintf(format, args...))
	} else if len(r.problems[kind]) == 8 {
		r.problems[kind] = append(r.problems[kind], "…")
	}
}

// Check reads every topic and returns the counts; every problem found is
// reported with t.Errorf (lost, leaked, wrong, reordered, bad dead letters).
// fsRecorded is id as an audit record carries it: an id longer than
// consent.MaxIDBytes is left out (dead letter reason id_too_long).
func fsRecorded(id string) string {
	if len(id) > consent.MaxIDBytes {
		return ""
	}
	return id
}

func (c *fsChecker) Check(t *testing.T) fsCounts {
	t.Helper()
	n, problems := c.run(t)
	for _, kind := range []string{"lost", "leaked", "wrong", "order", "output", "audit", "dlq", "notice"} {
		for _, p := range problems[kind] {
			t.Errorf("%s: %s", kind, p)
		}
	}
	return n
}

// run reads every topic and returns the counts and the problems found, by
// kind (at most 8 of each, then "…").
func (c *fsChecker) run(t *testing.T) (fsCounts, map[string][]string) {
	t.Helper()
	rep := &fsReport{t: t, problems: map[string][]string{}}
	var n fsCounts
	ctx := context.Background()
	read := func(topic string) []kafka.Message {
		return fsRead(t, c.Broker.Addr, topic)
	}

	// The input topic, as the ground truth of what the enforcer had to decide.
	in := map[fsCoord]*fsInput{}
	inputHashes := map[[32]byte]int{}
	var ordered []*fsInput
	for _, m := range read(fsEventsTopic) {
		x := &fsInput{Msg: m}
		rec, err := c.Codec.Decode(ctx, m.Value)
		switch {
		case err != nil:
			x.DLQReason = "undecodable"
		default:
			x.Value = rec.Value
			x.Subject, _ = avrocodec.StringField(rec.Value, "subject_id")
			x.ID, _ = avrocodec.StringField(rec.Value, "event_id")
			switch {
			case x.Subject == "":
				x.DLQReason = "missing_subject_id"
			case x.ID == "":
				x.DLQReason = "missing_event_id"
			case len(x.Subject) > consent.MaxIDBytes || len(x.ID) > consent.MaxIDBytes:
				x.DLQReason = "id_too_long"
			}
		}
		in[fsCoord{m.Partition, m.Offset}] = x
		ordered = append(ordered, x)
		inputHashes[fsHash(m.Key, m.Value)]++
	}
	n.Sent = len(c.Produced)
	for _, m := range c.Produced {
		h := fsHash(m.Key, m.Value)
		if inputHashes[h] == 0 {
			n.Lost++
			rep.add("lost", "an acknowledged input record (key %q, %d bytes) is not in %s", m.Key, len(m.Value), fsEventsTopic)
			continue
		}
		inputHashes[h]--
	}

	// The audit: one record per input offset (dead-lettered inputs
	// included), listing one decision per stream of the policy, in its
	// order, for a decided event. A restart may write an input's record
	// again: the copies must agree, unless consent changed between them.
	granted := fsFold(c.Changes)
	streams := map[string]policy.Stream{}
	var streamOrder []string
	for _, s := range c.Policy.Streams {
		streams[s.Topic] = s
		streamOrder = append(streamOrder, s.Topic)
	}
	byInput := map[fsCoord][]fsAuditRec{}
	auditMsgs := read(fsAuditTopic)
	auditAt := make([]*fsAuditRec, len(auditMsgs)) // parallel to auditMsgs
	for i, m := range auditMsgs {
		ar, err := fsDecodeAudit(c.Codec, m)
		if err != nil {
			rep.add("audit", "undecodable audit record at %d/%d: %v", m.Partition, m.Offset, err)
			continue
		}
		auditAt[i] = &ar
		if string(m.Key) != ar.Subject {
			rep.add("audit", "audit record of %s/%d keyed %q, not by its subject", ar.EventID, ar.SrcOffset, m.Key)
		}
		if id, _ := stream.Header(m, "consentgate.event_id"); id != ar.EventID {
			rep.add("audit", "audit record of %s/%d has the event id header %q", ar.EventID, ar.SrcOffset, id)
		}
		coord := fsCoord{ar.SrcPart, ar.SrcOffset}
		src := in[coord]
		if src == nil || ar.SrcTopic != fsEventsTopic || fsRecorded(src.ID) != ar.EventID || fsRecorded(src.Subject) != ar.Subject {
			rep.add("audit", "audit record of %s names source %s %d/%d, which holds another record", ar.EventID, ar.SrcTopic, ar.SrcPart, ar.SrcOffset)
			continue
		}
		switch {
		case src.DLQReason != "":
			if ar.Outcome != fsDeadLettered || ar.DLQReason != src.DLQReason || len(ar.Decisions) != 0 {
				rep.add("audit", "audit record of dead-lettered input %d/%d (%s): outcome %s, reason %q, %d decisions; want DEAD_LETTERED, %s, none",
					ar.SrcPart, ar.SrcOffset, src.DLQReason, ar.Outcome, ar.DLQReason, len(ar.Decisions), src.DLQReason)
			}
		case ar.Outcome != fsDecided || ar.DLQReason != "":
			rep.add("audit", "audit record of decodable event %s: outcome %s (%q), want DECIDED", ar.EventID, ar.Outcome, ar.DLQReason)
		default:
			var got []string
			for _, d := range ar.Decisions {
				got = append(got, d.Stream)
			}
			if !slices.Equal(got, streamOrder) {
				rep.add("audit", "audit record of %s lists streams %v, want the policy's %v", ar.EventID, got, streamOrder)
			}
		}
		if prev := byInput[coord]; len(prev) > 0 {
			n.Duplicated++
			if p := prev[0]; !p.sameDecisions(ar) && !c.mayDiffer(granted, streams, p, ar) {
				n.Wrong++
				rep.add("wrong", "the audit records of input %d/%d (%s) disagree (at %s and %s) although its consent did not change: %v then %v",
					coord.Part, coord.Off, ar.EventID, p.ProcessedAt.Format(time.RFC3339Nano), ar.ProcessedAt.Format(time.RFC3339Nano), p.Decisions, ar.Decisions)
			}
		}
		byInput[coord] = append(byInput[coord], ar)
		for _, a := range ar.Decisions {
			if _, ok := streams[a.Stream]; !ok {
				rep.add("audit", "audit record for an unknown stream %q", a.Stream)
				continue
			}
			n.Wrong += c.checkConsents(rep, granted, coord, a, streams[a.Stream])
			allowed := c.allowed(granted, a, streams[a.Stream])
			if a.Decision == fsPassed && !granted.all(a.Subject, streams[a.Stream].Purposes, a.ProcessedAt) {
				n.Leaked++
				rep.add("leaked", "event %s was PASSED on %s but its subject had no valid grant for %v at %s (reason %s)",
					a.EventID, a.Stream, streams[a.Stream].Purposes, a.ProcessedAt.Format(time.RFC3339Nano), a.Reason)
			} else if !slices.Contains(allowed, a.Decision) {
				n.Wrong++
				rep.add("wrong", "event %s on %s decided %s (%s) at %s, want one of %v", a.EventID, a.Stream, a.Decision, a.Reason,
					a.ProcessedAt.Format(time.RFC3339Nano), allowed)
			}
		}
	}
	// Completeness by offset: every input record has its audit record
	// (decided, or dead-lettered), so nothing was skipped unaccounted.
	for _, x := range ordered {
		coord := fsCoord{x.Msg.Partition, x.Msg.Offset}
		if x.DLQReason == "" {
			n.Decodable++
		}
		if len(byInput[coord]) == 0 {
			n.Lost++
			what := "event " + x.ID
			if x.DLQReason != "" {
				what = "dead-lettered as " + x.DLQReason
			}
			rep.add("lost", "input %d/%d (%s) has no audit record", coord.Part, coord.Off, what)
			continue
		}
		if x.DLQReason == "" {
			n.Decided++
		}
	}

	// Outputs: what the audit says was published is there, nothing else is,
	// passed copies are the input bytes, redacted copies lost their fields,
	// and per subject the order of the input is kept.
	for _, s := range c.Policy.Streams {
		kept := fsKeptFields(s)
		outs := read(s.Topic)
		published := map[fsCoord]int{}
		for _, m := range outs {
			id, _ := stream.Header(m, "consentgate.event_id")
			dec, _ := stream.Header(m, "consentgate.decision")
			sp, _ := stream.Header(m, "consentgate.source.partition")
			so, _ := stream.Header(m, "consentgate.source.offset")
			part, _ := strconv.Atoi(sp)
			off, _ := strconv.ParseInt(so, 10, 64)
			coord := fsCoord{part, off}
			src := in[coord]
			if published[coord] > 0 {
				n.OutputDuplicates++
			}
			published[coord]++
			if src == nil || src.ID != id {
				n.Leaked++
				rep.add("leaked", "%s holds event %q whose source %s/%s is not that event", s.Topic, id, sp, so)
				continue
			}
			// Justified by an audit record of that very input offset (two
			// inputs may carry one event id), whose treated fields are
			// then those the copy must account for.
			justified := false
			var treated [][]string
			for _, ar := range byInput[coord] {
				for _, a := range ar.Decisions {
					if a.Stream == s.Topic && a.Decision == dec {
						justified = true
						treated = append(treated, a.Treated)
					}
				}
			}
			if !justified {
				n.Leaked++
				rep.add("leaked", "%s holds event %s as %s without an audit record deciding so", s.Topic, id, dec)
				continue
			}
			switch dec {
			case fsPassed:
				if s.Unannotated != policy.UnannotatedRemove {
					if !bytes.Equal(m.Value, src.Msg.Value) || !bytes.Equal(m.Key, src.Msg.Key) {
						rep.add("output", "passed copy of %s on %s differs from the input", id, s.Topic)
					}
					continue
				}
				// unannotated_fields: remove applies to passed events too:
				// a re-encoded copy whose annotated (and kept) fields are
				// the input's and whose other fields carry nothing of it.
				rec, err := c.Codec.Decode(ctx, m.Value)
				if err != nil {
					rep.add("output", "passed copy of %s on %s does not decode: %v", id, s.Topic, err)
					continue
				}
				n.Wrong += c.checkTreated(rep, s.Topic, dec, coord, src, rec.Value, treated)
				annotated := map[string]bool{}
				for _, f := range rec.Schema.Root().Fields {
					annotated[f.Name] = f.Category != ""
				}
				for f, v := range rec.Value {
					switch {
					case annotated[f] || kept[f]:
						if !reflect.DeepEqual(v, src.Value[f]) {
							rep.add("output", "passed copy of %s on %s changed the field %s", id, s.Topic, f)
						}
					case !fsZero(v) && reflect.DeepEqual(v, src.Value[f]):
						n.Leaked++
						rep.add("leaked", "passed copy of %s on %s keeps the unannotated field %s", id, s.Topic, f)
					}
				}
			case fsRedacted:
				rec, err := c.Codec.Decode(ctx, m.Value)
				if err != nil {
					rep.add("output", "redacted copy of %s on %s does not decode: %v", id, s.Topic, err)
					continue
				}
				n.Wrong += c.checkTreated(rep, s.Topic, dec, coord, src, rec.Value, treated)
				for f, v := range rec.Value {
					if kept[f] {
						if !reflect.DeepEqual(v, src.Value[f]) {
							rep.add("output", "redacted copy of %s on %s changed the kept field %s", id, s.Topic, f)
						}
						continue
					}
					if !fsZero(v) && reflect.DeepEqual(v, src.Value[f]) {
						n.Leaked++
						rep.add("leaked", "redacted copy of %s on %s keeps the value of the removed field %s", id, s.Topic, f)
					}
				}
			default:
				rep.add("output", "%s holds event %s with decision header %q", s.Topic, id, dec)
			}
		}
		// Every input offset audited PASSED or REDACTED on the stream has
		// its copy there (by offset: two inputs may carry one event id).
		for _, x := range ordered {
			coord := fsCoord{x.Msg.Partition, x.Msg.Offset}
			if published[coord] > 0 {
				continue
			}
		records:
			for _, ar := range byInput[coord] {
				for _, a := range ar.Decisions {
					if a.Stream == s.Topic && (a.Decision == fsPassed || a.Decision == fsRedacted) {
						n.Lost++
						rep.add("lost", "input %d/%d (event %s) was audited %s on %s but is not on the topic", coord.Part, coord.Off, x.ID, a.Decision, s.Topic)
						break records
					}
				}
			}
		}
		n.Reordered += c.checkOrder(rep, s.Topic, outs, func(m kafka.Message) (string, fsCoord, bool) {
			id, _ := stream.Header(m, "consentgate.event_id")
			sp, _ := stream.Header(m, "consentgate.source.partition")
			so, _ := stream.Header(m, "consentgate.source.offset")
			part, _ := strconv.Atoi(sp)
			off, _ := strconv.ParseInt(so, 10, 64)
			return id, fsCoord{part, off}, true
		}, in)
	}
	// The audit topic keeps the order per subject too (records without a
	// subject have no key, and no order).
	i := 0
	n.Reordered += c.checkOrder(rep, fsAuditTopic, auditMsgs, func(m kafka.Message) (string, fsCoord, bool) {
		a := auditAt[i]
		i++
		if a == nil || a.Subject == "" {
			return "", fsCoord{}, false
		}
		return fmt.Sprintf("%d/%d", a.SrcPart, a.SrcOffset), fsCoord{a.SrcPart, a.SrcOffset}, true
	}, in)

	// Dead letters hold the original record, with the reason.
	n.DeadLettered = c.checkDLQ(rep, read(fsEventsDLQ), in, func(x *fsInput) string {
		if p, ok := stream.Header(x.Msg, fsPoisonHeader); ok && c.DLQReasons[p] != "" {
			return c.DLQReasons[p]
		}
		return x.DLQReason
	})
	for _, x := range ordered {
		if x.DLQReason != "" && !x.dead {
			n.Lost++
			rep.add("lost", "undecodable input %d/%d (%s) is not on %s", x.Msg.Partition, x.Msg.Offset, x.DLQReason, fsEventsDLQ)
		}
	}
	if len(c.ChangeMsgs) > 0 {
		cin := map[fsCoord]*fsInput{}
		for _, m := range read(fsChangesTopic) {
			cin[fsCoord{m.Partition, m.Offset}] = &fsInput{Msg: m}
		}
		n.DeadLettered += c.checkDLQ(rep, read(fsChangesDLQ), cin, func(x *fsInput) string {
			p, _ := stream.Header(x.Msg, fsPoisonHeader)
			return c.DLQReasons[p]
		})
		for _, x := range cin {
			if p, ok := stream.Header(x.Msg, fsPoisonHeader); ok && c.DLQReasons[p] != "" && !x.dead {
				rep.add("dlq", "consent change %q (%d/%d) was not dead-lettered as %s", p, x.Msg.Partition, x.Msg.Offset, c.DLQReasons[p])
			}
		}
	}

	// Revocation notices name a produced change that revokes something.
	byID := map[string]consent.Change{}
	for _, ch := range c.Changes {
		byID[ch.ChangeID] = ch
	}
	for _, m := range read(fsRevocationsTopic) {
		n.Notices++
		rec, err := c.Codec.Decode(ctx, m.Value)
		if err != nil {
			rep.add("notice", "undecodable revocation notice: %v", err)
			continue
		}
		id, _ := avrocodec.StringField(rec.Value, "change_id")
		ch, ok := byID[id]
		if !ok || ch.Action == consent.ActionGrant || string(m.Key) != ch.SubjectID {
			rep.add("notice", "revocation notice for change %q, which is no produced withdrawal, denial or erasure of its key", id)
		}
	}

	return n, rep.problems
}

// mayDiffer reports whether two audit records of one input may disagree:
// for every stream on which they do, consent may have changed between
// their times (the decisions allowed at one time are not those allowed at
// the other, or the scenario allows more than one), and each is allowed at
// its own time (which the caller checks record by record).
func (c *fsChecker) mayDiffer(g fsGrants, streams map[string]policy.Stream, a, b fsAuditRec) bool {
	if a.Outcome != b.Outcome || a.DLQReason != b.DLQReason || len(a.Decisions) != len(b.Decisions) {
		return false
	}
	for i := range a.Decisions {
		x, y := a.Decisions[i], b.Decisions[i]
		if x.Stream != y.Stream {
			return false
		}
		if x.Decision == y.Decision && x.Reason == y.Reason && slices.Equal(x.Treated, y.Treated) {
			continue
		}
		s := streams[x.Stream]
		ax, ay := c.allowed(g, x, s), c.allowed(g, y, s)
		if slices.Equal(ax, ay) && len(ax) < 2 {
			return false
		}
	}
	return true
}

// checkTreated checks that every top-level field in which the copy (value,
// published on stream as dec) differs from its input src is listed by the
// treated_fields of one of the audit records deciding so (treated: one list
// per such record): the field itself or a path below it. It returns 1 when
// none lists them all.
func (c *fsChecker) checkTreated(rep *fsReport, stream, dec string, coord fsCoord, src *fsInput, value map[string]any, treated [][]string) int {
	var changed []string
	for f, v := range value {
		if !reflect.DeepEqual(v, src.Value[f]) {
			changed = append(changed, f)
		}
	}
	slices.Sort(changed)
	for _, list := range treated {
		all := true
		for _, f := range changed {
			all = all && slices.ContainsFunc(list, func(p string) bool {
				return p == f || strings.HasPrefix(p, f+".") || strings.HasPrefix(p, f+"[")
			})
		}
		if all {
			return 0
		}
	}
	rep.add("wrong", "the %s copy of input %d/%d (%s) on %s changed %s, which the treated_fields of its audit record %v do not all list",
		dec, coord.Part, coord.Off, src.ID, stream, strings.Join(changed, ", "), treated)
	return 1
}

// checkConsents checks the consents a decision lists: one per purpose of
// the stream, in its order (none when the stream does not take the schema),
// the deciding purpose among them, and, when the scenario's consent is that
// of Changes (no Expect), each the change the system of record gives for
// its purpose ("" when it has none). It returns the number of problems (0
// or 1).
func (c *fsChecker) checkConsents(rep *fsReport, g fsGrants, coord fsCoord, a fsAudit, s policy.Stream) int {
	want := s.Purposes
	if a.Reason == "schema_not_accepted" {
		want = nil
	}
	if !slices.Equal(a.ConsentPurposes, want) || (len(want) > 0 && !slices.Contains(want, a.DecidingPurpose)) {
		rep.add("wrong", "input %d/%d (%s) on %s lists the consents of purposes %v, deciding purpose %q; want %v", coord.Part, coord.Off,
			a.EventID, a.Stream, a.ConsentPurposes, a.DecidingPurpose, want)
		return 1
	}
	if c.Expect != nil {
		return 0
	}
	for i, p := range a.ConsentPurposes {
		if got, sor := a.ConsentChangeIDs[i], g[a.Subject][p].ChangeID; got != sor {
			rep.add("wrong", "input %d/%d (%s) on %s names consent change %q for %s; the system of record's is %q", coord.Part, coord.Off,
				a.EventID, a.Stream, got, p, sor)
			return 1
		}
	}
	return 0
}

// allowed returns the decisions an audit record may carry.
func (c *fsChecker) allowed(g fsGrants, a fsAudit, s policy.Stream) []string {
	if c.Expect != nil {
		return c.Expect(a)
	}
	if g.all(a.Subject, s.Purposes, a.ProcessedAt) {
		return []string{fsPassed}
	}
	if s.OnMissing == policy.OnMissingRedact {
		return []string{fsRedacted}
	}
	return []string{fsDropped}
}

// checkOrder checks, per output partition, subject (key) and source
// partition, that the first occurrences of events come in increasing source
// offsets: re-deliveries after a crash may repeat a run of events, never
// reorder them. Records without a key (inputs produced without one) are not
// ordered by subject and are skipped.
func (c *fsChecker) checkOrder(rep *fsReport, name string, msgs []kafka.Message, get func(kafka.Message) (string, fsCoord, bool), in map[fsCoord]*fsInput) int {
	type seqKey struct {
		key     string
		srcPart int
	}
	last := map[seqKey]int64{}
	seen := map[string]bool{}
	parts := map[string]int{}
	bad := 0
	for _, m := range msgs {
		id, src, ok := get(m)
		if !ok {
			continue
		}
		x := in[src]
		if x == nil || len(x.Msg.Key) == 0 || len(m.Key) == 0 || seen[id] {
			continue
		}
		seen[id] = true
		if p, ok := parts[string(m.Key)]; ok && p != m.Partition {
			bad++
			rep.add("order", "%s: records of one subject on partitions %d and %d", name, p, m.Partition)
		}
		parts[string(m.Key)] = m.Partition
		k := seqKey{string(m.Key), src.Part}
		if prev, ok := last[k]; ok && src.Off <= prev {
			bad++
			rep.add("order", "%s: event %s (input offset %d) after input offset %d of the same subject", name, id, src.Off, prev)
		}
		last[k] = max(last[k], src.Off)
	}
	return bad
}

// checkDLQ checks that every dead letter holds the original key, value and
// headers of the input record it names, and the expected reason; it marks
// those inputs dead-lettered and returns how many distinct ones there are.
func (c *fsChecker) checkDLQ(rep *fsReport, dlq []kafka.Message, in map[fsCoord]*fsInput, reason func(*fsInput) string) int {
	distinct := 0
	for _, d := range dlq {
		sp, _ := stream.Header(d, "consentgate.source.partition")
		so, _ := stream.Header(d, "consentgate.source.offset")
		part, _ := strconv.Atoi(sp)
		off, _ := strconv.ParseInt(so, 10, 64)
		x := in[fsCoord{part, off}]
		if x == nil {
			rep.add("dlq", "dead letter names source %s/%s, which holds nothing", sp, so)
			continue
		}
		if !bytes.Equal(d.Value, x.Msg.Value) || !bytes.Equal(d.Key, x.Msg.Key) {
			rep.add("dlq", "dead letter of %s/%s does not hold the original key and bytes", sp, so)
		}
		if len(d.Headers) < len(x.Msg.Headers) || !reflect.DeepEqual(d.Headers[:len(x.Msg.Headers)], x.Msg.Headers) {
			rep.add("dlq", "dead letter of %s/%s lost the original headers", sp, so)
		}
		got, _ := stream.Header(d, "consentgate.dlq.reason")
		if want := reason(x); got != want {
			rep.add("dlq", "dead letter of %s/%s has reason %q, want %q", sp, so, got, want)
		}
		if errText, _ := stream.Header(d, "consentgate.dlq.error"); errText == "" {
			rep.add("dlq", "dead letter of %s/%s has no error text", sp, so)
		}
		if !x.dead {
			distinct++
		}
		x.dead = true
	}
	return distinct
}

// fsKeptFields returns the top-level fields a redacting stream keeps
// (field rules with action keep); every other field must be removed.
func fsKeptFields(s policy.Stream) map[string]bool {
	kept := map[string]bool{}
	for _, tr := range s.Treatments {
		if tr.Field != "" && tr.Action == policy.ActionKeep {
			kept[tr.Field] = true
		}
	}
	return kept
}

// fsZero reports whether v is what a removed field holds: null, the zero
// value of its type, or an empty collection.
func fsZero(v any) bool {
	switch x := avrocodec.Unwrap(v).(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []byte:
		return len(x) == 0
	case bool:
		return !x
	case int32:
		return x == 0
	case int64:
		return x == 0
	case float32:
		return x == 0
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	case time.Time:
		return x.UnixMilli() == 0
	}
	return false
}

func fsHash(key, value []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(strconv.Itoa(len(key))))
	h.Write(key)
	h.Write(value)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// fsGrants is the folded consent of the system of record: per subject and
// purpose, the winning change (newest captured_at, ties to the greater
// change id). The static scenarios have no erasures.
type fsGrants map[string]map[string]consent.Change

func fsFold(changes []consent.Change) fsGrants {
	g := fsGrants{}
	for _, c := range changes {
		if c.Action == consent.ActionErase {
			panic("fsFold: the fault suite's static consent has no erasures")
		}
		if g[c.SubjectID] == nil {
			g[c.SubjectID] = map[string]consent.Change{}
		}
		cur, ok := g[c.SubjectID][c.Purpose]
		if !ok || c.CapturedAt.UnixMilli() > cur.CapturedAt.UnixMilli() ||
			(c.CapturedAt.UnixMilli() == cur.CapturedAt.UnixMilli() && c.ChangeID > cur.ChangeID) {
			g[c.SubjectID][c.Purpose] = c
		}
	}
	return g
}

// all reports whether subject had a valid CONSENT grant for every purpose at
// time at.
func (g fsGrants) all(subject string, purposes []string, at time.Time) bool {
	for _, p := range purposes {
		c, ok := g[subject][p]
		if !ok || c.Action != consent.ActionGrant || c.LegalBasis != consent.BasisConsent ||
			(!c.ExpiresAt.IsZero() && !at.Before(c.ExpiresAt)) {
			return false
		}
	}
	return true
}

// fsSummary logs the one-line summary of a scenario and fails it when an
// event was lost or leaked.
func fsSummary(t *testing.T, scenario, faults string, n fsCounts) {
	t.Helper()
	t.Logf("FAULT SUMMARY %s: events sent %d, faults injected: %s, lost %d, leaked %d, duplicated %d, dead-lettered %d (%s)",
		scenario, n.Sent, faults, n.Lost, n.Leaked, n.Duplicated, n.DeadLettered, n)
	if n.Lost != 0 || n.Leaked != 0 || n.Wrong != 0 || n.Reordered != 0 {
		t.Errorf("%s: lost %d, leaked %d, wrong %d, reordered %d: want 0 each", scenario, n.Lost, n.Leaked, n.Wrong, n.Reordered)
	}
}
