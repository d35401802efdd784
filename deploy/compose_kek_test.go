package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/pkg/shred"
)

// TestInitSecretsMakesAKEKTheServicesRead runs deploy/compose/init-secrets.sh
// (its directories moved to a temporary one, chown a no-op) and checks the
// key-encryption key it makes: a file package shred reads (standard base64
// of 32 bytes), only its owner may read it, it is never printed, and a
// second run keeps it (a new KEK would make every data key unreadable).
func TestInitSecretsMakesAKEKTheServicesRead(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	script, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "compose", "init-secrets.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secrets, ledger, bin := filepath.Join(dir, "secrets"), filepath.Join(dir, "ledger"), filepath.Join(dir, "bin")
	for _, d := range []string{secrets, ledger, bin} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "chown"), []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	text := string(script)
	for old, repl := range map[string]string{"cd /secrets": "cd " + secrets, " /ledger": " " + ledger} {
		if !strings.Contains(text, old) {
			t.Fatalf("init-secrets.sh no longer has %q: bring this test up to date", old)
		}
		text = strings.ReplaceAll(text, old, repl)
	}
	run := func() string {
		cmd := exec.Command(sh, "-c", text)
		cmd.Env = []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("init-secrets.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run()
	f := filepath.Join(secrets, "consent.kek")
	kekText, err := os.ReadFile(f)
	if err != nil {
		t.Fatalf("init-secrets.sh made no consent.kek: %v\n%s", err, out)
	}
	if _, err := shred.ParseLocalKEK(kekText); err != nil {
		t.Errorf("consent.kek is no key-encryption key package shred reads: %v", err)
	}
	if _, err := shred.LoadLocalKEK(f); err != nil {
		t.Errorf("LoadLocalKEK(consent.kek): %v", err)
	}
	if st, err := os.Stat(f); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("consent.kek mode %v (%v): want readable by its owner only", st.Mode().Perm(), err)
	}
	key := strings.TrimSpace(string(kekText))
	if strings.Contains(out, key) || !strings.Contains(out, "created consent.kek") {
		t.Errorf("init-secrets.sh output: want it to say it created consent.kek, never the key:\n%s", out)
	}
	if again := run(); strings.Contains(again, "created consent.kek") {
		t.Errorf("a second run made consent.kek again:\n%s", again)
	}
	if now, _ := os.ReadFile(f); !bytes.Equal(now, kekText) {
		t.Error("a second run changed consent.kek: every data key wrapped by the first would be unreadable")
	}
}
