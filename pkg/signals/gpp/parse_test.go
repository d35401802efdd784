package gpp

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// fv is a set of expected field values.
type fv map[string]int

// seq gives name.1 .. name.n the values vals.
func seq(name string, vals ...int) fv {
	m := fv{}
	for i, v := range vals {
		m[fmt.Sprintf("%s.%d", name, i+1)] = v
	}
	return m
}

func rep(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func merge(ms ...fv) fv {
	out := fv{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

func ptr(b bool) *bool { return &b }

// Example TC strings from IABTechLab/iabgpp-es GppModel.test.ts.
const (
	tcfA = "CPSG_8APSG_8ANwAAAENAwCgAAAAAAAAAAYgACPAAAAA.IDKQA4AAgAKAGQAygAAA.YAAAAAAAAAAA"
	tcfB = "CPSG_8APSG_8ANwAAAENAwCgAAAAAAAAAAAAAAAAAAAA.IAAA.YAAAAAAAAAAA"
	tcfC = "BPSG_8APSG_8AAyACAENGdCgf_gfgAfgfgBhADVqxGAD0AILVgAA.fHHHA4444ao"
)

// mspa112 is the MSPA part of the reference implementation's "all fields
// set" vectors: MspaCoveredTransaction 1, MspaOptOutOptionMode 1,
// MspaServiceProviderMode 2.
func mspa112() fv {
	return fv{"mspa_covered_transaction": 1, "mspa_opt_out_option_mode": 1, "mspa_service_provider_mode": 2}
}

type sectionWant struct {
	id, version int
	name        string
	tcf         string
	fields      fv // nil: Fields must be nil
	notices     fv
	gpc         *bool
}

func checkSection(t *testing.T, got Section, w sectionWant) {
	t.Helper()
	if got.ID != w.id || got.Name != w.name || got.Version != w.version || got.TCF != w.tcf {
		t.Errorf("section = id %d name %q version %d tcf %q, want id %d name %q version %d tcf %q",
			got.ID, got.Name, got.Version, got.TCF, w.id, w.name, w.version, w.tcf)
	}
	if w.fields == nil {
		if got.Fields != nil {
			t.Errorf("%s: Fields = %v, want nil", w.name, got.Fields)
		}
	} else if !maps.Equal(map[string]int(got.Fields), map[string]int(w.fields)) {
		t.Errorf("%s: Fields =\n  %v\nwant\n  %v", w.name, got.Fields, w.fields)
	}
	if w.notices != nil && !maps.Equal(map[string]int(got.Notices), map[string]int(w.notices)) {
		t.Errorf("%s: Notices =\n  %v\nwant\n  %v", w.name, got.Notices, w.notices)
	}
	switch {
	case (got.GPC == nil) != (w.gpc == nil):
		t.Errorf("%s: GPC = %v, want %v", w.name, got.GPC, w.gpc)
	case got.GPC != nil && *got.GPC != *w.gpc:
		t.Errorf("%s: GPC = %v, want %v", w.name, *got.GPC, *w.gpc)
	}
	if w.fields != nil {
		// Every decoded field is in the catalogue with a kind.
		for n := range got.Fields {
			if _, ok := FieldKind(w.name, n); !ok {
				t.Errorf("%s: decoded field %q is not in the catalogue", w.name, n)
			}
		}
	}
}

func TestParseHeaderExamples(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		ids  []int
	}{
		{"reference: empty", "DBAA", []int{}},
		{"spec example 1 (tcfeuv2, 6-bit padding)", "DBABM~" + tcfA, []int{2}},
		{"reference: tcfeuv2 (8-bit padding)", "DBABMA~" + tcfA, []int{2}},
		{"spec example 2 (tcfeuv2, uspv1)", "DBACNY~" + tcfB + "~1YNN", []int{2, 6}},
		{"reference: tcfeuv2, uspv1", "DBACNYA~" + tcfB + "~1YNN", []int{2, 6}},
		{"spec example 3 (tcfcav1, uspv1, a group)", "DBABjw~" + tcfC + "~1YNN", []int{5, 6}},
		{"reference: tcfeuv2, tcfcav1, uspv1", "DBACOeA~" + tcfB + "~" + tcfC + "~1YNN", []int{2, 5, 6}},
		{"reference: uspv1", "DBABTA~1YNN", []int{6}},
		{"reference: usnat", "DBABLA~BAAAVVVVUQA.QA", []int{7}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := Parse(c.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if g.Version != 1 || !slices.Equal(g.SectionIDs, c.ids) || len(g.Sections) != len(c.ids) {
				t.Fatalf("version %d ids %v (%d sections), want 1 %v", g.Version, g.SectionIDs, len(g.Sections), c.ids)
			}
			parts := strings.Split(c.in, "~")
			for i, s := range g.Sections {
				if s.ID != c.ids[i] || s.Raw != parts[i+1] {
					t.Errorf("section %d: id %d raw %q, want %d %q", i, s.ID, s.Raw, c.ids[i], parts[i+1])
				}
			}
		})
	}
}

func TestParseTCFAndUnsupported(t *testing.T) {
	g, err := Parse("DBACOeA~" + tcfB + "~" + tcfC + "~1YNN")
	if err != nil {
		t.Fatal(err)
	}
	checkSection(t, g.Sections[0], sectionWant{id: 2, name: "tcfeuv2", tcf: tcfB})
	checkSection(t, g.Sections[1], sectionWant{id: 5, name: ""})
	if g.Sections[1].Raw != tcfC || g.Sections[1].TCF != "" || g.Sections[1].Notices != nil {
		t.Errorf("unsupported section: %+v", g.Sections[1])
	}
	checkSection(t, g.Sections[2], sectionWant{id: 6, name: "uspv1",
		fields: fv{"sale_opt_out": 2}, notices: fv{"notice": 1, "lspa_covered": 2}})
	if s, ok := g.Section("uspv1"); !ok || s.ID != 6 {
		t.Errorf("Section(uspv1) = %v, %v", s.ID, ok)
	}
	if _, ok := g.Section(""); ok {
		t.Error(`Section("") found the unsupported section`)
	}
}

// TestParseUSNatVersions: v1 and v2 have different layouts; the version
// field decides (vectors and expected values of iabgpp-es).
func TestParseUSNatVersions(t *testing.T) {
	zeroNotices := fv{"sharing_notice": 0, "sale_opt_out_notice": 0, "sharing_opt_out_notice": 0,
		"targeted_advertising_opt_out_notice": 0, "sensitive_data_processing_opt_out_notice": 0,
		"sensitive_data_limit_use_notice": 0, "mspa_covered_transaction": 1,
		"mspa_opt_out_option_mode": 0, "mspa_service_provider_mode": 0}
	zero := fv{"sale_opt_out": 0, "sharing_opt_out": 0, "targeted_advertising_opt_out": 0, "personal_data_consents": 0, "gpc": 0}
	allNotices := fv{"sharing_notice": 1, "sale_opt_out_notice": 1, "sharing_opt_out_notice": 1,
		"targeted_advertising_opt_out_notice": 1, "sensitive_data_processing_opt_out_notice": 1,
		"sensitive_data_limit_use_notice": 1}
	for _, c := range []struct {
		name string
		raw  string
		want sectionWant
	}{
		{"v1 with v1 values", "BAAAVVVVUQA.QA", sectionWant{version: 1, gpc: ptr(false), notices: zeroNotices,
			fields: merge(zero, seq("sensitive_data_processing", rep(1, 12)...), seq("known_child_sensitive_data_consents", 1, 1))}},
		{"v2 with v1 values", "CAAAVVVVAFBA.QA", sectionWant{version: 2, gpc: ptr(false), notices: zeroNotices,
			fields: merge(zero, seq("sensitive_data_processing", append(rep(1, 12), 0, 0, 0, 0)...), seq("known_child_sensitive_data_consents", 1, 1, 0))}},
		{"v2 with v2 values", "CAAAVVVVVVRA.QA", sectionWant{version: 2, gpc: ptr(false), notices: zeroNotices,
			fields: merge(zero, seq("sensitive_data_processing", rep(1, 16)...), seq("known_child_sensitive_data_consents", 1, 1, 1))}},
		{"v2 defaults", "CAAAAAAAAABA.QA", sectionWant{version: 2, gpc: ptr(false), notices: zeroNotices,
			fields: merge(zero, seq("sensitive_data_processing", rep(0, 16)...), seq("known_child_sensitive_data_consents", 0, 0, 0))}},
		{"v2 defaults without gpc", "CAAAAAAAAABA", sectionWant{version: 2, notices: zeroNotices,
			fields: merge(fv{"sale_opt_out": 0, "sharing_opt_out": 0, "targeted_advertising_opt_out": 0, "personal_data_consents": 0},
				seq("sensitive_data_processing", rep(0, 16)...), seq("known_child_sensitive_data_consents", 0, 0, 0))}},
		{"v2 last entries", "CAAAAAAAAQRA.QA", sectionWant{version: 2, gpc: ptr(false), notices: zeroNotices,
			fields: merge(zero, seq("sensitive_data_processing", append(rep(0, 15), 1)...), seq("known_child_sensitive_data_consents", 0, 0, 1))}},
		{"v2 all set", "CVVVkkkkkpFY.YA", sectionWant{version: 2, gpc: ptr(true), notices: merge(allNotices, mspa112()),
			fields: merge(fv{"sale_opt_out": 1, "sharing_opt_out": 1, "targeted_advertising_opt_out": 1, "personal_data_consents": 1, "gpc": 1},
				seq("sensitive_data_processing", 2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0, 2), seq("known_child_sensitive_data_consents", 2, 1, 0))}},
		{"v1 opt-outs", "BVQqAAAAAgA.QA", sectionWant{version: 1, gpc: ptr(false),
			notices: fv{"sharing_notice": 1, "sale_opt_out_notice": 1, "sharing_opt_out_notice": 1,
				"targeted_advertising_opt_out_notice": 1, "sensitive_data_processing_opt_out_notice": 0,
				"sensitive_data_limit_use_notice": 0, "mspa_covered_transaction": 2,
				"mspa_opt_out_option_mode": 0, "mspa_service_provider_mode": 0},
			fields: merge(fv{"sale_opt_out": 2, "sharing_opt_out": 2, "targeted_advertising_opt_out": 2, "personal_data_consents": 0, "gpc": 0},
				seq("sensitive_data_processing", rep(0, 12)...), seq("known_child_sensitive_data_consents", 0, 0))}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := Parse("DBABLA~" + c.raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			c.want.id, c.want.name = 7, "usnat"
			checkSection(t, g.Sections[0], c.want)
			if g.Sections[0].Raw != c.raw {
				t.Errorf("Raw = %q", g.Sections[0].Raw)
			}
		})
	}
}

// TestParseStateSections: the decode vectors of iabgpp-es
// modules/cmpapi/test/encoder/section/*.test.ts with their expected values.
func TestParseStateSections(t *testing.T) {
	sdp8 := seq("sensitive_data_processing", 2, 1, 0, 2, 1, 0, 2, 1)
	kc210 := seq("known_child_sensitive_data_consents", 2, 1, 0)
	opt1 := fv{"sale_opt_out": 1, "targeted_advertising_opt_out": 1}
	share3 := fv{"sharing_notice": 1, "sale_opt_out_notice": 1, "targeted_advertising_opt_out_notice": 1}
	proc3 := fv{"processing_notice": 1, "sale_opt_out_notice": 1, "targeted_advertising_opt_out_notice": 1}
	for _, c := range []struct {
		raw  string
		want sectionWant
	}{
		{"BVWSSSVY.YA", sectionWant{id: 8, name: "usca", gpc: ptr(true),
			notices: merge(fv{"sale_opt_out_notice": 1, "sharing_opt_out_notice": 1, "sensitive_data_limit_use_notice": 1}, mspa112()),
			fields: merge(fv{"sale_opt_out": 1, "sharing_opt_out": 1, "personal_data_consents": 1, "gpc": 1},
				seq("sensitive_data_processing", 2, 1, 0, 2, 1, 0, 2, 1, 0), seq("known_child_sensitive_data_consents", 2, 1))}},
		{"BVWSSVY", sectionWant{id: 9, name: "usva", notices: merge(share3, mspa112()),
			fields: merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1})}},
		// iabgpp-es encodes "BVVkklWA" with MspaServiceProviderMode 2 (its
		// decode test's expect(3, ...) asserts nothing).
		{"BVVkklWA", sectionWant{id: 11, name: "usut", notices: merge(share3, fv{"sensitive_data_processing_opt_out_notice": 1}, mspa112()),
			fields: merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1})}},
		{"BVWSSVg.YA", sectionWant{id: 10, name: "usco", gpc: ptr(true), notices: merge(share3, mspa112()),
			fields: merge(opt1, seq("sensitive_data_processing", 2, 1, 0, 2, 1, 0, 2), fv{"known_child_sensitive_data_consents": 1, "gpc": 1})}},
		{"BVWSSVg", sectionWant{id: 10, name: "usco", notices: merge(share3, mspa112()),
			fields: merge(opt1, seq("sensitive_data_processing", 2, 1, 0, 2, 1, 0, 2), fv{"known_child_sensitive_data_consents": 1})}},
		{"BVWSSZFg.YA", sectionWant{id: 12, name: "usct", gpc: ptr(true), notices: merge(share3, mspa112()),
			fields: merge(opt1, sdp8, kc210, fv{"gpc": 1})}},
		{"BVWSSZlY", sectionWant{id: 13, name: "usfl", notices: merge(proc3, mspa112()),
			fields: merge(opt1, sdp8, seq("known_child_sensitive_data_consents", 2, 1, 2), fv{"additional_data_processing_consent": 1})}},
		{"BVWSSZFY.YA", sectionWant{id: 14, name: "usmt", gpc: ptr(true), notices: merge(share3, mspa112()),
			fields: merge(opt1, sdp8, kc210, fv{"additional_data_processing_consent": 1, "gpc": 1})}},
		{"BVWSSRpFYA.YA", sectionWant{id: 15, name: "usor", gpc: ptr(true), notices: merge(proc3, mspa112()),
			fields: merge(opt1, seq("sensitive_data_processing", 2, 1, 0, 2, 1, 0, 2, 1, 0, 1, 2), kc210, fv{"additional_data_processing_consent": 1, "gpc": 1})}},
		{"BVWSSRpFYA", sectionWant{id: 15, name: "usor", notices: merge(proc3, mspa112()),
			fields: merge(opt1, seq("sensitive_data_processing", 2, 1, 0, 2, 1, 0, 2, 1, 0, 1, 2), kc210, fv{"additional_data_processing_consent": 1})}},
		{"BVWSSVWA.YA", sectionWant{id: 16, name: "ustx", gpc: ptr(true), notices: merge(proc3, mspa112()),
			fields: merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1, "additional_data_processing_consent": 1, "gpc": 1})}},
		{"BVWSSSSVYA.YA", sectionWant{id: 17, name: "usde", gpc: ptr(true), notices: merge(proc3, mspa112()),
			fields: merge(opt1, seq("sensitive_data_processing", 2, 1, 0, 2, 1, 0, 2, 1, 0), seq("known_child_sensitive_data_consents", 2, 1, 0, 2, 1),
				fv{"additional_data_processing_consent": 1, "gpc": 1})}},
		{"BVVkklWA.YA", sectionWant{id: 18, name: "usia", gpc: ptr(true), notices: merge(proc3, fv{"sensitive_data_opt_out_notice": 1}, mspa112()),
			fields: merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1, "gpc": 1})}},
		{"BVWSSVWA.YA", sectionWant{id: 19, name: "usne", gpc: ptr(true), notices: merge(proc3, mspa112()),
			fields: merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1, "additional_data_processing_consent": 1, "gpc": 1})}},
		{"BVWSSZFY.YA", sectionWant{id: 20, name: "usnh", gpc: ptr(true), notices: merge(proc3, mspa112()),
			fields: merge(opt1, sdp8, kc210, fv{"additional_data_processing_consent": 1, "gpc": 1})}},
		{"BVWSSRklWA.YA", sectionWant{id: 21, name: "usnj", gpc: ptr(true), notices: merge(proc3, mspa112()),
			fields: merge(opt1, seq("sensitive_data_processing", 2, 1, 0, 2, 1, 0, 2, 1, 0, 1), seq("known_child_sensitive_data_consents", 2, 1, 0, 2, 1),
				fv{"additional_data_processing_consent": 1, "gpc": 1})}},
		{"BVWSSVWA.YA", sectionWant{id: 22, name: "ustn", gpc: ptr(true), notices: merge(proc3, mspa112()),
			fields: merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1, "additional_data_processing_consent": 1, "gpc": 1})}},
		{"BVWSSVWA", sectionWant{id: 23, name: "usmn", notices: merge(proc3, mspa112()),
			fields: merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1, "additional_data_processing_consent": 1})}},
		{"BVWSSVWA.YA", sectionWant{id: 23, name: "usmn", gpc: ptr(true), notices: merge(proc3, mspa112()),
			fields: merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1, "additional_data_processing_consent": 1, "gpc": 1})}},
		{"BVVU.YA", sectionWant{id: 24, name: "usmd", gpc: ptr(true),
			notices: merge(proc3, fv{"mspa_version": 1, "mspa_covered_transaction": 1, "mspa_mode": 1}),
			fields:  merge(opt1, fv{"additional_data_processing_consent": 1, "gpc": 1})}},
		{"BQAA", sectionWant{id: 24, name: "usmd",
			notices: fv{"mspa_version": 1, "mspa_covered_transaction": 1, "mspa_mode": 0, "processing_notice": 0, "sale_opt_out_notice": 0, "targeted_advertising_opt_out_notice": 0},
			fields:  fv{"sale_opt_out": 0, "targeted_advertising_opt_out": 0, "additional_data_processing_consent": 0}}},
		{"BVVV.kkk", sectionWant{id: 25, name: "usin",
			notices: merge(proc3, fv{"mspa_version": 1, "mspa_covered_transaction": 1, "mspa_mode": 1}),
			fields:  merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1, "additional_data_processing_consent": 1})}},
		{"BVVV.kkk", sectionWant{id: 26, name: "usky",
			notices: merge(proc3, fv{"mspa_version": 1, "mspa_covered_transaction": 1, "mspa_mode": 1}),
			fields:  merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1, "additional_data_processing_consent": 1})}},
		{"BVVV.kkk", sectionWant{id: 27, name: "usri",
			notices: merge(proc3, fv{"mspa_version": 1, "mspa_covered_transaction": 1, "mspa_mode": 1}),
			fields:  merge(opt1, sdp8, fv{"known_child_sensitive_data_consents": 1, "additional_data_processing_consent": 1})}},
		{"BQAA", sectionWant{id: 27, name: "usri",
			notices: fv{"mspa_version": 1, "mspa_covered_transaction": 1, "mspa_mode": 0, "processing_notice": 0, "sale_opt_out_notice": 0, "targeted_advertising_opt_out_notice": 0},
			fields:  fv{"sale_opt_out": 0, "targeted_advertising_opt_out": 0, "known_child_sensitive_data_consents": 0, "additional_data_processing_consent": 0}}},
	} {
		t.Run(c.want.name+"/"+c.raw, func(t *testing.T) {
			in := encodeHeader([]int{c.want.id}, true) + "~" + c.raw
			g, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			c.want.version = 1
			checkSection(t, g.Sections[0], c.want)
		})
	}
}

// TestParseAllSectionsReference: iabgpp-es's string with every section at
// its defaults (GppModel.test.ts "should encode defaults from all sections").
func TestParseAllSectionsReference(t *testing.T) {
	in := "DBACOcGA~CPSG_8APSG_8ANwAAAENAAFgAAAAAAAAAAAAAAAAAAAA.IAAA.YAAAAAAAAAAA~BPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAAAA.YAAAAAAAAAA~1---~BAAAAAAAAQA.QA~BAAAAABA.QA~BAAAABA~BAAAAEA.QA~BAAAAAQA~BAAAAAEA.QA~BAAAAABA~BAAAAABA.QA~BAAAAAABAA.QA~BAAAAAQA.QA~BAAAAAABAA.QA~BAAAAAQA.QA~BAAAAAQA.QA~BAAAAABA.QA~BAAAAAAAQA.QA~BAAAAAQA.QA~BAAAAAQA.QA~BQAA.QA~BQAA.AAA~BQAA.AAA~BQAA.AAA"
	g, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{2, 5, 6}
	for id := 7; id <= 27; id++ {
		want = append(want, id)
	}
	if !slices.Equal(g.SectionIDs, want) {
		t.Fatalf("ids = %v", g.SectionIDs)
	}
	for _, s := range g.Sections {
		if s.ID < 6 {
			continue
		}
		if s.Name == "" || len(s.Fields) == 0 {
			t.Errorf("section %d not decoded", s.ID)
		}
		// All defaults: every mappable value 0 (not applicable), the
		// covered transaction 1, GPC false where present.
		for n, v := range s.Fields {
			if v != 0 {
				t.Errorf("%s.%s = %d, want 0", s.Name, n, v)
			}
		}
		if s.ID >= 7 && s.Notices["mspa_covered_transaction"] != 1 {
			t.Errorf("%s: mspa_covered_transaction = %d", s.Name, s.Notices["mspa_covered_transaction"])
		}
		hasGPC := slices.Contains(FieldNames(s.Name), "gpc")
		if (s.GPC != nil) != hasGPC || (s.GPC != nil && *s.GPC) {
			t.Errorf("%s: GPC = %v", s.Name, s.GPC)
		}
		if want := FieldNames(s.Name); s.ID >= 7 && len(s.Fields) != len(want) && s.Name != "usnat" {
			t.Errorf("%s: %d fields decoded, catalogue has %d", s.Name, len(s.Fields), len(want))
		}
	}
	if s, _ := g.Section("usnat"); s.Version != 1 || len(s.Fields) != 3+12+2+1+1 {
		t.Errorf("usnat v%d with %d fields, want v1 with 19", s.Version, len(s.Fields))
	}
}

func TestParseUSP(t *testing.T) {
	for _, c := range []struct {
		in   string
		want USP
		sale int
	}{
		{"1YNN", USP{1, 'Y', 'N', 'N'}, 2},
		{"1NYN", USP{1, 'N', 'Y', 'N'}, 1},
		{"1---", USP{1, '-', '-', '-'}, 0},
		{"1YYN", USP{1, 'Y', 'Y', 'N'}, 1},
		{"1Y--", USP{1, 'Y', '-', '-'}, 0},
	} {
		got, err := ParseUSP(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseUSP(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		g, err := Parse("DBABTA~" + c.in)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if s := g.Sections[0]; s.Name != "uspv1" || s.Version != 0 || s.Fields["sale_opt_out"] != c.sale || len(s.Fields) != 1 {
			t.Errorf("%q as GPP section: %+v", c.in, s)
		}
	}
}
