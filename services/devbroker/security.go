package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The users file (DEVBROKER_SASL_USERS_FILE) lists one SASL user a line,
//
//	MECHANISM USER PASSWORD [superuser]
//
// with MECHANISM PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (a user may have a
// line per mechanism), and, for the ACLs checked with DEVBROKER_ACLS,
//
//	acl USER allow|deny OPERATION RESOURCE_TYPE NAME [literal|prefixed]
//
// such as "acl app allow read topic consent. prefixed" (OPERATION: all,
// read, write, create, delete, alter, describe, describe_configs,
// alter_configs, cluster_action, idempotent_write; RESOURCE_TYPE: topic,
// group, cluster, transactional_id). Empty lines and lines starting with #
// are skipped. A password holds no space. A superuser passes every ACL.
type saslUser struct {
	mechanism, name, password string
	superuser                 bool
}

type users struct {
	list []saslUser
	acls map[string][]kfake.ACL // by user
}

// readUsers parses the users file. Its messages name the line, never a
// password.
func readUsers(file string) (users, error) {
	f, err := os.Open(file)
	if err != nil {
		return users{}, fmt.Errorf("DEVBROKER_SASL_USERS_FILE/--sasl-users-file: %w", err)
	}
	defer f.Close()
	u := users{acls: map[string][]kfake.ACL{}}
	known := map[string]bool{}
	var errs []error
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if strings.EqualFold(fields[0], "acl") {
			a, user, err := parseACL(fields[1:])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s line %d: %w", file, n, err))
				continue
			}
			u.acls[user] = append(u.acls[user], a)
			continue
		}
		if len(fields) < 3 || len(fields) > 4 || (len(fields) == 4 && !strings.EqualFold(fields[3], "superuser")) {
			errs = append(errs, fmt.Errorf("%s line %d: want MECHANISM USER PASSWORD [superuser] (the line is not shown: it holds a password)", file, n))
			continue
		}
		mech := strings.ToUpper(fields[0])
		switch mech {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			errs = append(errs, fmt.Errorf("%s line %d: the mechanism is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", file, n))
			continue
		}
		u.list = append(u.list, saslUser{mechanism: mech, name: fields[1], password: fields[2], superuser: len(fields) == 4})
		known[fields[1]] = true
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("DEVBROKER_SASL_USERS_FILE/--sasl-users-file: %w", err))
	}
	if len(u.list) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s lists no user: add a line MECHANISM USER PASSWORD", file))
	}
	for user := range u.acls {
		if !known[user] {
			errs = append(errs, fmt.Errorf("%s: an acl names the user %q, which has no MECHANISM USER PASSWORD line", file, user))
		}
	}
	return u, errors.Join(errs...)
}

func parseACL(f []string) (kfake.ACL, string, error) {
	if len(f) < 5 || len(f) > 6 {
		return kfake.ACL{}, "", errors.New("want acl USER allow|deny OPERATION RESOURCE_TYPE NAME [literal|prefixed]")
	}
	var a kfake.ACL
	switch strings.ToLower(f[1]) {
	case "allow":
		a.Allow = true
	case "deny":
	default:
		return a, "", fmt.Errorf("acl permission %q is not allow or deny", f[1])
	}
	op, err := kmsg.ParseACLOperation(f[2])
	if err != nil || op == kmsg.ACLOperationAny {
		return a, "", fmt.Errorf("acl operation %q is not all, read, write, create, delete, alter, describe, describe_configs, alter_configs, cluster_action or idempotent_write", f[2])
	}
	rt, err := kmsg.ParseACLResourceType(f[3])
	if err != nil || (rt != kmsg.ACLResourceTypeTopic && rt != kmsg.ACLResourceTypeGroup && rt != kmsg.ACLResourceTypeCluster && rt != kmsg.ACLResourceTypeTransactionalId) {
		return a, "", fmt.Errorf("acl resource type %q is not topic, group, cluster or transactional_id", f[3])
	}
	a.Operation, a.Resource, a.Name, a.Pattern = op, rt, f[4], kmsg.ACLResourcePatternTypeLiteral
	if len(f) == 6 {
		switch strings.ToLower(f[5]) {
		case "literal":
		case "prefixed":
			a.Pattern = kmsg.ACLResourcePatternTypePrefixed
		default:
			return a, "", fmt.Errorf("acl pattern %q is not literal or prefixed", f[5])
		}
	}
	return a, f[0], nil
}

// securityOpts returns the kfake options of cfg's TLS, SASL users and
// ACLs, and what to log of them (never a password).
func securityOpts(cfg Config) ([]kfake.Opt, []any, error) {
	var opts []kfake.Opt
	var attrs []any
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("DEVBROKER_TLS_CERT_FILE/DEVBROKER_TLS_KEY_FILE: %w", err)
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		if cfg.TLSClientCAFile != "" {
			pem, err := os.ReadFile(cfg.TLSClientCAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("DEVBROKER_TLS_CLIENT_CA_FILE: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("DEVBROKER_TLS_CLIENT_CA_FILE %s holds no PEM certificate", cfg.TLSClientCAFile)
			}
			tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		opts = append(opts, kfake.TLS(tc))
		attrs = append(attrs, "tls", true, "tls_client_cert_required", cfg.TLSClientCAFile != "")
	}
	if cfg.SASLUsersFile != "" {
		u, err := readUsers(cfg.SASLUsersFile)
		if err != nil {
			return nil, nil, err
		}
		if len(u.acls) > 0 && !cfg.ACLs {
			return nil, nil, fmt.Errorf("%s has acl lines, which are checked only with ACLs on: set DEVBROKER_ACLS=true (--acls), or remove the acl lines", cfg.SASLUsersFile)
		}
		opts = append(opts, kfake.EnableSASL())
		seen := map[string]bool{}
		var names []string
		for _, su := range u.list {
			if su.superuser {
				opts = append(opts, kfake.Superuser(su.mechanism, su.name, su.password))
			} else {
				var acls []kfake.ACL
				if !seen[su.name] {
					acls = u.acls[su.name] // once per user, whatever its mechanisms
				}
				opts = append(opts, kfake.User(su.mechanism, su.name, su.password, acls...))
			}
			seen[su.name] = true
			names = append(names, su.mechanism+":"+su.name)
		}
		attrs = append(attrs, "sasl_users", names)
	}
	if cfg.ACLs {
		opts = append(opts, kfake.EnableACLs())
		attrs = append(attrs, "acls", true)
	}
	return opts, attrs, nil
}
