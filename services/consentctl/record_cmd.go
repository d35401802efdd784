package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/consentgate/consentgate/pkg/policy"
	"github.com/consentgate/consentgate/pkg/ropa"
)

func cmdProcessingRecord(ctx context.Context, e *env, args []string) error {
	fs := e.flags("processing-record", "[--policy FILE] [--json]")
	var lf ledgerFlags
	lf.add(fs, e)
	path := fs.String("policy", e.getenv("POLICY_FILE"), "the policy file the enforcer runs with (env POLICY_FILE)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fs.Usage()
		return errors.New("--policy (or POLICY_FILE) is required")
	}
	pol, err := policy.Load(*path)
	if err != nil {
		return fmt.Errorf("load policy:\n%w", err)
	}
	cat, err := lf.catalog()
	if err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	rec, err := ropa.Build(pol, cat)
	if err != nil {
		return err
	}
	if lf.json {
		return writeJSON(e.stdout, rec)
	}
	_, err = fmt.Fprint(e.stdout, rec.Markdown())
	return err
}
