package devchain

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/tlsid"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
)

var genesis = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newTestChain opens a chain in a temporary directory with a manual clock.
// interval 0 means blocks only on ProduceBlock.
func newTestChain(t *testing.T, dir string, interval time.Duration) (*Chain, *ManualClock) {
	t.Helper()
	return newTestChainWith(t, dir, interval, contract.Params{})
}

// newTestChainWith is newTestChain for a new chain with settings p (zero:
// the defaults).
func newTestChainWith(t *testing.T, dir string, interval time.Duration, p contract.Params) (*Chain, *ManualClock) {
	t.Helper()
	clock := NewManualClock(genesis)
	cfg := DefaultConfig(dir)
	cfg.Params = p
	cfg.BlockInterval = interval
	cfg.Clock = clock
	cfg.NoSync = true
	cfg.Logger = testutil.Logger(t, "devchain")
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, clock
}

// chainKey is the TLS key the tests' chain servers present; pinned is the
// DialOption that accepts it.
var (
	chainKey = chaintest.Key("devchain tls")
	pinned   = WithChainKeys(chainKey.Address())
)

// tlsOptions are the gRPC server options of a test chain server: the
// service's, and TLS with chainKey.
func tlsOptions(t testing.TB, cfg Config) []grpc.ServerOption {
	tcfg, err := tlsid.ServerConfig(chainKey)
	if err != nil {
		t.Fatal(err)
	}
	return append(ServerOptions(cfg), grpc.Creds(credentials.NewTLS(tcfg)))
}

// serve serves c over gRPC and TLS (chainKey) on a loopback port and
// returns its address.
func serve(t *testing.T, c *Chain) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGRPCServer(c, chainKey)
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return l.Addr().String()
}

type localEnv struct {
	c     *Chain
	clock *ManualClock
}

func (e *localEnv) Chain(t *testing.T, k *protocol.Key) settlement.Chain { return NewLocal(e.c, k) }
func (e *localEnv) Advance(d time.Duration)                              { e.clock.Advance(d) }

type grpcEnv struct {
	addr  string
	clock *ManualClock
}

func (e *grpcEnv) Chain(t *testing.T, k *protocol.Key) settlement.Chain {
	cl, err := Dial(e.addr, k, pinned)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}
func (e *grpcEnv) Advance(d time.Duration) { e.clock.Advance(d) }

func TestConformance(t *testing.T) {
	envs := []struct {
		name string
		make func(t *testing.T, p contract.Params) chaintest.Env
	}{
		{"in-process", func(t *testing.T, p contract.Params) chaintest.Env {
			c, clock := newTestChainWith(t, t.TempDir(), 2*time.Millisecond, p)
			return &localEnv{c: c, clock: clock}
		}},
		{"grpc+tls", func(t *testing.T, p contract.Params) chaintest.Env {
			c, clock := newTestChainWith(t, t.TempDir(), 2*time.Millisecond, p)
			return &grpcEnv{addr: serve(t, c), clock: clock}
		}},
	}
	for _, env := range envs {
		t.Run(env.name, func(t *testing.T) { chaintest.Run(t, env.make) })
	}
}
