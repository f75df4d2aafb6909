package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// quietRegions is newRegionCluster with the nodes' logs off, so that a
// benchmark's figures are the channel's and not the test logger's.
func quietRegions(b *testing.B, n int, tune func(*Config)) *testCluster {
	b.Helper()
	tc := newRegionCluster(b, n, contract.ChannelConfig{}, func(c *Config) {
		c.Logger = hclog.NewNullLogger()
		if tune != nil {
			tune(c)
		}
	})
	tc.waitDelegated(30 * time.Second)
	return tc
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := (len(ds)*p + 99) / 100
	return ds[max(i, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkRegionsCommit measures commit latency in a channel of 7 members
// (5 candidates, 2 delegators) across three regions 10, 60 and 150 ms
// apart (regionRTTs), with the README's timeouts (regionConfig): one
// worker per member submits its txs in order through its own node, so
// the figures mix the leader's region, the distant candidates and the
// delegators, whose txs and outcomes go through their candidate. One op
// is one committed tx; a tx's latency runs from Submit to its outcome on
// the submitting node.
func BenchmarkRegionsCommit(b *testing.B) {
	tc := quietRegions(b, 7, nil)
	ln := tc.leader()
	type lat struct {
		node int
		d    time.Duration
	}
	var mu sync.Mutex
	var lats []lat
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, nd := range tc.nodes {
		u := tc.users[i]
		c := tc.channel(nd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; next.Add(1) <= int64(b.N); j++ {
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Submit(ctx, tc.tx(u, fmt.Sprintf("c%d-%d;", i, j)))
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lats = append(lats, lat{i, time.Since(t0)})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(len(lats))/time.Since(start).Seconds(), "tx/s")
	all := make([]time.Duration, len(lats))
	for i, l := range lats {
		all[i] = l.d
	}
	slices.Sort(all)
	b.ReportMetric(ms(percentile(all, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 99)), "p99-ms")
	// By where the tx enters: the leader's node, a candidate's in each
	// region, a delegator's.
	groups := map[string][]time.Duration{}
	var names []string
	for _, l := range lats {
		nd := tc.nodes[l.node]
		g := "cand-" + regionOf(l.node)
		switch {
		case nd == ln:
			g = "leader"
		case tc.channel(nd).delegating():
			g = "deleg-" + regionOf(l.node)
		}
		if _, ok := groups[g]; !ok {
			names = append(names, g)
		}
		groups[g] = append(groups[g], l.d)
	}
	slices.Sort(names)
	for _, g := range names {
		ds := groups[g]
		slices.Sort(ds)
		b.ReportMetric(ms(percentile(ds, 50)), g+"-p50-ms")
		b.ReportMetric(ms(percentile(ds, 99)), g+"-p99-ms")
	}
	b.Logf("leader in region %s", regionOf(slices.Index(tc.nodes, ln)))
}

// BenchmarkRegionsFailover measures failover across the three regions:
// with writes going on through every other member, the leader's node is
// stopped, and the time runs until the first tx acknowledged after the
// stop in a batch of a later epoch (a new leader, elected by Raft and
// named on chain, is writing). Each op is one failover in a new channel;
// setup is not timed. In a channel with delegators only the candidates
// attest to a claim and the chain counts only them, so the new Raft
// leader claims on the fast path; ElectionAfter (the recipe's default,
// 10 heartbeat timeouts, and 3 s) matters only when that fails.
func BenchmarkRegionsFailover(b *testing.B) {
	for _, after := range []time.Duration{0, 3 * time.Second} {
		name := "election-after=default"
		if after > 0 {
			name = fmt.Sprintf("election-after=%s", after)
		}
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				d := regionFailover(b, func(c *Config) { c.ElectionAfter = after })
				b.StartTimer()
				total += d
				b.Logf("failover: writes resumed %s after the leader's node stopped", d.Round(time.Millisecond))
			}
			b.ReportMetric(ms(total/time.Duration(b.N)), "failover-ms")
		})
	}
}

// batchEpoch returns the epoch of the batch holding height h in nd's Raft
// log, false when the log does not hold it.
func batchEpoch(c *Channel, h uint64) (uint64, bool) {
	for idx := c.raft.LastIndex(); idx > 0; idx-- {
		var l raft.Log
		if err := c.store.GetLog(idx, &l); err != nil {
			return 0, false // compacted from here down
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 || l.Data[0] != logBatch {
			continue
		}
		b, err := protocol.DecodeBatch(l.Data[1:])
		if err == nil && b.FirstHeight <= h && h <= b.LastHeight() {
			return b.Epoch, true
		}
		if err == nil && b.LastHeight() < h {
			return 0, false
		}
	}
	return 0, false
}

func regionFailover(b *testing.B, tune func(*Config)) time.Duration {
	tc := quietRegions(b, 7, tune)
	old := tc.leader()
	_, e0, _ := tc.channel(old).view.current()
	type ack struct {
		at time.Time
		h  uint64
	}
	var mu sync.Mutex
	var acks []ack // acknowledged after the stop
	var stopped atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, nd := range tc.nodes {
		if nd == old {
			continue
		}
		u, c := tc.users[i], tc.channel(nd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx := tc.tx(u, fmt.Sprintf("f%d-0;", i))
			for j := 1; ; {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				out, err := c.Submit(ctx, tx)
				cancel()
				if err != nil {
					continue // the same tx again: it may have committed
				}
				if stopped.Load() {
					mu.Lock()
					acks = append(acks, ack{time.Now(), out.Height})
					mu.Unlock()
				}
				tx = tc.tx(u, fmt.Sprintf("f%d-%d;", i, j))
				j++
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// Writes flow, then the leader's node stops.
	h0 := tc.channel(old).Status().Height
	testutil.WaitFor(b, 30*time.Second, func() error {
		if h := tc.channel(old).Status().Height; h < h0+20 {
			return fmt.Errorf("at height %d before the stop", h)
		}
		return nil
	})
	start := time.Now()
	stopped.Store(true)
	tc.stopNode(old)
	// Sampled every 10 ms: the figure is the acknowledgement's time, not
	// the sample's.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case <-deadline:
			b.Fatal("writes did not resume within 60 s")
		case <-tick.C:
		}
		nl := tc.leader()
		if nl == nil || nl == old {
			continue
		}
		c := tc.channel(nl)
		mu.Lock()
		got := slices.Clone(acks)
		mu.Unlock()
		var first time.Time
		for _, a := range got {
			if e, ok := batchEpoch(c, a.h); ok && e > e0 && (first.IsZero() || a.at.Before(first)) {
				first = a.at
			}
		}
		if !first.IsZero() {
			return first.Sub(start)
		}
	}
}
