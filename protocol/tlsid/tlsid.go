// Package tlsid turns a member key into TLS credentials and a TLS peer back
// into a member address.
//
// A node presents a self-signed X.509 certificate whose key is its member
// key (ed25519), on TLS 1.3 only. There is no certificate authority: the
// TLS handshake proves that the peer holds the private key of the
// certificate's public key, and that key is the identity. Who that
// identity may be (a member of which channel, the key a client expects) is
// for the caller of this package to decide, through the verify hook of
// ClientConfig on the dialing side and through PeerKey/FromContext on the
// serving side.
package tlsid

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/scraft/scraft/protocol"
)

var (
	// ErrNoCertificate means the peer presented no certificate.
	ErrNoCertificate = errors.New("tlsid: peer presented no certificate")
	// ErrNotEd25519 means the peer's certificate key is not an ed25519 key.
	ErrNotEd25519 = errors.New("tlsid: peer certificate key is not ed25519")
)

// Certificate returns a self-signed certificate whose key is k, valid from
// an hour ago for 100 years: nobody checks its dates, only its key.
func Certificate(k *protocol.Key) (tls.Certificate, error) {
	priv := ed25519.NewKeyFromSeed(k.Seed())
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: k.Address().String()},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(100, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsid: certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsid: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, nil
}

// PeerKey returns the ed25519 key of the first (leaf) certificate of a
// peer's chain as TLS hands it to VerifyPeerCertificate. The handshake
// itself proves that the peer holds the matching private key.
func PeerKey(rawCerts [][]byte) (ed25519.PublicKey, error) {
	if len(rawCerts) == 0 {
		return nil, ErrNoCertificate
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("tlsid: peer certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, ErrNotEd25519
	}
	return pub, nil
}

// ServerConfig returns the TLS configuration of a node's listener: it
// presents k's certificate and asks for, but does not require, a client
// certificate, since clients of the client API have none. A client
// certificate that is given must carry an ed25519 key. What a caller
// without one may do is decided per RPC (FromContext).
func ServerConfig(k *protocol.Key) (*tls.Config, error) {
	cert, err := Certificate(k)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			_, err := PeerKey(raw)
			return err
		},
	}, nil
}

// ClientConfig returns the TLS configuration of a connection to a node. k,
// when not nil, is presented as the client certificate (node to node);
// clients of the client API pass nil. verify, when not nil, decides
// whether the node's key is acceptable; the handshake fails with its
// error. There is no CA to verify a chain against, so the standard chain
// verification is off and verify is the only check of the node's
// identity: a nil verify accepts any node that holds its certificate's key.
func ClientConfig(k *protocol.Key, verify func(ed25519.PublicKey) error) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// No CA: the certificate is self-signed; VerifyPeerCertificate
		// below checks the key it carries.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pub, err := PeerKey(raw)
			if err != nil {
				return err
			}
			if verify != nil {
				return verify(pub)
			}
			return nil
		},
	}
	if k != nil {
		cert, err := Certificate(k)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Pinned returns a verify function for ClientConfig that accepts only keys
// whose address is one of addrs.
func Pinned(addrs ...protocol.Address) func(ed25519.PublicKey) error {
	return func(pub ed25519.PublicKey) error {
		a := protocol.AddressOf(pub)
		for _, want := range addrs {
			if a == want {
				return nil
			}
		}
		return fmt.Errorf("tlsid: node key %s is not one of the %d pinned", a, len(addrs))
	}
}

// FromPeer returns the key of a gRPC peer's TLS certificate, false when
// the connection is not TLS or the peer gave no ed25519 certificate.
func FromPeer(p *peer.Peer) (ed25519.PublicKey, bool) {
	if p == nil {
		return nil, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, false
	}
	pub, ok := info.State.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	return pub, ok
}

// FromContext returns the member address and key of the caller of an
// incoming gRPC call: the key of its TLS client certificate. ok is false
// for a caller without one (a client of the client API, or a plaintext
// connection).
func FromContext(ctx context.Context) (addr protocol.Address, pub ed25519.PublicKey, ok bool) {
	p, _ := peer.FromContext(ctx)
	pub, ok = FromPeer(p)
	if !ok {
		return protocol.Address{}, nil, false
	}
	return protocol.AddressOf(pub), pub, true
}
