package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: "brokertest throwaway CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("brokertest: make the CA: %v", err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("brokertest: parse the CA: %v", err)
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
			t.Fatalf("brokertest: issue %s: %v", cn, err)
		}
		writePEM(t, certFile, "CERTIFICATE", der)
		kb, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("brokertest: marshal the key of %s: %v", cn, err)
		}
		writePEM(t, keyFile, "PRIVATE KEY", kb)
	}
	issue(c.ServerCert, c.ServerKey, "localhost", x509.ExtKeyUsageServerAuth, true)
	issue(c.ClientCert, c.ClientKey, "brokertest client", x509.ExtKeyUsageClientAuth, false)
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("brokertest: generate a key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("brokertest: serial number: %v", err)
	}
	return n
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("brokertest: write %s: %v", file, err)
	}
}
