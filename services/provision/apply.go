package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
)

// Report is what apply found and did.
type Report struct {
	// Created are the topics apply created; AsPlanned those that existed
	// with the plan's partitions, replication and configuration.
	Created   []string `json:"created"`
	AsPlanned []string `json:"as_planned"`
	// Differs are topics that exist but differ from the plan: apply does
	// not change them (fewer partitions cannot be had back, and a
	// configuration may have been set on purpose); they fail the apply.
	Differs []Difference `json:"differs"`
	// ACLsAdded are the plan's ACLs apply created; ACLsPresent counts
	// those the brokers had already.
	ACLsAdded   []ACL `json:"acls_added"`
	ACLsPresent int   `json:"acls_present"`
	// Beyond are ACLs the brokers hold for a principal of the plan that
	// the plan does not have: more than least privilege. Reported, not
	// removed (another tool may own them).
	Beyond []ACL `json:"beyond_plan"`
	// ACLsSkipped: PROVISION_ACLS=false.
	ACLsSkipped bool `json:"acls_skipped"`
}

// Difference is how an existing topic differs from the plan.
type Difference struct {
	Topic    string   `json:"topic"`
	Problems []string `json:"problems"`
}

// Changed reports whether apply changed the cluster.
func (r *Report) Changed() bool { return len(r.Created) > 0 || len(r.ACLsAdded) > 0 }

// Err is the error of an apply that left the cluster differing from the
// plan: nil when every topic is as planned.
func (r *Report) Err() error {
	if len(r.Differs) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d existing topic(s) differ from the plan, and were left as they are:", len(r.Differs))
	for _, d := range r.Differs {
		fmt.Fprintf(&b, "\n  %s: %s", d.Topic, strings.Join(d.Problems, "; "))
	}
	b.WriteString("\nchange them (kafka-configs.sh --alter --entity-type topics --entity-name TOPIC --add-config NAME=VALUE; kafka-topics.sh --alter --partitions N), " +
		"or change the settings (PROVISION_PARTITIONS, PROVISION_REPLICATION_FACTOR, ...) to what the cluster has, and apply again")
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
		for _, a := range r.Beyond {
			fmt.Fprintf(w, "warning: %s holds an ACL beyond the plan (not removed): %s\n", a.Principal, a)
		}
	}
	switch {
	case len(r.Differs) > 0:
		fmt.Fprintln(w, "the cluster differs from the plan (see above)")
	case !r.Changed():
		fmt.Fprintln(w, "nothing to do: the cluster already matches the plan")
	default:
		fmt.Fprintf(w, "done: %d topic(s) created, %d ACL(s) added\n", len(r.Created), len(r.ACLsAdded))
	}
}

// Apply makes the cluster behind client hold plan: it creates the missing
// topics, reports those that exist but differ, and adds the missing ACLs
// (unless the plan's ACLs are not applied). It is idempotent: a second
// apply changes nothing and says so.
func Apply(ctx context.Context, client *kafka.Client, plan *Plan) (*Report, error) {
	r := &Report{ACLsSkipped: !plan.ACLsApplied}
	names := make([]string, len(plan.Topics))
	for i, t := range plan.Topics {
		names[i] = t.Name
	}
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
		for _, tc := range missing {
			switch e := resp.Errors[tc.Topic]; {
			case e == nil:
				r.Created = append(r.Created, tc.Topic)
			case errors.Is(e, kafka.TopicAlreadyExists):
				// Created by someone else meanwhile: check it as existing.
				t, _ := plan.topic(tc.Topic)
				present = append(present, t)
			case errors.Is(e, kafka.TopicAuthorizationFailed), errors.Is(e, kafka.ClusterAuthorizationFailed):
				return nil, fmt.Errorf("create topic %s: %w: run provision as a principal allowed to create topics and ACLs (a superuser, or Create, Describe and Alter on the cluster)", tc.Topic, e)
			case errors.Is(e, kafka.InvalidReplicationFactor):
				errs = append(errs, fmt.Errorf("create topic %s: %w: the cluster has fewer brokers than the replication factor %d; set PROVISION_REPLICATION_FACTOR (and PROVISION_MIN_INSYNC_REPLICAS) lower for a small cluster", tc.Topic, e, tc.ReplicationFactor))
			default:
				errs = append(errs, fmt.Errorf("create topic %s: %w", tc.Topic, e))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	if len(present) > 0 {
		if err := compare(ctx, client, present, existing, r); err != nil {
			return nil, err
		}
	}
	sort.Strings(r.Created)
	sort.Strings(r.AsPlanned)

	if !plan.ACLsApplied {
		return r, nil
	}
	return r, applyACLs(ctx, client, plan, r)
}

// compare checks the existing topics against the plan: partitions,
// replication factor and every planned configuration's effective value.
func compare(ctx context.Context, client *kafka.Client, topics []Topic, meta map[string]kafka.Topic, r *Report) error {
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: t.Name})
	}
	resp, err := client.DescribeConfigs(ctx, req)
	if err != nil {
		return fmt.Errorf("describe the configuration of %d existing topic(s): %w", len(topics), err)
	}
	configs := map[string]map[string]string{}
	for _, res := range resp.Resources {
		if res.Error != nil {
			return fmt.Errorf("describe the configuration of topic %s: %w", res.ResourceName, res.Error)
		}
		m := map[string]string{}
		for _, e := range res.ConfigEntries {
			m[e.ConfigName] = e.ConfigValue
		}
		configs[res.ResourceName] = m
	}
	for _, t := range topics {
		var problems []string
		mt, known := meta[t.Name]
		if known {
			if n := len(mt.Partitions); n != t.Partitions {
				problems = append(problems, fmt.Sprintf("%d partitions, the plan has %d", n, t.Partitions))
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
		if len(problems) > 0 {
			r.Differs = append(r.Differs, Difference{Topic: t.Name, Problems: problems})
		} else {
			r.AsPlanned = append(r.AsPlanned, t.Name)
		}
	}
	sort.Slice(r.Differs, func(i, j int) bool { return r.Differs[i].Topic < r.Differs[j].Topic })
	return nil
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

// applyACLs adds the plan's missing ACLs, and reports those the brokers
// hold for the plan's principals beyond it.
func applyACLs(ctx context.Context, client *kafka.Client, plan *Plan, r *Report) error {
	have, err := describeACLs(ctx, client)
	if err != nil {
		return err
	}
	planned := map[string]bool{}
	var add []ACL
	for _, a := range plan.ACLs {
		planned[a.key()] = true
		if have[a.key()] {
			r.ACLsPresent++
		} else {
			add = append(add, a)
		}
	}
	principals := map[string]bool{}
	for _, p := range plan.Principals {
		principals[p.Name] = true
	}
	for _, k := range sortedKeys(have) {
		a := fromKey(k)
		if principals[a.Principal] && !planned[k] {
			r.Beyond = append(r.Beyond, a)
		}
	}
	if len(add) == 0 {
		return nil
	}
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

// describeACLs returns the keys of every allow ACL the brokers hold.
func describeACLs(ctx context.Context, client *kafka.Client) (map[string]bool, error) {
	resp, err := client.DescribeACLs(ctx, &kafka.DescribeACLsRequest{Filter: kafka.ACLFilter{
		ResourceTypeFilter: kafka.ResourceTypeAny, ResourcePatternTypeFilter: kafka.PatternTypeAny,
		Operation: kafka.ACLOperationTypeAny, PermissionType: kafka.ACLPermissionTypeAllow,
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
	have := map[string]bool{}
	for _, res := range resp.Resources {
		rtype, ok1 := resourceName[res.ResourceType]
		pattern, ok2 := patternName[res.PatternType]
		for _, d := range res.ACLs {
			op, ok3 := operationName[d.Operation]
			if !ok1 || !ok2 || !ok3 || d.PermissionType != kafka.ACLPermissionTypeAllow {
				continue // not a kind of rule the plan has
			}
			have[ACL{Principal: d.Principal, Host: d.Host, Operation: op, ResourceType: rtype, ResourceName: res.ResourceName, PatternType: pattern}.key()] = true
		}
	}
	return have, nil
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

// fromKey is the ACL of a key (ACL.key).
func fromKey(k string) ACL {
	f := strings.Split(k, "\x00")
	return ACL{Principal: f[0], Host: f[1], Operation: f[2], ResourceType: f[3], ResourceName: f[4], PatternType: f[5]}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
