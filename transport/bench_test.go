package transport

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// BenchmarkAppendEntries measures AppendEntries through the transport alone
// (the far side answers at once, no raft) with 256-byte entries: one
// request per op, as a plain RPC and over a pipeline.
func BenchmarkAppendEntries(b *testing.B) {
	for _, tc := range []struct {
		pipeline bool
		inFlight int
		entries  int
	}{
		{false, 2, 1},
		{false, 2, 64},
		{true, 2, 1},
		{true, 2, 64},
		{true, 8, 64},
	} {
		name := fmt.Sprintf("unary/entries=%d", tc.entries)
		if tc.pipeline {
			name = fmt.Sprintf("pipeline/inflight=%d/entries=%d", tc.inFlight, tc.entries)
		}
		b.Run(name, func(b *testing.B) {
			cfg := testConfig(b, nil)
			cfg.MaxInFlight = tc.inFlight
			a := newTestServer(b, cfg)
			s := newTestServer(b, cfg)
			ta := mustTransport(b, a, "chan")
			ts := mustTransport(b, s, "chan")
			respond(b, ts, func(rpc raft.RPC) {
				rpc.Respond(&raft.AppendEntriesResponse{Term: 1, LastLog: 1, Success: true}, nil)
			})
			req := &raft.AppendEntriesRequest{RPCHeader: header("a"), Term: 1, Leader: []byte("a"), LeaderCommitIndex: 1}
			for i := range tc.entries {
				req.Entries = append(req.Entries, &raft.Log{Index: uint64(i + 1), Term: 1, Data: make([]byte, 256), AppendedAt: time.Now()})
			}
			target := ts.LocalAddr()
			// Warm the connection up.
			require.NoError(b, ta.AppendEntries("s", target, req, new(raft.AppendEntriesResponse)))

			b.SetBytes(int64(256 * tc.entries))
			b.ResetTimer()
			start := time.Now()
			if !tc.pipeline {
				for range b.N {
					if err := ta.AppendEntries("s", target, req, new(raft.AppendEntriesResponse)); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				p, err := ta.AppendEntriesPipeline("s", target)
				require.NoError(b, err)
				defer p.Close()
				done := make(chan error, 1)
				go func() {
					for range b.N {
						if err := (<-p.Consumer()).Error(); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				for range b.N {
					if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
						b.Fatal(err)
					}
				}
				require.NoError(b, <-done)
			}
			b.ReportMetric(float64(b.N*tc.entries)/time.Since(start).Seconds(), "entries/s")
		})
	}
}

// BenchmarkRaftApply measures Apply throughput of a three-node raft group
// over the transport (in-memory stores, counting FSM), with 64 concurrent
// writers of 256-byte commands.
func BenchmarkRaftApply(b *testing.B) {
	const writers = 64
	c := newTestCluster(b, 3, "alpha")
	leader := c.waitLeader("alpha")
	r := leader.rafts["alpha"]
	cmd := make([]byte, 256)
	require.NoError(b, r.Apply(cmd, time.Second).Error())

	var next atomic.Int64
	lat := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := r.Apply(cmd, 5*time.Second).Error(); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "writes/s")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	}
}
