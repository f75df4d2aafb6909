package devchain

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain/chainpb"
)

// benchChannel opens a chain (fsync on, blocks made by the caller) with one
// channel of n members, all joined, and open settlement proposals for them
// to vote on. It returns the chain, the channel and the members' keys.
func benchChannel(b *testing.B, n, proposals int) (*Chain, protocol.ChannelID, []*protocol.Key) {
	b.Helper()
	cfg := DefaultConfig(b.TempDir())
	cfg.BlockInterval = 0
	cfg.NoSync = os.Getenv("BENCH_NOSYNC") != ""
	c, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	creator := chaintest.Key("creator")
	o := submitAndProduce(b, c, NewTx(creator, 1, &contract.CreateChannel{Contract: "chat", Code: []byte("code")}).Bytes())
	id := o[0].Receipt.Channel
	keys := make([]*protocol.Key, n)
	var joins [][]byte
	for i := range keys {
		keys[i] = chaintest.Key(fmt.Sprintf("bench-%d", i))
		joins = append(joins, NewTx(keys[i], 1, &contract.Join{Channel: id}).Bytes())
	}
	submitAndProduce(b, c, joins...)
	var props [][]byte
	for p := range proposals {
		props = append(props, NewTx(keys[0], uint64(2+p), &contract.CreateProposal{Channel: id, Type: protocol.ProposalSettlement,
			Data: protocol.Marshal(&protocol.Settlement{From: 1, To: uint64(10 + p)})}).Bytes())
	}
	submitAndProduce(b, c, props...)
	return c, id, keys
}

// submitAndProduce submits raws, makes blocks until all are answered and
// fails on any refusal.
func submitAndProduce(b *testing.B, c *Chain, raws ...[]byte) []Outcome {
	b.Helper()
	out := make([]Outcome, len(raws))
	errs := make([]error, len(raws))
	var wg sync.WaitGroup
	for i, raw := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = c.Submit(context.Background(), raw)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			return out
		default:
			if _, err := c.ProduceBlock(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// presign signs, for each member, rounds txs alternating heartbeats and
// votes (on proposal r/2+1 in round r), nonces following the setup's.
func presign(keys []*protocol.Key, id protocol.ChannelID, rounds, proposals int, votes bool) [][][]byte {
	out := make([][][]byte, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nonce := uint64(2)
			if i == 0 {
				nonce = 2 + uint64(proposals) // member 0 made the proposals
			}
			for r := range rounds {
				var call contract.Call = &contract.KeepAlive{Channel: id}
				if votes && r%2 == 1 {
					call = &contract.Vote{Channel: id, Proposal: uint64(r/2 + 1), Option: protocol.VoteFor}
				}
				out[i] = append(out[i], NewTx(k, nonce, call).Bytes())
				nonce++
			}
		}()
	}
	wg.Wait()
	return out
}

// blockTicker makes a block every interval until stopped.
func blockTicker(b *testing.B, c *Chain, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := c.ProduceBlock(); err != nil {
					b.Error(err)
					return
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// BenchmarkChainThroughput: 1,000 members each send pre-signed heartbeats
// and votes, each as soon as its previous tx is committed, with 200 ms
// blocks and fsync on; reports
// committed chain txs per second and the process's CPU time per tx (chain
// and senders). Each op is one tx.
// Run with -benchtime=20000x (b.N is rounded up to whole rounds).
func BenchmarkChainThroughput(b *testing.B) {
	for _, via := range []string{"in-process", "grpc"} {
		b.Run(via, func(b *testing.B) {
			const members, inflight = 1000, 1
			rounds := max(2, (b.N+members-1)/members)
			c, id, keys := benchChannel(b, members, rounds/2+1)
			txs := presign(keys, id, rounds, rounds/2+1, true)
			submit := func(raw []byte) error { _, err := c.Submit(context.Background(), raw); return err }
			if via == "grpc" {
				api := chainpb.NewDevChainClient(dialBench(b, serveBench(b, c)))
				submit = func(raw []byte) error {
					resp, err := api.Submit(context.Background(), &chainpb.SubmitRequest{Tx: raw})
					if err != nil {
						return err
					}
					return ErrorOf(resp.Code, resp.Error)
				}
			}
			stop := blockTicker(b, c, 200*time.Millisecond)
			defer stop()
			b.ResetTimer()
			start, cpu0 := time.Now(), testutil.CPUTime()
			var wg sync.WaitGroup
			for i := range keys {
				for lane := range inflight {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := lane; j < len(txs[i]); j += inflight {
							if err := submit(txs[i][j]); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
			}
			wg.Wait()
			elapsed, cpu := time.Since(start), testutil.CPUTime()-cpu0
			b.StopTimer()
			n := float64(members * rounds)
			b.ReportMetric(n/elapsed.Seconds(), "tx/s")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/tx")
		})
	}
}

// BenchmarkChainProcess is BenchmarkChainThroughput against a chain in its
// own process (this test binary re-executed, 200 ms blocks, fsync on) over
// gRPC; it also reports the chain process's own CPU time per tx, read from
// /proc, apart from the senders'.
func BenchmarkChainProcess(b *testing.B) {
	const members = 1000
	rounds := max(2, (b.N+members-1)/members)
	proposals := rounds/2 + 1
	cmd, addr := startChild(b, b.TempDir(), childIntervalEnv+"=200ms")
	api := chainpb.NewDevChainClient(dialBench(b, addr))
	submit := func(raw []byte) (*chainpb.SubmitResponse, error) {
		resp, err := api.Submit(context.Background(), &chainpb.SubmitRequest{Tx: raw})
		if err != nil {
			return nil, err
		}
		return resp, ErrorOf(resp.Code, resp.Error)
	}
	parallel := func(raws [][]byte) {
		var wg sync.WaitGroup
		for _, raw := range raws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := submit(raw); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	resp, err := submit(NewTx(chaintest.Key("creator"), 1, &contract.CreateChannel{Contract: "chat", Code: []byte("code")}).Bytes())
	if err != nil {
		b.Fatal(err)
	}
	var id protocol.ChannelID
	copy(id[:], resp.Channel)
	keys := make([]*protocol.Key, members)
	var joins, props [][]byte
	for i := range keys {
		keys[i] = chaintest.Key(fmt.Sprintf("bench-%d", i))
		joins = append(joins, NewTx(keys[i], 1, &contract.Join{Channel: id}).Bytes())
	}
	for p := range proposals {
		props = append(props, NewTx(keys[0], uint64(2+p), &contract.CreateProposal{Channel: id, Type: protocol.ProposalSettlement,
			Data: protocol.Marshal(&protocol.Settlement{From: 1, To: uint64(10 + p)})}).Bytes())
	}
	parallel(joins)
	parallel(props)
	txs := presign(keys, id, rounds, proposals, true)

	b.ResetTimer()
	start, cpu0, chain0 := time.Now(), testutil.CPUTime(), testutil.ProcessCPU(cmd.Process.Pid)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, raw := range txs[i] {
				if _, err := submit(raw); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu, chainCPU := time.Since(start), testutil.CPUTime()-cpu0, testutil.ProcessCPU(cmd.Process.Pid)-chain0
	b.StopTimer()
	n := float64(members * rounds)
	b.ReportMetric(n/elapsed.Seconds(), "tx/s")
	b.ReportMetric(float64(chainCPU.Microseconds())/n, "chain-cpu-µs/tx")
	b.ReportMetric(float64(cpu.Microseconds())/n, "sender-cpu-µs/tx")
}

// BenchmarkHeartbeats1000: 1,000 members send one pre-signed heartbeat
// each per round (200 ms blocks, fsync on); reports the chain's CPU time
// per heartbeat and what 1,000 members heartbeating every 5 s (a third of
// the 15 s validity) cost as a share of one core. One op is one round.
func BenchmarkHeartbeats1000(b *testing.B) {
	const members = 1000
	c, id, keys := benchChannel(b, members, 0)
	rounds := max(1, b.N)
	txs := presign(keys, id, rounds, 0, false)
	stop := blockTicker(b, c, 200*time.Millisecond)
	defer stop()
	b.ResetTimer()
	cpu0 := time.Duration(0)
	var cpu time.Duration
	for r := range rounds {
		var wg sync.WaitGroup
		cpu0 = testutil.CPUTime()
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Submit(context.Background(), txs[i][r]); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		cpu += testutil.CPUTime() - cpu0
	}
	b.StopTimer()
	perTx := float64(cpu.Microseconds()) / float64(members*rounds)
	b.ReportMetric(perTx, "cpu-µs/heartbeat")
	b.ReportMetric(perTx*members/5/1e6*100, "%core@1000/5s")
}
