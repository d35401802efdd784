package gpp

import (
	"fmt"
	"slices"
	"testing"
)

// list expands "name" to name.1 .. name.n.
func list(name string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s.%d", name, i+1)
	}
	return out
}

func cat(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			out = append(out, v)
		case []string:
			out = append(out, v...)
		}
	}
	return out
}

// specFields is, per section, the mappable fields as the section
// specifications of InteractiveAdvertisingBureau/Global-Privacy-Platform list
// them (core segment tables, field types N-Bitfield(2,n) expanded, "gpc" when
// the spec has a GPC sub-section), written out independently of the
// catalogue in fields.go.
var specFields = map[string][]string{
	"usnat": cat("sale_opt_out", "sharing_opt_out", "targeted_advertising_opt_out",
		list("sensitive_data_processing", 16), list("known_child_sensitive_data_consents", 3),
		"personal_data_consents", "gpc"),
	"usca": cat("sale_opt_out", "sharing_opt_out", list("sensitive_data_processing", 9),
		list("known_child_sensitive_data_consents", 2), "personal_data_consents", "gpc"),
	"usva": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		"known_child_sensitive_data_consents"),
	"usco": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 7),
		"known_child_sensitive_data_consents", "gpc"),
	"usut": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		"known_child_sensitive_data_consents"),
	"usct": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		list("known_child_sensitive_data_consents", 3), "gpc"),
	"usfl": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		list("known_child_sensitive_data_consents", 3), "additional_data_processing_consent"),
	"usmt": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		list("known_child_sensitive_data_consents", 3), "additional_data_processing_consent", "gpc"),
	"usor": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 11),
		list("known_child_sensitive_data_consents", 3), "additional_data_processing_consent", "gpc"),
	"ustx": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		"known_child_sensitive_data_consents", "additional_data_processing_consent", "gpc"),
	"usde": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 9),
		list("known_child_sensitive_data_consents", 5), "additional_data_processing_consent", "gpc"),
	"usia": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		"known_child_sensitive_data_consents", "gpc"),
	"usne": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		"known_child_sensitive_data_consents", "additional_data_processing_consent", "gpc"),
	"usnh": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		list("known_child_sensitive_data_consents", 3), "additional_data_processing_consent", "gpc"),
	"usnj": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 10),
		list("known_child_sensitive_data_consents", 5), "additional_data_processing_consent", "gpc"),
	"ustn": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		"known_child_sensitive_data_consents", "additional_data_processing_consent", "gpc"),
	"usmn": cat("sale_opt_out", "targeted_advertising_opt_out", list("sensitive_data_processing", 8),
		"known_child_sensitive_data_consents", "additional_data_processing_consent", "gpc"),
	"usmd": cat("sale_opt_out", "targeted_advertising_opt_out", "additional_data_processing_consent", "gpc"),
	"usin": cat("sale_opt_out", "targeted_advertising_opt_out", "known_child_sensitive_data_consents",
		"additional_data_processing_consent", list("sensitive_data_processing", 8)),
	"usky": cat("sale_opt_out", "targeted_advertising_opt_out", "known_child_sensitive_data_consents",
		"additional_data_processing_consent", list("sensitive_data_processing", 8)),
	"usri": cat("sale_opt_out", "targeted_advertising_opt_out", "known_child_sensitive_data_consents",
		"additional_data_processing_consent", list("sensitive_data_processing", 8)),
	"uspv1": {"sale_opt_out"},
}

// optOutSensitive are the sections whose SensitiveDataProcessing values the
// spec defines as 1 Opted Out / 2 Did Not Opt Out (all others: 1 No Consent /
// 2 Consent).
var optOutSensitive = map[string]bool{"usca": true, "usut": true, "usia": true}

func TestSectionNames(t *testing.T) {
	want := []string{"usnat", "usca", "usva", "usco", "usut", "usct", "usfl", "usmt", "usor", "ustx",
		"usde", "usia", "usne", "usnh", "usnj", "ustn", "usmn", "usmd", "usin", "usky", "usri", "uspv1"}
	if got := SectionNames(); !slices.Equal(got, want) {
		t.Fatalf("SectionNames() = %v, want %v", got, want)
	}
	if len(specFields) != len(want) {
		t.Fatalf("specFields has %d sections, want %d", len(specFields), len(want))
	}
	got := SectionNames()
	got[0] = "changed"
	if SectionNames()[0] != "usnat" {
		t.Fatal("SectionNames returns a shared slice")
	}
}

func TestFieldNamesAreTheSpecs(t *testing.T) {
	for _, s := range SectionNames() {
		want, ok := specFields[s]
		if !ok {
			t.Errorf("%s: no spec list in the test", s)
			continue
		}
		got := FieldNames(s)
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
			t.Errorf("FieldNames(%q) =\n  %v\nwant\n  %v", s, got, want)
		}
		if len(got) != len(want) {
			t.Errorf("FieldNames(%q) has %d names (duplicates?), want %d", s, len(got), len(want))
		}
	}
	for _, s := range []string{"", "tcfeuv2", "tcfcav1", "USNAT", "usxx"} {
		if got := FieldNames(s); got != nil {
			t.Errorf("FieldNames(%q) = %v, want nil", s, got)
		}
	}
}

func TestFieldKinds(t *testing.T) {
	for s, names := range specFields {
		for _, n := range names {
			k, ok := FieldKind(s, n)
			if !ok {
				t.Errorf("FieldKind(%q, %q) not found", s, n)
				continue
			}
			var want Kind
			switch {
			case n == "gpc":
				want = Flag
			case n == "sale_opt_out" || n == "sharing_opt_out" || n == "targeted_advertising_opt_out":
				want = OptOut
			case len(n) > 26 && n[:26] == "sensitive_data_processing." && optOutSensitive[s]:
				want = OptOut
			default:
				want = Consent
			}
			if k != want {
				t.Errorf("FieldKind(%q, %q) = %v, want %v", s, n, k, want)
			}
		}
	}
	for _, c := range [][2]string{
		{"usnat", "sale_opt_out_notice"}, {"usnat", "mspa_covered_transaction"}, {"usnat", "version"},
		{"usnat", "sensitive_data_processing.17"}, {"usnat", "sensitive_data_processing.0"},
		{"usnat", "sensitive_data_processing"}, {"usva", "gpc"}, {"usut", "gpc"}, {"usfl", "gpc"},
		{"usin", "gpc"}, {"usmd", "mspa_version"}, {"usco", "sharing_opt_out"}, {"uspv1", "gpc"},
		{"tcfeuv2", "sale_opt_out"}, {"nope", "sale_opt_out"},
	} {
		if k, ok := FieldKind(c[0], c[1]); ok {
			t.Errorf("FieldKind(%q, %q) = %v, true; want not found", c[0], c[1], k)
		}
	}
}

// TestUSNatVersionsInCatalogue: v1 has 12 sensitive data and 2 known child
// entries, v2 16 and 3; the catalogue is the union (v2's).
func TestUSNatVersionsInCatalogue(t *testing.T) {
	d := byName["usnat"]
	for v, want := range map[int][2]int{1: {12, 2}, 2: {16, 3}} {
		l, ok := d.versions[v]
		if !ok {
			t.Fatalf("usnat v%d missing", v)
		}
		var got [2]int
		for _, f := range l.core {
			switch f.name {
			case "sensitive_data_processing":
				got[0] = f.n
			case "known_child_sensitive_data_consents":
				got[1] = f.n
			}
		}
		if got != want {
			t.Errorf("usnat v%d lists = %v, want %v", v, got, want)
		}
	}
}
