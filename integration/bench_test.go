package integration

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
)

// benchSeconds is how long each benchmark measures (SCRAFT_BENCH_SECONDS,
// default 10). Run with -benchtime 1x: one measurement per run.
func benchSeconds() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 10 * time.Second
}

// BenchmarkCommit: a 3-node chat channel in three processes and a chain
// process; each client is a member that sends signed chat messages one
// after the other through the client API. Reports committed tx/s and the
// p50/p99 commit latency seen by clients.
func BenchmarkCommit(b *testing.B) {
	for _, clients := range []int{64, 256} {
		b.Run("clients="+strconv.Itoa(clients), func(b *testing.B) {
			pc := newProcCluster(b, 3, clients)
			l := pc.startLoad(pc.users)
			// Warm up: every client has joined the chat.
			testutil.Eventually(b, 60*time.Second, "warm-up", func() bool { return l.count() >= 2*clients })
			from := l.count()
			start := time.Now()
			<-time.After(benchSeconds()) // the measurement window
			acks := l.end()
			elapsed := time.Since(start)
			window := acks[from:]
			var lat []time.Duration
			for _, a := range window {
				if a.at.Before(start.Add(elapsed)) {
					lat = append(lat, a.latency)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "tx/s")
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkFailover kills the leader process with SIGKILL under load, N
// times (SCRAFT_BENCH_KILLS, default 3), and reports the gap between the
// kill and the first commit of a tx sent after it (mean and max).
func BenchmarkFailover(b *testing.B) {
	kills := 3
	if s, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_KILLS")); err == nil && s > 0 {
		kills = s
	}
	pc := newProcCluster(b, 3, 0)
	l := pc.startLoad(pc.nodeKeys())
	var gaps []time.Duration
	for k := 0; k < kills; k++ {
		testutil.Eventually(b, 60*time.Second, "writes", func() bool { return l.count() >= 30*(k+1) })
		old := pc.waitLeader(30 * time.Second)
		killed := time.Now()
		old.p.kill()
		testutil.Eventually(b, 30*time.Second, "writes after the kill", func() bool { return l.lastSent().After(killed) })
		var first time.Time
		l.mu.Lock()
		for _, a := range l.acks {
			// A write sent after the kill: one sent before may have been
			// committed by the old leader and only answered late.
			if a.sent.After(killed) && (first.IsZero() || a.at.Before(first)) {
				first = a.at
			}
		}
		l.mu.Unlock()
		gaps = append(gaps, first.Sub(killed))
		b.Logf("kill %d: writes resumed after %s", k+1, first.Sub(killed))
		pc.restart(old)
		pc.waitVoters(3, 60*time.Second)
	}
	l.end()
	var sum, top time.Duration
	for _, g := range gaps {
		sum += g
		top = max(top, g)
	}
	b.ReportMetric(float64(sum.Milliseconds())/float64(len(gaps)), "mean-gap-ms")
	b.ReportMetric(float64(top.Milliseconds()), "max-gap-ms")
}
