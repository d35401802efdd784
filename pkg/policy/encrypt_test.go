package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseEncryptBad(t *testing.T) {
	t.Parallel()
	rules := minimal + "    treatments:\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"encryption on another action", rules + "      - category: user.id\n        action: mask\n        encryption: deterministic\n",
			[]string{"8:9: encryption is only for action encrypt, not mask"}},
		{"encryption before the action it does not fit", rules + "      - field: email\n        encryption: randomised\n        action: keep\n",
			[]string{"7:9: encryption is only for action encrypt, not keep"}},
		{"bad encryption value", rules + "      - category: user.contact.email\n        action: encrypt\n        encryption: aes\n",
			[]string{`8:21: bad encryption "aes": allowed values are deterministic, randomised`}},
		{"british or american spelling is not guessed", rules + "      - category: user.contact.email\n        action: encrypt\n        encryption: randomized\n",
			[]string{`8:21: bad encryption "randomized": allowed values are deterministic, randomised`}},
		{"empty encryption", rules + "      - category: user.contact.email\n        action: encrypt\n        encryption:\n",
			[]string{"8:20: encryption is empty"}},
		{"encryption without action", rules + "      - category: user.contact.email\n        encryption: deterministic\n",
			[]string{"6:9: treatment has no action"}},
		{"typo of the key", rules + "      - category: user.contact.email\n        action: encrypt\n        encrypton: deterministic\n",
			[]string{`8:9: unknown key "encrypton" in treatment; did you mean encryption? (allowed: category, field, action, encryption)`}},
		{"bad default_treatment lists encrypt", minimal + "    default_treatment: hash\n",
			[]string{`5:24: bad default_treatment "hash": allowed values are remove, pseudonymise, mask, truncate_ip, generalise_hour, generalise_day, keep, encrypt`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pol, err := Parse([]byte(tt.in), src)
			if err == nil || pol != nil {
				t.Fatalf("Parse = %v, %v; want problems %q", pol, err, tt.want)
			}
			var got []string
			for _, p := range Problems(err) {
				got = append(got, p.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], src+":"+w) {
					t.Errorf("problem %d:\ngot  %s\nwant %s:%s...", i, got[i], src, w)
				}
			}
		})
	}
}

func TestParseEncryptGood(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(minimal+`    treatments:
      - category: user.contact.email
        action: encrypt
        encryption: deterministic
      - field: shipping_address.street
        action: encrypt
      - field: notes
        action: encrypt
        encryption: randomised
      - category: user.id
        action: pseudonymise
  - topic: t2
    purposes: [marketing]
    default_treatment: encrypt
  - topic: t3
    purposes: [marketing]
`), src)
	if err != nil {
		t.Fatal(err)
	}
	want := []Treatment{
		{Category: "user.contact.email", Action: ActionEncrypt, Encryption: EncryptDeterministic, Line: 6},
		{Field: "shipping_address.street", Action: ActionEncrypt, Encryption: EncryptRandomised, Line: 9},
		{Field: "notes", Action: ActionEncrypt, Encryption: EncryptRandomised, Line: 11},
		{Category: "user.id", Action: ActionPseudonymise, Line: 14},
	}
	if got := p.Streams[0].Treatments; !reflect.DeepEqual(got, want) {
		t.Errorf("treatments\n got %+v\nwant %+v", got, want)
	}
	if !p.Encrypts() || !p.Streams[0].Encrypts() {
		t.Error("a policy with encrypt rules does not say it encrypts")
	}
	s2, _ := p.Stream("t2")
	if s2.DefaultTreatment != ActionEncrypt || !s2.Encrypts() || len(s2.Treatments) != 0 {
		t.Errorf("default_treatment: encrypt parsed as %+v", s2)
	}
	if _, ok := s2.EncryptionFor("email", "user.contact.email"); ok {
		t.Error("default_treatment: encrypt counts as an every-output rule")
	}
	if a := s2.TreatmentFor("email", "user.contact.email"); a != ActionEncrypt {
		t.Errorf("redacting with default_treatment encrypt gives %q", a)
	}
	s3, _ := p.Stream("t3")
	if s3.Encrypts() {
		t.Error("a stream without encrypt says it encrypts")
	}
	plain, err := Parse([]byte(minimal+"    treatments:\n      - category: user.id\n        action: pseudonymise\n"), src)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Encrypts() || (*Policy)(nil).Encrypts() {
		t.Error("a policy without encrypt says it encrypts")
	}
}

func TestEncryptionFor(t *testing.T) {
	t.Parallel()
	s := Stream{
		Unannotated: UnannotatedRemove,
		Treatments: []Treatment{
			{Field: "contact.email", Action: ActionKeep},
			{Category: "user.contact.email", Action: ActionEncrypt, Encryption: EncryptDeterministic},
			{Category: "user.contact.*", Action: ActionEncrypt, Encryption: EncryptRandomised},
			{Field: "notes", Action: ActionEncrypt, Encryption: EncryptRandomised},
			{Category: "user.health", Action: ActionMask},
			{Field: "diagnosis", Action: ActionEncrypt},
			{Category: "user.id", Action: ActionEncrypt}, // Encryption unset: built by hand, not parsed
		},
		DefaultTreatment: ActionEncrypt,
	}
	tests := []struct {
		name, path, category string
		want                 Encryption
		ok                   bool
	}{
		{"category rule, deterministic", "email", "user.contact.email", EncryptDeterministic, true},
		{"sub-category", "email", "user.contact.email.work", EncryptDeterministic, true},
		{"prefix rule, randomised", "phone", "user.contact.phone", EncryptRandomised, true},
		{"an earlier field rule keeps", "contact.email", "user.contact.email", "", false},
		{"field rule on an unannotated field", "notes", "", EncryptRandomised, true},
		{"field rule on an annotated field", "notes", "user.behavior.browsing", EncryptRandomised, true},
		{"an earlier category rule masks", "diagnosis", "user.health", "", false},
		{"field rule after a non-matching category", "diagnosis", "user.demographic.age", EncryptRandomised, true},
		{"unset mode is randomised", "id", "user.id", EncryptRandomised, true},
		{"no rule: the encrypt default does not count", "age", "user.demographic.age", "", false},
		{"unannotated without a rule", "event_id", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := s.EncryptionFor(tt.path, tt.category)
			if got != tt.want || ok != tt.ok {
				t.Errorf("EncryptionFor(%q, %q) = %q, %v; want %q, %v", tt.path, tt.category, got, ok, tt.want, tt.ok)
			}
			// The every-output rule is the redaction's rule too.
			if ok && s.TreatmentFor(tt.path, tt.category) != ActionEncrypt {
				t.Errorf("EncryptionFor says encrypt, TreatmentFor says %q", s.TreatmentFor(tt.path, tt.category))
			}
		})
	}
}
