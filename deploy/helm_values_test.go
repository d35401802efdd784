package deploy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
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

// networkPolicy.egressPorts adds a port for every component; the ledger's
// database port is opened for the ledger only, and only on PostgreSQL.
func TestChartNetworkPolicyExtraAndDatabasePorts(t *testing.T) {
	v := everything()
	v["networkPolicy"] = map[string]any{"egressPorts": []any{9999}}
	v["ledger"].(map[string]any)["dsnSecret"] = "ledger-dsn"
	v["ledger"].(map[string]any)["databasePort"] = 6432
	r := mustRender(t, v)
	for _, c := range []string{"enforcer", "consent-sync", "ledger"} {
		open := egressPorts(networkPolicy(t, r, c))
		if !open[9999] {
			t.Errorf("%s: networkPolicy.egressPorts 9999 not opened (%v)", c, open)
		}
		if open[6432] != (c == "ledger") {
			t.Errorf("%s: ledger.databasePort 6432 opened %v", c, open[6432])
		}
	}
	if egressPorts(networkPolicy(t, mustRender(t, everything()), "ledger"))[5432] {
		t.Error("the ledger on SQLite may reach PostgreSQL's port")
	}
	bad := minimal()
	bad["telemetry"] = map[string]any{"otlpEndpoint": "otel-collector:4318"}
	refuses(t, "an OTLP endpoint that is no URL", bad, "telemetry.otlpEndpoint")
}
