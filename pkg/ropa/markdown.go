package ropa

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/consentgate/consentgate/pkg/policy"
)

// Markdown renders the record for people: one section per part, one table
// row per data category and outcome.
func (r *Record) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Record of processing activities\n\n")
	w("Generated from the consent policy version `%s` and the schema catalog (GDPR Art. 30(1)). ", r.PolicyVersion)
	w("Every outcome below is what the enforcer decides and the redaction does for that case, not a reading of the policy text.\n\n")

	w("## Controller\n\n")
	if r.Controller.Name == "" {
		w("Not named in the policy (add a `controller` block).\n\n")
	} else {
		w("- Name: %s\n", cell(r.Controller.Name))
		contact := r.Controller.Contact
		if contact == "" {
			contact = "(not given)"
		}
		w("- Contact: %s\n\n", cell(contact))
	}

	w("## Purposes\n\n")
	w("| purpose | description | legal bases accepted | consent |\n| --- | --- | --- | --- |\n")
	for _, p := range r.Purposes {
		c := "opt-in: only a valid grant allows it"
		if p.Consent == "opt_out" {
			c = "opt-out: allowed until the customer objects (never asked counts as allowed)"
		}
		w("| %s | %s | %s | %s |\n", p.ID, cell(p.Description), strings.Join(p.LegalBases, ", "), c)
	}
	w("\n")

	w("## Streams\n\n")
	w("Outcomes: *as is*: the event's bytes are published unchanged; *kept*: the field is unchanged in a re-encoded copy; ")
	w("*removed*: the field is removed (null, or its schema default); `pseudonymise`, `mask`, `truncate_ip`, `generalise_hour`, `generalise_day`: ")
	w("the field is published with that treatment (a value the treatment does not apply to is removed); *event dropped*: the event is not published on the stream. ")
	w("Excluding a category in a grant also covers the categories below it and above it (a field annotated `user.contact` may hold a city).\n\n")
	for _, s := range r.Streams {
		w("### %s\n\n", s.Topic)
		if s.Description != "" {
			w("%s\n\n", cell(s.Description))
		}
		w("- Purposes required (all of them): %s\n", strings.Join(s.Purposes, ", "))
		rec := "none named in the policy"
		if len(s.Recipients) > 0 {
			rec = cell(strings.Join(s.Recipients, ", "))
		}
		w("- Recipients: %s\n", rec)
		var schemas []string
		for _, sc := range s.Schemas {
			schemas = append(schemas, sc.Name+" ("+versions(sc.Versions)+")")
		}
		all := ""
		if s.AllSchemas {
			all = "every event schema: "
		}
		w("- Event schemas accepted: %s%s\n", all, strings.Join(schemas, ", "))
		w("- With consent for every purpose: published; the tables give each field's outcome\n")
		switch policy.OnMissing(s.OnMissingConsent) {
		case policy.OnMissingRedact:
			w("- Consent missing: a redacted copy is published (on_missing_consent: redact)\n")
		default:
			w("- Consent missing: the event is not published (on_missing_consent: drop)\n")
		}
		if s.ExcludedCategories == policy.ExcludedDrop {
			w("- A grant that excludes a data category the event carries: the event is not published (excluded_categories: drop)\n")
		} else {
			w("- A grant that excludes a data category the event carries: those fields are removed, the rest is published (excluded_categories: remove)\n")
		}
		if s.UnannotatedFields == policy.UnannotatedRemove {
			w("- Fields without a data category: removed on every output unless a field rule keeps them (unannotated_fields: remove)\n\n")
		} else {
			w("- Fields without a data category: kept (unannotated_fields: keep)\n\n")
		}
		w("| data category | fields | with consent | consent missing | category excluded by the grant |\n| --- | --- | --- | --- | --- |\n")
		for _, c := range s.Categories {
			for _, g := range group(c.Fields) {
				w("| %s | %s | %s | %s | %s |\n", c.Category, g.fields, outcome(g.consent), outcome(g.missing), outcome(g.excluded))
			}
		}
		w("\n")
		if len(s.Unannotated) > 0 {
			w("| fields without a data category | with consent | consent missing |\n| --- | --- | --- |\n")
			for _, g := range group(s.Unannotated) {
				w("| %s | %s | %s |\n", g.fields, outcome(g.consent), outcome(g.missing))
			}
			w("\n")
		}
	}

	w("## Record keeping\n\n")
	for _, m := range r.RecordKeeping {
		w("- `%s`: %s\n", m.Topic, m.Description)
	}
	return b.String()
}

type row struct {
	fields                     string
	consent, missing, excluded string
}

// group joins the fields with the same outcomes into one row, in the
// order of their first field.
func group(fields []Field) []row {
	var rows []row
	var lists [][]string
	for _, f := range fields {
		name := f.Schema[strings.LastIndexByte(f.Schema, '.')+1:] + " " + versions(f.Versions) + ": " + f.Path
		i := slices.IndexFunc(rows, func(r row) bool {
			return r.consent == f.WithConsent && r.missing == f.ConsentMissing && r.excluded == f.Excluded
		})
		if i < 0 {
			rows = append(rows, row{consent: f.WithConsent, missing: f.ConsentMissing, excluded: f.Excluded})
			lists = append(lists, nil)
			i = len(rows) - 1
		}
		lists[i] = append(lists[i], name)
	}
	for i := range rows {
		rows[i].fields = cell(strings.Join(lists[i], ", "))
	}
	return rows
}

func outcome(o string) string {
	switch o {
	case AsIs:
		return "as is"
	case Dropped:
		return "event dropped"
	case string(policy.ActionKeep):
		return "kept"
	case string(policy.ActionRemove):
		return "removed"
	case "":
		return ""
	}
	return "`" + o + "`"
}

// versions writes v1, v1-v2 or v1, v3.
func versions(vs []int) string {
	if len(vs) == 0 {
		return ""
	}
	contiguous := true
	for i := 1; i < len(vs); i++ {
		if vs[i] != vs[i-1]+1 {
			contiguous = false
		}
	}
	if len(vs) > 1 && contiguous {
		return "v" + strconv.Itoa(vs[0]) + "-v" + strconv.Itoa(vs[len(vs)-1])
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = "v" + strconv.Itoa(v)
	}
	return strings.Join(parts, ", ")
}

// cell makes free text safe in a table cell and on one line.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
