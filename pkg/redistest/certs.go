package redistest

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
// signed, written to a t.TempDir() folder: what a TLS redis-server
// ([Options].TLS) and its clients need. (A copy of brokertest's, so that
// neither package depends on the other.)
type Certs struct {
	Dir                   string
	CAFile                string // the CA's certificate
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

// NewCerts makes a new CA and its server and client certificates, valid
// for a day. Two calls make two CAs that do not trust each other's
// certificates.
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	dir := t.TempDir()
	c := &Certs{
		Dir:        dir,
		CAFile:     filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	now := time.Now()
	caKey := newKey(t)
	ca := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: "redistest throwaway CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("redistest: make the CA: %v", err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("redistest: parse the CA: %v", err)
	}
	writePEM(t, c.CAFile, "CERTIFICATE", caDER)

	issue := func(certFile, keyFile, cn string, usage x509.ExtKeyUsage, server bool) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: serial(t), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("redistest: issue %s: %v", cn, err)
		}
		writePEM(t, certFile, "CERTIFICATE", der)
		kb, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("redistest: marshal the key of %s: %v", cn, err)
		}
		writePEM(t, keyFile, "PRIVATE KEY", kb)
	}
	issue(c.ServerCert, c.ServerKey, "localhost", x509.ExtKeyUsageServerAuth, true)
	issue(c.ClientCert, c.ClientKey, "redistest client", x509.ExtKeyUsageClientAuth, false)
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("redistest: generate a key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("redistest: serial number: %v", err)
	}
	return n
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("redistest: write %s: %v", file, err)
	}
}

// ClientTLS returns a TLS configuration that trusts the CA and presents
// the client certificate.
func (c *Certs) ClientTLS(tb testing.TB) *tls.Config {
	tb.Helper()
	pool, cert, err := c.load()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}}
}

// CATLS returns a TLS configuration that trusts the CA, without a client
// certificate.
func (c *Certs) CATLS(tb testing.TB) *tls.Config {
	tb.Helper()
	pool, _, err := c.load()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
}

// load reads the CA and the client certificate.
func (c *Certs) load() (*x509.CertPool, tls.Certificate, error) {
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
