package shred

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The settings say what to set, and no error shows a key, inline or from
// its file.
func TestSettings(t *testing.T) {
	line := newKEKLine(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "kek")
	if err := os.WriteFile(good, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("c2VjcmV0LXNlY3JldA==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		s       Settings
		needKEK bool
		want    string // "" : valid
	}{
		{"consent-sync needs nothing", Settings{Topic: DefaultTopic}, false, ""},
		{"no topic and no encryption", Settings{}, false, ""},
		{"encrypting policy without a KEK", Settings{Topic: DefaultTopic}, true, "set CONSENT_KEK_FILE"},
		{"encrypting policy without a topic", Settings{KEKFile: good}, true, "KEYS_TOPIC is empty"},
		{"both KEK settings", Settings{Topic: DefaultTopic, KEKFile: good, KEK: line}, true, "set only one"},
		{"negative rotation", Settings{Topic: DefaultTopic, KEKFile: good, RotateAfter: -1}, true, "KEYS_ROTATE_AFTER"},
	} {
		err := tc.s.Validate(tc.needKEK)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		case err != nil && strings.Contains(err.Error(), line):
			t.Errorf("%s: the error shows the key", tc.name)
		}
	}
	for _, s := range []Settings{{KEKFile: good}, {KEK: line}} {
		k, err := s.LoadKEK()
		if err != nil || k == nil {
			t.Fatalf("LoadKEK = %v, %v", k, err)
		}
	}
	if k, err := (Settings{}).LoadKEK(); k != nil || err != nil {
		t.Fatalf("LoadKEK without a key = %v, %v; want nil, nil", k, err)
	}
	for _, s := range []Settings{{KEKFile: bad}, {KEK: "c2VjcmV0LXNlY3JldA=="}, {KEKFile: line}, {KEKFile: filepath.Join(dir, "none")}} {
		_, err := s.LoadKEK()
		if err == nil {
			t.Fatalf("LoadKEK(%+v) accepted a bad key", s.HasKEK())
		}
		if msg := err.Error(); strings.Contains(msg, line) || strings.Contains(msg, "c2VjcmV0") || strings.Contains(msg, dir) {
			t.Errorf("LoadKEK error shows a secret or the path: %s", msg)
		}
	}
	if a := (Settings{Topic: DefaultTopic, KEK: line}).LogAttrs(); strings.Contains(slogText(a), line) {
		t.Error("LogAttrs shows the key")
	}
}

func slogText(attrs []slog.Attr) string {
	var b strings.Builder
	for _, a := range attrs {
		b.WriteString(a.String())
	}
	return b.String()
}
