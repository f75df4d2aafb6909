package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// history is a run of batches touching every kind of state: resources
// created, modified, deleted and created again, nonces, a join, a leave,
// ticks.
func history(t testing.TB) (Config, []*protocol.Batch) {
	t.Helper()
	alice, bob, carol := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	cfg := testConfig(alice, bob)
	m := newMachine(t, cfg)
	steps := [][]protocol.Entry{
		{call(alice, 1, "put", "x=1"), call(bob, 1, "put", "x=1"), tick(1, 100)},
		{call(alice, 2, "put", "x=2"), call(alice, 3, "put", "y=1"), call(bob, 2, "abort", "")},
		{call(alice, 4, "del", "x"), join(carol, 3), call(carol, 1, "put", "z=1")},
		{call(alice, 5, "put", "x=again"), tick(2, 200), call(bob, 3, "del", "x")},
		{leave(bob), call(alice, 6, "put", "y=1"), call(carol, 2, "put", "z=2")},
		{call(alice, 7, "emit", "bye"), tick(3, 300)},
	}
	var out []*protocol.Batch
	for i, s := range steps {
		b, _, err := m.Propose(s, 1, alice, uint64(100*(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, m, b)
		out = append(out, roundTrip(t, b))
	}
	return cfg, out
}

func TestSnapshotRoundTrip(t *testing.T) {
	cfg, batches := history(t)
	for cut := 0; cut <= len(batches); cut++ {
		a := newMachine(t, cfg)
		for _, b := range batches[:cut] {
			mustApply(t, a, b)
		}
		if cut == 4 {
			if err := a.PruneTo(5); err != nil {
				t.Fatal(err)
			}
		}
		snap := a.Snapshot()
		var buf bytes.Buffer
		n, err := snap.WriteTo(&buf)
		if err != nil || n != int64(buf.Len()) {
			t.Fatalf("WriteTo: %d, %v", n, err)
		}
		b := newMachine(t, cfg)
		// Something to throw away: b starts ahead on another path.
		mustApply(t, b, honestBatch(b, []protocol.Entry{tick(1, 50)}, 1, testKey(t, 0), 50))
		if _, _, err := b.Propose([]protocol.Entry{tick(2, 500)}, 1, testKey(t, 0), 500); err != nil {
			t.Fatal(err)
		}
		if err := b.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("cut %d: restore: %v", cut, err)
		}
		if n, _ := b.Pending(); n != 0 {
			t.Fatal("Restore kept pending batches")
		}
		requireSameState(t, a, b)
		if b.SettledHeight() != a.SettledHeight() || snap.Height() != a.Height() || snap.Digest() != a.LastDigest() {
			t.Fatal("restored journal bounds differ")
		}
		// Both go on identically.
		for _, bt := range batches[cut:] {
			mustApply(t, a, bt)
			mustApply(t, b, bt)
		}
		requireSameState(t, a, b)
	}
}

// TestSnapshotCopyOnWrite: a snapshot keeps the state it captured while the
// machine goes on, and can be encoded on another goroutine meanwhile.
func TestSnapshotCopyOnWrite(t *testing.T) {
	cfg, batches := history(t)
	m := newMachine(t, cfg)
	for _, b := range batches[:3] {
		mustApply(t, m, b)
	}
	snap := m.Snapshot()
	want := snap.Bytes()

	var wg sync.WaitGroup
	results := make(chan []byte, 4)
	for range 4 {
		wg.Go(func() {
			var buf bytes.Buffer
			if _, err := snap.WriteTo(&buf); err != nil {
				t.Error(err)
			}
			results <- buf.Bytes()
		})
	}
	for _, b := range batches[3:] {
		mustApply(t, m, b)
	}
	if err := m.PruneTo(8); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	for got := range results {
		if !bytes.Equal(got, want) {
			t.Fatal("snapshot changed while the machine went on")
		}
	}
	if !bytes.Equal(snap.Bytes(), want) {
		t.Fatal("snapshot changed")
	}
	// A second snapshot after more changes captures the new state.
	if bytes.Equal(m.Snapshot().Bytes(), want) {
		t.Fatal("new snapshot equals the old one")
	}
}

func TestRestoreRefuses(t *testing.T) {
	cfg, batches := history(t)
	src := newMachine(t, cfg)
	for _, b := range batches {
		mustApply(t, src, b)
	}
	good := snapshotBytes(src)

	other := cfg
	other.Channel = protocol.ChannelID{9}
	otherM := newMachine(t, other)
	otherSnap := snapshotBytes(otherM)

	// resum replaces the body and recomputes the checksum, to reach the
	// decoder's own checks.
	resum := func(body []byte) []byte {
		sum := sha256.Sum256(body)
		return append(append([]byte(nil), body...), sum[:]...)
	}
	body := good[:len(good)-sha256.Size]
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0x40
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{SnapshotVersion}},
		{"truncated by one", good[:len(good)-1]},
		{"truncated in half", good[:len(good)/2]},
		{"flipped version", flip(0)},
		{"flipped early byte", flip(5)},
		{"flipped middle byte", flip(len(good) / 2)},
		{"flipped checksum", flip(len(good) - 1)},
		{"unknown version, valid checksum", resum(append([]byte{SnapshotVersion + 1}, body[1:]...))},
		{"trailing byte, valid checksum", resum(append(append([]byte(nil), body...), 0))},
		{"body cut, valid checksum", resum(body[:len(body)-3])},
		{"other channel", otherSnap},
		{"garbage, valid checksum", resum([]byte{SnapshotVersion, 1, 2, 3})},
		{"tampered batch, valid checksum", resum(bytes.Replace(body, []byte("z=2"), []byte("z=3"), 1))},
		{"batch dropped, valid checksum", resum(dropLastBatch(t, src))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, cfg)
			mustApply(t, m, batches[0])
			before := snapshotBytes(m)
			err := m.Restore(bytes.NewReader(tc.data))
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("Restore: %v, want ErrSnapshot", err)
			}
			if !bytes.Equal(before, snapshotBytes(m)) {
				t.Fatal("a refused snapshot changed the machine")
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		m := newMachine(t, cfg)
		if err := m.Restore(io.MultiReader(bytes.NewReader(good[:10]), errReader{})); !errors.Is(err, ErrSnapshot) {
			t.Fatalf("Restore: %v", err)
		}
	})
}

// dropLastBatch returns the body of src's snapshot without its last batch:
// its batches end below the height it names.
func dropLastBatch(t *testing.T, src *Machine) []byte {
	t.Helper()
	snap := src.Snapshot()
	snap.tail = snap.tail[:len(snap.tail)-1]
	b := snap.Bytes()
	return b[:len(b)-sha256.Size]
}

// TestSnapshotBaseAndBatches: a snapshot carries the state at the highest
// batch end at or below the settled height and the batches since; the
// reader gets the base's state hash from scratch and the same machine
// after the batches.
func TestSnapshotBaseAndBatches(t *testing.T) {
	cfg, batches := history(t)
	m := newMachine(t, cfg)
	for _, b := range batches {
		mustApply(t, m, b)
	}
	// Batches end at heights 3, 6, 9, 12, 15, 17.
	tests := []struct {
		prune, base uint64
		batches     int
	}{
		{0, 0, 6},
		{10, 9, 3}, // inside a batch: the base stays at the batch end below
		{12, 12, 2},
		{17, 17, 0}, // the applied height: the current state
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("settled %d", tc.prune), func(t *testing.T) {
			wantHash, _ := m.StateHash(tc.base)
			if err := m.PruneTo(tc.prune); err != nil {
				t.Fatal(err)
			}
			snap := m.Snapshot()
			if snap.BaseHeight() != tc.base {
				t.Fatalf("base at %d, want %d", snap.BaseHeight(), tc.base)
			}
			data := snap.Bytes()
			r := newMachine(t, cfg)
			f, err := r.ReadSnapshot(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if f.Legacy() || f.BaseHeight() != tc.base || len(f.Batches) != tc.batches || f.Height != m.Height() || f.Settled != max(tc.prune, tc.base) {
				t.Fatalf("read base %d, %d batches, height %d, settled %d", f.BaseHeight(), len(f.Batches), f.Height, f.Settled)
			}
			if tc.base > 0 && f.BaseStateHash() != wantHash {
				t.Fatal("the base's state hash from scratch differs from the machine's at that height")
			}
			if err := r.Restore(bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			requireSameState(t, m, r)
			if !bytes.Equal(snapshotBytes(r), data) {
				t.Fatal("the restored machine writes another snapshot")
			}
		})
	}
	// A made-up base does not hash to the state hash the chain settled.
	m2 := newMachine(t, cfg)
	for _, b := range batches {
		mustApply(t, m2, b)
	}
	if err := m2.PruneTo(12); err != nil {
		t.Fatal(err)
	}
	sh, _ := m2.StateHash(12)
	data := snapshotBytes(m2)
	body := bytes.Clone(data[:len(data)-sha256.Size])
	i := bytes.Index(body, []byte("again"))
	if i < 0 {
		t.Fatal("no resource value to change")
	}
	body[i] = 'A'
	sum := sha256.Sum256(body)
	f, err := newMachine(t, cfg).ReadSnapshot(bytes.NewReader(append(body, sum[:]...)))
	if err != nil {
		t.Fatal(err)
	}
	if f.BaseStateHash() == sh {
		t.Fatal("a made-up base has the settled state hash")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestJournal(t *testing.T) {
	cfg, batches := history(t)
	m := newMachine(t, cfg)
	states := []protocol.State{m.Resources()} // by batch count
	heights := []uint64{0}
	digests := map[uint64]protocol.Hash{0: m.LastDigest()}
	for _, b := range batches {
		a := mustApply(t, m, b)
		states = append(states, m.Resources())
		heights = append(heights, m.Height())
		for _, o := range a.Outcomes {
			digests[o.Height] = o.Digest
		}
	}
	// The merged journal over any range of whole batches is the diff of
	// the states at both ends.
	for i := range states {
		for j := i + 1; j < len(states); j++ {
			got, err := m.NetChangeSet(heights[i]+1, heights[j])
			if err != nil {
				t.Fatal(err)
			}
			if want := protocol.Diff(states[i], states[j]); !got.Equal(want) {
				t.Fatalf("net %d..%d = %v, want %v", heights[i]+1, heights[j], got, want)
			}
			var sets []protocol.ChangeSet
			for h := heights[i] + 1; h <= heights[j]; h++ {
				cs, err := m.ChangeSet(h)
				if err != nil {
					t.Fatal(err)
				}
				sets = append(sets, cs)
			}
			if folded, err := protocol.MergeAll(sets); err != nil || !folded.Equal(got) {
				t.Fatalf("net %d..%d differs from MergeAll: %v", heights[i]+1, heights[j], err)
			}
		}
	}
	for h, d := range digests {
		if got, ok := m.Digest(h); !ok || got != d {
			t.Fatalf("Digest(%d)", h)
		}
	}

	// Settle up to the end of batch 2, then everything after still merges.
	settled := heights[2]
	if err := m.PruneTo(settled); err != nil {
		t.Fatal(err)
	}
	if err := m.PruneTo(settled - 1); err != nil {
		t.Fatal("pruning below the settled height must do nothing")
	}
	if m.SettledHeight() != settled {
		t.Fatalf("settled %d", m.SettledHeight())
	}
	if d, ok := m.Digest(settled); !ok || d != digests[settled] {
		t.Fatal("settled digest lost")
	}
	if _, ok := m.Digest(settled - 1); ok {
		t.Fatal("digest below the settled height")
	}
	if _, err := m.NetChangeSet(settled, m.Height()); !errors.Is(err, ErrRange) {
		t.Fatalf("range into the settled part: %v", err)
	}
	if _, err := m.NetChangeSet(settled+1, m.Height()+1); !errors.Is(err, ErrRange) {
		t.Fatalf("range past the height: %v", err)
	}
	if _, err := m.ChangeSet(settled); !errors.Is(err, ErrRange) {
		t.Fatalf("ChangeSet of a settled height: %v", err)
	}
	if err := m.PruneTo(m.Height() + 1); !errors.Is(err, ErrRange) {
		t.Fatalf("prune past the height: %v", err)
	}
	s, err := m.Settlement(m.Height())
	if err != nil {
		t.Fatal(err)
	}
	if s.From != settled+1 || s.To != m.Height() || s.Digest != m.LastDigest() || !s.ChangeSet.Equal(protocol.Diff(states[2], states[len(states)-1])) {
		t.Fatalf("settlement %+v", s)
	}
	// The settled state plus the settlement is the current state.
	st := states[2].Clone()
	if err := st.Apply(s.ChangeSet); err != nil || st.Hash() != m.Resources().Hash() {
		t.Fatalf("settled state + net change set != state: %v", err)
	}
	if err := m.PruneTo(m.Height()); err != nil {
		t.Fatal(err)
	}
	if d, ok := m.Digest(m.Height()); !ok || d != m.LastDigest() {
		t.Fatal("digest at a fully pruned journal")
	}
}

// TestJournalLong merges many small change sets that create, modify, delete
// and recreate the same few resources, over every range of whole batches.
func TestJournalLong(t *testing.T) {
	alice := testKey(t, 0)
	m := newMachine(t, testConfig(alice))
	states := []protocol.State{m.Resources()}
	heights := []uint64{0}
	nonce := uint64(0)
	for round := 0; round < 40; round++ {
		var entries []protocol.Entry
		for j := 0; j < 7; j++ {
			i := round*7 + j
			nonce++
			if i%4 == 0 {
				entries = append(entries, call(alice, nonce, "del", fmt.Sprintf("k%d", i%5)))
			} else {
				entries = append(entries, call(alice, nonce, "put", fmt.Sprintf("k%d=%d", i%5, (i/3)%3)))
			}
		}
		mustApply(t, m, honestBatch(m, entries, 1, alice, uint64(round)))
		states = append(states, m.Resources())
		heights = append(heights, m.Height())
	}
	for i := range states {
		for j := i + 1; j < len(states); j++ {
			got, err := m.NetChangeSet(heights[i]+1, heights[j])
			if err != nil {
				t.Fatal(err)
			}
			if want := protocol.Diff(states[i], states[j]); !got.Equal(want) {
				t.Fatalf("net %d..%d = %v, want %v", heights[i]+1, heights[j], got, want)
			}
		}
	}
}

// TestSnapshotLarge writes a state of several chunks and restores it, and
// reports a failing writer.
func TestSnapshotLarge(t *testing.T) {
	alice := testKey(t, 0)
	cfg := testConfig(alice)
	for i := range 3000 {
		cfg.Genesis.State[protocol.ResourceKey{Account: protocol.Address{byte(i), byte(i >> 8)}, Type: "t::Big"}] = bytes.Repeat([]byte{byte(i)}, 100)
	}
	m := newMachine(t, cfg)
	mustApply(t, m, honestBatch(m, []protocol.Entry{call(alice, 1, "put", "x=1")}, 1, alice, 1))
	data := snapshotBytes(m)
	if len(data) < 3*chunkSize {
		t.Fatalf("snapshot of %d bytes is not several chunks", len(data))
	}
	r := newMachine(t, cfg)
	if err := r.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	requireSameState(t, m, r)

	w := &failAfter{n: chunkSize + 10}
	n, err := m.Snapshot().WriteTo(w)
	if err == nil || n != int64(w.written) {
		t.Fatalf("WriteTo to a failing writer: %d, %v", n, err)
	}
}

type failAfter struct{ n, written int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.written+len(p) > f.n {
		k := f.n - f.written
		f.written = f.n
		return k, errors.New("disk full")
	}
	f.written += len(p)
	return len(p), nil
}
