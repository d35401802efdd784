package deploy

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestChartRedisUserPerComponent: with enforcer.redis and
// consentSync.redis each names its own Secret (its ACL user of the README's
// "Redis in production"), each Deployment takes REDIS_USERNAME from and
// mounts REDIS_PASSWORD_FILE from its own Secret, not the shared one;
// without them both use redis.existingSecret, as before.
func TestChartRedisUserPerComponent(t *testing.T) {
	authOf := func(t *testing.T, r rendered, component string) (user, volume, key string) {
		t.Helper()
		spec := deployments(t, r)[component].Spec.Template.Spec
		for _, e := range spec.Containers[0].Env {
			if e.Name == "REDIS_USERNAME" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				user = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
			}
			if e.Name == "REDIS_PASSWORD_FILE" && e.Value != "/var/run/secrets/consentgate/redis-auth/password" {
				t.Errorf("%s: REDIS_PASSWORD_FILE %q", component, e.Value)
			}
		}
		var vol *corev1.Volume
		for i, v := range spec.Volumes {
			if v.Name == "redis-auth" {
				vol = &spec.Volumes[i]
			}
		}
		if vol == nil || vol.Secret == nil || len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Path != "password" {
			t.Fatalf("%s: no redis-auth Secret volume with the password: %+v", component, vol)
		}
		mounted := false
		for _, m := range spec.Containers[0].VolumeMounts {
			mounted = mounted || (m.Name == "redis-auth" && m.MountPath == "/var/run/secrets/consentgate/redis-auth" && m.ReadOnly)
		}
		if !mounted {
			t.Errorf("%s: redis-auth not mounted read-only", component)
		}
		return user, vol.Secret.SecretName, vol.Secret.Items[0].Key
	}

	shared := minimal()
	shared["redis"] = map[string]any{"addr": "redis:6379", "existingSecret": "redis-auth", "usernameKey": "user"}
	r := mustRender(t, shared)
	for _, c := range []string{"enforcer", "consent-sync"} {
		if u, s, k := authOf(t, r, c); u != "redis-auth/user" || s != "redis-auth" || k != "password" {
			t.Errorf("shared: %s takes user %q, password %s/%s; want redis-auth/user and redis-auth/password", c, u, s, k)
		}
	}

	own := minimal()
	own["redis"] = map[string]any{"addr": "redis:6379", "existingSecret": "redis-auth", "usernameKey": "user"}
	own["enforcer"] = map[string]any{"redis": map[string]any{"existingSecret": "redis-enforcer"}}
	own["consentSync"] = map[string]any{"intake": map[string]any{"tokensSecret": "cg-intake-tokens"},
		"redis": map[string]any{"existingSecret": "redis-sync", "usernameKey": "name", "passwordKey": "pw"}}
	r = mustRender(t, own)
	for c, want := range map[string][3]string{
		"enforcer":     {"redis-enforcer/username", "redis-enforcer", "password"},
		"consent-sync": {"redis-sync/name", "redis-sync", "pw"},
	} {
		if u, s, k := authOf(t, r, c); u != want[0] || s != want[1] || k != want[2] {
			t.Errorf("own users: %s takes user %q, password %s/%s; want %v", c, u, s, k, want)
		}
	}
}
