package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/consentgate/consentgate/pkg/seal"
)

// ledgerConfig is how devstack runs the ledger: SQLite in the data
// directory, the audit sealed with a key kept there (made on first use),
// and the console on ConsoleAddr behind a token kept there too.
type ledgerConfig struct {
	env                              []string
	dsn, pubFile, tokenFile, console string
}

func ledgerSetup(dataDir, consoleAddr string) (*ledgerConfig, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	keyFile, pubFile := filepath.Join(abs, "audit-seal.key"), filepath.Join(abs, "audit-seal.pub")
	if _, err := os.Stat(keyFile); err != nil {
		skey, vkey, err := seal.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(keyFile, []byte(skey+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", keyFile, err)
		}
		if err := os.WriteFile(pubFile, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", pubFile, err)
		}
	}
	tokenFile := filepath.Join(abs, "console.token")
	if _, err := os.Stat(tokenFile); err != nil {
		tok := make([]byte, 24)
		if _, err := rand.Read(tok); err != nil {
			return nil, err
		}
		if err := os.WriteFile(tokenFile, []byte(hex.EncodeToString(tok)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", tokenFile, err)
		}
	}
	c := &ledgerConfig{dsn: "sqlite:" + filepath.Join(abs, "ledger.db"), pubFile: pubFile, tokenFile: tokenFile, console: consoleAddr}
	c.env = []string{
		"LEDGER_DSN=" + c.dsn,
		"LEDGER_SEAL_KEY_FILE=" + keyFile,
		"LEDGER_SEAL_INTERVAL=5s",
		"LEDGER_TELEMETRY_ADDR=127.0.0.1:0",
		"LEDGER_CONSOLE_ADDR=" + c.console,
		"LEDGER_CONSOLE_TOKENS_FILE=" + tokenFile,
	}
	return c, nil
}

// describe prints how to query the ledger while the stack runs.
func (c *ledgerConfig) describe(broker string) {
	fmt.Printf("compliance ledger: %s; console http://%s/ (token in %s)\n", c.dsn, c.console, c.tokenFile)
	fmt.Printf("  try: LEDGER_DSN=%s KAFKA_BROKERS=%s bin/consentctl completeness\n", c.dsn, broker)
	fmt.Printf("       LEDGER_DSN=%s KAFKA_BROKERS=%s bin/consentctl verify --verifier-keys-file %s\n", c.dsn, broker, c.pubFile)
}
