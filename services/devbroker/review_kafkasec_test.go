package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReviewACLLinesWithoutACLsAreRefused: acl lines in the users file are
// checked only with --acls (DEVBROKER_ACLS); without it kfake seeds them
// and never checks them, so a test that meant to check them would pass
// checking nothing. The devbroker refuses to start and says what to set.
func TestReviewACLLinesWithoutACLsAreRefused(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users")
	content := "SCRAM-SHA-256 app hunter2\nacl app allow write topic consent.changes\n"
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := securityOpts(Config{SASLUsersFile: users})
	if err == nil || !strings.Contains(err.Error(), "DEVBROKER_ACLS") {
		t.Fatalf("acl lines without --acls: %v, want an error that says to set DEVBROKER_ACLS (--acls)", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error shows the password: %v", err)
	}
	if _, _, err := securityOpts(Config{SASLUsersFile: users, ACLs: true}); err != nil {
		t.Errorf("acl lines with --acls: %v", err)
	}
}
