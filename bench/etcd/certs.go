package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certFiles are a throwaway CA and certificates signed by it, as files for
// etcd's flags: one per member (server and peer, for 127.0.0.1) and one for
// the benchmark tool.
type certFiles struct {
	ca      string
	members []keyPair
	client  keyPair
}

type keyPair struct{ cert, key string }

// writeCerts makes a CA and the certificates of n members and a client in
// dir, ECDSA P-256 as etcd's own TLS guides use.
func writeCerts(dir string, n int) (*certFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench-vs-etcd CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	cf := &certFiles{ca: filepath.Join(dir, "ca.pem")}
	if err := writePEM(cf.ca, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	issue := func(name string, serial int64) (keyPair, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return keyPair{}, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			// Members are servers to clients and peers, and clients of peers.
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:    []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return keyPair{}, err
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return keyPair{}, err
		}
		kp := keyPair{cert: filepath.Join(dir, name+".pem"), key: filepath.Join(dir, name+"-key.pem")}
		if err := writePEM(kp.cert, "CERTIFICATE", der); err != nil {
			return keyPair{}, err
		}
		return kp, writePEM(kp.key, "EC PRIVATE KEY", kder)
	}
	for i := range n {
		kp, err := issue(fmt.Sprintf("m%d", i+1), int64(i+2))
		if err != nil {
			return nil, err
		}
		cf.members = append(cf.members, kp)
	}
	if cf.client, err = issue("client", int64(n+2)); err != nil {
		return nil, err
	}
	return cf, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// clientTLS is the client's TLS configuration, for reading the members'
// metrics.
func (cf *certFiles) clientTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cf.client.cert, cf.client.key)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(cf.ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", cf.ca)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}, nil
}
