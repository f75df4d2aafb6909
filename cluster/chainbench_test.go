package cluster

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
	"github.com/scraft/scraft/transport"
)

// BenchmarkChainTransfer measures how long a chain leader change takes to
// reach Raft: 3 in-process nodes, the chain names a follower its leader
// (an attested claim, as a failover would make), and the op ends when
// that follower's Raft reports itself the leader. The chain commits a block
// every 5 ms, which the op includes.
func BenchmarkChainTransfer(b *testing.B) {
	tc := newTestCluster(b, 3, func(c *Config) {
		c.Logger = nil
		if f := os.Getenv("SCRAFT_BENCH_LOG"); f != "" {
			w, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { w.Close() })
			c.Logger = hclog.New(&hclog.LoggerOptions{Name: c.Address[len(c.Address)-5:], Output: w, Level: hclog.Debug})
		}
	})
	tc.submitN(1, "warm")
	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		leader := tc.waitLeader(10 * time.Second)
		epoch := tc.channel(leader).leader.Load().epoch
		others := tc.others(leader)
		next, other := others[i%2], others[(i+1)%2]
		nc := tc.channel(next)
		obs := make(chan raft.Observation, 16)
		o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
			_, ok := o.Data.(raft.LeaderObservation)
			return ok
		})
		nc.raft.RegisterObserver(o)
		want := raft.ServerID(next.key.Address().String())
		b.StartTimer()
		t0 := time.Now()
		e := tc.claimAs(next, epoch, next, other)
		for done := false; !done; {
			select {
			case ob := <-obs:
				done = ob.Data.(raft.LeaderObservation).LeaderID == want
			case <-time.After(10 * time.Second):
				b.Fatalf("op %d: %s did not become the Raft leader", i, next.addr)
			}
		}
		b.StopTimer()
		took = append(took, time.Since(t0))
		nc.raft.DeregisterObserver(o)
		testutil.WaitFor(b, 10*time.Second, func() error {
			if run := nc.leader.Load(); run == nil || run.epoch != e {
				return fmt.Errorf("new leader not leading epoch %d yet", e)
			}
			return nil
		})
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*9/10].Microseconds())/1000, "p90-ms")
}

// countingChain counts the calls a node makes to the chain, by method.
type countingChain struct {
	Chain
	mu sync.Mutex
	n  map[string]int
	// streams counts the Watch streams open now.
	streams atomic.Int64
}

func newCountingChain(ch Chain) *countingChain {
	return &countingChain{Chain: ch, n: map[string]int{}}
}

func (c *countingChain) count(m string) {
	c.mu.Lock()
	c.n[m]++
	c.mu.Unlock()
}

// take returns the counts since the last take and resets them.
func (c *countingChain) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

func (c *countingChain) Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	c.count("Channel")
	return c.Chain.Channel(ctx, id)
}

func (c *countingChain) Code(ctx context.Context, h protocol.Hash) ([]byte, error) {
	c.count("Code")
	return c.Chain.Code(ctx, h)
}

func (c *countingChain) InitialState(ctx context.Context, id protocol.ChannelID) (protocol.State, error) {
	c.count("InitialState")
	return c.Chain.InitialState(ctx, id)
}

func (c *countingChain) Departure(ctx context.Context, id protocol.ChannelID, seq uint64) (*contract.Departure, error) {
	c.count("Departure")
	return c.Chain.Departure(ctx, id, seq)
}

func (c *countingChain) EpochLeader(ctx context.Context, id protocol.ChannelID, e uint64) (*contract.EpochLeader, error) {
	c.count("EpochLeader")
	return c.Chain.EpochLeader(ctx, id, e)
}

func (c *countingChain) Join(ctx context.Context, id protocol.ChannelID, usePool bool) (uint64, error) {
	c.count("Join")
	return c.Chain.Join(ctx, id, usePool)
}

func (c *countingChain) KeepAlive(ctx context.Context, id protocol.ChannelID) error {
	c.count("KeepAlive")
	return c.Chain.KeepAlive(ctx, id)
}

func (c *countingChain) ClaimLeader(ctx context.Context, id protocol.ChannelID, e uint64, atts []protocol.Attestation) (uint64, error) {
	c.count("ClaimLeader")
	return c.Chain.ClaimLeader(ctx, id, e, atts)
}

func (c *countingChain) Head(ctx context.Context) (settlement.Head, error) {
	c.count("Head")
	return c.Chain.Head(ctx)
}

func (c *countingChain) Proposal(ctx context.Context, id protocol.ChannelID, p uint64) (*settlement.ProposalInfo, error) {
	c.count("Proposal")
	return c.Chain.Proposal(ctx, id, p)
}

func (c *countingChain) CreateProposal(ctx context.Context, id protocol.ChannelID, k protocol.ProposalKind, data []byte) (uint64, error) {
	c.count("CreateProposal")
	return c.Chain.CreateProposal(ctx, id, k, data)
}

func (c *countingChain) Vote(ctx context.Context, id protocol.ChannelID, p uint64, o protocol.VoteOption) error {
	c.count("Vote")
	return c.Chain.Vote(ctx, id, p, o)
}

func (c *countingChain) ExecuteProposal(ctx context.Context, id protocol.ChannelID, p uint64) error {
	c.count("ExecuteProposal")
	return c.Chain.ExecuteProposal(ctx, id, p)
}

func (c *countingChain) Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error) {
	c.count("Watch")
	st, err := c.Chain.Watch(ctx, from)
	if err != nil {
		return nil, err
	}
	c.streams.Add(1)
	context.AfterFunc(ctx, func() { c.streams.Add(-1) })
	return countingStream{st, c}, nil
}

type countingStream struct {
	settlement.EventStream
	c *countingChain
}

func (s countingStream) Recv() (settlement.Event, error) {
	s.c.count("Recv")
	return s.EventStream.Recv()
}

func (c *countingChain) Leave(ctx context.Context, id protocol.ChannelID) error {
	c.count("Leave")
	return c.Chain.Leave(ctx, id)
}

func (c *countingChain) CloseChannel(ctx context.Context, id protocol.ChannelID) error {
	c.count("CloseChannel")
	return c.Chain.CloseChannel(ctx, id)
}

// BenchmarkIdleChainLoad measures what idle channels cost the chain: a
// devchain in its own process (this test binary re-executed, 200 ms blocks,
// gRPC), one node in this process hosting SCRAFT_BENCH_CHANNELS channels
// (default 50), each with the node's member alone. Once every channel
// leads, each op is one second of idling. It reports the node's chain
// calls per second (reads, writes and event stream receives; the
// keep-alive heartbeat, one write every 5 s per channel, included), the
// Watch streams open, and the CPU per second of the chain process (and of
// the chain alone before the node started) and of this process (the node).
func BenchmarkIdleChainLoad(b *testing.B) {
	n := 50
	if v, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_CHANNELS")); err == nil && v > 0 {
		n = v
	}
	cmd, addr, chainKey := startChainChild(b)
	dial := func(k *protocol.Key) *devchain.Client {
		cl, err := devchain.Dial(addr, k, devchain.WithChainKeys(chainKey))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cl.Close() })
		return cl
	}
	key, _ := protocol.GenerateKey(nil)
	ctx := context.Background()
	cl := dial(key)
	var ids []protocol.ChannelID
	for i := 0; i < n; i++ {
		id, err := cl.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"), InitialState: protocol.State{},
			Config: contract.ChannelConfig{SettleEveryTxs: noSettlement}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cl.Join(ctx, id, false); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	window := func(d time.Duration) float64 {
		c0 := testutil.ProcessCPU(cmd.Process.Pid)
		<-time.After(d)
		return (testutil.ProcessCPU(cmd.Process.Pid) - c0).Seconds() / d.Seconds() * 1000
	}
	alone := window(2 * time.Second)

	// The node reaches the chain through counter only (tune).
	tc := &testCluster{t: b, chain: &testChain{}, faults: transport.NewFaults(1), nonces: map[protocol.Address]uint64{}}
	nd := &testNode{key: key, dir: b.TempDir()}
	tc.nodes = []*testNode{nd}
	counter := newCountingChain(dial(key))
	tc.startNode(nd, func(c *Config) { c.Logger = nil; c.Chain = counter; c.KeepAliveInterval = 5 * time.Second })
	b.Cleanup(tc.close)
	for _, id := range ids {
		if _, err := nd.node.Open(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	testutil.WaitFor(b, 60*time.Second, func() error {
		for _, c := range nd.node.Channels() {
			if c.leader.Load() == nil {
				return fmt.Errorf("channel %s not led yet", c.id)
			}
		}
		return nil
	})
	counter.take()
	cpu0, chain0, start := testutil.CPUTime(), testutil.ProcessCPU(cmd.Process.Pid), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-time.After(time.Second)
	}
	b.StopTimer()
	secs := time.Since(start).Seconds()
	cpu, chainCPU := testutil.CPUTime()-cpu0, testutil.ProcessCPU(cmd.Process.Pid)-chain0
	calls := counter.take()
	total := 0
	var names []string
	for m, k := range calls {
		total += k
		names = append(names, fmt.Sprintf("%s=%.1f/s", m, float64(k)/secs))
	}
	sort.Strings(names)
	b.Logf("%d channels: chain calls %s", n, strings.Join(names, " "))
	b.ReportMetric(float64(total)/secs, "chain-calls/s")
	b.ReportMetric(float64(counter.streams.Load()), "watch-streams")
	b.ReportMetric(chainCPU.Seconds()/secs*1000, "chain-cpu-ms/s")
	b.ReportMetric(alone, "chain-alone-cpu-ms/s")
	b.ReportMetric(cpu.Seconds()/secs*1000, "node-cpu-ms/s")
}
