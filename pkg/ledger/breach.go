package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// BreachQuery selects published outputs: those of Streams (every stream
// when empty) of input events of Topics (every source topic when empty)
// processed in [From, To).
type BreachQuery struct {
	Streams []string  `json:"streams"`
	Topics  []string  `json:"topics"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
}

// BreachReport is who received what: counts first, then per subject.
type BreachReport struct {
	Query BreachQuery `json:"query"`
	// Subjects: distinct subjects; Events: distinct audit records (input
	// events; a redelivered event audited twice counts twice); Outputs:
	// published copies (an event on two streams counts twice).
	Subjects    int              `json:"subjects"`
	Events      int64            `json:"events"`
	Outputs     int64            `json:"outputs"`
	PerStream   map[string]int64 `json:"per_stream"`
	PerDecision map[string]int64 `json:"per_decision"`
	// BySubject is ordered by subject id (bytewise), streams by name.
	BySubject []BreachSubject `json:"by_subject"`
	// UnknownSchemas are the event schemas, over every subject and
	// stream, that the catalog does not hold: the data categories of
	// their events are unknown and must be assumed to be any.
	UnknownSchemas []string `json:"unknown_schemas,omitempty"`
}

// BreachSubject is what one subject's data reached.
type BreachSubject struct {
	SubjectID string         `json:"subject_id"`
	Streams   []BreachStream `json:"streams"`
}

// BreachStream is what one stream received about one subject.
type BreachStream struct {
	Stream        string           `json:"stream"`
	Events        int64            `json:"events"`
	First         time.Time        `json:"first"`
	Last          time.Time        `json:"last"`
	Decisions     map[string]int64 `json:"decisions"`
	EventSchemas  []string         `json:"event_schemas"`
	TreatedFields []string         `json:"treated_fields"`
	// Categories are the data categories the stream received, by name.
	Categories []CategoryUse `json:"categories"`
	// UnknownSchemas are event schemas the catalog does not hold: the
	// categories of their events are unknown, and must be assumed to be
	// any.
	UnknownSchemas []string `json:"unknown_schemas,omitempty"`
}

// How a category was received.
const (
	HowPassed   = "passed"
	HowRedacted = "redacted"
)

// CategoryUse is one data category a stream received: How is passed when
// at least one event carried a field of it unchanged, else redacted (every
// field of it was a treated field). PassedEvents and RedactedEvents count
// the events of each kind.
type CategoryUse struct {
	Category       string `json:"category"`
	How            string `json:"how"`
	PassedEvents   int64  `json:"passed_events"`
	RedactedEvents int64  `json:"redacted_events"`
}

// where builds the WHERE clause of q on audit_outputs.
func (q BreachQuery) where() (string, []any) {
	// processed_at is in milliseconds: an output at millisecond m happened
	// in [m, m+1), so it may lie in the window when m >= From truncated
	// and m < To rounded up (truncating To would drop an output at m with
	// m < To < m+1).
	to := q.To.UnixMilli()
	if q.To.After(time.UnixMilli(to)) {
		to++
	}
	w := "WHERE processed_at >= ? AND processed_at < ?"
	args := []any{q.From.UnixMilli(), to}
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		w += " AND " + col + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ") + ")"
		for _, v := range vals {
			args = append(args, v)
		}
	}
	in("stream", q.Streams)
	in("source_topic", q.Topics)
	return w, args
}

// Breach scopes a breach of q's outputs. The data categories come from the
// catalog of WithCatalog: those of the event schema's fields, a category
// counting as redacted in an event when all its fields were treated.
func (s *Store) Breach(ctx context.Context, q BreachQuery) (*BreachReport, error) {
	if q.From.IsZero() || q.To.IsZero() || !q.From.Before(q.To) {
		return nil, fmt.Errorf("ledger: breach: the window [from, to) must be non-empty")
	}
	where, args := q.where()
	rep := &BreachReport{Query: q, PerStream: map[string]int64{}, PerDecision: map[string]int64{}, BySubject: []BreachSubject{}}
	if err := s.db.QueryRowContext(ctx, s.d.q("SELECT COUNT(*) FROM (SELECT DISTINCT topic, partition_id, record_offset FROM audit_outputs "+
		where+") d"), args...).Scan(&rep.Events); err != nil {
		return nil, fmt.Errorf("ledger: breach: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT subject_id, stream, event_schema, decision, treated_fields, COUNT(*),
MIN(processed_at), MAX(processed_at) FROM audit_outputs `+where+`
GROUP BY subject_id, stream, event_schema, decision, treated_fields`), args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: breach: %w", err)
	}
	defer rows.Close()
	type key struct{ subject, stream string }
	groups := map[key]*breachAcc{}
	for rows.Next() {
		var subject, stream, schema, dec, treatedJSON string
		var n, first, last int64
		if err := rows.Scan(&subject, &stream, &schema, &dec, &treatedJSON, &n, &first, &last); err != nil {
			return nil, fmt.Errorf("ledger: breach: %w", err)
		}
		var treated []string
		if err := json.Unmarshal([]byte(treatedJSON), &treated); err != nil {
			return nil, fmt.Errorf("ledger: breach: treated fields: %w", err)
		}
		k := key{subject, stream}
		g := groups[k]
		if g == nil {
			g = &breachAcc{BreachStream: BreachStream{Stream: stream, Decisions: map[string]int64{}, First: time.UnixMilli(first).UTC(),
				Last: time.UnixMilli(last).UTC()}, schemas: map[string]bool{}, treated: map[string]bool{},
				cats: map[string]*CategoryUse{}, unknown: map[string]bool{}}
			groups[k] = g
		}
		g.Events += n
		g.Decisions[dec] += n
		g.First = minTime(g.First, time.UnixMilli(first).UTC())
		g.Last = maxTime(g.Last, time.UnixMilli(last).UTC())
		g.schemas[schema] = true
		for _, f := range treated {
			g.treated[f] = true
		}
		passed, redacted, known := categoriesOf(s.catalog, schema, treated)
		if !known {
			g.unknown[schema] = true
		}
		for _, c := range passed {
			cu := g.cat(c)
			cu.PassedEvents += n
		}
		for _, c := range redacted {
			cu := g.cat(c)
			cu.RedactedEvents += n
		}
		rep.Outputs += n
		rep.PerStream[stream] += n
		rep.PerDecision[dec] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: breach: %w", err)
	}
	bySubject := map[string][]BreachStream{}
	unknown := map[string]bool{}
	for k, g := range groups {
		for u := range g.unknown {
			unknown[u] = true
		}
		bs := g.BreachStream
		bs.EventSchemas, bs.TreatedFields, bs.UnknownSchemas = sortedKeys(g.schemas), sortedKeys(g.treated), sortedKeys(g.unknown)
		if len(bs.UnknownSchemas) == 0 {
			bs.UnknownSchemas = nil
		}
		bs.Categories = []CategoryUse{}
		for _, cu := range g.cats {
			cu.How = HowRedacted
			if cu.PassedEvents > 0 {
				cu.How = HowPassed
			}
			bs.Categories = append(bs.Categories, *cu)
		}
		slices.SortFunc(bs.Categories, func(a, b CategoryUse) int { return cmp.Compare(a.Category, b.Category) })
		bySubject[k.subject] = append(bySubject[k.subject], bs)
	}
	for subject, streams := range bySubject {
		slices.SortFunc(streams, func(a, b BreachStream) int { return cmp.Compare(a.Stream, b.Stream) })
		rep.BySubject = append(rep.BySubject, BreachSubject{SubjectID: subject, Streams: streams})
	}
	slices.SortFunc(rep.BySubject, func(a, b BreachSubject) int { return cmp.Compare(a.SubjectID, b.SubjectID) })
	rep.Subjects = len(rep.BySubject)
	if len(unknown) > 0 {
		rep.UnknownSchemas = sortedKeys(unknown)
	}
	return rep, nil
}

// breachAcc accumulates the groups of one subject and stream.
type breachAcc struct {
	BreachStream
	schemas, treated map[string]bool
	cats             map[string]*CategoryUse
	unknown          map[string]bool
}

func (g *breachAcc) cat(c string) *CategoryUse {
	cu := g.cats[c]
	if cu == nil {
		cu = &CategoryUse{Category: c}
		g.cats[c] = cu
	}
	return cu
}

// categoriesOf returns the data categories an event of schema carried
// unchanged (passed) and those it carried only in treated fields
// (redacted), from the catalog's reader schema of that name. A field is
// treated when its path is a treated path or lies below one. known is
// false when the catalog (or the schema in it) is missing.
func categoriesOf(cat *avrocodec.Catalog, schema string, treated []string) (passed, redacted []string, known bool) {
	if cat == nil {
		return nil, nil, false
	}
	sc, ok := cat.SchemaByName(schema)
	if !ok {
		return nil, nil, false
	}
	isTreated := func(path string) bool {
		for _, t := range treated {
			if path == t || (strings.HasPrefix(path, t) && len(path) > len(t) && strings.ContainsRune(".[{", rune(path[len(t)]))) {
				return true
			}
		}
		return false
	}
	p, r := map[string]bool{}, map[string]bool{}
	for path, c := range sc.Annotations {
		if isTreated(path) {
			r[c] = true
		} else {
			p[c] = true
		}
	}
	for c := range p {
		delete(r, c)
	}
	return sortedKeys(p), sortedKeys(r), true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
