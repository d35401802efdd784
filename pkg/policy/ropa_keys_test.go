package policy

import (
	"slices"
	"strings"
	"testing"
)

// The keys that only document the processing (controller, a stream's
// description and recipients): parsed, validated with positions, and
// optional.
func TestRecordKeys(t *testing.T) {
	t.Parallel()
	const in = `controller:
  name: Example Shop GmbH
  contact: "privacy@example.com, DPO: Jane Roe"
purposes:
  - id: marketing
streams:
  - topic: compliant.marketing
    description: Campaign audiences for the CRM
    purposes: [marketing]
    recipients: [braze, marketing-team, "Acme Analytics Ltd"]
  - purposes: [marketing]
    topic: compliant.other
`
	pol, err := Parse([]byte(in), src)
	if err != nil {
		t.Fatal(err)
	}
	want := Controller{Name: "Example Shop GmbH", Contact: "privacy@example.com, DPO: Jane Roe", Line: 1}
	if pol.Controller != want {
		t.Errorf("controller %+v, want %+v", pol.Controller, want)
	}
	s := pol.Streams[0]
	if s.Description != "Campaign audiences for the CRM" {
		t.Errorf("description %q", s.Description)
	}
	if !slices.Equal(s.Recipients, []string{"braze", "marketing-team", "Acme Analytics Ltd"}) {
		t.Errorf("recipients %q", s.Recipients)
	}
	if o := pol.Streams[1]; o.Description != "" || o.Recipients != nil {
		t.Errorf("stream without the keys: description %q, recipients %q", o.Description, o.Recipients)
	}
	if p, err := Parse([]byte(minimal), src); err != nil || p.Controller != (Controller{}) {
		t.Errorf("policy without controller: %+v, %v", p.Controller, err)
	}

	bad := []struct {
		name string
		in   string
		want []string
	}{
		{"controller without name", "controller:\n  contact: x\n" + minimal, []string{"2:3: controller has no name"}},
		{"controller empty", "controller:\n" + minimal, []string{"1:1: controller is empty"}},
		{"controller not a mapping", "controller: Example\n" + minimal, []string{"1:13: controller must be a mapping with keys name, contact"}},
		{"controller unknown key", "controller:\n  name: X\n  email: x@example.com\n" + minimal,
			[]string{`3:3: unknown key "email" in controller (allowed: name, contact)`}},
		{"controller blank name", "controller:\n  name: \"  \"\n" + minimal, []string{"2:9: controller name is blank"}},
		{"controller name list", "controller:\n  name: [a]\n" + minimal, []string{"2:9: controller name must be a single value"}},
		{"controller contact too long", "controller:\n  name: X\n  contact: " + strings.Repeat("a", maxText+1) + "\n" + minimal,
			[]string{"3:12: controller contact is 1001 bytes long"}},
		{"recipients not a list", minimal + "    recipients: braze\n", []string{"5:17: recipients must be a list"}},
		{"recipient bad", minimal + "    recipients: [braze, \"-x\", \"a,b\"]\n",
			[]string{`5:25: bad recipient "-x"`, `5:31: bad recipient "a,b"`}},
		{"recipient duplicate", minimal + "    recipients: [braze, braze]\n", []string{`5:25: duplicate "braze" in recipients (first at line 5)`}},
		{"recipient empty", minimal + "    recipients: [\"\"]\n", []string{`5:18: bad recipient ""`}},
		{"recipient typo key", minimal + "    recipient: [braze]\n", []string{`5:5: unknown key "recipient" in stream; did you mean recipients?`}},
		{"description list", minimal + "    description: [a]\n", []string{"5:18: stream description must be a single value"}},
		{"description blank", minimal + "    description: \" \"\n", []string{"5:18: stream description is blank"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pol, err := Parse([]byte(tt.in), src)
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tt.want)
			}
			if pol != nil {
				t.Error("Parse returned a policy with its error")
			}
			probs := Problems(err)
			if len(probs) != len(tt.want) {
				t.Fatalf("got %d problems, want %d: %v", len(probs), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := probs[i].Error(); !strings.HasPrefix(got, src+":"+w) {
					t.Errorf("problem %d:\ngot  %s\nwant %s:%s...", i, got, src, w)
				}
			}
		})
	}
}
