package fsm

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// FuzzRestore: arbitrary bytes never panic; a snapshot that is accepted
// encodes back to one that restores the same state and encodes back to
// itself (the same bytes, unless the input named a settled height that
// moves the base up); one that is refused leaves the machine unchanged.
func FuzzRestore(f *testing.F) {
	cfg, batches := history(f)
	m := newMachine(f, cfg)
	f.Add(snapshotBytes(m))
	for _, b := range batches {
		mustApply(f, m, b)
		f.Add(snapshotBytes(m))
	}
	// A base above genesis, with batches after it.
	if err := m.PruneTo(10); err != nil {
		f.Fatal(err)
	}
	f.Add(snapshotBytes(m))
	f.Add([]byte{})
	f.Add([]byte{SnapshotVersion})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Also try the bytes as a body under a valid checksum, to get past
		// the checksum into the decoder.
		sum := sha256.Sum256(append([]byte{SnapshotVersion}, data...))
		withSum := append(append([]byte{SnapshotVersion}, data...), sum[:]...)
		for _, in := range [][]byte{data, withSum} {
			m := newMachine(t, cfg)
			before := snapshotBytes(m)
			if err := m.Restore(bytes.NewReader(in)); err != nil {
				if !bytes.Equal(before, snapshotBytes(m)) {
					t.Fatal("refused snapshot changed the machine")
				}
				continue
			}
			if out := snapshotBytes(m); !bytes.Equal(out, in) {
				again := newMachine(t, cfg)
				if err := again.Restore(bytes.NewReader(out)); err != nil {
					t.Fatalf("re-encoded snapshot refused: %v", err)
				}
				requireSameState(t, m, again)
				if !bytes.Equal(snapshotBytes(again), out) {
					t.Fatal("accepted snapshot does not encode canonically")
				}
			}
			// A restored machine must take batches without panicking.
			b := honestBatch(m, []protocol.Entry{tick(m.st.tick+1, m.st.tickMs+1000)}, m.st.epoch+1, testKey(t, 0), max(m.st.timestampMs, m.st.tickMs+1000))
			if _, err := m.Apply(b, nil); err != nil {
				t.Fatalf("apply after restore: %v", err)
			}
		}
	})
}

// FuzzApplyBatch: arbitrary decoded batches never panic and never make two
// machines with the same history diverge. Each input is applied as is and
// also with its channel and first height fixed up and signed by the leader,
// so mutated entries get past the batch checks.
func FuzzApplyBatch(f *testing.F) {
	cfg, batches := history(f)
	for _, b := range batches {
		f.Add(b.Bytes())
	}
	// Both machines start from a snapshot after the first two batches
	// (restoring is much cheaper than verifying their signatures again).
	pre := newMachine(f, cfg)
	for _, b := range batches[:2] {
		mustApply(f, pre, b)
	}
	start := snapshotBytes(pre)
	leaderKey := testKey(f, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := protocol.DecodeBatch(data)
		if err != nil {
			return
		}
		ms := []*Machine{newMachine(t, cfg), newMachine(t, cfg)}
		for _, m := range ms {
			if err := m.Restore(bytes.NewReader(start)); err != nil {
				t.Fatal(err)
			}
		}
		fixed := roundTrip(t, b)
		fixed.Channel = cfg.Channel
		fixed.FirstHeight = ms[0].Height() + 1
		fixed.Sign(leaderKey)
		for _, in := range []*protocol.Batch{b, fixed} {
			var errs [2]error
			for i, m := range ms {
				before := m.Height()
				a, err := m.Apply(roundTrip(t, in), nil)
				errs[i] = err
				switch {
				case err == nil && m.Height() != before+uint64(len(in.Entries)):
					t.Fatalf("height %d after %d entries from %d", m.Height(), len(in.Entries), before)
				case err == nil && (len(a.Outcomes) != len(in.Entries) || a.Digest != m.LastDigest()):
					t.Fatal("outcomes do not match the batch")
				case err != nil && m.Height() != before:
					t.Fatal("refused batch moved the height")
				}
			}
			if (errs[0] == nil) != (errs[1] == nil) {
				t.Fatalf("machines disagree: %v vs %v", errs[0], errs[1])
			}
			requireSameState(t, ms[0], ms[1])
		}
	})
}

// FuzzReadSnapshot: the decoder alone, without re-executing the batches
// (what Restore spends its time on), so the fuzzer gets far into it:
// arbitrary bytes never panic, and what it accepts keeps its invariants.
func FuzzReadSnapshot(f *testing.F) {
	cfg, batches := history(f)
	m := newMachine(f, cfg)
	for _, b := range batches {
		mustApply(f, m, b)
	}
	f.Add(snapshotBytes(m))
	if err := m.PruneTo(10); err != nil {
		f.Fatal(err)
	}
	f.Add(snapshotBytes(m))
	r := newMachine(f, cfg)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, withChecksum(data)} {
			sf, err := r.ReadSnapshot(bytes.NewReader(in))
			if err != nil {
				continue
			}
			if sf.Legacy() {
				continue
			}
			switch {
			case sf.BaseHeight() > sf.Settled || sf.Settled > sf.Height:
				t.Fatalf("accepted heights base %d settled %d height %d", sf.BaseHeight(), sf.Settled, sf.Height)
			case uint64(len(sf.Batches)) > sf.Height-sf.BaseHeight():
				t.Fatalf("accepted %d batches for %d heights", len(sf.Batches), sf.Height-sf.BaseHeight())
			case sf.st.resources != len(sf.st.res):
				t.Fatal("resource count differs from the state")
			}
		}
	})
}

// withChecksum returns data with its SHA-256 appended, to get past the
// checksum into the decoder.
func withChecksum(data []byte) []byte {
	sum := sha256.Sum256(data)
	return append(bytes.Clone(data), sum[:]...)
}
