package deploy

import (
	corev1 "k8s.io/api/core/v1"

	"strings"
	"testing"
)

// <component>.env passes a setting the chart has no value for, and refuses
// one that would undo what the chart's values set (the intake's
// authentication), naming the variable.
func TestChartComponentEnvPassesTuningAndRefusesOverrides(t *testing.T) {
	v := with(minimal(), "enforcer", map[string]any{"env": map[string]any{"ENFORCER_MAX_WAIT": "100ms"}})
	env := containerEnv(map[string]corev1.EnvVar{}, deployments(t, mustRender(t, v))["enforcer"].Spec.Template.Spec.Containers[0])
	if env["ENFORCER_MAX_WAIT"].Value != "100ms" {
		t.Errorf("enforcer.env.ENFORCER_MAX_WAIT did not reach the pod: %+v", env["ENFORCER_MAX_WAIT"])
	}
	for name, value := range map[string]string{"CONSENT_INTAKE_INSECURE": "true", "CONSENT_INTAKE_TOKENS_FILE": "/tmp/t", "KAFKA_TLS": "false"} {
		v := with(minimal(), "consentSync", map[string]any{"intake": map[string]any{"tokensSecret": "cg-intake-tokens"},
			"env": map[string]any{name: value}})
		refuses(t, "consentSync.env."+name, v, "consentSync.env."+name)
	}
	v = with(minimal(), "enforcer", map[string]any{"env": map[string]any{"SOME_ENDPOINT": "https://user:hunter2hunter2@example.com/"}})
	_, err := render(t, v)
	if err == nil || !strings.Contains(err.Error(), "enforcer.env.SOME_ENDPOINT") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a URL with a password in enforcer.env: %v, want a refusal naming the variable and not the password", err)
	}
}
