// Package testcerts makes the throwaway TLS certificates of the test
// helpers (pkg/brokertest, pkg/redistest): a CA, a server certificate for
// the loopback addresses and a client certificate.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are the PEM files of a throwaway CA, a server certificate it
// signed (for 127.0.0.1, ::1 and localhost) and a client certificate it
// signed, written to a t.TempDir() folder.
type Certs struct {
	Dir                   string
	CAFile                string // the CA's certificate
	ServerCert, ServerKey string
	ClientCert, ClientKey string

	name string // the calling package, in failures
}

// New makes a new CA and its server and client certificates, valid
// for a day. Two calls make two CAs that do not trust each other's
// certificates. name (the calling package) prefixes every
// failure and the certificates' common names.
func New(t testing.TB, name string) *Certs {
	t.Helper()
	dir := t.TempDir()
	c := &Certs{
		name:       name,
		Dir:        dir,
		CAFile:     filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	now := time.Now()
	caKey := newKey(t, name)
	ca := &x509.Certificate{
		SerialNumber: serial(t, name), Subject: pkix.Name{CommonName: name + " throwaway CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("%s: make the CA: %v", name, err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("%s: parse the CA: %v", name, err)
	}
	writePEM(t, name, c.CAFile, "CERTIFICATE", caDER)

	issue := func(certFile, keyFile, cn string, usage x509.ExtKeyUsage, server bool) {
		key := newKey(t, name)
		tmpl := &x509.Certificate{
			SerialNumber: serial(t, name), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("%s: issue %s: %v", name, cn, err)
		}
		writePEM(t, name, certFile, "CERTIFICATE", der)
		kb, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("%s: marshal the key of %s: %v", name, cn, err)
		}
		writePEM(t, name, keyFile, "PRIVATE KEY", kb)
	}
	issue(c.ServerCert, c.ServerKey, "localhost", x509.ExtKeyUsageServerAuth, true)
	issue(c.ClientCert, c.ClientKey, name+" client", x509.ExtKeyUsageClientAuth, false)
	return c
}

func newKey(t testing.TB, name string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("%s: generate a key: %v", name, err)
	}
	return k
}

func serial(t testing.TB, name string) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("%s: serial number: %v", name, err)
	}
	return n
}

func writePEM(t testing.TB, name, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("%s: write %s: %v", name, file, err)
	}
}

// ClientTLS returns a TLS configuration that trusts the CA and presents
// the client certificate.
func (c *Certs) ClientTLS(tb testing.TB) *tls.Config {
	tb.Helper()
	pool, cert, err := c.Load()
	if err != nil {
		tb.Fatalf("%s: %v", c.name, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}}
}

// CATLS returns a TLS configuration that trusts the CA, without a client
// certificate.
func (c *Certs) CATLS(tb testing.TB) *tls.Config {
	tb.Helper()
	pool, _, err := c.Load()
	if err != nil {
		tb.Fatalf("%s: %v", c.name, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
}

// Load reads the CA and the client certificate.
func (c *Certs) Load() (*x509.CertPool, tls.Certificate, error) {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("read the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, tls.Certificate{}, errors.New("the CA file holds no certificate")
	}
	cert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("load the client certificate: %w", err)
	}
	return pool, cert, nil
}
