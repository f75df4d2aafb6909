package integration

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPunish: a 4-node chat channel in node processes and a chain
// process, whose leader runs the scraft_misbehave build and signs a wrong
// gas at one height under load through the honest nodes (as
// TestAccountabilityTamperingLeader). Per run it measures, from the first
// honest node that holds the evidence (polled every 10 ms) to the chain
// showing the liar out (the punishment executed), and to the first write
// acknowledged under the new leader; and the chain blocks from the
// offence to the block that executed the case. Runs
// SCRAFT_BENCH_PUNISH_RUNS times (default 10), each a fresh cluster, and
// logs the median and the worst. Run with -benchtime 1x.
func BenchmarkPunish(b *testing.B) {
	runs := 10
	if v, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_PUNISH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	var punished, written []time.Duration
	var blocks []uint64
	for i := 0; i < runs; i++ {
		b.Run(fmt.Sprintf("run=%d", i+1), func(b *testing.B) {
			f := runTamperingLeader(b, 4)
			f.log(b)
			p, w := f.executed.at.Sub(f.offence.at), f.firstWrite.Sub(f.offence.at)
			punished, written = append(punished, p), append(written, w)
			blocks = append(blocks, f.caseExecuted-f.offence.block)
			b.ReportMetric(float64(p.Milliseconds()), "ms-to-punish")
			b.ReportMetric(float64(w.Milliseconds()), "ms-to-write")
			b.ReportMetric(float64(f.caseExecuted-f.offence.block), "blocks-to-punish")
		})
	}
	if len(punished) == 0 {
		return
	}
	// A last sub-benchmark reports the summary: a benchmark with
	// sub-benchmarks prints nothing of its own.
	b.Run("summary", func(b *testing.B) {
		slices.Sort(punished)
		slices.Sort(written)
		slices.Sort(blocks)
		mid, worst := len(punished)/2, len(punished)-1
		b.Logf("%d runs: offence to punishment executed: median %s, worst %s (%d and %d chain blocks); "+
			"offence to the first write under the new leader: median %s, worst %s",
			len(punished), punished[mid].Round(time.Millisecond), punished[worst].Round(time.Millisecond),
			blocks[mid], blocks[worst], written[mid].Round(time.Millisecond), written[worst].Round(time.Millisecond))
		b.ReportMetric(float64(punished[mid].Milliseconds()), "ms-to-punish-p50")
		b.ReportMetric(float64(punished[worst].Milliseconds()), "ms-to-punish-max")
		b.ReportMetric(float64(written[mid].Milliseconds()), "ms-to-write-p50")
		b.ReportMetric(float64(written[worst].Milliseconds()), "ms-to-write-max")
		b.ReportMetric(float64(blocks[mid]), "blocks-to-punish-p50")
		b.ReportMetric(float64(blocks[worst]), "blocks-to-punish-max")
	})
}
