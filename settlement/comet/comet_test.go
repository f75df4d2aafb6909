package comet

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// testNet is a chain of validators on loopback in this process.
type testNet struct {
	t    *testing.T
	tn   *Testnet
	vals []*Validator // nil while stopped
}

// newTestNet writes and starts a chain of n validators with the default
// settings.
func newTestNet(t *testing.T, n int) *testNet {
	t.Helper()
	return newTestNetWith(t, n, contract.Params{})
}

// newTestNetWith writes and starts a chain of n validators whose genesis
// holds settings p (zero: the defaults).
func newTestNetWith(t *testing.T, n int, p contract.Params) *testNet {
	t.Helper()
	// The testnet's ports are picked free and then bound by CometBFT: a
	// test process running beside this one may take one in between. Such a
	// start is tried again on new ports; any other failure is the test's.
	for attempt := 1; ; attempt++ {
		tn, err := WriteTestnet(TestnetConfig{Dir: t.TempDir(), Validators: n, Timeouts: TestTimeouts(), Params: p})
		if err != nil {
			t.Fatal(err)
		}
		c := &testNet{t: t, tn: tn, vals: make([]*Validator, n)}
		var startErr error
		for i := range n {
			v, err := Start(c.config(i))
			if err != nil {
				startErr = err
				break
			}
			c.vals[i] = v
		}
		if startErr == nil {
			t.Cleanup(func() {
				for i := range c.vals {
					c.stop(i)
				}
			})
			return c
		}
		for i := range c.vals {
			c.stop(i)
		}
		if attempt == 3 || !strings.Contains(startErr.Error(), "address already in use") {
			t.Fatal(startErr)
		}
		t.Logf("testnet start: %v; again on other ports", startErr)
	}
}

func (c *testNet) config(i int) Config {
	level := ""
	if os.Getenv("SCRAFT_COMET_VERBOSE") != "" {
		level = "info"
	}
	return Config{Home: c.tn.Homes[i], Logger: testLogger(c.t), CometLogLevel: level, NoSync: true}
}

func testLogger(t *testing.T) hclog.Logger {
	if os.Getenv("SCRAFT_COMET_VERBOSE") == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: hclog.DefaultOutput})
}

func (c *testNet) start(i int) {
	c.t.Helper()
	v, err := Start(c.config(i))
	if err != nil {
		c.t.Fatal(err)
	}
	c.vals[i] = v
}

func (c *testNet) stop(i int) {
	if c.vals[i] == nil {
		return
	}
	if err := c.vals[i].Close(); err != nil {
		c.t.Errorf("close validator %d: %v", i, err)
	}
	c.vals[i] = nil
}

// dial returns a client of validator i's API signing with key.
func (c *testNet) dial(i int, key *protocol.Key) *devchain.Client {
	c.t.Helper()
	cl, err := devchain.Dial(c.tn.APIs[i], key, devchain.WithChainKeys(c.tn.ChainKeys...))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// waitHeight polls until validator i has committed height h.
func (c *testNet) waitHeight(i int, h uint64, within time.Duration) {
	c.t.Helper()
	testutil.WaitFor(c.t, within, func() error {
		if got := c.vals[i].Chain().Head().Height; got < h {
			return fmt.Errorf("validator %d at height %d, want %d", i, got, h)
		}
		return nil
	})
}

func TestSubmitAndQuery(t *testing.T) {
	c := newTestNet(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := c.dial(1, chaintest.Key("creator"))
	id, err := cl.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("\x00asm code")})
	if err != nil {
		t.Fatal(err)
	}
	h, err := cl.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.vals {
		c.waitHeight(i, h.Height, 10*time.Second)
		if _, err := c.vals[i].Chain().ChannelInfo(id); err != nil {
			t.Fatalf("validator %d: %v", i, err)
		}
	}
	other := c.dial(3, chaintest.Key("bob"))
	info, err := other.Channel(ctx, id)
	if err != nil || info.Creator != chaintest.Key("creator").Address() {
		t.Fatalf("channel %+v, %v", info, err)
	}
}

// cometEnv is a fresh 4-validator chain whose members all talk to one
// validator, val. They must: a validator answers a tx once it has committed
// it, and another validator may commit that block a moment later, so a
// query there right after can still see the state before (a reader that
// asks several validators waits for them to agree: Quorum).
type cometEnv struct {
	t   *testing.T
	c   *testNet
	val int
}

func (e *cometEnv) Chain(t *testing.T, k *protocol.Key) settlement.Chain { return e.c.dial(e.val, k) }

// Advance waits until the chain's BFT time has moved on by d: block time
// is the validators' clocks, which a test cannot jump. The scenarios that
// move time run on chains with windows of seconds (chaintest.ShortParams).
func (e *cometEnv) Advance(d time.Duration) {
	e.t.Helper()
	if d > 30*time.Second {
		e.t.Fatalf("chain time on comet is the validators' clocks: a scenario may not wait %s for it", d)
	}
	chain := e.c.vals[e.val].Chain()
	until := chain.Head().TimeMs + d.Milliseconds()
	testutil.WaitFor(e.t, d+30*time.Second, func() error {
		if now := chain.Head().TimeMs; now < until {
			return fmt.Errorf("chain time at %d ms, waiting for %d", now, until)
		}
		return nil
	})
}

// quorumEnv is a fresh 4-validator chain read as a node reads it: every
// member goes through one Quorum of all four validators (f = 1).
type quorumEnv struct {
	cometEnv
	q *Quorum
}

func (e *quorumEnv) Chain(t *testing.T, k *protocol.Key) settlement.Chain {
	return devchain.NewClient(e.q, k)
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-validator chain per scenario")
	}
	t.Run("one validator", func(t *testing.T) {
		n := 0
		chaintest.Run(t, func(t *testing.T, p contract.Params) chaintest.Env {
			n++
			return &cometEnv{t: t, c: newTestNetWith(t, 4, p), val: n % 4}
		})
	})
	t.Run("quorum", func(t *testing.T) {
		chaintest.Run(t, func(t *testing.T, p contract.Params) chaintest.Env {
			c := newTestNetWith(t, 4, p)
			clients := make([]*devchain.Client, len(c.vals))
			for i := range clients {
				clients[i] = c.dial(i, chaintest.Key("quorum"))
			}
			q, err := NewQuorum(clients, 1)
			if err != nil {
				t.Fatal(err)
			}
			return &quorumEnv{cometEnv: cometEnv{t: t, c: c}, q: q}
		})
	})
}
