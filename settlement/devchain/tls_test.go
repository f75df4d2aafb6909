package devchain

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/devchain/chainpb"
)

// serveAt serves c over TLS with key on addr ("127.0.0.1:0" for any port)
// and returns the server and the address.
func serveAt(t *testing.T, c *Chain, key *protocol.Key, addr string) (*grpc.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGRPCServer(c, key)
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return g, l.Addr().String()
}

func dialT(t *testing.T, addr string, opts ...DialOption) *Client {
	t.Helper()
	cl, err := Dial(addr, chaintest.Key("client"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestChainKeyPinned: a client accepts the chain whose key it pins, refuses
// an impostor on the same address with ErrChainKey, and accepts any key of
// a pinned set.
func TestChainKeyPinned(t *testing.T) {
	c, _ := newTestChain(t, t.TempDir(), 2*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	impostor := chaintest.Key("impostor")
	g, addr := serveAt(t, c, impostor, "127.0.0.1:0")

	cl := dialT(t, addr, pinned)
	_, err := cl.Head(ctx)
	if !errors.Is(err, ErrChainKey) || !strings.Contains(err.Error(), impostor.Address().String()) {
		t.Fatalf("impostor: %v, want ErrChainKey naming its key", err)
	}
	if _, err := cl.Watch(ctx, settlement.EventID{}); !errors.Is(err, ErrChainKey) {
		t.Fatalf("impostor, watch: %v, want ErrChainKey", err)
	}
	if _, ok := cl.ChainKey(); ok {
		t.Fatal("a chain key was accepted")
	}

	// The real chain on the same address: the same client now works.
	g.Stop()
	serveAt(t, c, chainKey, addr)
	waitHead(t, cl)
	if k, ok := cl.ChainKey(); !ok || k != chainKey.Address() {
		t.Fatalf("chain key %s %v, want %s", k, ok, chainKey.Address())
	}

	// A set: any of its keys is the chain.
	set := dialT(t, addr, WithChainKeys(impostor.Address(), chainKey.Address()))
	waitHead(t, set)
}

// waitHead waits until cl reads the chain's head: after a refused
// connection, gRPC tries again after a backoff.
func waitHead(t *testing.T, cl *Client) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := cl.Head(ctx)
		return err
	})
}

// TestChainPlaintextRefused: the chain's server speaks only TLS, and a
// client only TLS.
func TestChainPlaintextRefused(t *testing.T) {
	c, _ := newTestChain(t, t.TempDir(), 2*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, addr := serveAt(t, c, chainKey, "127.0.0.1:0")
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := chainpb.NewDevChainClient(conn).GetHead(ctx, &chainpb.GetHeadRequest{}); err == nil {
		t.Fatal("plaintext call to the TLS chain answered")
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := grpc.NewServer(ServerOptions(c.cfg)...)
	NewServer(c).Register(plain)
	go plain.Serve(l)
	defer plain.Stop()
	if _, err := dialT(t, l.Addr().String(), pinned).Head(ctx); err == nil {
		t.Fatal("TLS client answered by a plaintext server")
	}
}

// TestChainPinFile: without a pin file, the first contact writes the
// chain's key to it; a later client reading the file refuses another key,
// naming the file, and leaves the file as it was.
func TestChainPinFile(t *testing.T) {
	c, _ := newTestChain(t, t.TempDir(), 2*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, addr := serveAt(t, c, chainKey, "127.0.0.1:0")
	file := filepath.Join(t.TempDir(), "data", "chain.pin")

	if _, err := Dial(addr, chaintest.Key("client")); !errors.Is(err, ErrNoChainKey) {
		t.Fatalf("no pin: %v, want ErrNoChainKey", err)
	}

	first := dialT(t, addr, WithPinFile(file))
	if _, err := first.Head(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := readPinFile(file)
	if err != nil || len(keys) != 1 || keys[0] != chainKey.Address() {
		t.Fatalf("pin file: %v, %v; want %s", keys, err, chainKey.Address())
	}
	before, _ := os.ReadFile(file)

	// A later start against the same chain is fine.
	if _, err := dialT(t, addr, WithPinFile(file)).Head(ctx); err != nil {
		t.Fatal(err)
	}

	// The chain's key changed (or another server answers): refused.
	_, other := serveAt(t, c, chaintest.Key("impostor"), "127.0.0.1:0")
	_, err = dialT(t, other, WithPinFile(file)).Head(ctx)
	if !errors.Is(err, ErrChainKey) || !strings.Contains(err.Error(), file) {
		t.Fatalf("changed key: %v, want ErrChainKey naming %s", err, file)
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Fatalf("pin file rewritten:\n%s", after)
	}

	// Given keys take precedence over the file.
	if _, err := dialT(t, other, WithPinFile(file), WithChainKeys(chaintest.Key("impostor").Address())).Head(ctx); err != nil {
		t.Fatal(err)
	}

	// A set, written by hand.
	set := filepath.Join(t.TempDir(), "set.pin")
	body := "# validators\n" + chaintest.Key("impostor").Address().String() + ", " + chainKey.Address().String() + "\n"
	if err := os.WriteFile(set, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{addr, other} {
		if _, err := dialT(t, a, WithPinFile(set)).Head(ctx); err != nil {
			t.Fatal(a, err)
		}
	}

	bad := filepath.Join(t.TempDir(), "bad.pin")
	if err := os.WriteFile(bad, []byte("0xnot-an-address\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(addr, chaintest.Key("client"), WithPinFile(bad)); err == nil {
		t.Fatal("a malformed pin file was accepted")
	}
}

// FuzzPinFile: a pin file of any content is read without panicking, and
// what it yields is a non-empty set of addresses that print back as what
// parses to them.
func FuzzPinFile(f *testing.F) {
	f.Add([]byte("# c\n" + chainKey.Address().String() + "\n"))
	f.Add([]byte(chainKey.Address().String() + ", " + chaintest.Key("x").Address().String()))
	f.Add([]byte("0x\n,,#"))
	path := filepath.Join(f.TempDir(), "chain.pin")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		keys, err := readPinFile(path)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for _, k := range keys {
			if a, err := protocol.ParseAddress(k.String()); err != nil || a != k {
				t.Fatalf("%s does not parse back: %v", k, err)
			}
		}
	})
}
