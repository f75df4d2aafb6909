package tlsid

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

func TestCertificateCarriesTheMemberKey(t *testing.T) {
	k, _ := protocol.GenerateKey(nil)
	cert, err := Certificate(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PeerKey(cert.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if protocol.AddressOf(pub) != k.Address() {
		t.Fatalf("certificate key %s, member %s", protocol.AddressOf(pub), k.Address())
	}
	if _, err := PeerKey(nil); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("no certificate: %v", err)
	}
}

// handshake runs a TLS handshake between server and client over loopback
// TCP and returns both errors and the server's connection state.
func handshake(t *testing.T, server, client *tls.Config) (srvErr, cliErr error, state tls.ConnectionState) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		s := tls.Server(conn, server)
		s.SetDeadline(time.Now().Add(5 * time.Second))
		err = s.Handshake()
		if err == nil {
			// TLS 1.3: the client's certificate is checked as the
			// server reads the client's last flight; read to see it.
			_, err = s.Read(make([]byte, 1))
		}
		state = s.ConnectionState()
		s.Close()
		done <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(conn, client)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	cliErr = c.Handshake()
	if cliErr == nil {
		_, cliErr = c.Write([]byte{1})
	}
	c.Close()
	srvErr = <-done
	return srvErr, cliErr, state
}

func TestHandshake(t *testing.T) {
	node, _ := protocol.GenerateKey(nil)
	member, _ := protocol.GenerateKey(nil)
	other, _ := protocol.GenerateKey(nil)
	scfg, err := ServerConfig(node)
	if err != nil {
		t.Fatal(err)
	}

	// A member: both sides learn the other's key.
	ccfg, _ := ClientConfig(member, Pinned(node.Address()))
	if serr, cerr, st := handshake(t, scfg, ccfg); serr != nil || cerr != nil {
		t.Fatalf("member: %v / %v", serr, cerr)
	} else if pub := st.PeerCertificates[0].PublicKey; protocol.AddressOf(pub.(ed25519.PublicKey)) != member.Address() {
		t.Fatalf("server sees %v", pub)
	}

	// A client without a certificate is let through TLS.
	ccfg, _ = ClientConfig(nil, Pinned(node.Address()))
	if serr, cerr, st := handshake(t, scfg, ccfg); serr != nil || cerr != nil || len(st.PeerCertificates) != 0 {
		t.Fatalf("no client certificate: %v / %v", serr, cerr)
	}

	// The node's key is not the pinned one.
	ccfg, _ = ClientConfig(member, Pinned(other.Address()))
	if _, cerr, _ := handshake(t, scfg, ccfg); cerr == nil {
		t.Fatal("a node with an unpinned key was accepted")
	}

	// A member's certificate presented with another private key.
	cert, _ := Certificate(member)
	otherCert, _ := Certificate(other)
	cert.PrivateKey = otherCert.PrivateKey
	ccfg, _ = ClientConfig(nil, nil)
	ccfg.Certificates = []tls.Certificate{cert}
	if serr, _, _ := handshake(t, scfg, ccfg); serr == nil {
		t.Fatal("a replayed certificate was accepted")
	}

	// A certificate whose key is not ed25519.
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ek.PublicKey, ek)
	ccfg, _ = ClientConfig(nil, nil)
	ccfg.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: ek}}
	if serr, _, _ := handshake(t, scfg, ccfg); serr == nil {
		t.Fatal("an ECDSA certificate was accepted")
	}
}
