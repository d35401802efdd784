package policy

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// decisionView is what the enforcer decides and redacts by: the policy
// without the keys that only document it (controller, a stream's
// description and recipients) and without line numbers.
func decisionView(p *Policy) (purposes []Purpose, streams []Stream) {
	for _, pu := range p.Purposes {
		pu.Line = 0
		purposes = append(purposes, pu)
	}
	for _, s := range p.Streams {
		s.Description, s.Recipients, s.Line = "", nil, 0
		var ts []Treatment
		for _, t := range s.Treatments {
			t.Line = 0
			ts = append(ts, t)
		}
		s.Treatments = ts
		streams = append(streams, s)
	}
	return purposes, streams
}

// withoutRecordKeys drops, line by line, the controller block and every
// stream's description and recipients (keys at the streams' indentation).
func withoutRecordKeys(text string) string {
	var out []string
	inStreams, inController := false, false
	for _, l := range strings.SplitAfter(text, "\n") {
		trimmed := strings.TrimSpace(l)
		top := l != "" && l[0] != ' ' && l[0] != '#' && trimmed != ""
		if top {
			inStreams = strings.HasPrefix(l, "streams:")
			inController = strings.HasPrefix(l, "controller:")
		}
		if inController {
			continue
		}
		if inStreams {
			// (No stream item of the files starts with these keys, and
			// their values are on one line.)
			if strings.HasPrefix(trimmed, "description:") || strings.HasPrefix(trimmed, "recipients:") {
				continue
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}

// TestReviewRecordKeysDecideNothing: the shipped policy with and without
// its controller block and its streams' descriptions and recipients parses
// to the same purposes and streams in everything a decision or a redaction
// reads (the keys are documentation only), and the lines of the rules after
// the removed keys are still those of the file they were read from.
func TestReviewRecordKeysDecideNothing(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"../../deploy/policy.yaml", "testdata/example.yaml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		with, err := Parse(data, path)
		if err != nil {
			t.Fatal(err)
		}
		stripped := withoutRecordKeys(string(data))
		without, err := Parse([]byte(stripped), path)
		if err != nil {
			t.Fatalf("%s without the record keys: %v", path, err)
		}
		if without.Controller != (Controller{}) {
			t.Errorf("%s: controller left after removing its block: %+v", path, without.Controller)
		}
		for _, s := range without.Streams {
			if s.Description != "" || s.Recipients != nil {
				t.Errorf("%s: stream %s keeps description %q, recipients %q", path, s.Topic, s.Description, s.Recipients)
			}
		}
		pw, sw := decisionView(with)
		po, so := decisionView(without)
		if !reflect.DeepEqual(pw, po) || !reflect.DeepEqual(sw, so) {
			t.Errorf("%s: the record keys change what is decided:\nwith    %+v\nwithout %+v", path, sw, so)
		}
		// Every rule's line names the line that holds it.
		lines := strings.Split(string(data), "\n")
		for _, s := range with.Streams {
			for _, tr := range s.Treatments {
				if tr.Line < 1 || tr.Line > len(lines) {
					t.Errorf("%s: rule %+v at line %d", path, tr, tr.Line)
					continue
				}
				l := lines[tr.Line-1]
				if want := tr.Category + tr.Field; !strings.Contains(l, want) {
					t.Errorf("%s: rule %+v says line %d, which holds %q", path, tr, tr.Line, l)
				}
			}
		}
	}
}

// TestReviewRecordKeysOnlyWhereDocumented: the new keys are accepted only
// where the README documents them; anywhere else, and any near miss, is an
// error naming its line, and the problems after a controller block name
// their own lines.
func TestReviewRecordKeysOnlyWhereDocumented(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"recipients at the top", "recipients: [braze]\n" + minimal, `1:1: unknown key "recipients" in the policy`},
		{"description at the top", "description: x\n" + minimal, `1:1: unknown key "description" in the policy`},
		{"controller in a stream", minimal + "    controller:\n      name: X\n", `5:5: unknown key "controller" in stream`},
		{"recipients in a purpose", "purposes:\n  - id: marketing\n    recipients: [braze]\nstreams:\n  - purposes: [marketing]\n",
			`3:5: unknown key "recipients" in purpose`},
		{"description in a rule", minimal + "    on_missing_consent: redact\n    treatments:\n      - category: user.id\n        action: keep\n        description: x\n",
			`9:9: unknown key "description" in treatment`},
		{"controllers", "controllers:\n  name: X\n" + minimal, `1:1: unknown key "controllers" in the policy`},
		{"descriptions", minimal + "    descriptions: x\n", `5:5: unknown key "descriptions" in stream`},
		{"recipient list of mappings", minimal + "    recipients:\n      - name: braze\n", `6:9: an item of recipients must be a single value`},
		{"duplicate description", minimal + "    description: a\n    description: b\n", `6:5: duplicate key description in stream`},
		{"duplicate controller", "controller:\n  name: A\ncontroller:\n  name: B\n" + minimal, `3:1: duplicate key controller in the policy`},
		{"bad rule after a controller", "controller:\n  name: X\n  contact: |\n    line one\n    line two\n" + minimal +
			"    on_missing_consent: redact\n    treatments:\n      - category: user.id\n        action: erase\n", `13:17: bad action "erase"`},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pol, err := Parse([]byte(tt.in), src)
			if err == nil || pol != nil {
				t.Fatalf("Parse accepted it (%v)", err)
			}
			found := false
			for _, p := range Problems(err) {
				if strings.HasPrefix(p.Error(), src+":"+tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("problems %v, want one starting %s:%s", err, src, tt.want)
			}
		})
	}
}
