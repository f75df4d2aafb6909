package cluster

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
)

// BenchmarkSubmit: 3 in-process nodes on loopback gRPC with real raft and
// bbolt, 64 members each submitting signed txs in order through a random
// node. One op is one committed tx.
func BenchmarkSubmit(b *testing.B) {
	for _, users := range []int{1, 64} {
		b.Run(fmt.Sprintf("members=%d", users), func(b *testing.B) { benchSubmit(b, users) })
	}
}

func benchSubmit(b *testing.B, users int) {
	tc := newTestClusterUsers(b, 3, users, func(c *Config) { c.Logger = nil; benchTune(c) })
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i, u := range tc.users[3:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := tc.channel(tc.nodes[i%3])
			for next.Add(1) <= int64(b.N) {
				if _, err := c.Submit(context.Background(), tc.tx(u, fmt.Sprintf("m%d", i))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tx/s")
	if l := tc.leader(); l != nil {
		tc.channel(l).Machine(func(m *fsm.Machine) {
			st := m.Stats()
			if st.BatchesApplied > 0 {
				b.ReportMetric(float64(st.Entries)/float64(st.BatchesApplied), "txs/batch")
			}
		})
	}
}

// benchTune applies SCRAFT_BENCH_INFLIGHT and SCRAFT_BENCH_DELAY_US.
func benchTune(c *Config) {
	if v, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_INFLIGHT")); err == nil && v > 0 {
		c.MaxInFlight = v
	}
	if v, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_DELAY_US")); err == nil && v >= 0 {
		c.BatchMaxDelay = time.Duration(v) * time.Microsecond
	}
}
