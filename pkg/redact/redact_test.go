package redact

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/policy"
)

// treatCase is one Apply call: the expected output is the input with edit
// applied.
type treatCase struct {
	name     string
	schema   string
	version  int
	in       func() map[string]any
	stream   policy.Stream
	excluded []string
	mode     Mode
	edit     func(v map[string]any)
	treated  []string
}

func runTreatCases(t *testing.T, cases []treatCase) {
	t.Helper()
	r := newRedactor(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := schemaOf(t, tc.schema, tc.version)
			res := apply(t, r, Request{Schema: s, Value: tc.in(), Stream: tc.stream, Excluded: tc.excluded, Mode: tc.mode})
			want := tc.in()
			if tc.edit != nil {
				tc.edit(want)
			}
			if !reflect.DeepEqual(res.Value, want) {
				t.Errorf("value:\n got %#v\nwant %#v", res.Value, want)
			}
			if !slices.Equal(res.Treated, tc.treated) {
				t.Errorf("treated = %q, want %q", res.Treated, tc.treated)
			}
		})
	}
}

func str(s string) map[string]any { return map[string]any{"string": s} }

func with(base func() map[string]any, edit func(v map[string]any)) func() map[string]any {
	return func() map[string]any {
		v := base()
		edit(v)
		return v
	}
}

func address(v map[string]any) map[string]any {
	return v["shipping_address"].(map[string]any)["consentgate.events.Address"].(map[string]any)
}

func items(v map[string]any) []map[string]any {
	var out []map[string]any
	for _, it := range v["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

func TestTreatmentsPurchase(t *testing.T) {
	t.Parallel()
	one := func(path string, a policy.Action) policy.Stream { return keepAll(fieldRule(path, a)) }
	cases := []treatCase{
		{name: "keep everything", stream: keepAll()},
		{name: "pseudonymise string", stream: one("subject_id", policy.ActionPseudonymise),
			edit: func(v map[string]any) { v["subject_id"] = hmacHex("subject-2") }, treated: []string{"subject_id"}},
		{name: "pseudonymise string in union", stream: one("email", policy.ActionPseudonymise),
			edit: func(v map[string]any) { v["email"] = str(hmacHex("jane.doe@example.com")) }, treated: []string{"email"}},
		{name: "pseudonymise null union", stream: one("email", policy.ActionPseudonymise),
			in: with(purchase, func(v map[string]any) { v["email"] = nil })},
		{name: "pseudonymise long falls back to remove", stream: one("total_minor", policy.ActionPseudonymise),
			edit: func(v map[string]any) { v["total_minor"] = int64(0) }, treated: []string{"total_minor"}},
		{name: "pseudonymise enum falls back to remove", stream: one("payment.method", policy.ActionPseudonymise),
			edit: func(v map[string]any) { v["payment"].(map[string]any)["method"] = "OTHER" }, treated: []string{"payment.method"}},
		{name: "pseudonymise array item field", stream: one("items[].sku", policy.ActionPseudonymise),
			edit: func(v map[string]any) {
				for _, it := range items(v) {
					it["sku"] = hmacHex(it["sku"].(string))
				}
			}, treated: []string{"items[].sku"}},
		{name: "mask email", stream: one("email", policy.ActionMask),
			edit: func(v map[string]any) { v["email"] = str("j*******@example.com") }, treated: []string{"email"}},
		{name: "mask phone", stream: one("phone", policy.ActionMask),
			edit: func(v map[string]any) { v["phone"] = str("+** *** ****-**89") }, treated: []string{"phone"}},
		{name: "mask card number", stream: one("order_id", policy.ActionMask),
			in:   with(purchase, func(v map[string]any) { v["order_id"] = "4111 1111-1111 1111" }),
			edit: func(v map[string]any) { v["order_id"] = "**** ****-**** 1111" }, treated: []string{"order_id"}},
		{name: "mask other string", stream: one("shipping_address.city", policy.ActionMask),
			edit: func(v map[string]any) { address(v)["city"] = "B*****" }, treated: []string{"shipping_address.city"}},
		{name: "mask short digits", stream: one("payment.card_last4", policy.ActionMask),
			edit: func(v map[string]any) { v["payment"].(map[string]any)["card_last4"] = str("4***") }, treated: []string{"payment.card_last4"}},
		{name: "mask int falls back to remove", stream: one("items[].quantity", policy.ActionMask),
			edit: func(v map[string]any) {
				for _, it := range items(v) {
					it["quantity"] = int32(0)
				}
			}, treated: []string{"items[].quantity"}},
		{name: "truncate ipv4", stream: one("ip_address", policy.ActionTruncateIP),
			edit: func(v map[string]any) { v["ip_address"] = str("203.0.113.0") }, treated: []string{"ip_address"}},
		{name: "truncate ip already truncated", stream: one("ip_address", policy.ActionTruncateIP),
			in: with(purchase, func(v map[string]any) { v["ip_address"] = str("203.0.113.0") })},
		{name: "truncate ip of a non-ip removes (nullable)", stream: one("email", policy.ActionTruncateIP),
			edit: func(v map[string]any) { v["email"] = nil }, treated: []string{"email"}},
		{name: "truncate ip of a non-ip removes (string)", stream: one("order_id", policy.ActionTruncateIP),
			edit: func(v map[string]any) { v["order_id"] = "" }, treated: []string{"order_id"}},
		{name: "generalise hour", stream: one("occurred_at", policy.ActionGeneraliseHour),
			edit: func(v map[string]any) { v["occurred_at"] = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC) }, treated: []string{"occurred_at"}},
		{name: "generalise day", stream: one("occurred_at", policy.ActionGeneraliseDay),
			edit: func(v map[string]any) { v["occurred_at"] = time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC) }, treated: []string{"occurred_at"}},
		{name: "generalise day of a non-utc time", stream: one("occurred_at", policy.ActionGeneraliseDay),
			in: with(purchase, func(v map[string]any) {
				v["occurred_at"] = time.Date(2025, 3, 14, 23, 30, 0, 0, time.FixedZone("UTC-2", -2*3600))
			}),
			edit: func(v map[string]any) { v["occurred_at"] = time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC) }, treated: []string{"occurred_at"}},
		{name: "generalise hour of timestamp millis number", stream: one("occurred_at", policy.ActionGeneraliseHour),
			in:   with(purchase, func(v map[string]any) { v["occurred_at"] = occurred.UnixMilli() }),
			edit: func(v map[string]any) { v["occurred_at"] = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC).UnixMilli() }, treated: []string{"occurred_at"}},
		{name: "generalise string falls back to remove", stream: one("order_id", policy.ActionGeneraliseDay),
			edit: func(v map[string]any) { v["order_id"] = "" }, treated: []string{"order_id"}},
		{name: "generalise plain long falls back to remove", stream: one("total_minor", policy.ActionGeneraliseHour),
			edit: func(v map[string]any) { v["total_minor"] = int64(0) }, treated: []string{"total_minor"}},
		{name: "remove string", stream: one("order_id", policy.ActionRemove),
			edit: func(v map[string]any) { v["order_id"] = "" }, treated: []string{"order_id"}},
		{name: "remove nullable", stream: one("email", policy.ActionRemove),
			edit: func(v map[string]any) { v["email"] = nil }, treated: []string{"email"}},
		{name: "remove timestamp", stream: one("occurred_at", policy.ActionRemove),
			edit: func(v map[string]any) { v["occurred_at"] = time.UnixMilli(0).UTC() }, treated: []string{"occurred_at"}},
		{name: "remove record", stream: one("payment", policy.ActionRemove),
			edit: func(v map[string]any) {
				v["payment"] = map[string]any{"method": "OTHER", "card_brand": nil, "card_last4": nil}
			}, treated: []string{"payment"}},
		{name: "remove nullable record", stream: one("shipping_address", policy.ActionRemove),
			edit: func(v map[string]any) { v["shipping_address"] = nil }, treated: []string{"shipping_address"}},
		{name: "remove array", stream: one("items", policy.ActionRemove),
			edit: func(v map[string]any) { v["items"] = []any{} }, treated: []string{"items"}},
		{name: "remove empty array is no change", stream: one("items", policy.ActionRemove),
			in: with(purchase, func(v map[string]any) { v["items"] = []any{} })},
		{name: "category rule on a record applies to annotated sub-fields",
			stream: keepAll(categoryRule("user.contact.address", policy.ActionPseudonymise)),
			edit: func(v map[string]any) {
				a := address(v)
				for _, k := range []string{"street", "postal_code", "city", "country"} {
					a[k] = hmacHex(a[k].(string))
				}
			},
			treated: []string{"shipping_address.city", "shipping_address.country", "shipping_address.postal_code", "shipping_address.street"}},
		{name: "first matching rule wins",
			stream: keepAll(fieldRule("email", policy.ActionKeep), categoryRule("user.contact", policy.ActionRemove)),
			edit: func(v map[string]any) {
				v["phone"] = nil
				v["shipping_address"] = nil
			}, treated: []string{"phone", "shipping_address"}},
		{name: "unknown action removes", stream: one("order_id", policy.Action("scramble")),
			edit: func(v map[string]any) { v["order_id"] = "" }, treated: []string{"order_id"}},
	}
	for i := range cases {
		cases[i].schema = purchaseName
		if cases[i].in == nil {
			cases[i].in = purchase
		}
	}
	runTreatCases(t, cases)
}

func TestTreatmentsKitchen(t *testing.T) {
	t.Parallel()
	one := func(path string, a policy.Action) policy.Stream { return keepAll(fieldRule(path, a)) }
	zero := func(path string, z any) treatCase {
		return treatCase{name: "remove " + path, stream: one(path, policy.ActionRemove),
			edit: func(v map[string]any) { v[path] = z }, treated: []string{path}}
	}
	cases := []treatCase{
		zero("event_id", ""),
		zero("either", map[string]any{"string": ""}),
		zero("blob", []byte{}),
		zero("hash", []byte{0, 0, 0, 0}),
		zero("score", float32(0)),
		zero("ratio", float64(0)),
		zero("born", time.Unix(0, 0).UTC()),
		zero("seen_at", time.UnixMicro(0).UTC()),
		zero("clock", time.Duration(0)),
		zero("level", "LOW"),
		zero("tags", []any{}),
		zero("attrs", map[string]any{}),
		zero("contacts", map[string]any{}),
		zero("mixed", []any{}),
		zero("flag", false),
		zero("nested", map[string]any{
			"deep": map[string]any{"x": "", "y": nil},
			"list": []any{},
			"tag":  "none",
		}),
		zero("profile", map[string]any{
			"nickname": "", "age": int32(0), "note": nil, "email": "",
			"inner": map[string]any{"code": ""},
		}),
		{name: "pseudonymise array of strings", stream: one("tags", policy.ActionPseudonymise),
			edit: func(v map[string]any) {
				v["tags"] = []any{hmacHex("gardening"), hmacHex("203.0.113.77")}
			}, treated: []string{"tags"}},
		{name: "mask array of strings", stream: one("tags", policy.ActionMask),
			edit: func(v map[string]any) { v["tags"] = []any{"g********", "***.*.***.77"} }, treated: []string{"tags"}},
		{name: "truncate ip on array with a non-ip removes the array", stream: one("tags", policy.ActionTruncateIP),
			edit: func(v map[string]any) { v["tags"] = []any{} }, treated: []string{"tags"}},
		{name: "truncate ip on array of ips", stream: one("tags", policy.ActionTruncateIP),
			in:   with(kitchen, func(v map[string]any) { v["tags"] = []any{"203.0.113.77", "2001:db8:abcd:12::1"} }),
			edit: func(v map[string]any) { v["tags"] = []any{"203.0.113.0", "2001:db8:abcd::"} }, treated: []string{"tags"}},
		{name: "pseudonymise map hashes keys and values", stream: one("attrs", policy.ActionPseudonymise),
			edit: func(v map[string]any) { v["attrs"] = map[string]any{hmacHex("favourite"): hmacHex("roses")} }, treated: []string{"attrs"}},
		{name: "pseudonymise array of unions", stream: one("mixed", policy.ActionPseudonymise),
			edit: func(v map[string]any) { v["mixed"] = []any{nil, str(hmacHex("hello world"))} }, treated: []string{"mixed"}},
		{name: "pseudonymise union on its long branch removes", stream: one("either", policy.ActionPseudonymise),
			edit: func(v map[string]any) { v["either"] = str("") }, treated: []string{"either"}},
		{name: "pseudonymise union on its string branch", stream: one("either", policy.ActionPseudonymise),
			in:   with(kitchen, func(v map[string]any) { v["either"] = str("device-1") }),
			edit: func(v map[string]any) { v["either"] = str(hmacHex("device-1")) }, treated: []string{"either"}},
		{name: "pseudonymise bytes removes", stream: one("blob", policy.ActionPseudonymise),
			edit: func(v map[string]any) { v["blob"] = []byte{} }, treated: []string{"blob"}},
		{name: "mask fixed removes", stream: one("hash", policy.ActionMask),
			edit: func(v map[string]any) { v["hash"] = []byte{0, 0, 0, 0} }, treated: []string{"hash"}},
		{name: "mask float removes", stream: one("score", policy.ActionMask),
			edit: func(v map[string]any) { v["score"] = float32(0) }, treated: []string{"score"}},
		{name: "generalise hour timestamp micros", stream: one("seen_at", policy.ActionGeneraliseHour),
			edit: func(v map[string]any) { v["seen_at"] = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC) }, treated: []string{"seen_at"}},
		{name: "generalise day of a date changes nothing", stream: one("born", policy.ActionGeneraliseDay)},
		{name: "generalise time of day removes", stream: one("clock", policy.ActionGeneraliseHour),
			edit: func(v map[string]any) { v["clock"] = time.Duration(0) }, treated: []string{"clock"}},
		{name: "generalise enum removes", stream: one("level", policy.ActionGeneraliseDay),
			edit: func(v map[string]any) { v["level"] = "LOW" }, treated: []string{"level"}},
		{name: "pseudonymise record: unannotated sub-fields inherit",
			stream: one("profile", policy.ActionPseudonymise),
			edit: func(v map[string]any) {
				p := v["profile"].(map[string]any)
				p["nickname"] = hmacHex("janedoe")
				p["age"] = int32(0)
				p["note"] = str(hmacHex("vip customer"))
				p["inner"] = map[string]any{"code": hmacHex("secret-code")}
			},
			treated: []string{"profile.age", "profile.inner.code", "profile.nickname", "profile.note"}},
		{name: "inherited treatment yields to a field rule",
			stream: keepAll(fieldRule("profile.nickname", policy.ActionKeep), fieldRule("profile", policy.ActionMask)),
			edit: func(v map[string]any) {
				p := v["profile"].(map[string]any)
				p["age"] = int32(0)
				p["note"] = str("v***********")
				p["inner"] = map[string]any{"code": "s**********"}
			},
			treated: []string{"profile.age", "profile.inner.code", "profile.note"}},
		{name: "annotated sub-field keeps its own treatment",
			stream: keepAll(fieldRule("profile", policy.ActionMask), categoryRule("user.contact.email", policy.ActionPseudonymise)),
			edit: func(v map[string]any) {
				p := v["profile"].(map[string]any)
				p["nickname"] = "j******"
				p["age"] = int32(0)
				p["note"] = str("v***********")
				p["email"] = hmacHex("jane.doe@example.com")
				p["inner"] = map[string]any{"code": "s**********"}
			},
			treated: []string{"profile.age", "profile.email", "profile.inner.code", "profile.nickname", "profile.note"}},
		{name: "pseudonymise map of records",
			stream: one("contacts", policy.ActionPseudonymise),
			edit: func(v map[string]any) {
				v["contacts"] = map[string]any{
					hmacHex("home"): map[string]any{"phone": "+44 20 7946 0958", "label": hmacHex("landline")},
				}
			},
			treated: []string{"contacts", "contacts{}.label"}},
		{name: "field rule inside a map of records",
			stream: one("contacts{}.phone", policy.ActionMask),
			edit: func(v map[string]any) {
				v["contacts"].(map[string]any)["home"].(map[string]any)["phone"] = "+** ** **** **58"
			},
			treated: []string{"contacts{}.phone"}},
		{name: "pseudonymise nested records",
			stream: one("nested", policy.ActionPseudonymise),
			edit: func(v map[string]any) {
				v["nested"] = map[string]any{
					"deep": map[string]any{"x": "Jane", "y": nil},
					"list": []any{},
					"tag":  hmacHex("vip"),
				}
			},
			treated: []string{"nested.deep.y", "nested.list", "nested.tag"}},
		{name: "unannotated remove inside a kept record",
			stream: policy.Stream{Unannotated: policy.UnannotatedRemove, DefaultTreatment: policy.ActionKeep},
			edit: func(v map[string]any) {
				v["event_id"] = ""
				v["occurred_at"] = time.UnixMilli(0).UTC()
				v["flag"] = false
				p := v["profile"].(map[string]any)
				p["nickname"] = ""
				p["age"] = int32(0)
				p["note"] = nil
				p["inner"] = map[string]any{"code": ""}
				v["contacts"].(map[string]any)["home"].(map[string]any)["label"] = ""
				n := v["nested"].(map[string]any)
				n["deep"] = map[string]any{"x": "", "y": nil} // unannotated: removed whole
				n["list"] = []any{}
				n["tag"] = "none"
			},
			treated: []string{"contacts{}.label", "event_id", "flag", "nested.deep", "nested.list", "nested.tag",
				"occurred_at", "profile.age", "profile.inner", "profile.nickname", "profile.note"}},
	}
	for i := range cases {
		cases[i].schema = kitchenName
		if cases[i].in == nil {
			cases[i].in = kitchen
		}
	}
	runTreatCases(t, cases)
}

func TestExcluded(t *testing.T) {
	t.Parallel()
	noHealth := func(v map[string]any) { items(v)[1]["health_category"] = nil }
	pseudonymiseAll := keepAll(categoryRule("*", policy.ActionPseudonymise))
	cases := []treatCase{
		{name: "nothing excluded", mode: ModeRemoveExcluded},
		{name: "array item field", mode: ModeRemoveExcluded, excluded: []string{"user.health"},
			edit: noHealth, treated: []string{"items[].health_category"}},
		{name: "stream ignored when removing excluded", mode: ModeRemoveExcluded, excluded: []string{"user.health"},
			stream: pseudonymiseAll, edit: noHealth, treated: []string{"items[].health_category"}},
		{name: "parent category covers the record", mode: ModeRemoveExcluded, excluded: []string{"user.contact.address"},
			edit: func(v map[string]any) { v["shipping_address"] = nil }, treated: []string{"shipping_address"}},
		{name: "sub-category covers the parent-annotated record", mode: ModeRemoveExcluded, excluded: []string{"user.contact.address.street"},
			edit: func(v map[string]any) { v["shipping_address"] = nil }, treated: []string{"shipping_address"}},
		{name: "wildcard covers its own category", mode: ModeRemoveExcluded, excluded: []string{"user.health.*"},
			edit: noHealth, treated: []string{"items[].health_category"}},
		{name: "sibling category not covered", mode: ModeRemoveExcluded, excluded: []string{"user.contact.email"},
			edit: func(v map[string]any) { v["email"] = nil }, treated: []string{"email"}},
		{name: "unannotated removed on a remove stream", mode: ModeRemoveExcluded, excluded: []string{"user.health"},
			stream: policy.Stream{Unannotated: policy.UnannotatedRemove, Treatments: []policy.Treatment{{Field: "event_id", Action: policy.ActionKeep}}},
			edit: func(v map[string]any) {
				noHealth(v)
				v["currency"], v["occurred_at"] = "", time.UnixMilli(0).UTC()
			}, treated: []string{"currency", "items[].health_category", "occurred_at"}},
		{name: "wildcard", mode: ModeRemoveExcluded, excluded: []string{"user.contact.*"},
			edit: func(v map[string]any) {
				v["email"], v["phone"], v["shipping_address"] = nil, nil, nil
			}, treated: []string{"email", "phone", "shipping_address"}},
		{name: "non-null record", mode: ModeRemoveExcluded, excluded: []string{"user.financial"},
			edit: func(v map[string]any) {
				v["payment"] = map[string]any{"method": "OTHER", "card_brand": nil, "card_last4": nil}
			}, treated: []string{"payment"}},
		{name: "sub-category covers the parent-annotated non-null record", mode: ModeRemoveExcluded, excluded: []string{"user.financial.card"},
			edit: func(v map[string]any) {
				v["payment"] = map[string]any{"method": "OTHER", "card_brand": nil, "card_last4": nil}
			}, treated: []string{"payment"}},
		{name: "several patterns", mode: ModeRemoveExcluded, excluded: []string{"user.health", "user.id"},
			edit: func(v map[string]any) {
				noHealth(v)
				v["subject_id"] = ""
			}, treated: []string{"items[].health_category", "subject_id"}},
		{name: "redact mode removes excluded too", mode: ModeRedact, excluded: []string{"user.health"},
			stream: keepAll(), edit: noHealth, treated: []string{"items[].health_category"}},
		{name: "exclusion beats a keep rule", mode: ModeRedact, excluded: []string{"user.health"},
			stream: keepAll(categoryRule("user.health", policy.ActionKeep)), edit: noHealth, treated: []string{"items[].health_category"}},
		{name: "exclusion beats an inherited treatment", mode: ModeRedact, excluded: []string{"user.health"},
			stream: keepAll(fieldRule("items", policy.ActionPseudonymise)),
			edit:   func(v map[string]any) { noHealth(v) }, treated: []string{"items[].health_category"}},
	}
	for i := range cases {
		cases[i].schema = purchaseName
		cases[i].in = purchase
	}
	runTreatCases(t, cases)
}

func TestPageViewVersions(t *testing.T) {
	t.Parallel()
	pol, err := policy.Load("../policy/testdata/example.yaml")
	if err != nil {
		t.Fatalf("load example policy: %v", err)
	}
	analytics, ok := pol.Stream("compliant.analytics")
	if !ok {
		t.Fatal("example policy has no compliant.analytics stream")
	}
	common := func(v map[string]any) {
		v["subject_id"] = hmacHex("subject-1")
		v["session_id"] = ""
		v["user_agent"] = nil
	}
	cases := []treatCase{
		{name: "v1 analytics", version: 1, in: pageViewV1, stream: analytics,
			edit: func(v map[string]any) {
				common(v)
				v["ip_address"] = str("203.0.113.0")
			},
			treated: []string{"ip_address", "session_id", "subject_id", "user_agent"}},
		{name: "v2 analytics", version: 2, in: pageViewV2, stream: analytics,
			edit: func(v map[string]any) {
				common(v)
				v["ip_address"] = str("2001:db8:abcd::")
				v["device_type"] = "UNKNOWN"
			},
			treated: []string{"device_type", "ip_address", "session_id", "subject_id", "user_agent"}},
		{name: "v2 excluded location", version: 2, in: pageViewV2, mode: ModeRemoveExcluded,
			excluded: []string{"user.location"},
			edit:     func(v map[string]any) { v["geo"] = nil }, treated: []string{"geo"}},
		{name: "v1 excluded device", version: 1, in: pageViewV1, mode: ModeRemoveExcluded,
			excluded: []string{"user.device"},
			edit: func(v map[string]any) {
				v["session_id"] = ""
				v["user_agent"] = nil
				v["ip_address"] = nil
			}, treated: []string{"ip_address", "session_id", "user_agent"}},
	}
	for i := range cases {
		cases[i].schema = pageViewName
	}
	runTreatCases(t, cases)
}

func TestUnannotated(t *testing.T) {
	t.Parallel()
	remove := policy.Stream{Unannotated: policy.UnannotatedRemove, DefaultTreatment: policy.ActionKeep}
	keepID := remove
	keepID.Treatments = []policy.Treatment{fieldRule("event_id", policy.ActionKeep)}
	cases := []treatCase{
		{name: "keep", stream: keepAll()},
		{name: "remove", stream: remove,
			edit: func(v map[string]any) {
				v["event_id"], v["currency"], v["occurred_at"] = "", "", time.UnixMilli(0).UTC()
			}, treated: []string{"currency", "event_id", "occurred_at"}},
		{name: "remove but keep event_id by rule", stream: keepID,
			edit: func(v map[string]any) {
				v["currency"], v["occurred_at"] = "", time.UnixMilli(0).UTC()
			}, treated: []string{"currency", "occurred_at"}},
		{name: "zero stream removes everything", stream: policy.Stream{},
			edit: func(v map[string]any) {
				for k := range v {
					v[k] = nil
				}
				v["event_id"], v["subject_id"], v["order_id"], v["currency"] = "", "", "", ""
				v["occurred_at"] = time.UnixMilli(0).UTC()
				v["total_minor"] = int64(0)
				v["items"] = []any{}
				v["payment"] = map[string]any{"method": "OTHER", "card_brand": nil, "card_last4": nil}
			},
			treated: []string{"currency", "email", "event_id", "ip_address", "items", "occurred_at", "order_id",
				"payment", "phone", "shipping_address", "subject_id", "total_minor"}},
	}
	for i := range cases {
		cases[i].schema = purchaseName
		cases[i].in = purchase
	}
	runTreatCases(t, cases)
}

func TestEmailEngagement(t *testing.T) {
	t.Parallel()
	runTreatCases(t, []treatCase{{
		name: "mask required email, pseudonymise subject", schema: emailName, in: emailEngagement,
		stream: keepAll(categoryRule("user.contact.email", policy.ActionMask), categoryRule("user.id", policy.ActionPseudonymise),
			categoryRule("user.behavior.email", policy.ActionRemove)),
		edit: func(v map[string]any) {
			v["email"] = "j*******@example.com"
			v["subject_id"] = hmacHex("subject-3")
			v["action"] = "OPEN"
		},
		treated: []string{"action", "email", "subject_id"},
	}})
}

func TestPseudonyms(t *testing.T) {
	t.Parallel()
	s := schemaOf(t, purchaseName, 0)
	stream := keepAll(categoryRule("user.id", policy.ActionPseudonymise), categoryRule("user.contact.email", policy.ActionPseudonymise))
	in := with(purchase, func(v map[string]any) { v["email"] = str("subject-2") }) // same value as subject_id
	run := func(key []byte) map[string]any {
		r, err := New(key)
		if err != nil {
			t.Fatalf("new: %v", err)
		}
		return apply(t, r, Request{Schema: s, Value: in(), Stream: stream}).Value
	}
	a, b := run(testKey), run(testKey)
	other := run([]byte("another key, 16+ bytes long"))
	tests := []struct {
		name string
		ok   bool
	}{
		{"stable across redactors", a["subject_id"] == b["subject_id"]},
		{"equal across fields", a["subject_id"] == a["email"].(map[string]any)["string"]},
		{"expected hmac", a["subject_id"] == hmacHex("subject-2")},
		{"key dependent", a["subject_id"] != other["subject_id"]},
		{"lowercase hex of 64 digits", len(a["subject_id"].(string)) == 64 && strings.ToLower(a["subject_id"].(string)) == a["subject_id"]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !tc.ok {
				t.Error("failed")
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		key     []byte
		wantErr error
	}{
		{"nil", nil, ErrShortKey},
		{"15 bytes", []byte("0123456789abcde"), ErrShortKey},
		{"16 bytes", []byte("0123456789abcdef"), nil},
		{"32 bytes", testKey, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := New(tc.key)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if r != nil {
					t.Error("redactor returned with an error")
				}
				return
			}
			for _, form := range []string{"%v", "%+v", "%#v", "%s"} {
				if out := fmt.Sprintf(form, r); strings.Contains(out, string(tc.key)) || strings.Contains(out, fmt.Sprintf("%x", tc.key)) {
					t.Errorf("%s prints the key", form)
				}
			}
		})
	}
	t.Run("key is copied", func(t *testing.T) {
		t.Parallel()
		key := slices.Clone(testKey)
		r, err := New(key)
		if err != nil {
			t.Fatal(err)
		}
		key[0] ^= 0xFF
		if got := r.pseudonym("x"); got != hmacHex("x") {
			t.Error("changing the caller's key changed the pseudonyms")
		}
	})
}

func TestApplyErrors(t *testing.T) {
	t.Parallel()
	r := newRedactor(t)
	s := schemaOf(t, purchaseName, 0)
	secret := "Main Street 1 secret"
	pseud := keepAll(categoryRule("*", policy.ActionPseudonymise))
	tests := []struct {
		name    string
		r       *Redactor
		req     Request
		wantErr error // nil: a *MismatchError
	}{
		{"zero redactor", &Redactor{}, Request{Schema: s, Value: purchase()}, ErrNotReady},
		{"nil redactor", nil, Request{Schema: s, Value: purchase()}, ErrNotReady},
		{"no schema", r, Request{Value: purchase()}, ErrNoSchema},
		{"bad mode", r, Request{Schema: s, Value: purchase(), Mode: Mode(7)}, ErrBadMode},
		{"nil value", r, Request{Schema: s}, nil},
		{"number for a string", r, Request{Schema: s, Stream: pseud, Value: with(purchase, func(v map[string]any) { v["subject_id"] = 42 })()}, nil},
		{"string for a union", r, Request{Schema: s, Stream: keepAll(), Value: with(purchase, func(v map[string]any) { v["shipping_address"] = secret })()}, nil},
		{"unknown union branch", r, Request{Schema: s, Stream: keepAll(), Value: with(purchase, func(v map[string]any) { v["email"] = map[string]any{secret: secret} })()}, nil},
		{"string for a record", r, Request{Schema: s, Stream: keepAll(), Value: with(purchase, func(v map[string]any) { v["payment"] = secret })()}, nil},
		{"record for an array", r, Request{Schema: s, Mode: ModeRemoveExcluded, Value: with(purchase, func(v map[string]any) { v["items"] = map[string]any{"a": secret} })()}, nil},
		{"null for a non-null union", r, Request{Schema: schemaOf(t, kitchenName, 0), Stream: keepAll(), Value: with(kitchen, func(v map[string]any) { v["either"] = nil })()}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.r.Apply(tc.req)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !isMismatch(err) {
				t.Fatalf("err = %v, want a *MismatchError", err)
			}
			if strings.Contains(err.Error(), "Main Street") || strings.Contains(err.Error(), "42") {
				t.Errorf("error %q quotes a value", err)
			}
		})
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"jane.doe@example.com", "j*******@example.com"},
		{"j@example.com", "*@example.com"},
		{"@example.com", "@***********"},
		{"jane@", "j****"},
		{"+49 151 2345-6789", "+** *** ****-**89"},
		{"(030) 1234567", "(***) *****67"},
		{"4111111111111111", "************1111"},
		{"4111-1111-1111-1111", "****-****-****-1111"},
		{"4111 1111 1111 1111 123", "**** **** **** ***1 123"},
		{"+4111111111111111", "+**************11"},
		{"12345678901234567890", "******************90"},
		{"1234", "1***"},
		{"Berlin", "B*****"},
		{"Ünïcödé", "Ü******"},
		{"x", "*"},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := mask(tc.in); got != tc.want {
				t.Errorf("mask(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTruncateIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"203.0.113.77", "203.0.113.0", true},
		{"10.0.0.0", "10.0.0.0", true},
		{"2001:db8:abcd:12::1", "2001:db8:abcd::", true},
		{"2001:0db8:abcd:0012:0000:0000:0000:0001", "2001:db8:abcd::", true},
		{"fe80::1%eth0", "fe80::", true},
		{"::ffff:203.0.113.77", "::ffff:203.0.113.0", true},
		{"203.0.113.77:443", "", false},
		{"example.com", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, ok := truncateIP(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("truncateIP(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestGeneralise(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)
	hour, day := time.Hour, 24*time.Hour
	tests := []struct {
		name    string
		v       any
		logical string
		unit    time.Duration
		want    any
		ok      bool
	}{
		{"time hour", at, "timestamp-millis", hour, time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC), true},
		{"time day", at, "timestamp-millis", day, time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC), true},
		{"millis hour", at.UnixMilli(), "timestamp-millis", hour, time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC).UnixMilli(), true},
		{"millis day", at.UnixMilli(), "timestamp-millis", day, time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC).UnixMilli(), true},
		{"micros day", at.UnixMicro(), "timestamp-micros", day, time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC).UnixMicro(), true},
		{"negative millis", int64(-1), "timestamp-millis", hour, int64(-3_600_000), true},
		{"int32 millis", int32(3_600_001), "timestamp-millis", hour, int32(3_600_000), true},
		{"plain number", int64(5), "", hour, nil, false},
		{"string", "2025-03-14", "timestamp-millis", hour, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := generalise(tc.v, tc.logical, tc.unit)
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("generalise = %#v, %v; want %#v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestTreeMatchesAnnotations checks that the redactor reads the same field
// paths and categories from the schema JSON as avrocodec does.
func TestTreeMatchesAnnotations(t *testing.T) {
	t.Parallel()
	cat, kit := catalogs(t)
	for _, s := range append(cat.Schemas(), kit.Schemas()...) {
		t.Run(fmt.Sprintf("%s v%d", s.FullName, s.Version), func(t *testing.T) {
			t.Parallel()
			r := newRedactor(t)
			root, err := r.plan(s)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			got := map[string]string{}
			var walk func(n *node)
			walk = func(n *node) {
				n.children()
				for _, f := range n.fields {
					paths = append(paths, f.path)
					if f.def.Category != "" {
						got[f.path] = f.def.Category
					}
					walk(f.node)
				}
				if n.items != nil {
					walk(n.items)
				}
				if n.values != nil {
					walk(n.values)
				}
				for _, b := range n.branches {
					walk(b)
				}
			}
			walk(root)
			var want []string
			for _, fi := range s.Fields {
				want = append(want, fi.Path)
			}
			if !slices.Equal(paths, want) {
				t.Errorf("paths = %q, want %q", paths, want)
			}
			if !reflect.DeepEqual(got, s.Annotations) {
				t.Errorf("categories = %v, want %v", got, s.Annotations)
			}
		})
	}
}
