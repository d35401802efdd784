package deploy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestChartKeysTopicAndKEK: every component names the keys topic of
// topics.keys (the enforcer and consent-sync KEYS_TOPIC, the ledger
// LEDGER_KEYS_TOPIC); the enforcer alone gets the key-encryption key, as
// CONSENT_KEK_FILE on the Secret enforcer.kek.existingSecret names (its item
// only, not readable by others), and only when it is set; the KEK never
// inline, in no component's env.
func TestChartKeysTopicAndKEK(t *testing.T) {
	kekEnv := func(c corev1.Container) (corev1.EnvVar, bool) {
		for _, e := range c.Env {
			if e.Name == "CONSENT_KEK_FILE" || e.Name == "CONSENT_KEK" {
				return e, true
			}
		}
		return corev1.EnvVar{}, false
	}
	keysTopics := func(t *testing.T, label string, d map[string]corev1.PodSpec, want string) {
		t.Helper()
		for component, name := range map[string]string{"enforcer": "KEYS_TOPIC", "consent-sync": "KEYS_TOPIC", "ledger": "LEDGER_KEYS_TOPIC"} {
			pod, ok := d[component]
			if !ok {
				continue
			}
			got := ""
			for _, e := range pod.Containers[0].Env {
				if e.Name == name {
					got = e.Value
				}
			}
			if got != want {
				t.Errorf("%s: %s %s=%q, want %q", label, component, name, got, want)
			}
		}
	}
	pods := func(t *testing.T, vals map[string]any) map[string]corev1.PodSpec {
		t.Helper()
		r := mustRender(t, vals)
		checkPods(t, "kek", r)
		out := map[string]corev1.PodSpec{}
		for c, d := range deployments(t, r) {
			out[c] = d.Spec.Template.Spec
		}
		return out
	}

	// Without a KEK Secret: no CONSENT_KEK_FILE, no kek volume anywhere.
	for label, v := range map[string]map[string]any{"minimal": minimal(), "everything": everything()} {
		d := pods(t, v)
		for component, pod := range d {
			if e, ok := kekEnv(pod.Containers[0]); ok {
				t.Errorf("%s: %s has %s without enforcer.kek.existingSecret", label, component, e.Name)
			}
			for _, vol := range pod.Volumes {
				if vol.Name == "kek" {
					t.Errorf("%s: %s mounts a kek volume without enforcer.kek.existingSecret", label, component)
				}
			}
		}
		keysTopics(t, label, d, "consent.keys")
	}

	// With one: the enforcer reads it from the Secret's item, read-only.
	v := with(everything(), "enforcer", map[string]any{"kek": map[string]any{"existingSecret": "cg-kek", "key": "kek.txt"}})
	v["topics"] = map[string]any{"keys": "tenant.keys"}
	d := pods(t, v)
	keysTopics(t, "with a KEK", d, "tenant.keys")
	e := d["enforcer"]
	ev, ok := kekEnv(e.Containers[0])
	if !ok || ev.Name != "CONSENT_KEK_FILE" || ev.Value != "/var/run/secrets/consentgate/kek/kek.txt" {
		t.Fatalf("enforcer: %+v, want CONSENT_KEK_FILE=/var/run/secrets/consentgate/kek/kek.txt", ev)
	}
	var vol *corev1.Volume
	for i := range e.Volumes {
		if e.Volumes[i].Name == "kek" {
			vol = &e.Volumes[i]
		}
	}
	if vol == nil || vol.Secret == nil || vol.Secret.SecretName != "cg-kek" || len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Key != "kek.txt" || vol.Secret.Items[0].Path != "kek.txt" ||
		vol.Secret.DefaultMode == nil || *vol.Secret.DefaultMode&0o007 != 0 {
		t.Errorf("enforcer's kek volume %+v: want the item kek.txt of the Secret cg-kek, not readable by others", vol)
	}
	mounted := false
	for _, m := range e.Containers[0].VolumeMounts {
		if m.Name == "kek" {
			mounted = m.ReadOnly && strings.HasPrefix(ev.Value, m.MountPath+"/")
		}
	}
	if !mounted {
		t.Errorf("enforcer: the kek volume is not mounted read-only where CONSENT_KEK_FILE points: %+v", e.Containers[0].VolumeMounts)
	}
	for _, component := range []string{"consent-sync", "ledger"} {
		if ev, ok := kekEnv(d[component].Containers[0]); ok {
			t.Errorf("%s has %s: only the enforcer needs the KEK", component, ev.Name)
		}
		for _, vol := range d[component].Volumes {
			if vol.Secret != nil && vol.Secret.SecretName == "cg-kek" {
				t.Errorf("%s mounts the KEK's Secret", component)
			}
		}
	}

	// The KEK inline, or the chart's own settings, in a component's env:
	// refused, naming the variable and never the value.
	const secret = "a2VrLWlubGluZS1zZWNyZXQtOWYxYzNkNWU3YTJiNGM2ZDhl"
	for _, c := range []struct{ component, name string }{
		{"enforcer", "CONSENT_KEK"}, {"consentSync", "CONSENT_KEK"}, {"enforcer", "CONSENT_KEK_FILE"}, {"enforcer", "KEYS_TOPIC"}, {"ledger", "LEDGER_KEYS_TOPIC"},
	} {
		kv := map[string]any{"env": map[string]any{c.name: secret}}
		if c.component == "consentSync" {
			kv["intake"] = map[string]any{"tokensSecret": "cg-intake-tokens"}
		}
		if c.component == "ledger" {
			kv["enabled"] = true
		}
		_, err := render(t, with(minimal(), c.component, kv))
		if err == nil || !strings.Contains(err.Error(), c.name) || strings.Contains(err.Error(), secret) {
			t.Errorf("%s.env.%s: %v; want a refusal naming it, not its value", c.component, c.name, err)
		}
	}
	if _, err := render(t, func() map[string]any { v := minimal(); v["topics"] = map[string]any{"keys": ""}; return v }()); err == nil || !strings.Contains(err.Error(), "set topics.keys") {
		t.Errorf("topics.keys empty: %v, want a refusal", err)
	}
}
