package cluster

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/transport"
)

// genesisFixture is a channel on an in-process chain with three members,
// and an applier that builds machines the way a member's node does
// (Channel.buildMachine against that chain).
type genesisFixture struct {
	t       *testing.T
	chain   *testChain
	id      protocol.ChannelID
	keys    []*protocol.Key
	creator *protocol.Key
	exec    fsm.Executor
}

func newGenesisFixture(t *testing.T, cfg contract.ChannelConfig) *genesisFixture {
	t.Helper()
	f := &genesisFixture{t: t, chain: newTestChain(t), exec: counterExec{}}
	ctx := context.Background()
	f.creator, _ = protocol.GenerateKey(nil)
	alice, _ := protocol.GenerateKey(nil)
	state := protocol.State{{Account: alice.Address(), Type: "chat::Balance"}: []byte{100}}
	id, err := f.chain.client(f.creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"), InitialState: state, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	f.id = id
	for i := 0; i < 3; i++ {
		k := alice
		if i > 0 {
			k, _ = protocol.GenerateKey(nil)
		}
		if _, err := f.chain.client(k).Join(ctx, id, false); err != nil {
			t.Fatal(err)
		}
		f.keys = append(f.keys, k)
	}
	return f
}

// honest is the genesis the chain defines, as an honest first leader
// loads it.
func (f *genesisFixture) honest() *genesis {
	f.t.Helper()
	cg, err := loadChainGenesis(context.Background(), f.chain.client(f.keys[0]), f.id)
	if err != nil {
		f.t.Fatal(err)
	}
	return cg.genesis()
}

// member returns a fresh applier of member i, building with the real
// Channel.buildMachine against the chain, and the evidence it is told.
func (f *genesisFixture) member(i int) (*applier, *[]*fsm.Evidence) {
	k := f.keys[i]
	logger := testutil.Logger(f.t, "member")
	exec := f.exec
	c := &Channel{id: f.id, logger: logger, cfg: &Config{Chain: f.chain.client(k),
		Executors: func(string, []byte) (fsm.Executor, error) { return exec, nil }}}
	told := new([]*fsm.Evidence)
	a := &applier{id: f.id, self: k.Address(), logger: logger, cache: newOutcomeCache(16), build: c.buildMachine,
		onEvidence: func(ev *fsm.Evidence) { *told = append(*told, ev) }}
	return a, told
}

func applyGenesis(a *applier, g *genesis) *applyResult {
	return a.Apply(context.Background(), []committedBatch{{data: encodeLog(logGenesis, g.bytes())}})[0]
}

// TestGenesisForgeriesRefused plays a first leader that forges its
// genesis: every member refuses each forgery with evidence, installs
// nothing, and then installs the honest genesis when it comes.
func TestGenesisForgeriesRefused(t *testing.T) {
	f := newGenesisFixture(t, contract.ChannelConfig{TickInterval: 50 * time.Millisecond, GasLimit: 1 << 20, SettleEveryTxs: noSettlement})
	mallory, _ := protocol.GenerateKey(nil)
	tests := []struct {
		name  string
		forge func(g *genesis)
	}{
		{"adds a member", func(g *genesis) {
			g.Members = append(g.Members, fsm.Member{Address: mallory.Address(), PublicKey: mallory.Public(), JoinSeq: g.HighestJoinSeq})
		}},
		{"puts its own key in a member's place", func(g *genesis) {
			g.Members[1] = fsm.Member{Address: mallory.Address(), PublicKey: mallory.Public(), JoinSeq: g.Members[1].JoinSeq}
		}},
		{"drops a member", func(g *genesis) { g.Members = append(g.Members[:1:1], g.Members[2:]...) }},
		{"drops the last member but keeps its join seq", func(g *genesis) { g.Members = g.Members[:2] }},
		{"lowers the highest join seq but keeps the last member", func(g *genesis) { g.HighestJoinSeq = 2 }},
		{"reorders the join seqs", func(g *genesis) {
			g.Members[0].JoinSeq, g.Members[1].JoinSeq = g.Members[1].JoinSeq, g.Members[0].JoinSeq
		}},
		{"forges a balance", func(g *genesis) {
			g.State = g.State.Clone()
			g.State[protocol.ResourceKey{Account: mallory.Address(), Type: "chat::Balance"}] = []byte{255}
		}},
		{"raises a balance", func(g *genesis) {
			g.State = g.State.Clone()
			g.State[protocol.ResourceKey{Account: f.keys[0].Address(), Type: "chat::Balance"}] = []byte{200}
		}},
		{"raises the gas limit", func(g *genesis) { g.GasLimit *= 10 }},
		{"zeroes the gas limit", func(g *genesis) { g.GasLimit = 0 }},
		{"changes the tick interval", func(g *genesis) { g.TickIntervalMs = 1 }},
		{"turns ticks off", func(g *genesis) { g.TickIntervalMs = 0 }},
		{"names other code", func(g *genesis) { g.CodeHash = contract.CodeHashOf([]byte("other code")) }},
		{"names another contract", func(g *genesis) { g.Contract = "bank" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forged := f.honest()
			tc.forge(forged)
			for i := range f.keys {
				a, told := f.member(i)
				res := applyGenesis(a, forged)
				if !errors.Is(res.err, ErrRefused) {
					t.Fatalf("member %d: forged genesis: %v, want ErrRefused", i, res.err)
				}
				evs, n := a.refusedGeneses()
				if n != 1 || len(evs) != 1 || evs[0].Reason != fsm.ReasonBadGenesis || !bytes.Equal(evs[0].Batch, forged.bytes()) || len(*told) != 1 {
					t.Fatalf("member %d: evidence %v (%d), told %d", i, evs, n, len(*told))
				}
				a.machine(func(m *fsm.Machine) {
					if m != nil || a.gen != nil {
						t.Fatalf("member %d installed a forged genesis", i)
					}
				})
				// The member waits for a correct genesis, and takes it.
				if res := applyGenesis(a, f.honest()); res.err != nil {
					t.Fatalf("member %d: honest genesis after the forgery: %v", i, res.err)
				}
				if sum := a.summary.Load(); sum == nil || sum.members != 3 || sum.evidence != 1 {
					t.Fatalf("member %d: summary %+v", i, sum)
				}
			}
		})
	}
}

// TestGenesisAsOfAnEarlierJoin: a genesis is the chain's memberships up
// to its highest join seq. One that stops before the last join is the
// genesis of a leader that loaded before that join, and is accepted: the
// later member's join seq is above it, so it joins through a join entry
// that every member checks against the chain.
func TestGenesisAsOfAnEarlierJoin(t *testing.T) {
	f := newGenesisFixture(t, contract.ChannelConfig{})
	g := f.honest()
	g.Members, g.HighestJoinSeq = g.Members[:2], 2
	a, told := f.member(0)
	if res := applyGenesis(a, g); res.err != nil || len(*told) != 0 {
		t.Fatalf("genesis as of join seq 2: %v, evidence %v", res.err, *told)
	}
}

// TestGenesisUnseenJoinSeq: a genesis naming a join seq the chain has not
// given cannot be judged yet; it is not refused (a node asking after the
// chain gave it would judge otherwise), the member waits.
func TestGenesisUnseenJoinSeq(t *testing.T) {
	f := newGenesisFixture(t, contract.ChannelConfig{})
	_, err := readChainGenesis(context.Background(), f.chain.client(f.keys[0]), f.id, 4)
	if !errors.Is(err, errSeqNotGiven) {
		t.Fatalf("join seq 4 of 3: %v", err)
	}
}

// TestGenesisAfterMembersLeft: the honest genesis is accepted by a node
// that judges it after a member left, and the genesis a first leader
// loads after that lists the member too (its departure record keeps it),
// so both judge alike.
func TestGenesisAfterMembersLeft(t *testing.T) {
	f := newGenesisFixture(t, contract.ChannelConfig{})
	honest := f.honest()
	ctx := context.Background()
	// A closed channel lets a member go at once: bob's membership ends.
	if err := f.chain.client(f.creator).CloseChannel(ctx, f.id); err != nil {
		t.Fatal(err)
	}
	bob := f.chain.client(f.keys[1])
	if err := bob.Leave(ctx, f.id); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Departure(ctx, f.id, 2); err != nil {
		t.Fatalf("bob's departure: %v", err)
	}
	a, told := f.member(2)
	if res := applyGenesis(a, honest); res.err != nil || len(*told) != 0 {
		t.Fatalf("honest genesis replayed after bob left: %v, evidence %v", res.err, *told)
	}
	later := f.honest()
	if !bytes.Equal(later.bytes(), honest.bytes()) {
		t.Fatalf("genesis loaded after bob left lists %v, before %v", later.Members, honest.Members)
	}
	// Leaving bob out now that he left is still a forgery.
	forged := f.honest()
	forged.Members = append(forged.Members[:1], forged.Members[2:]...)
	a, _ = f.member(0)
	if res := applyGenesis(a, forged); !errors.Is(res.err, ErrRefused) {
		t.Fatalf("genesis without bob after he left: %v", res.err)
	}
}

// versionedExec is an executor that tells the VM and gas table versions
// it runs under, as vm.Module does.
type versionedExec struct {
	counterExec
	vm, gas uint32
}

func (e versionedExec) Versions() (uint32, uint32) { return e.vm, e.gas }

// TestGenesisVersions: a node whose VM or gas table version is not the
// channel's refuses to host it; one with the channel's versions hosts it.
// A channel that records none needs version 1 of both.
func TestGenesisVersions(t *testing.T) {
	tests := []struct {
		name    string
		chain   contract.ChannelConfig
		vm, gas uint32
		want    error
	}{
		{"same versions", contract.ChannelConfig{VMVersion: 2, GasTableVersion: 3}, 2, 3, nil},
		{"other VM", contract.ChannelConfig{VMVersion: 2, GasTableVersion: 3}, 1, 3, ErrVersion},
		{"other gas table", contract.ChannelConfig{VMVersion: 2, GasTableVersion: 3}, 2, 1, ErrVersion},
		{"none recorded, version 1", contract.ChannelConfig{}, 1, 1, nil},
		{"none recorded, a newer node", contract.ChannelConfig{}, 2, 1, ErrVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newGenesisFixture(t, tc.chain)
			f.exec = versionedExec{vm: tc.vm, gas: tc.gas}
			a, told := f.member(0)
			res := applyGenesis(a, f.honest())
			if !errors.Is(res.err, tc.want) || (tc.want == nil) != (res.err == nil) {
				t.Fatalf("genesis: %v, want %v", res.err, tc.want)
			}
			if len(*told) != 0 {
				t.Fatalf("a version mismatch is no evidence: %v", *told)
			}
			// A node with another version does not apply the channel's
			// batches: it has no machine, and says why.
			a.machine(func(m *fsm.Machine) {
				if (m == nil) != (tc.want != nil) || !errors.Is(a.genErr, tc.want) {
					t.Fatalf("machine %v, genesis error %v", m != nil, a.genErr)
				}
			})
		})
	}
}

// forgingChain is a first leader's view of the chain that lies about the
// channel's initial state: the genesis it loads forges a balance.
type forgingChain struct {
	Chain
	forged protocol.ResourceKey
}

func (c forgingChain) InitialState(ctx context.Context, id protocol.ChannelID) (protocol.State, error) {
	st, err := c.Chain.InitialState(ctx, id)
	if err != nil {
		return nil, err
	}
	st = st.Clone()
	st[c.forged] = []byte("a fortune")
	return st, nil
}

// TestGenesisForgedByFirstLeader runs the attack over Raft: the first
// leader's genesis forges a balance; every follower refuses it with
// evidence and builds no machine, while the leader runs its own.
func TestGenesisForgedByFirstLeader(t *testing.T) {
	tc := &testCluster{t: t, chain: newTestChain(t), faults: transport.NewFaults(1), nonces: map[protocol.Address]uint64{}}
	ctx := context.Background()
	creator, _ := protocol.GenerateKey(nil)
	id, err := tc.chain.client(creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"), InitialState: protocol.State{},
		Config: contract.ChannelConfig{SettleEveryTxs: noSettlement}})
	if err != nil {
		t.Fatal(err)
	}
	tc.id = id
	for i := 0; i < 3; i++ {
		k, _ := protocol.GenerateKey(nil)
		if _, err := tc.chain.client(k).Join(ctx, id, false); err != nil {
			t.Fatal(err)
		}
		tc.nodes = append(tc.nodes, &testNode{key: k, dir: t.TempDir()})
	}
	t.Cleanup(tc.close)
	leader := tc.nodes[0]
	forged := protocol.ResourceKey{Account: leader.key.Address(), Type: "chat::Messages"}
	tc.startNode(leader, func(c *Config) { c.Chain = forgingChain{Chain: c.Chain, forged: forged} })
	if _, err := leader.node.Open(ctx, id); err != nil {
		t.Fatal(err)
	}
	tc.waitLeader(10 * time.Second)
	for i, nd := range tc.nodes[1:] {
		tc.startNode(nd, nil)
		jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := nd.node.Join(jctx, id, []string{leader.addr}, false)
		cancel()
		if err != nil {
			t.Fatalf("node %d join: %v", i+1, err)
		}
	}
	for i, nd := range tc.nodes[1:] {
		c := tc.channel(nd)
		testutil.WaitFor(t, 10*time.Second, func() error {
			if _, n := c.fsm.refusedGeneses(); n == 0 {
				return errors.New("no evidence yet")
			}
			return nil
		})
		evs, _ := c.fsm.refusedGeneses()
		if evs[0].Reason != fsm.ReasonBadGenesis {
			t.Fatalf("node %d evidence %v", i+1, evs)
		}
		c.fsm.machine(func(m *fsm.Machine) {
			if m != nil {
				t.Fatalf("node %d built a machine from the forged genesis", i+1)
			}
		})
	}
	tc.channel(leader).fsm.machine(func(m *fsm.Machine) {
		if m == nil {
			t.Fatal("the forging leader runs no machine")
		}
	})
}

// FuzzGenesis decodes arbitrary bytes as a genesis: no panic, and what
// decodes encodes back to the same bytes (one encoding per genesis, so
// the evidence of a refused one is the command as it was sent).
func FuzzGenesis(f *testing.F) {
	key, _ := protocol.GenerateKey(nil)
	g := &genesis{Contract: "chat", GasLimit: 5, TickIntervalMs: 50,
		State:   protocol.State{{Account: key.Address(), Type: "chat::Balance"}: []byte{1}},
		Members: []fsm.Member{{Address: key.Address(), PublicKey: key.Public(), JoinSeq: 1}}, HighestJoinSeq: 1}
	f.Add(g.bytes())
	f.Add((&genesis{}).bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeGenesis(b)
		if err != nil {
			return
		}
		if !bytes.Equal(g.bytes(), b) {
			t.Fatalf("%x decodes and encodes as %x", b, g.bytes())
		}
	})
}

// unansweringCode is a chain whose Code reads go unanswered until
// silent of them have timed out.
type unansweringCode struct {
	Chain
	silent  int
	expired *atomic.Int32
}

func (c unansweringCode) Code(ctx context.Context, h protocol.Hash) ([]byte, error) {
	if int(c.expired.Load()) < c.silent {
		<-ctx.Done()
		c.expired.Add(1)
		return nil, ctx.Err()
	}
	return c.Chain.Code(ctx, h)
}

// TestGenesisWaitsForTheChain: a member whose chain does not answer
// while it applies the genesis keeps trying, and builds its machine once
// the chain answers. It used to give up after one attempt and keep no
// machine: every later batch was refused until a restart.
func TestGenesisWaitsForTheChain(t *testing.T) {
	defer func(d time.Duration) { genesisReadTimeout = d }(genesisReadTimeout)
	genesisReadTimeout = 300 * time.Millisecond
	f := newGenesisFixture(t, contract.ChannelConfig{SettleEveryTxs: noSettlement})
	a, told := f.member(0)
	expired := new(atomic.Int32)
	c := &Channel{id: f.id, logger: a.logger, cfg: &Config{
		Chain:     unansweringCode{Chain: f.chain.client(f.keys[0]), silent: 2, expired: expired},
		Executors: func(string, []byte) (fsm.Executor, error) { return f.exec, nil }}}
	a.build = c.buildMachine
	if res := applyGenesis(a, f.honest()); res.err != nil {
		t.Fatalf("genesis: %v", res.err)
	}
	if n := expired.Load(); n < 2 {
		t.Fatalf("the chain went unanswered %d times, want 2", n)
	}
	a.machine(func(m *fsm.Machine) {
		if m == nil || a.genErr != nil {
			t.Fatalf("machine %v, genesis error %v", m != nil, a.genErr)
		}
	})
	if len(*told) != 0 {
		t.Fatalf("a silent chain is no evidence: %v", *told)
	}
}
