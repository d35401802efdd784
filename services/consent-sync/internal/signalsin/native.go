package signalsin

import (
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/consent"
	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/signals"
)

// MaxNoticeVersionBytes bounds a submission's notice_version, as the HTTP
// intake does.
const MaxNoticeVersionBytes = 256

// SubmissionFromNative reads a decoded ConsentSignal record (goavro's native
// form, as avrocodec.Codec.Decode returns it) into a submission, checking
// what the HTTP intake checks of its JSON form: a subject id of 1 to
// consent.MaxIDBytes bytes, a captured_at, a jurisdiction of the form DE or
// US-CA when given, a notice_version of at most MaxNoticeVersionBytes, 1 to
// signals.MaxSignals signals each with a type, and UTF-8 text throughout.
// Every problem is reported (joined), naming the field but never repeating
// its value. The signals themselves are decoded afterwards (signals.Decode).
func SubmissionFromNative(m map[string]any) (signals.Submission, error) {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%s %s", field, why)) }
	// str reads a string field; ok is false when it is absent or null
	// (reported when required) or not a UTF-8 string (reported).
	str := func(field string, required bool) (string, bool) {
		v := avrocodec.Unwrap(m[field])
		if v == nil {
			if required {
				bad(field, "is missing")
			}
			return "", false
		}
		s, ok := v.(string)
		switch {
		case !ok:
			bad(field, fmt.Sprintf("has type %T, want string", v))
			return "", false
		case !utf8.ValidString(s):
			bad(field, "is not valid UTF-8")
			return "", false
		}
		return s, true
	}
	var sub signals.Submission
	var ok bool
	if sub.SubjectID, ok = str("subject_id", true); ok && sub.SubjectID == "" {
		bad("subject_id", "is empty")
	} else if len(sub.SubjectID) > consent.MaxIDBytes {
		bad("subject_id", fmt.Sprintf("is longer than %d bytes", consent.MaxIDBytes))
	}
	switch v := avrocodec.Unwrap(m["captured_at"]).(type) {
	case time.Time:
		sub.CapturedAt = v.Truncate(time.Millisecond).UTC()
	case int64:
		sub.CapturedAt = time.UnixMilli(v).UTC()
	case nil:
		bad("captured_at", "is missing")
	default:
		bad("captured_at", fmt.Sprintf("has type %T, want timestamp-millis", v))
	}
	sub.Jurisdiction, _ = str("jurisdiction", false)
	if sub.Jurisdiction != "" {
		if err := policy.CheckJurisdiction(sub.Jurisdiction); err != nil {
			bad("jurisdiction", err.Error())
		}
	}
	sub.NoticeVersion, _ = str("notice_version", false)
	if len(sub.NoticeVersion) > MaxNoticeVersionBytes {
		bad("notice_version", fmt.Sprintf("is longer than %d bytes", MaxNoticeVersionBytes))
	}
	sub.Signals = signalList(m["signals"], bad)
	if len(errs) > 0 {
		return signals.Submission{}, errors.Join(errs...)
	}
	return sub, nil
}

// signalList reads the signals array, reporting problems through bad.
func signalList(v any, bad func(field, why string)) []signals.Signal {
	items, ok := avrocodec.Unwrap(v).([]any)
	if !ok {
		if v == nil {
			bad("signals", "is missing")
		} else {
			bad("signals", fmt.Sprintf("has type %T, want an array of signals", v))
		}
		return nil
	}
	if len(items) == 0 || len(items) > signals.MaxSignals {
		bad("signals", fmt.Sprintf("holds %d signals: send 1 to %d", len(items), signals.MaxSignals))
		return nil
	}
	out := make([]signals.Signal, 0, len(items))
	for i, it := range items {
		field := fmt.Sprintf("signals[%d]", i)
		rec, ok := avrocodec.Unwrap(it).(map[string]any)
		if !ok {
			bad(field, fmt.Sprintf("has type %T, want a record", it))
			continue
		}
		var s signals.Signal
		text := func(name string) string {
			x := avrocodec.Unwrap(rec[name])
			if x == nil {
				return ""
			}
			t, ok := x.(string)
			if !ok {
				bad(field+"."+name, fmt.Sprintf("has type %T, want string", x))
				return ""
			}
			if !utf8.ValidString(t) {
				bad(field+"."+name, "is not valid UTF-8")
				return ""
			}
			return t
		}
		s.Type = text("type")
		if s.Type == "" {
			bad(field+".type", "is empty (one of tcf, gpp, usp, gpc, consent_mode)")
		}
		s.Value = text("value")
		switch st := avrocodec.Unwrap(rec["states"]).(type) {
		case nil:
		case map[string]any:
			s.States = make(map[string]string, len(st))
			for k, x := range st {
				t, ok := x.(string)
				if !ok || !utf8.ValidString(k) || !utf8.ValidString(t) {
					bad(field+".states", "holds a state that is not UTF-8 text")
					continue
				}
				s.States[k] = t
			}
		case map[string]string:
			s.States = make(map[string]string, len(st))
			for k, t := range st {
				s.States[k] = t
			}
		default:
			bad(field+".states", fmt.Sprintf("has type %T, want a map of strings", st))
		}
		out = append(out, s)
	}
	return out
}

// Native returns sub in goavro's native form for the ConsentSignal schema,
// ready for avrocodec.Codec.EncodeSingle(SubmissionSchema, ...): what a Go
// producer of the signals topic sends. It round-trips with
// [SubmissionFromNative] (captured_at in UTC, to the millisecond; an empty
// jurisdiction or notice version is null, as are an empty value and nil
// states).
func Native(sub signals.Submission) map[string]any {
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return map[string]any{"string": s}
	}
	items := make([]any, len(sub.Signals))
	for i, s := range sub.Signals {
		var states any
		if s.States != nil {
			keys := make([]string, 0, len(s.States))
			for k := range s.States {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			m := make(map[string]any, len(keys))
			for _, k := range keys {
				m[k] = s.States[k]
			}
			states = map[string]any{"map": m}
		}
		items[i] = map[string]any{"type": s.Type, "value": opt(s.Value), "states": states}
	}
	return map[string]any{
		"subject_id":     sub.SubjectID,
		"captured_at":    sub.CapturedAt.Truncate(time.Millisecond).UTC(),
		"jurisdiction":   opt(sub.Jurisdiction),
		"notice_version": opt(sub.NoticeVersion),
		"signals":        items,
	}
}
