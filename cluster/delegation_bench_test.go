package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/transport"
)

// egress counts the bytes a node sends on the wire, as gRPC client and
// server (payloads with their framing).
type egress struct{ n atomic.Int64 }

func (e *egress) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (e *egress) HandleRPC(_ context.Context, s stats.RPCStats) {
	if p, ok := s.(*stats.OutPayload); ok {
		e.n.Add(int64(p.WireLength))
	}
}
func (e *egress) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (e *egress) HandleConn(context.Context, stats.ConnStats)                       {}

// BenchmarkDelegatesLeaderEgress measures the leader's bytes sent per
// committed tx in a channel of 5 members (every member a voter), of 25
// and of 100 (5 candidates; the other members delegators relayed by the
// candidates). Txs are submitted to the leader by up to 8 workers, one per
// member.
func BenchmarkDelegatesLeaderEgress(b *testing.B) {
	for _, n := range []int{5, 25, 100} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			counters := map[string]*egress{}
			var mu sync.Mutex
			tune := func(nd *testNode, cfg *transport.Config) {
				e := &egress{}
				mu.Lock()
				counters[nd.key.Address().String()] = e
				mu.Unlock()
				cfg.ServerOptions = append(cfg.ServerOptions, grpc.StatsHandler(e))
				cfg.DialOptions = append(cfg.DialOptions, grpc.WithStatsHandler(e))
			}
			tc := newEgressCluster(b, n, tune)
			ln := tc.leader()
			c := tc.channel(ln)
			mu.Lock()
			le := counters[ln.key.Address().String()]
			mu.Unlock()
			users := tc.users[:min(8, len(tc.users))]
			b.ResetTimer()
			start := le.n.Load()
			var wg sync.WaitGroup
			var next atomic.Int64
			for w, u := range users {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
						_, err := c.Submit(ctx, tc.tx(u, fmt.Sprintf("w%d;", w)))
						cancel()
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(le.n.Load()-start)/float64(b.N), "leader-bytes/tx")
		})
	}
}

// newEgressCluster starts a channel of n members whose transports tune
// changes: a delegated one past 5 members.
func newEgressCluster(b *testing.B, n int, tune func(*testNode, *transport.Config)) *testCluster {
	tc := &testCluster{t: b, chain: newTestChain(b), faults: transport.NewFaults(1), nonces: map[protocol.Address]uint64{}, transportTune: tune}
	ctx := context.Background()
	creator, _ := protocol.GenerateKey(nil)
	id, err := tc.chain.client(creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"),
		InitialState: protocol.State{}, Config: contract.ChannelConfig{SettleEveryTxs: noSettlement}})
	if err != nil {
		b.Fatal(err)
	}
	tc.id = id
	tc.addMembers(n)
	b.Cleanup(tc.close)
	tc.startMembers(func(cfg *Config) {
		cfg.Logger = hclog.NewNullLogger()
		if n > 25 {
			// A hundred nodes share the machine's cores: the Raft
			// timeouts of newMovecraftWorld.
			cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 1500*time.Millisecond, 1500*time.Millisecond, 750*time.Millisecond
		}
	}, 20*time.Second, nil)
	if n > 5 {
		tc.waitCandidateVoters(60 * time.Second)
		tc.waitDelegated(60 * time.Second)
	} else {
		tc.waitVoters(n, 20*time.Second)
	}
	return tc
}
