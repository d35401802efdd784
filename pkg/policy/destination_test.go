package policy

import (
	"strings"
	"testing"
)

// destinationPolicy is a policy with one stream whose google_consent_mode
// line is gcm ("" leaves the key out).
func destinationPolicy(gcm string) string {
	text := `purposes:
  - id: ads
  - id: measurement
streams:
  - topic: google.ads
    purposes: [ads, measurement]
`
	if gcm != "" {
		text += "    google_consent_mode: " + gcm + "\n"
	}
	text += `  - topic: compliant.measurement
    purposes: [measurement]
`
	return text
}

// TestGoogleConsentModeKey: google_consent_mode is false unless a stream
// says true, reads only plain YAML booleans, and a bad value is an error
// located at its line and column that names the key.
func TestGoogleConsentModeKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		want        bool
		problem     string // "" when the policy is valid
		col         int
	}{
		{name: "absent", value: "", want: false},
		{name: "true", value: "true", want: true},
		{name: "false", value: "false", want: false},
		{name: "True (YAML 1.2 core schema)", value: "True", want: true},
		{name: "quoted", value: `"true"`, problem: "google_consent_mode must be true or false", col: 26},
		{name: "yes", value: "yes", problem: "google_consent_mode must be true or false", col: 26},
		{name: "number", value: "1", problem: "google_consent_mode must be true or false", col: 26},
		{name: "null", value: "null", problem: "google_consent_mode must be true or false", col: 26},
		{name: "empty", value: "~", problem: "google_consent_mode must be true or false", col: 26},
		{name: "list", value: "[true]", problem: "google_consent_mode must be true or false", col: 26},
		{name: "mapping", value: "{ads: true}", problem: "google_consent_mode must be true or false", col: 26},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pol, err := Parse([]byte(destinationPolicy(tc.value)), "policy.yaml")
			if tc.problem != "" {
				if err == nil {
					t.Fatalf("google_consent_mode: %s parsed", tc.value)
				}
				ps := Problems(err)
				if len(ps) != 1 {
					t.Fatalf("%d problems, want 1: %v", len(ps), err)
				}
				if p := ps[0]; p.Line != 7 || p.Column != tc.col || p.Problem != tc.problem {
					t.Fatalf("problem %q at %d:%d, want %q at 7:%d", p.Problem, p.Line, p.Column, tc.problem, tc.col)
				}
				if !strings.HasPrefix(err.Error(), "policy.yaml:7:") {
					t.Fatalf("error %q does not start with the file and line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, ok := pol.Stream("google.ads")
			if !ok {
				t.Fatal("no stream google.ads")
			}
			if s.GoogleConsentMode != tc.want {
				t.Fatalf("GoogleConsentMode %v, want %v", s.GoogleConsentMode, tc.want)
			}
			// The key is per stream: the other stream keeps the default.
			if other, _ := pol.Stream("compliant.measurement"); other.GoogleConsentMode {
				t.Fatal("google_consent_mode of one stream set another's")
			}
		})
	}
}

// TestGoogleConsentModeKeyTypo: a misspelt key is refused with a
// suggestion, and an alias is refused like everywhere else.
func TestGoogleConsentModeKeyTypo(t *testing.T) {
	t.Parallel()
	text := strings.Replace(destinationPolicy("true"), "google_consent_mode", "google_consent_mod", 1)
	_, err := Parse([]byte(text), "policy.yaml")
	if err == nil || !strings.Contains(err.Error(), "policy.yaml:7:5: unknown key \"google_consent_mod\" in stream; did you mean google_consent_mode?") {
		t.Fatalf("typo: %v", err)
	}
	text = "x: &t true\n" + destinationPolicy("*t")
	_, err = Parse([]byte(text), "policy.yaml")
	if err == nil || !strings.Contains(err.Error(), "policy.yaml:8:26: YAML aliases") {
		t.Fatalf("alias: %v", err)
	}
	// A bad google_consent_mode among other problems: every one reported,
	// the stream not kept.
	text = strings.Replace(destinationPolicy("maybe"), "[ads, measurement]", "[ads, nope]", 1)
	_, err = Parse([]byte(text), "policy.yaml")
	ps := Problems(err)
	if len(ps) != 2 || ps[0].Line != 6 || ps[1].Line != 7 || ps[1].Problem != "google_consent_mode must be true or false" {
		t.Fatalf("problems %v", err)
	}
}
