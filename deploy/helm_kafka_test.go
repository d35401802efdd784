package deploy

import (
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestChartKafkaPrincipalPerComponent: with <component>.kafka.sasl naming
// its own Secret (the one principal per service that provision plans),
// each Deployment takes KAFKA_SASL_USERNAME from and mounts the password of
// its own Secret, and KEDA's scaler authenticates as the enforcer; without
// them everything uses kafka.sasl.existingSecret, as before. A mechanism
// with neither the shared Secret nor a component's own is refused, and so
// is a component's Secret without a mechanism.
func TestChartKafkaPrincipalPerComponent(t *testing.T) {
	authOf := func(t *testing.T, r rendered, component string) (user, password string) {
		t.Helper()
		spec := deployments(t, r)[component].Spec.Template.Spec
		for _, e := range spec.Containers[0].Env {
			if e.Name == "KAFKA_SASL_USERNAME" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				user = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
			}
		}
		var vol *corev1.Volume
		for i, v := range spec.Volumes {
			if v.Name == "kafka-sasl" {
				vol = &spec.Volumes[i]
			}
		}
		if vol == nil || vol.Secret == nil || len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Path != "password" {
			t.Fatalf("%s: no kafka-sasl Secret volume with the password: %+v", component, vol)
		}
		return user, vol.Secret.SecretName + "/" + vol.Secret.Items[0].Key
	}
	kedaAuth := func(t *testing.T, r rendered) []string {
		t.Helper()
		var ta struct {
			Spec struct {
				SecretTargetRef []struct{ Parameter, Name, Key string } `json:"secretTargetRef"`
			} `json:"spec"`
		}
		r.decode(t, "TriggerAuthentication", "cg-consentgate-kafka", &ta)
		var params []string
		for _, s := range ta.Spec.SecretTargetRef {
			params = append(params, s.Parameter+"="+s.Name+"/"+s.Key)
		}
		sort.Strings(params)
		return params
	}
	withSASL := func(shared string) map[string]any {
		v := minimal()
		sasl := map[string]any{"mechanism": "SCRAM-SHA-512"}
		if shared != "" {
			sasl["existingSecret"] = shared
		}
		v["kafka"] = map[string]any{"brokers": "kafka:9093", "sasl": sasl}
		v["ledger"] = map[string]any{"enabled": true}
		return v
	}

	r := mustRender(t, withSASL("kafka-user"))
	for _, c := range []string{"enforcer", "consent-sync", "ledger"} {
		if u, p := authOf(t, r, c); u != "kafka-user/username" || p != "kafka-user/password" {
			t.Errorf("shared: %s takes user %q and password %q; want kafka-user/username and kafka-user/password", c, u, p)
		}
	}

	own := withSASL("")
	own["enforcer"] = map[string]any{"kafka": map[string]any{"sasl": map[string]any{"existingSecret": "kafka-enforcer"}},
		"autoscaling": map[string]any{"enabled": true}}
	own["consentSync"] = map[string]any{"intake": map[string]any{"tokensSecret": "cg-intake-tokens"},
		"kafka": map[string]any{"sasl": map[string]any{"existingSecret": "kafka-sync", "usernameKey": "name", "passwordKey": "pw"}}}
	own["ledger"] = map[string]any{"enabled": true, "kafka": map[string]any{"sasl": map[string]any{"existingSecret": "kafka-ledger"}}}
	r = mustRender(t, own)
	for c, want := range map[string][2]string{
		"enforcer":     {"kafka-enforcer/username", "kafka-enforcer/password"},
		"consent-sync": {"kafka-sync/name", "kafka-sync/pw"},
		"ledger":       {"kafka-ledger/username", "kafka-ledger/password"},
	} {
		if u, p := authOf(t, r, c); u != want[0] || p != want[1] {
			t.Errorf("own principals: %s takes user %q and password %q; want %v", c, u, p, want)
		}
	}
	if got, want := kedaAuth(t, r), []string{"password=kafka-enforcer/password", "username=kafka-enforcer/username"}; !slices.Equal(got, want) {
		t.Errorf("KEDA's TriggerAuthentication %v, want the enforcer's principal %v", got, want)
	}

	missing := withSASL("")
	missing["enforcer"] = map[string]any{"kafka": map[string]any{"sasl": map[string]any{"existingSecret": "kafka-enforcer"}}}
	missing["consentSync"] = map[string]any{"intake": map[string]any{"tokensSecret": "cg-intake-tokens"},
		"kafka": map[string]any{"sasl": map[string]any{"existingSecret": "kafka-sync"}}}
	if _, err := render(t, missing); err == nil || !strings.Contains(err.Error(), "ledger.kafka.sasl.existingSecret") {
		t.Errorf("a mechanism without the ledger's Secret or a shared one: err %v, want one naming ledger.kafka.sasl.existingSecret", err)
	}

	noMech := minimal()
	noMech["enforcer"] = map[string]any{"kafka": map[string]any{"sasl": map[string]any{"existingSecret": "kafka-enforcer"}}}
	if _, err := render(t, noMech); err == nil || !strings.Contains(err.Error(), "enforcer.kafka.sasl.existingSecret is set without kafka.sasl.mechanism") {
		t.Errorf("a component's SASL Secret without a mechanism: err %v, want a refusal naming it", err)
	}
}
