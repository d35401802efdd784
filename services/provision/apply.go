package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Report is what apply found and did.
type Report struct {
	// Created are the topics apply created; AsPlanned those that existed
	// with the plan's partitions, replication and configuration.
	Created   []string `json:"created"`
	AsPlanned []string `json:"as_planned"`
	// Differs are topics that exist (or were just created) but differ
	// from the plan: apply does not change them (fewer partitions cannot
	// be had back, and a configuration may have been set on purpose); they
	// fail the apply.
	Differs []Difference `json:"differs"`
	// ACLsAdded are the plan's ACLs apply created; ACLsPresent counts
	// those the brokers had already.
	ACLsAdded   []ACL `json:"acls_added"`
	ACLsPresent int   `json:"acls_present"`
	// Beyond are the allow rules the brokers hold beyond the plan: of a
	// principal of the plan (or User:*, which holds for each) that the
	// plan does not have, and of any other principal on the plan's topics
	// and groups (a retired or replaced stream consumer). More than least
	// privilege: they fail the apply, unless Pruned removed them.
	Beyond []ACL `json:"beyond_plan"`
	// Pruned are the rules of Beyond that apply deleted (--prune).
	Pruned []ACL `json:"pruned"`
	// Denied are deny rules (of a principal of the plan, or User:*) that
	// take away an allow of the plan: they fail the apply.
	Denied []ACL `json:"denied"`
	// LeftAlone are rules of PROVISION_UNMANAGED_PRINCIPALS on the plan's
	// topics and groups: listed, not judged.
	LeftAlone []ACL `json:"left_alone"`
	// ACLsSkipped: PROVISION_ACLS=false.
	ACLsSkipped bool `json:"acls_skipped"`
}

// Difference is how an existing topic differs from the plan.
type Difference struct {
	Topic    string   `json:"topic"`
	Problems []string `json:"problems"`
}

// Changed reports whether apply changed the cluster.
func (r *Report) Changed() bool {
	return len(r.Created) > 0 || len(r.ACLsAdded) > 0 || len(r.Pruned) > 0
}

// beyondLeft are the rules beyond the plan that are still there.
func (r *Report) beyondLeft() []ACL {
	var left []ACL
	for _, a := range r.Beyond {
		if !slices.ContainsFunc(r.Pruned, func(p ACL) bool { return p.key() == a.key() }) {
			left = append(left, a)
		}
	}
	return left
}

// Err is the error of an apply that left the cluster differing from the
// plan: nil when every topic is as planned and the brokers hold exactly
// the plan's rules.
func (r *Report) Err() error {
	var b strings.Builder
	if len(r.Differs) > 0 {
		fmt.Fprintf(&b, "%d existing topic(s) differ from the plan, and were left as they are:", len(r.Differs))
		for _, d := range r.Differs {
			fmt.Fprintf(&b, "\n  %s: %s", d.Topic, strings.Join(d.Problems, "; "))
		}
		b.WriteString("\nchange them (kafka-configs.sh --alter --entity-type topics --entity-name TOPIC --add-config NAME=VALUE; kafka-topics.sh --alter --partitions N), " +
			"or change the settings (PROVISION_PARTITIONS, PROVISION_REPLICATION_FACTOR, ...) to what the cluster has, and apply again")
	}
	if len(r.Denied) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "the cluster holds %d deny rule(s) that take away what the plan allows (a deny overrides every allow):", len(r.Denied))
		for _, a := range r.Denied {
			fmt.Fprintf(&b, "\n  %s", a)
		}
		b.WriteString("\nremove them (kafka-acls.sh --remove --deny-principal ...), or change the plan, and apply again")
	}
	if left := r.beyondLeft(); len(left) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "the cluster holds %d ACL rules beyond the plan (more than least privilege):", len(left))
		for _, a := range left {
			fmt.Fprintf(&b, "\n  %s", a)
		}
		b.WriteString("\nremove them (provision apply --prune, or PROVISION_PRUNE=true, deletes exactly these), " +
			"or, for the rules of a principal that is not consentgate's (a producer of the input topics, an operator's tool), name it in PROVISION_UNMANAGED_PRINCIPALS")
	}
	if b.Len() == 0 {
		return nil
	}
	return errors.New(b.String())
}

// PrintText writes the report as readable text.
func (r *Report) PrintText(w io.Writer) {
	for _, t := range r.Created {
		fmt.Fprintf(w, "created topic %s\n", t)
	}
	for _, t := range r.AsPlanned {
		fmt.Fprintf(w, "topic %s exists as planned\n", t)
	}
	for _, d := range r.Differs {
		fmt.Fprintf(w, "topic %s DIFFERS from the plan: %s\n", d.Topic, strings.Join(d.Problems, "; "))
	}
	if r.ACLsSkipped {
		fmt.Fprintln(w, "ACLs not applied (PROVISION_ACLS=false)")
	} else {
		for _, a := range r.ACLsAdded {
			fmt.Fprintf(w, "added ACL %s\n", a)
		}
		fmt.Fprintf(w, "%d ACL(s) of the plan were present already\n", r.ACLsPresent)
		for _, a := range r.LeftAlone {
			fmt.Fprintf(w, "left alone (PROVISION_UNMANAGED_PRINCIPALS): %s\n", a)
		}
		for _, a := range r.Denied {
			fmt.Fprintf(w, "DENY rule takes away what the plan allows: %s\n", a)
		}
		for _, a := range r.Pruned {
			fmt.Fprintf(w, "removed ACL %s (beyond the plan)\n", a)
		}
		if left := r.beyondLeft(); len(left) > 0 {
			for _, a := range left {
				fmt.Fprintf(w, "beyond the plan: %s\n", a)
			}
			fmt.Fprintf(w, "the cluster holds %d ACL rules beyond the plan (not removed: provision apply --prune removes them)\n", len(left))
		}
	}
	switch {
	case len(r.Differs) > 0 || len(r.Denied) > 0 || len(r.beyondLeft()) > 0:
		fmt.Fprintln(w, "the cluster differs from the plan (see above)")
	case !r.Changed():
		fmt.Fprintln(w, "nothing to do: the cluster already matches the plan")
	default:
		fmt.Fprintf(w, "done: %d topic(s) created, %d ACL(s) added", len(r.Created), len(r.ACLsAdded))
		if len(r.Pruned) > 0 {
			fmt.Fprintf(w, ", %d removed", len(r.Pruned))
		}
		fmt.Fprintln(w)
	}
}

// Apply makes the cluster behind client hold plan: it creates the missing
// topics, reports those that exist but differ, adds the missing ACLs
// (unless the plan's ACLs are not applied) and reports the rules beyond
// the plan and the deny rules against it. With prune it deletes the rules
// beyond the plan; without, it never deletes. It is idempotent: a second
// apply changes nothing and says so.
func Apply(ctx context.Context, client *kafka.Client, plan *Plan, prune bool) (*Report, error) {
	r := &Report{ACLsSkipped: !plan.ACLsApplied}
	names := make([]string, len(plan.Topics))
	for i, t := range plan.Topics {
		names[i] = t.Name
	}
	existing, err := metadata(ctx, client, names)
	if err != nil {
		return nil, err
	}

	var missing []kafka.TopicConfig
	var present []Topic
	for _, t := range plan.Topics {
		if _, ok := existing[t.Name]; ok {
			present = append(present, t)
			continue
		}
		tc := kafka.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: t.ReplicationFactor}
		for _, k := range sortedKeys(t.Configs) {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: t.Configs[k]})
		}
		missing = append(missing, tc)
	}
	if len(missing) > 0 {
		resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: missing})
		if err != nil {
			return nil, fmt.Errorf("create %d topic(s): %w", len(missing), err)
		}
		var errs []error
		var tooFew []string
		for _, tc := range missing {
			t, _ := plan.topic(tc.Topic)
			switch e := resp.Errors[tc.Topic]; {
			case e == nil:
				r.Created = append(r.Created, tc.Topic)
				present = append(present, t) // checked too: what the brokers made of it
			case errors.Is(e, kafka.TopicAlreadyExists):
				// Created by someone else meanwhile (perhaps with the
				// brokers' defaults): checked whole, as existing.
				present = append(present, t)
			case errors.Is(e, kafka.TopicAuthorizationFailed), errors.Is(e, kafka.ClusterAuthorizationFailed):
				return nil, fmt.Errorf("create topic %s: %w: run provision as a principal allowed to create topics and ACLs (a superuser, or Create, Describe and Alter on the cluster)", tc.Topic, e)
			case errors.Is(e, kafka.InvalidReplicationFactor):
				tooFew = append(tooFew, tc.Topic)
			default:
				errs = append(errs, fmt.Errorf("create topic %s: %w", tc.Topic, e))
			}
		}
		if len(tooFew) > 0 {
			errs = append(errs, fmt.Errorf("create topic(s) %s: %w: the cluster has fewer brokers than the replication factor %d; set PROVISION_REPLICATION_FACTOR (and PROVISION_MIN_INSYNC_REPLICAS) lower for a small cluster",
				strings.Join(tooFew, ", "), kafka.InvalidReplicationFactor, plan.Topics[0].ReplicationFactor))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	if len(present) > 0 {
		// The metadata read before creating knows neither the topics
		// created nor those found existing meanwhile (existing lacks
		// them): compare reads it again for them.
		if err := compare(ctx, client, present, existing, r); err != nil {
			return nil, err
		}
	}
	sort.Strings(r.Created)
	sort.Strings(r.AsPlanned)

	if !plan.ACLsApplied {
		return r, nil
	}
	return r, applyACLs(ctx, client, plan, prune, r)
}

// metadata returns the topics of names that exist, by name.
func metadata(ctx context.Context, client *kafka.Client, names []string) (map[string]kafka.Topic, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, fmt.Errorf("read the topics' metadata: %w", err)
	}
	existing := map[string]kafka.Topic{}
	for _, t := range meta.Topics {
		switch {
		case t.Error == nil:
			existing[t.Name] = t
		case errors.Is(t.Error, kafka.UnknownTopicOrPartition):
		case errors.Is(t.Error, kafka.TopicAuthorizationFailed):
			return nil, fmt.Errorf("topic %s: %w: run provision as a principal allowed to describe and create topics and to create ACLs (a superuser, or Alter and Create on the cluster)", t.Name, t.Error)
		default:
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
	}
	return existing, nil
}

// compare checks topics against the plan: partitions, replication factor
// and every planned configuration's effective value. It reads the
// metadata of the topics meta lacks (created, or found existing at create
// time), waiting a little for brokers that do not know them yet. A topic
// that is as planned is reported so unless apply created it.
func compare(ctx context.Context, client *kafka.Client, topics []Topic, meta map[string]kafka.Topic, r *Report) error {
	var unknown []string
	for _, t := range topics {
		if _, ok := meta[t.Name]; !ok {
			unknown = append(unknown, t.Name)
		}
	}
	known := maps.Clone(meta)
	for wait := 50 * time.Millisecond; len(unknown) > 0; wait *= 2 {
		found, err := metadata(ctx, client, unknown)
		if err != nil {
			return err
		}
		var still []string
		for _, n := range unknown {
			if t, ok := found[n]; ok && len(t.Partitions) > 0 {
				known[n] = t
			} else {
				still = append(still, n)
			}
		}
		unknown = still
		if len(unknown) == 0 || wait > 3*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("read the metadata of topic(s) %s: %w", strings.Join(unknown, ", "), ctx.Err())
		case <-time.After(wait):
		}
	}

	configs, err := describeConfigs(ctx, client, topics)
	if err != nil {
		return err
	}
	for _, t := range topics {
		var problems []string
		if mt, ok := known[t.Name]; !ok {
			problems = append(problems, "not in the brokers' metadata: its partitions and replication factor cannot be checked")
		} else {
			if n := len(mt.Partitions); n != t.Partitions {
				if t.FixedPartitions {
					problems = append(problems, fmt.Sprintf("%d partitions, the plan has %d: this topic's partition count must never change (each subject's keys and erasures are ordered in one partition); do not alter the topic, set PROVISION_SMALL_PARTITIONS=%d", n, t.Partitions, n))
				} else {
					problems = append(problems, fmt.Sprintf("%d partitions, the plan has %d", n, t.Partitions))
				}
			}
			if rf := replication(mt); rf != t.ReplicationFactor {
				problems = append(problems, fmt.Sprintf("replication factor %d, the plan has %d", rf, t.ReplicationFactor))
			}
		}
		have, ok := configs[t.Name]
		if !ok {
			return fmt.Errorf("describe the configuration of topic %s: not in the brokers' answer", t.Name)
		}
		for _, k := range sortedKeys(t.Configs) {
			v, set := have[k]
			switch {
			case !set:
				problems = append(problems, fmt.Sprintf("%s not reported, the plan has %s", k, t.Configs[k]))
			case !sameValue(k, v, t.Configs[k]):
				problems = append(problems, fmt.Sprintf("%s=%s, the plan has %s", k, v, t.Configs[k]))
			}
		}
		switch {
		case len(problems) > 0:
			r.Differs = append(r.Differs, Difference{Topic: t.Name, Problems: problems})
		case !slices.Contains(r.Created, t.Name):
			r.AsPlanned = append(r.AsPlanned, t.Name)
		}
	}
	sort.Slice(r.Differs, func(i, j int) bool { return r.Differs[i].Topic < r.Differs[j].Topic })
	return nil
}

// describeConfigs returns the configuration of each topic, asking again
// for a little while about topics the brokers do not know yet (just
// created: a broker learns of a new topic shortly after).
func describeConfigs(ctx context.Context, client *kafka.Client, topics []Topic) (map[string]map[string]string, error) {
	configs := map[string]map[string]string{}
	pending := make([]string, len(topics))
	for i, t := range topics {
		pending[i] = t.Name
	}
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		req := &kafka.DescribeConfigsRequest{}
		for _, n := range pending {
			req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: n})
		}
		resp, err := client.DescribeConfigs(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("describe the configuration of %d topic(s): %w", len(pending), err)
		}
		var again []string
		for _, res := range resp.Resources {
			switch {
			case res.Error == nil:
			case errors.Is(res.Error, kafka.UnknownTopicOrPartition) && wait <= 3*time.Second:
				again = append(again, res.ResourceName)
				continue
			default:
				return nil, fmt.Errorf("describe the configuration of topic %s: %w", res.ResourceName, res.Error)
			}
			m := map[string]string{}
			for _, e := range res.ConfigEntries {
				m[e.ConfigName] = e.ConfigValue
			}
			configs[res.ResourceName] = m
		}
		if pending = again; len(pending) == 0 {
			return configs, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("describe the configuration of topic(s) %s: %w", strings.Join(pending, ", "), ctx.Err())
		case <-time.After(wait):
		}
	}
}

// sameValue compares a configuration value: numbers as numbers (a
// negative retention is -1 to every broker), lists as sets.
func sameValue(name, have, want string) bool {
	if have == want {
		return true
	}
	if name == "retention.ms" || name == "retention.bytes" {
		h, err1 := strconv.ParseInt(have, 10, 64)
		w, err2 := strconv.ParseInt(want, 10, 64)
		return err1 == nil && err2 == nil && (h == w || (h < 0 && w < 0))
	}
	if name == "cleanup.policy" {
		return strings.ReplaceAll(have, " ", "") == want
	}
	return false
}

// replication is the replication factor of t: the replicas of its first
// partition (every partition of a topic made by CreateTopics has as many).
func replication(t kafka.Topic) int {
	if len(t.Partitions) == 0 {
		return 0
	}
	n := len(t.Partitions[0].Replicas)
	for _, p := range t.Partitions[1:] {
		n = min(n, len(p.Replicas))
	}
	return n
}

// applyACLs adds the plan's missing ACLs; reports the rules beyond the
// plan (and with prune deletes them) and the deny rules against it.
func applyACLs(ctx context.Context, client *kafka.Client, plan *Plan, prune bool, r *Report) error {
	have, err := describeACLs(ctx, client)
	if err != nil {
		return err
	}
	var add []ACL
	for _, a := range plan.ACLs {
		if _, ok := have.allow[a.key()]; ok {
			r.ACLsPresent++
		} else {
			add = append(add, a)
		}
	}
	r.Beyond, r.LeftAlone = beyondPlan(plan, have)
	r.Denied = deniedByRules(plan, have.deny)

	if len(add) > 0 {
		if err := createACLs(ctx, client, add, r); err != nil {
			return err
		}
	}
	if prune && len(r.Beyond) > 0 {
		return pruneACLs(ctx, client, have, r)
	}
	return nil
}

func createACLs(ctx context.Context, client *kafka.Client, add []ACL, r *Report) error {
	req := &kafka.CreateACLsRequest{}
	for _, a := range add {
		req.ACLs = append(req.ACLs, entry(a))
	}
	resp, err := client.CreateACLs(ctx, req)
	if err != nil {
		return fmt.Errorf("create %d ACL(s): %w", len(add), err)
	}
	if len(resp.Errors) != len(add) {
		return fmt.Errorf("create %d ACL(s): %d results in the brokers' answer", len(add), len(resp.Errors))
	}
	var errs []error
	for i, e := range resp.Errors {
		switch {
		case e == nil:
			r.ACLsAdded = append(r.ACLsAdded, add[i])
		case errors.Is(e, kafka.SecurityDisabled):
			return fmt.Errorf("create ACLs: %w: the cluster has no authorizer; configure one (authorizer.class.name) or set PROVISION_ACLS=false to create only the topics", e)
		case errors.Is(e, kafka.ClusterAuthorizationFailed):
			return fmt.Errorf("create ACLs: %w: run provision as a principal allowed to create ACLs (a superuser, or Alter on the cluster)", e)
		default:
			errs = append(errs, fmt.Errorf("create ACL %s: %w", add[i], e))
		}
	}
	return errors.Join(errs...)
}

// pruneACLs deletes the rules of r.Beyond, each with a filter that
// matches it exactly (its own resource, pattern, principal, host,
// operation and permission), and reports those deleted in r.Pruned.
func pruneACLs(ctx context.Context, client *kafka.Client, have *heldACLs, r *Report) error {
	req := &kafka.DeleteACLsRequest{}
	for _, a := range r.Beyond {
		req.Filters = append(req.Filters, have.raw[a.key()])
	}
	resp, err := client.DeleteACLs(ctx, req)
	if err != nil {
		return fmt.Errorf("delete %d ACL(s) beyond the plan: %w", len(r.Beyond), err)
	}
	if len(resp.Results) != len(r.Beyond) {
		return fmt.Errorf("delete %d ACL(s) beyond the plan: %d results in the brokers' answer", len(r.Beyond), len(resp.Results))
	}
	var errs []error
	for i, res := range resp.Results {
		a := r.Beyond[i]
		switch e := res.Error; {
		case e == nil:
		case errors.Is(e, kafka.ClusterAuthorizationFailed):
			return fmt.Errorf("delete ACLs: %w: run provision as a principal allowed to delete ACLs (a superuser, or Alter on the cluster)", e)
		default:
			errs = append(errs, fmt.Errorf("delete ACL %s: %w", a, e))
			continue
		}
		deleted := false
		for _, m := range res.MatchingACLs {
			if m.Error != nil {
				errs = append(errs, fmt.Errorf("delete ACL %s: %w", a, m.Error))
			} else {
				deleted = true
			}
		}
		if deleted {
			r.Pruned = append(r.Pruned, a)
		}
	}
	return errors.Join(errs...)
}

// heldACLs are the rules the brokers hold: the allow rules by key (with
// the exact filter of each, to delete it), and the deny rules.
type heldACLs struct {
	allow map[string]ACL
	raw   map[string]kafka.DeleteACLsFilter
	deny  []ACL
}

// describeACLs reads every rule the brokers hold, allow and deny, of
// every resource, pattern and operation type.
func describeACLs(ctx context.Context, client *kafka.Client) (*heldACLs, error) {
	resp, err := client.DescribeACLs(ctx, &kafka.DescribeACLsRequest{Filter: kafka.ACLFilter{
		ResourceTypeFilter: kafka.ResourceTypeAny, ResourcePatternTypeFilter: kafka.PatternTypeAny,
		Operation: kafka.ACLOperationTypeAny, PermissionType: kafka.ACLPermissionTypeAny,
	}})
	if err != nil {
		return nil, fmt.Errorf("describe the ACLs: %w", err)
	}
	if resp.Error != nil {
		switch {
		case errors.Is(resp.Error, kafka.SecurityDisabled):
			return nil, fmt.Errorf("describe the ACLs: %w: the cluster has no authorizer; configure one (authorizer.class.name) or set PROVISION_ACLS=false to create only the topics", resp.Error)
		case errors.Is(resp.Error, kafka.ClusterAuthorizationFailed):
			return nil, fmt.Errorf("describe the ACLs: %w: run provision as a principal allowed to describe and create ACLs (a superuser, or Describe and Alter on the cluster)", resp.Error)
		}
		return nil, fmt.Errorf("describe the ACLs: %w", resp.Error)
	}
	h := &heldACLs{allow: map[string]ACL{}, raw: map[string]kafka.DeleteACLsFilter{}}
	for _, res := range resp.Resources {
		for _, d := range res.ACLs {
			// Every rule is kept, of a kind the plan has or not: one
			// the plan does not know is beyond it, never skipped.
			a := ACL{Principal: d.Principal, Host: d.Host, Operation: nameOf(operationName, d.Operation, "OPERATION"),
				ResourceType: nameOf(resourceName, res.ResourceType, "RESOURCE"), ResourceName: res.ResourceName, PatternType: nameOf(patternName, res.PatternType, "PATTERN")}
			switch d.PermissionType {
			case kafka.ACLPermissionTypeAllow:
				h.allow[a.key()] = a
				h.raw[a.key()] = kafka.DeleteACLsFilter{ResourceTypeFilter: res.ResourceType, ResourceNameFilter: res.ResourceName, ResourcePatternTypeFilter: res.PatternType,
					PrincipalFilter: d.Principal, HostFilter: d.Host, Operation: d.Operation, PermissionType: d.PermissionType}
			case kafka.ACLPermissionTypeDeny:
				a.Permission = PermissionDeny
				h.deny = append(h.deny, a)
			}
		}
	}
	sort.Slice(h.deny, func(i, j int) bool { return h.deny[i].key() < h.deny[j].key() })
	return h, nil
}

// nameOf is Kafka's name of v, or kind(v) for a value this build does not
// know.
func nameOf[K ~int8](names map[K]string, v K, kind string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprintf("%s(%d)", kind, v)
}

// resource is a resource pattern of an ACL.
type resource struct{ typ, name, pattern string }

func (a ACL) resource() resource { return resource{a.ResourceType, a.ResourceName, a.PatternType} }

// overlaps reports whether some resource name matches both a and b:
// the same type, and literal names equal (or one the wildcard *), or a
// literal name under a prefix, or two prefixes one of which starts the
// other.
func overlaps(a, b resource) bool {
	if a.typ != b.typ {
		return false
	}
	wild := func(x resource) bool { return x.pattern == PatternLiteral && x.name == "*" }
	if wild(a) || wild(b) {
		return true
	}
	switch {
	case a.pattern == PatternLiteral && b.pattern == PatternLiteral:
		return a.name == b.name
	case a.pattern == PatternLiteral && b.pattern == PatternPrefixed:
		return strings.HasPrefix(a.name, b.name)
	case a.pattern == PatternPrefixed && b.pattern == PatternLiteral:
		return strings.HasPrefix(b.name, a.name)
	case a.pattern == PatternPrefixed && b.pattern == PatternPrefixed:
		return strings.HasPrefix(a.name, b.name) || strings.HasPrefix(b.name, a.name)
	}
	return false
}

// beyondPlan returns the allow rules the brokers hold beyond the plan:
// every rule not planned of a principal of the plan or of User:*, and
// every rule not planned on the plan's topics and groups, whoever holds it
// (a retired or replaced stream consumer). The topics the services (the
// enforcer, consent-sync, the ledger) may write beyond the plan (a stream
// dropped from the policy) count as the plan's: their readers read
// consentgate's output. The rules of
// PROVISION_UNMANAGED_PRINCIPALS on the plan's resources are returned
// apart (leftAlone).
func beyondPlan(plan *Plan, have *heldACLs) (beyond, leftAlone []ACL) {
	planned := map[string]bool{}
	for _, a := range plan.ACLs {
		planned[a.key()] = true
	}
	principals := map[string]bool{WildcardPrincipal: true}
	services := map[string]bool{} // the enforcer, consent-sync, the ledger
	for _, p := range plan.Principals {
		principals[p.Name] = true
		if !strings.HasPrefix(p.Role, "consumer of ") {
			services[p.Name] = true
		}
	}
	var resources []resource
	seen := map[resource]bool{}
	addResource := func(x resource) {
		if !seen[x] {
			seen[x] = true
			resources = append(resources, x)
		}
	}
	for _, t := range plan.Topics {
		addResource(resource{ResourceTopic, t.Name, PatternLiteral})
	}
	for _, a := range plan.ACLs {
		addResource(a.resource())
	}
	keys := sortedKeys(have.allow)
	for _, k := range keys {
		a := have.allow[k]
		if !planned[k] && services[a.Principal] && a.ResourceType == ResourceTopic &&
			a.PatternType == PatternLiteral && a.ResourceName != "*" && (a.Operation == OpWrite || a.Operation == "ALL") {
			addResource(a.resource())
		}
	}
	onPlan := func(x resource) bool {
		for _, y := range resources {
			if overlaps(x, y) {
				return true
			}
		}
		return false
	}
	for _, k := range keys {
		a := have.allow[k]
		switch {
		case planned[k]:
		case principals[a.Principal]:
			beyond = append(beyond, a)
		case !onPlan(a.resource()):
		case slices.Contains(plan.Unmanaged, a.Principal):
			leftAlone = append(leftAlone, a)
		default:
			beyond = append(beyond, a)
		}
	}
	return beyond, leftAlone
}

// deniedByRules returns the deny rules that take away an allow of the
// plan: of its principal or of User:*, from its host or any (or any
// allow of the plan's from every host), for its operation, ALL, or
// DESCRIBE (which READ and WRITE need), on a resource pattern that
// matches its resource.
func deniedByRules(plan *Plan, deny []ACL) []ACL {
	var out []ACL
	for _, d := range deny {
		for _, a := range plan.ACLs {
			who := d.Principal == a.Principal || d.Principal == WildcardPrincipal
			host := d.Host == "*" || d.Host == a.Host || a.Host == "*"
			op := d.Operation == a.Operation || d.Operation == "ALL" ||
				d.Operation == OpDescribe && (a.Operation == OpRead || a.Operation == OpWrite)
			if who && host && op && overlaps(d.resource(), a.resource()) {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

var (
	resourceName  = map[kafka.ResourceType]string{kafka.ResourceTypeTopic: ResourceTopic, kafka.ResourceTypeGroup: ResourceGroup, kafka.ResourceTypeCluster: "CLUSTER", kafka.ResourceTypeTransactionalID: "TRANSACTIONAL_ID"}
	patternName   = map[kafka.PatternType]string{kafka.PatternTypeLiteral: PatternLiteral, kafka.PatternTypePrefixed: PatternPrefixed}
	operationName = map[kafka.ACLOperationType]string{
		kafka.ACLOperationTypeAll: "ALL", kafka.ACLOperationTypeRead: OpRead, kafka.ACLOperationTypeWrite: OpWrite,
		kafka.ACLOperationTypeCreate: "CREATE", kafka.ACLOperationTypeDelete: "DELETE", kafka.ACLOperationTypeAlter: "ALTER",
		kafka.ACLOperationTypeDescribe: OpDescribe, kafka.ACLOperationTypeClusterAction: "CLUSTER_ACTION",
		kafka.ACLOperationTypeDescribeConfigs: OpDescribeConfigs, kafka.ACLOperationTypeAlterConfigs: "ALTER_CONFIGS",
		kafka.ACLOperationTypeIdempotentWrite: "IDEMPOTENT_WRITE",
	}
)

// entry is a as kafka-go's ACLEntry.
func entry(a ACL) kafka.ACLEntry {
	e := kafka.ACLEntry{ResourceName: a.ResourceName, Principal: a.Principal, Host: a.Host, PermissionType: kafka.ACLPermissionTypeAllow}
	for k, v := range resourceName {
		if v == a.ResourceType {
			e.ResourceType = k
		}
	}
	for k, v := range patternName {
		if v == a.PatternType {
			e.ResourcePatternType = k
		}
	}
	for k, v := range operationName {
		if v == a.Operation {
			e.Operation = k
		}
	}
	return e
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
