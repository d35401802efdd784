package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// scrapeConfig is the part of a Prometheus scrape config these tests read
// (deploy/prometheus.yml, and the collector's prometheus receiver).
type scrapeConfig struct {
	JobName       string `yaml:"job_name"`
	StaticConfigs []struct {
		Targets []string `yaml:"targets"`
	} `yaml:"static_configs"`
	DNSSDConfigs []struct {
		Names []string `yaml:"names"`
		Type  string   `yaml:"type"`
		Port  int      `yaml:"port"`
	} `yaml:"dns_sd_configs"`
}

// The collector's prometheus receiver scrapes every consentgate service
// with a telemetry port, and every replica of a replicated one: a static
// "enforcer:9464" reaches one of the two enforcers per scrape, a different
// one each time, and the collector's series mix them.
func TestCollectorScrapesEveryReplica(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "otel-collector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var col struct {
		Receivers struct {
			Prometheus struct {
				Config struct {
					ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
				} `yaml:"config"`
			} `yaml:"prometheus"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(b, &col); err != nil {
		t.Fatalf("otel-collector.yaml: %v", err)
	}
	static, dns := map[string]bool{}, map[string]bool{}
	for _, sc := range col.Receivers.Prometheus.Config.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				static[tg] = true
			}
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				if d.Type == "A" {
					dns[fmt.Sprintf("%s:%d", n, d.Port)] = true
				}
			}
		}
	}
	p := loadCompose(t)
	telemetry := map[string]string{"enforcer": "ENFORCER_TELEMETRY_ADDR", "consent-sync": "CONSENT_SYNC_TELEMETRY_ADDR", "ledger": "LEDGER_TELEMETRY_ADDR"}
	for name, s := range p.Services {
		setting, ok := telemetry[consentgateService(s)]
		if !ok {
			continue
		}
		addr := envOf(s, setting)
		port := addr[strings.LastIndex(addr, ":")+1:]
		target := name + ":" + port
		replicated := s.Scale != nil || s.Deploy != nil
		switch {
		case replicated && !dns[target]:
			t.Errorf("%s runs replicas; the collector must discover each by DNS (dns_sd_configs A %s), not %v", name, target, static[target])
		case !dns[target] && !static[target]:
			t.Errorf("the collector does not scrape %s", target)
		}
	}
}

// Grafana's admin is not admin/admin: its password comes from a file that
// init-secrets makes, mounted on its own (not the whole secrets volume), or
// nobody can log in at all.
func TestComposeGrafanaHasNoDefaultAdmin(t *testing.T) {
	p := loadCompose(t)
	g := p.Services["grafana"]
	if envOf(g, "GF_SECURITY_ADMIN_PASSWORD") != "" {
		t.Error("grafana: GF_SECURITY_ADMIN_PASSWORD inline in docker-compose.yml")
	}
	loginOff := envOf(g, "GF_AUTH_DISABLE_LOGIN_FORM") == "true" && envOf(g, "GF_AUTH_BASIC_ENABLED") == "false"
	file := envOf(g, "GF_SECURITY_ADMIN_PASSWORD__FILE")
	if file == "" {
		if !loginOff {
			t.Fatal("grafana keeps its default admin/admin: set GF_SECURITY_ADMIN_PASSWORD__FILE to a secret, or disable the login form and basic auth")
		}
		return
	}
	var mount *types.ServiceVolumeConfig
	for i, v := range g.Volumes {
		if v.Target == file {
			mount = &g.Volumes[i]
		}
	}
	if mount == nil || mount.Source != "secrets" || mount.Volume == nil || mount.Volume.Subpath == "" || !mount.ReadOnly {
		t.Fatalf("grafana: %s is not a read-only mount of one file of the secrets volume (%+v)", file, mount)
	}
	script, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "compose", "init-secrets.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), mount.Volume.Subpath) {
		t.Errorf("init-secrets.sh does not make %s", mount.Volume.Subpath)
	}
	if _, ok := g.DependsOn["init-secrets"]; !ok || g.DependsOn["init-secrets"].Condition != types.ServiceConditionCompletedSuccessfully {
		t.Error("grafana does not wait for init-secrets to finish")
	}
	for _, v := range g.Volumes {
		if v.Source == "secrets" && (v.Volume == nil || v.Volume.Subpath == "") {
			t.Error("grafana mounts the whole secrets volume")
		}
	}
}
