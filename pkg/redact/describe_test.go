package redact

import (
	"slices"
	"testing"

	"github.com/consentgate/consentgate/pkg/policy"
)

// Actions lists the program Apply runs: every field Apply changed has a
// changing action there, and the fields Actions says stay are not changed.
func TestActionsAgreeWithApply(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	s := policy.Stream{
		Topic: "compliant.test", Purposes: []string{"test"},
		Unannotated: policy.UnannotatedKeep, DefaultTreatment: policy.ActionRemove,
		Treatments: []policy.Treatment{
			categoryRule("user.id", policy.ActionPseudonymise),
			categoryRule("user.device.ip_address", policy.ActionTruncateIP),
			categoryRule("user.behavior.*", policy.ActionKeep),
			fieldRule("items[].sku", policy.ActionKeep),
		},
	}
	cases := []struct {
		name  string
		req   Request
		value map[string]any
	}{
		{"purchase redact", Request{Schema: schemaOf(t, purchaseName, 0), Stream: s, Mode: ModeRedact}, purchase()},
		{"purchase remove excluded", Request{Schema: schemaOf(t, purchaseName, 0), Stream: s, Mode: ModeRemoveExcluded, Excluded: []string{"user.contact.address.city", "user.health"}}, purchase()},
		{"email redact", Request{Schema: schemaOf(t, emailName, 0), Stream: s, Mode: ModeRedact}, emailEngagement()},
		{"page view v1 as v2", Request{Schema: schemaOf(t, pageViewName, 2), Writer: schemaOf(t, pageViewName, 1), Stream: s, Mode: ModeRedact}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			acts, err := r.Actions(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if len(acts) == 0 {
				t.Fatal("no actions")
			}
			byPath := map[string]FieldAction{}
			for _, a := range acts {
				if _, dup := byPath[a.Path]; !dup {
					byPath[a.Path] = a
				}
			}
			// Every field of the schema is listed.
			for _, f := range tc.req.Schema.Fields {
				if _, ok := byPath[f.Path]; !ok {
					t.Errorf("field %s not listed", f.Path)
				}
			}
			if tc.value == nil {
				return
			}
			req := tc.req
			req.Value = tc.value
			res := apply(t, r, req)
			for _, p := range res.Treated {
				if a, ok := byPath[p]; !ok || a.Action == policy.ActionKeep {
					t.Errorf("Apply changed %s, Actions says %+v", p, a)
				}
			}
			for _, a := range acts {
				if a.Within == "" && a.Action != policy.ActionKeep && (a.Action == policy.ActionPseudonymise || a.Action == policy.ActionTruncateIP) && !slices.Contains(res.Treated, a.Path) {
					t.Errorf("Actions says %s for %s, Apply did not change it (treated %q)", a.Action, a.Path, res.Treated)
				}
			}
		})
	}
}

func TestActionsDetails(t *testing.T) {
	t.Parallel()
	r := NewWithoutKey()
	s := keepAll(categoryRule("user.contact.address", policy.ActionRemove))
	acts, err := r.Actions(Request{Schema: schemaOf(t, purchaseName, 0), Stream: s, Mode: ModeRedact})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]FieldAction{}
	for _, a := range acts {
		got[a.Path] = a
	}
	if a := got["shipping_address"]; a.Action != policy.ActionRemove || a.Within != "" || !slices.Equal(a.Categories, []string{"user.contact.address"}) {
		t.Errorf("shipping_address: %+v", a)
	}
	if a := got["shipping_address.city"]; a.Action != policy.ActionRemove || a.Within != "shipping_address" {
		t.Errorf("shipping_address.city goes with its record: %+v", a)
	}
	if a := got["items[].sku"]; a.Action != policy.ActionKeep {
		t.Errorf("items[].sku: %+v", a)
	}
	// The recursive kitchen schema is listed once, and ends.
	if _, err := r.Actions(Request{Schema: schemaOf(t, kitchenName, 0), Stream: s, Mode: ModeRedact}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Actions(Request{Stream: s}); err != ErrNoSchema {
		t.Errorf("no schema: %v", err)
	}
	if _, err := (&Redactor{}).Actions(Request{Schema: schemaOf(t, purchaseName, 0)}); err != ErrNotReady {
		t.Errorf("zero redactor: %v", err)
	}
	if _, err := r.Actions(Request{Schema: schemaOf(t, purchaseName, 0), Mode: Mode(7)}); err != ErrBadMode {
		t.Errorf("bad mode: %v", err)
	}
}
