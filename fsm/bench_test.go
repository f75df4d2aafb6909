package fsm

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

const (
	benchTxs     = 256
	benchSenders = 16
)

func benchKeys(b *testing.B) []*protocol.Key {
	keys := make([]*protocol.Key, benchSenders)
	for i := range keys {
		keys[i] = testKey(b, i)
	}
	return keys
}

// benchEntries returns round r of benchTxs signed "put" calls, benchTxs /
// benchSenders per sender, with the nonces that follow round r-1.
func benchEntries(keys []*protocol.Key, r int) []protocol.Entry {
	per := benchTxs / len(keys)
	out := make([]protocol.Entry, 0, benchTxs)
	for j := 0; j < per; j++ {
		for _, k := range keys {
			out = append(out, call(k, uint64(r*per+j+1), "put", fmt.Sprintf("k%d=v%d", j, r)))
		}
	}
	return out
}

func perTx(b *testing.B, d time.Duration) {
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N*benchTxs), "ns/tx")
}

func cpuPerTx(b *testing.B, d time.Duration) {
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N*benchTxs), "cpu-ns/tx")
}

// BenchmarkApply measures a follower applying 256-call batches with real
// signatures and the fake executor: the whole Apply, and its two parts,
// batch signature verification and execution (results, digests, layers).
func BenchmarkApply(b *testing.B) {
	keys := benchKeys(b)
	cfg := testConfig(keys...)

	b.Run("verify", func(b *testing.B) {
		entries := benchEntries(keys, 0)
		b.ResetTimer()
		start, cpu := time.Now(), testutil.CPUTime()
		for range b.N {
			for _, err := range verifyCalls(entries) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		perTx(b, time.Since(start))
		cpuPerTx(b, testutil.CPUTime()-cpu)
	})

	b.Run("execute", func(b *testing.B) {
		m := newMachine(b, cfg)
		entries := benchEntries(keys, 0)
		b.ReportAllocs()
		b.ResetTimer()
		start, cpu := time.Now(), testutil.CPUTime()
		for range b.N {
			v := &view{base: m.st, top: newLayer(m.st.meta)}
			outs, _ := m.run(v, entries, 1, 1, nil)
			if outs[0].Result.Status != protocol.StatusOK {
				b.Fatal(outs[0].Message)
			}
		}
		perTx(b, time.Since(start))
		cpuPerTx(b, testutil.CPUTime()-cpu)
	})

	b.Run("full", func(b *testing.B) {
		leader, follower := newMachine(b, cfg), newMachine(b, cfg)
		var spent, spentCPU time.Duration
		for i := range b.N {
			b.StopTimer()
			batch, _, err := leader.Propose(benchEntries(keys, i), 1, keys[0], uint64(i))
			if err != nil {
				b.Fatal(err)
			}
			mustApply(b, leader, batch)
			batch = roundTrip(b, batch)
			b.StartTimer()
			start, cpu := time.Now(), testutil.CPUTime()
			a, err := follower.Apply(batch, nil)
			spent += time.Since(start)
			spentCPU += testutil.CPUTime() - cpu
			if err != nil || a.Faults != 0 {
				b.Fatalf("apply: %v, %d faults", err, a.Faults)
			}
		}
		perTx(b, spent)
		cpuPerTx(b, spentCPU)
	})
}

// BenchmarkProposeApply measures the leader: Propose (execute, sign) and
// then Apply of the same batch reusing the speculative results.
func BenchmarkProposeApply(b *testing.B) {
	keys := benchKeys(b)
	m := newMachine(b, testConfig(keys...))
	var spentPropose, spentApply, spentCPU time.Duration
	b.ReportAllocs()
	for i := range b.N {
		b.StopTimer()
		entries := benchEntries(keys, i)
		b.StartTimer()
		start, cpu := time.Now(), testutil.CPUTime()
		batch, _, err := m.Propose(entries, 1, keys[0], uint64(i))
		if err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		a, err := m.Apply(batch, nil)
		spentApply += time.Since(mid)
		spentPropose += mid.Sub(start)
		spentCPU += testutil.CPUTime() - cpu
		if err != nil || !a.Reused {
			b.Fatalf("apply: %v, reused %v", err, a != nil && a.Reused)
		}
	}
	perTx(b, spentPropose+spentApply)
	cpuPerTx(b, spentCPU)
	b.ReportMetric(float64(spentPropose.Nanoseconds())/float64(b.N*benchTxs), "propose-ns/tx")
	b.ReportMetric(float64(spentApply.Nanoseconds())/float64(b.N*benchTxs), "reuse-ns/tx")
}

// BenchmarkNetChangeSet merges a journal of 10,000 heights, each creating or
// modifying one of 1,000 resources: the settlement of a busy channel.
func BenchmarkNetChangeSet(b *testing.B) {
	const heights, keys = 10_000, 1_000
	m := newMachine(b, testConfig(testKey(b, 0)))
	vals := map[int][]byte{}
	for h := 0; h < heights; h++ {
		k := protocol.ResourceKey{Type: fmt.Sprintf("t::k%04d", h%keys)}
		nv := []byte(fmt.Sprint(h))
		c := protocol.Change{Key: k, Kind: protocol.OpNew, New: nv}
		if old, ok := vals[h%keys]; ok {
			c = protocol.Change{Key: k, Kind: protocol.OpModify, Old: old, New: nv}
		}
		vals[h%keys] = nv
		m.st.journal = append(m.st.journal, journalEntry{cs: protocol.ChangeSet{Changes: []protocol.Change{c}}})
	}
	m.st.height = heights
	b.Run("tree", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			cs, err := m.NetChangeSet(1, heights)
			if err != nil || cs.Len() != keys {
				b.Fatalf("%d changes, %v", cs.Len(), err)
			}
		}
	})
	// For comparison: protocol.MergeAll folds left, one height at a time.
	b.Run("fold", func(b *testing.B) {
		sets := make([]protocol.ChangeSet, heights)
		for i, je := range m.st.journal {
			sets[i] = je.cs
		}
		b.ReportAllocs()
		for range b.N {
			cs, err := protocol.MergeAll(sets)
			if err != nil || cs.Len() != keys {
				b.Fatalf("%d changes, %v", cs.Len(), err)
			}
		}
	})
}

// BenchmarkRestoreBatches measures restoring a snapshot whose base is the
// genesis and which carries 40 batches of 256 calls (10,240 heights, about
// SettleMaxHeights): decoding, then every batch verified and re-executed,
// as a member that installs a snapshot does (without the chain reads).
func BenchmarkRestoreBatches(b *testing.B) {
	keys := benchKeys(b)
	cfg := testConfig(keys...)
	m := newMachine(b, cfg)
	const batches = 40
	for i := range batches {
		batch, _, err := m.Propose(benchEntries(keys, i), 1, keys[0], uint64(i))
		if err != nil {
			b.Fatal(err)
		}
		mustApply(b, m, batch)
	}
	data := snapshotBytes(m)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	start, cpu := time.Now(), testutil.CPUTime()
	for range b.N {
		r := newMachine(b, cfg)
		if err := r.Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*batches*benchTxs), "ns/tx")
	b.ReportMetric(float64((testutil.CPUTime()-cpu).Nanoseconds())/float64(b.N*batches*benchTxs), "cpu-ns/tx")
}
