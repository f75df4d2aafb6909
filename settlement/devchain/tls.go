package devchain

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/tlsid"
)

// The link between the chain and its clients is TLS 1.3. The chain
// presents a self-signed certificate whose key is the chain key (tlsid);
// a client accepts the chain only when that key's address is in the set it
// pins, given (WithChainKeys) or kept in a file (WithPinFile). The pin is a
// set so that a chain run by several validators fits it: any of their keys
// is the chain.

// NewGRPCServer returns a gRPC server that serves c over TLS 1.3, presenting
// key. The caller runs Serve and stops it.
func NewGRPCServer(c *Chain, key *protocol.Key) (*grpc.Server, error) {
	return NewBackendGRPCServer(c, c.cfg, key)
}

// NewBackendGRPCServer is NewGRPCServer for any Backend; cfg bounds the
// messages (MaxTxBytes).
func NewBackendGRPCServer(c Backend, cfg Config, key *protocol.Key) (*grpc.Server, error) {
	if key == nil {
		return nil, errors.New("devchain: the chain's server needs a key")
	}
	tcfg, err := tlsid.ServerConfig(key)
	if err != nil {
		return nil, err
	}
	g := grpc.NewServer(append(ServerOptions(cfg), grpc.Creds(credentials.NewTLS(tcfg)))...)
	NewServer(c).Register(g)
	return g, nil
}

// DialOption says how Dial verifies the chain's key.
type DialOption func(*dialConfig)

type dialConfig struct {
	keys    []protocol.Address
	pinFile string
}

// WithChainKeys accepts a chain whose TLS key's address is one of addrs.
// It takes precedence over WithPinFile: the file is then neither read nor
// written.
func WithChainKeys(addrs ...protocol.Address) DialOption {
	return func(c *dialConfig) { c.keys = append(c.keys, addrs...) }
}

// WithPinFile keeps the chain's keys in the file at path (addresses, one a
// line or comma-separated; # starts a comment). When the file exists, its
// keys are the set the chain's key must be in. When it does not, the key
// the chain presents on the first connection is written to it (trust on
// first use) and required from then on, by this client and by every later
// one that reads the file. A changed key fails with ErrChainKey until the
// file is removed or the new key is given.
func WithPinFile(path string) DialOption {
	return func(c *dialConfig) { c.pinFile = path }
}

// pin decides whether the chain's key is acceptable, and remembers why the
// last connection was refused so that calls fail with that reason rather
// than gRPC's "unavailable".
type pin struct {
	chain string // the chain's address, for errors
	file  string // "" when the keys were given
	mu    struct {
		sync.Mutex
		keys    []protocol.Address // nil until first contact writes the file
		seen    protocol.Address   // the key of the last accepted connection
		seenOK  bool
		refused error // why the last connection was refused; nil after one is accepted
	}
}

func newPin(chain string, dc dialConfig) (*pin, error) {
	p := &pin{chain: chain}
	switch {
	case len(dc.keys) > 0:
		p.mu.keys = slices.Clone(dc.keys)
	case dc.pinFile != "":
		p.file = dc.pinFile
		keys, err := readPinFile(dc.pinFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		p.mu.keys = keys
	default:
		return nil, fmt.Errorf("%w at %s: pin its key (WithChainKeys) or a pin file (WithPinFile)", ErrNoChainKey, chain)
	}
	return p, nil
}

// check accepts or refuses the key a chain proved it holds (the TLS
// handshake is complete). The first contact of a pin file writes it.
func (p *pin) check(pub ed25519.PublicKey) error {
	a := protocol.AddressOf(pub)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.keys == nil {
		keys, err := writePinFile(p.file, a, p.chain)
		if err != nil {
			p.mu.refused = err
			return err
		}
		p.mu.keys = keys
	}
	if !slices.Contains(p.mu.keys, a) {
		where := "pinned"
		if p.file != "" {
			where = "pinned in " + p.file
		}
		p.mu.refused = fmt.Errorf("%w: the chain at %s presented key %s; %s: %s (if the chain's key changed on purpose, pin the new one: remove the pin file or give the key)",
			ErrChainKey, p.chain, a, where, joinAddrs(p.mu.keys))
		return p.mu.refused
	}
	p.mu.seen, p.mu.seenOK, p.mu.refused = a, true, nil
	return nil
}

// explain replaces the "unavailable" of a call over a refused connection
// with the reason of the refusal.
func (p *pin) explain(err error) error {
	if err == nil || status.Code(err) != codes.Unavailable {
		return err
	}
	p.mu.Lock()
	refused := p.mu.refused
	p.mu.Unlock()
	if refused == nil {
		return err
	}
	return refused
}

func (p *pin) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return p.explain(invoker(ctx, method, req, reply, cc, opts...))
}

func (p *pin) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, p.explain(err)
	}
	return s, nil
}

func (p *pin) seen() (protocol.Address, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.seen, p.mu.seenOK
}

func joinAddrs(as []protocol.Address) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// readPinFile returns the keys a pin file lists.
func readPinFile(path string) ([]protocol.Address, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devchain: chain pin file: %w", err)
	}
	var keys []protocol.Address
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			a, err := protocol.ParseAddress(f)
			if err != nil {
				return nil, fmt.Errorf("devchain: chain pin file %s: %w", path, err)
			}
			keys = append(keys, a)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("devchain: chain pin file %s lists no key", path)
	}
	return keys, nil
}

// writePinFile pins key in a new file at path, durably, and returns the
// keys the file then lists. If another client wrote the file first, its
// keys stand.
func writePinFile(path string, key protocol.Address, chain string) ([]protocol.Address, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devchain: chain pin file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("devchain: chain pin file: %w", err)
	}
	defer os.Remove(tmp.Name())
	body := fmt.Sprintf("# The settlement chain's TLS key, pinned on first contact with %s at %s.\n"+
		"# The chain is accepted only if its key is listed here (one address a line, or comma-separated).\n%s\n",
		chain, time.Now().UTC().Format(time.RFC3339), key)
	_, err = tmp.WriteString(body)
	if err == nil {
		err = tmp.Sync()
	}
	if e := tmp.Close(); err == nil {
		err = e
	}
	if err != nil {
		return nil, fmt.Errorf("devchain: chain pin file: %w", err)
	}
	// A link, unlike a rename, never replaces a file another client wrote
	// meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return readPinFile(path)
		}
		return nil, fmt.Errorf("devchain: chain pin file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return []protocol.Address{key}, nil
}

// pinnedCreds is TLS whose handshake ends with the pin's verdict on the key
// the chain proved it holds. The verdict comes after the handshake, not in
// tls.Config.VerifyPeerCertificate, which TLS 1.3 runs before the peer's
// signature is checked: a first contact must not pin a key the peer only
// copied.
type pinnedCreds struct {
	credentials.TransportCredentials
	pin *pin
}

func (c *pinnedCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := tlsid.FromPeer(&peer.Peer{AuthInfo: info})
	if !ok {
		conn.Close()
		return nil, nil, tlsid.ErrNotEd25519
	}
	if err := c.pin.check(pub); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, info, nil
}

func (c *pinnedCreds) Clone() credentials.TransportCredentials {
	return &pinnedCreds{TransportCredentials: c.TransportCredentials.Clone(), pin: c.pin}
}

// chainCredentials returns the transport credentials and interceptors of a
// connection to the chain at addr.
func chainCredentials(addr string, opts []DialOption) ([]grpc.DialOption, *pin, error) {
	var dc dialConfig
	for _, o := range opts {
		o(&dc)
	}
	p, err := newPin(addr, dc)
	if err != nil {
		return nil, nil, err
	}
	tcfg, err := tlsid.ClientConfig(nil, nil)
	if err != nil {
		return nil, nil, err
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(&pinnedCreds{TransportCredentials: credentials.NewTLS(tcfg), pin: p}),
		grpc.WithUnaryInterceptor(p.unary),
		grpc.WithStreamInterceptor(p.stream),
	}, p, nil
}
