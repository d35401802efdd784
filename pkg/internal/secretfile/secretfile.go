// Package secretfile reads the files that connection settings name (TLS
// certificates and keys, password files) with errors that never show the
// setting's value: an operator may have put the secret itself there
// instead of a path. pkg/kafkaconn and pkg/redisconn use it.
package secretfile

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// LooksLikeContent reports whether the value of a setting that takes a
// file's path looks like the file's content instead (several lines, or a
// PEM block): a Kubernetes Secret mapped to the variable as a value rather
// than mounted as a file. Such a value is never shown.
func LooksLikeContent(v string) bool {
	return strings.ContainsAny(v, "\r\n") || strings.Contains(v, "-----BEGIN")
}

// ReadPEM reads the file of the setting name (what: the file it must be,
// for the message). No message shows the value: it may be the content of
// the file, a private key, instead of its path.
func ReadPEM(name, path, what string) ([]byte, error) {
	if LooksLikeContent(path) {
		return nil, fmt.Errorf("%s looks like the content of a file, not its path (the value is not shown): mount it as a file (a Kubernetes Secret as a volume, not as a variable's value) and set %s to the path of %s", name, name, what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read (%v; the value is not shown): set it to the path of a readable file, %s", name, PathErr(err), what)
	}
	return b, nil
}

// ReadPassword reads the password file of the setting name; trailing line
// ends (LF or CRLF) and a leading UTF-8 byte order mark (written by some
// editors) are not part of the password. The path is not shown: an
// operator who put the password itself into the setting would see it.
func ReadPassword(name, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s cannot be read (%v): set it to the path of a readable file holding the password (not the password itself)", name, PathErr(err))
	}
	p := strings.TrimRight(strings.TrimPrefix(string(b), "\ufeff"), "\r\n")
	if p == "" {
		return "", fmt.Errorf("%s is empty: write the password into it", name)
	}
	return p, nil
}

// PathErr is the reason of a file error without the operation and path,
// which the message names already (or must not).
func PathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
