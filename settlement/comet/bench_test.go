package comet

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// benchChains returns the gRPC API addresses and the pinned keys of a
// chain to measure: devchain (200 ms blocks, fsync on) or a 4-validator
// comet chain on loopback with DefaultTimeouts (fsync on).
func benchChains(b *testing.B, engine string) ([]string, []protocol.Address) {
	b.Helper()
	if engine == "devchain" {
		cfg := devchain.DefaultConfig(b.TempDir())
		c, err := devchain.Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		key := chaintest.Key("bench chain")
		g, err := devchain.NewGRPCServer(c, key)
		if err != nil {
			b.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go g.Serve(l)
		b.Cleanup(func() { g.Stop(); c.Close() })
		return []string{l.Addr().String()}, []protocol.Address{key.Address()}
	}
	tn, err := WriteTestnet(TestnetConfig{Dir: b.TempDir(), Validators: 4})
	if err != nil {
		b.Fatal(err)
	}
	for _, h := range tn.Homes {
		v, err := Start(Config{Home: h})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { v.Close() })
	}
	return tn.APIs, tn.ChainKeys
}

// BenchmarkChainCommit measures, on devchain and on a 4-validator comet
// chain, the commit latency of one sender's txs (each sent when the
// previous one is committed) and the throughput of 200 senders doing the
// same at once, spread over the validators.
func BenchmarkChainCommit(b *testing.B) {
	for _, engine := range []string{"devchain", "comet"} {
		b.Run(engine+"/latency", func(b *testing.B) {
			addrs, keys := benchChains(b, engine)
			k := chaintest.Key("bench latency")
			cl, err := devchain.Dial(addrs[0], k, devchain.WithChainKeys(keys...))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx := context.Background()
			if _, err := cl.Head(ctx); err != nil { // connected
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if _, err := cl.SubmitRaw(ctx, devchain.NewTx(k, uint64(i+1), &contract.Deposit{Amount: 1}).Bytes()); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
		})
		b.Run(engine+"/throughput", func(b *testing.B) {
			addrs, keys := benchChains(b, engine)
			const senders = 200
			per := max(1, (b.N+senders-1)/senders)
			clients := make([]*devchain.Client, len(addrs))
			for i, a := range addrs {
				cl, err := devchain.Dial(a, chaintest.Key("bench"), devchain.WithChainKeys(keys...))
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				clients[i] = cl
			}
			txs := make([][][]byte, senders)
			for s := range txs {
				k := chaintest.Key(fmt.Sprintf("bench-%d", s))
				for n := range per {
					txs[s] = append(txs[s], devchain.NewTx(k, uint64(n+1), &contract.Deposit{Amount: 1}).Bytes())
				}
			}
			ctx := context.Background()
			b.ResetTimer()
			start, cpu0 := time.Now(), testutil.CPUTime()
			var wg sync.WaitGroup
			for s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cl := clients[s%len(clients)]
					for _, raw := range txs[s] {
						if _, err := cl.SubmitRaw(ctx, raw); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed, cpu := time.Since(start), testutil.CPUTime()-cpu0
			b.StopTimer()
			n := float64(senders * per)
			b.ReportMetric(n/elapsed.Seconds(), "tx/s")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/tx")
		})
	}
}

// BenchmarkClaimAndSettle measures on devchain and on a 4-validator comet
// chain what a channel's chain work costs in time and blocks: a leader
// claim (the first claim of a new channel, one tx) and a 5-member
// settlement (a proposal, five votes sent at once from members on
// different validators, an execution), each from the first tx sent to its
// last committed.
func BenchmarkClaimAndSettle(b *testing.B) {
	for _, engine := range []string{"devchain", "comet"} {
		b.Run(engine, func(b *testing.B) {
			addrs, keys := benchChains(b, engine)
			ctx := context.Background()
			var claimT, settleT time.Duration
			var claimBlocks, settleBlocks uint64
			for n := range b.N {
				members := make([]*devchain.Client, 5)
				for i := range members {
					cl, err := devchain.Dial(addrs[i%len(addrs)], chaintest.Key(fmt.Sprintf("member %d of %d", i, n)), devchain.WithChainKeys(keys...))
					if err != nil {
						b.Fatal(err)
					}
					defer cl.Close()
					members[i] = cl
				}
				lead := members[0]
				id, err := lead.CreateChannel(ctx, contract.CreateChannel{Contract: "chat", Code: []byte("bench code"), InitialState: protocol.State{}})
				if err != nil {
					b.Fatal(err)
				}
				all := func(f func(cl *devchain.Client) error) {
					var wg sync.WaitGroup
					errs := make(chan error, len(members))
					for _, cl := range members {
						wg.Add(1)
						go func() { defer wg.Done(); errs <- f(cl) }()
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				all(func(cl *devchain.Client) error { _, err := cl.Join(ctx, id, false); return err })
				h0, err := lead.Head(ctx)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if _, err := lead.ClaimLeader(ctx, id, 0, nil); err != nil {
					b.Fatal(err)
				}
				claimT += time.Since(start)
				h1, _ := lead.Head(ctx)
				claimBlocks += h1.Height - h0.Height

				start = time.Now()
				pid, err := lead.CreateProposal(ctx, id, protocol.ProposalSettlement, protocol.Marshal(&protocol.Settlement{From: 1, To: 3}))
				if err != nil {
					b.Fatal(err)
				}
				all(func(cl *devchain.Client) error { return cl.Vote(ctx, id, pid, protocol.VoteFor) })
				if err := lead.ExecuteProposal(ctx, id, pid); err != nil {
					b.Fatal(err)
				}
				settleT += time.Since(start)
				h2, _ := lead.Head(ctx)
				settleBlocks += h2.Height - h1.Height
			}
			b.ReportMetric(float64(claimT.Milliseconds())/float64(b.N), "claim-ms")
			b.ReportMetric(float64(claimBlocks)/float64(b.N), "claim-blocks")
			b.ReportMetric(float64(settleT.Milliseconds())/float64(b.N), "settle-ms")
			b.ReportMetric(float64(settleBlocks)/float64(b.N), "settle-blocks")
		})
	}
}
