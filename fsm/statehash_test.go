package fsm

import (
	"bytes"
	"crypto/aes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// checkStateHash requires the incremental state hash of the applied height
// to equal the one recomputed from the whole state.
func checkStateHash(t testing.TB, m *Machine) protocol.Hash {
	t.Helper()
	got, ok := m.StateHash(m.Height())
	if !ok {
		t.Fatalf("no state hash at the applied height %d", m.Height())
	}
	if want := m.recomputeStateHash(); got != want {
		t.Fatalf("state hash at %d: incremental %s, from scratch %s", m.Height(), got, want)
	}
	return got
}

// TestLtHashLanes holds the four-lanes-a-word sums to plain 16-bit lane
// arithmetic.
func TestLtHashLanes(t *testing.T) {
	var l ltHash
	var ref [ltLanes]uint16
	for i, e := range []string{"a", "b", "c", "d", "e", "d"} {
		var x [ltBytes]byte
		expand([]byte(e), &x)
		remove := i == 3 || i == 5
		if remove {
			l.sub([]byte(e))
		} else {
			l.add([]byte(e))
		}
		for j := range ref {
			v := binary.LittleEndian.Uint16(x[2*j:])
			if remove {
				ref[j] -= v
			} else {
				ref[j] += v
			}
		}
	}
	for j := range ref {
		if got := uint16(l[j/4] >> (16 * (j % 4))); got != ref[j] {
			t.Fatalf("lane %d: %d, want %d", j, got, ref[j])
		}
	}
	var back ltHash
	back.add([]byte("x"))
	back.sub([]byte("x"))
	if back != (ltHash{}) {
		t.Fatal("adding and removing an element does not cancel")
	}
}

func TestStateHashSameStateSameHash(t *testing.T) {
	a0, a1, a2 := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	cfg := testConfig(a0, a1)
	m1, m2 := newMachine(t, cfg), newMachine(t, cfg)
	g1 := checkStateHash(t, m1)
	if g2 := checkStateHash(t, m2); g1 != g2 {
		t.Fatal("two machines at genesis have different state hashes")
	}
	batches := [][]protocol.Entry{
		{call(a0, 1, "put", "x=1"), call(a1, 1, "put", "y=2"), tick(1, 100)},
		{join(a2, 3), call(a2, 1, "put", "z=3"), call(a0, 2, "del", "x")},
		{request(a1, 2, protocol.RequestLeave), call(a0, 3, "put", "x=4"), tick(2, 200)},
		{leave(a1), call(a2, 2, "raise", "scraft::Close=")},
	}
	var ts uint64 = 100
	for _, entries := range batches {
		b := honestBatch(m1, entries, 1, a0, ts)
		mustApply(t, m1, roundTrip(t, b))
		mustApply(t, m2, roundTrip(t, b))
		ts += 100
		h1, h2 := checkStateHash(t, m1), checkStateHash(t, m2)
		if h1 != h2 {
			t.Fatalf("same history, state hashes differ at %d", m1.Height())
		}
	}
	// Every journal height has its own hash.
	seen := map[protocol.Hash]uint64{}
	for h := uint64(0); h <= m1.Height(); h++ {
		sh, ok := m1.StateHash(h)
		if !ok {
			t.Fatalf("no state hash at %d", h)
		}
		if prev, dup := seen[sh]; dup {
			t.Fatalf("heights %d and %d share a state hash", prev, h)
		}
		seen[sh] = h
	}
	if _, ok := m1.StateHash(m1.Height() + 1); ok {
		t.Fatal("a state hash above the applied height")
	}

	// A snapshot carries the hashes; the restored machine agrees.
	m3 := newMachine(t, cfg)
	if err := m3.Restore(bytes.NewReader(snapshotBytes(m1))); err != nil {
		t.Fatal(err)
	}
	for h := uint64(0); h <= m1.Height(); h++ {
		want, _ := m1.StateHash(h)
		if got, ok := m3.StateHash(h); !ok || got != want {
			t.Fatalf("restored state hash at %d: %s %v, want %s", h, got, ok, want)
		}
	}
	checkStateHash(t, m3)
	if m3.UnsettledBytes() != m1.UnsettledBytes() || m1.UnsettledBytes() < uint64(m1.Height())*entryOverhead {
		t.Fatalf("unsettled bytes %d, restored %d, for %d heights", m1.UnsettledBytes(), m3.UnsettledBytes(), m1.Height())
	}
	before := m1.UnsettledBytes()

	// Pruning keeps the hash of the new settled height.
	want, _ := m1.StateHash(4)
	if err := m1.PruneTo(4); err != nil {
		t.Fatal(err)
	}
	if got, ok := m1.StateHash(4); !ok || got != want {
		t.Fatalf("state hash at the settled height %d after pruning: %s %v", 4, got, ok)
	}
	if _, ok := m1.StateHash(3); ok {
		t.Fatal("a state hash below the settled height")
	}
	var rest uint64
	for _, je := range m1.st.journal {
		rest += uint64(je.size)
	}
	if got := m1.UnsettledBytes(); got != rest || got >= before {
		t.Fatalf("unsettled bytes after pruning %d, journal holds %d (before %d)", got, rest, before)
	}
}

// TestStateHashCoversMoreThanResources: histories that end with the same
// resources but different nonces, members, ticks or requests have
// different state hashes.
func TestStateHashCoversMoreThanResources(t *testing.T) {
	a0, a1, a2 := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	cfg := testConfig(a0, a1)
	cases := []struct {
		name    string
		entries []protocol.Entry
	}{
		{"one put", []protocol.Entry{call(a0, 1, "put", "x=1")}},
		{"put twice", []protocol.Entry{call(a0, 1, "put", "x=0"), call(a0, 2, "put", "x=1")}},
		{"failed call uses a nonce", []protocol.Entry{call(a1, 1, "abort", ""), call(a0, 1, "put", "x=1")}},
		{"tick", []protocol.Entry{call(a0, 1, "put", "x=1"), tick(1, 100)}},
		{"leave request", []protocol.Entry{call(a0, 1, "put", "x=1"), request(a1, 1, protocol.RequestLeave)}},
	}
	noHooks := func() *Machine {
		m, err := New(cfg, &fakeExec{noHooks: true})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	seen := map[protocol.Hash]string{}
	var res protocol.State
	for _, tc := range cases {
		m := noHooks()
		mustApply(t, m, honestBatch(m, tc.entries, 1, a0, 100))
		// Pad to the same height so that only the state differs.
		for m.Height() < 3 {
			mustApply(t, m, honestBatch(m, []protocol.Entry{call(a0, 99, "put", "bad=nonce")}, 1, a0, 100))
		}
		if res == nil {
			res = m.Resources()
		} else if !bytes.Equal(protocol.Marshal(res), protocol.Marshal(m.Resources())) {
			t.Fatalf("%s: resources differ; the test wants them equal", tc.name)
		}
		sh := checkStateHash(t, m)
		if prev, dup := seen[sh]; dup {
			t.Fatalf("%q and %q: same state hash", prev, tc.name)
		}
		seen[sh] = tc.name
	}
	// A member more, same resources.
	m := noHooks()
	mustApply(t, m, honestBatch(m, []protocol.Entry{call(a0, 1, "put", "x=1"), join(a2, 3)}, 1, a0, 100))
	mustApply(t, m, honestBatch(m, []protocol.Entry{call(a0, 99, "put", "bad=nonce")}, 1, a0, 100))
	if sh := checkStateHash(t, m); seen[sh] != "" {
		t.Fatalf("a join does not change the state hash (same as %q)", seen[sh])
	}
}

// TestStateHashPropose: the leader's speculative results keep the same
// per-height hashes as a follower's apply.
func TestStateHashPropose(t *testing.T) {
	a0, a1 := testKey(t, 0), testKey(t, 1)
	cfg := testConfig(a0, a1)
	leader, follower := newMachine(t, cfg), newMachine(t, cfg)
	var batches []*protocol.Batch
	for r := range 3 {
		b, _, err := leader.Propose([]protocol.Entry{call(a0, uint64(r+1), "put", fmt.Sprintf("x=%d", r)), call(a1, uint64(r+1), "put", "y=1")}, 1, a0, uint64(100*(r+1)))
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	for _, b := range batches {
		if a := mustApply(t, leader, b); !a.Reused {
			t.Fatal("the leader did not reuse its proposal")
		}
		mustApply(t, follower, roundTrip(t, b))
	}
	for h := uint64(0); h <= leader.Height(); h++ {
		x, _ := leader.StateHash(h)
		y, _ := follower.StateHash(h)
		if x != y {
			t.Fatalf("state hash at %d: leader %s, follower %s", h, x, y)
		}
	}
	checkStateHash(t, leader)
}

// TestExpandKnownAnswers pins the element expansion, on which every
// state hash depends: each block i of the 2 KiB is AES-256 of the 128-bit
// big-endian counter i under SHA-256(ltDomain ‖ elem) (CTR from a zero
// IV), checked block by block on many elements, and the SHA-256 of a few
// expansions is fixed.
func TestExpandKnownAnswers(t *testing.T) {
	for _, tc := range []struct{ elem, sum string }{
		{"", "a3dd005d78ef74033b30366ee3cb03d2f5d54a6d25fcb0f2d67810997df71398"},
		{"a", "c0da2fcf976db6dd1d2e8e0eb231ebd6819e12918c7daf343dc9909e8fae9bc3"},
		{"scraft", "d4ec9221d5cf6cb156596ca4cfd0eacb1ec7b34efcb59a2c2499f17b60eaaf6f"},
	} {
		var x [ltBytes]byte
		expand([]byte(tc.elem), &x)
		if got := fmt.Sprintf("%x", sha256.Sum256(x[:])); got != tc.sum {
			t.Errorf("expansion of %q hashes to %s, want %s", tc.elem, got, tc.sum)
		}
	}
	for i := range 2000 {
		elem := nonceElem(protocol.Address{byte(i), byte(i >> 8)}, uint64(i)*0x9e3779b97f4a7c15)
		if i%2 == 1 {
			elem = resourceElem(protocol.ResourceKey{Type: "t::Balance"}, bytes.Repeat([]byte{byte(i)}, i%300))
		}
		var got, want [ltBytes]byte
		expand(elem, &got)
		expandBlocks(elem, &want)
		if got != want {
			t.Fatalf("element %x: expansion differs from AES of the counters", elem)
		}
	}
}

// TestExpCache holds the expansion cache to expand: elements seen again,
// new ones, and more of them than it has slots, so slots are taken over.
func TestExpCache(t *testing.T) {
	var c expCache
	for i := range 4 * expCacheSlots {
		for _, j := range []int{i, i / 2, i % 7, i} {
			elem := resourceElem(protocol.ResourceKey{Type: "t::Group"}, []byte(fmt.Sprint(j)))
			var want [ltBytes]byte
			expand(elem, &want)
			if got := c.expansion(elem); *got != want {
				t.Fatalf("cached expansion of %x differs", elem)
			}
		}
	}
}

// expandBlocks is expand by its definition, one AES block per counter.
func expandBlocks(elem []byte, out *[ltBytes]byte) {
	h := sha256.New()
	h.Write([]byte(ltDomain))
	h.Write(elem)
	var key [32]byte
	h.Sum(key[:0])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err)
	}
	for i := range ltBytes / aes.BlockSize {
		c := out[i*aes.BlockSize : (i+1)*aes.BlockSize]
		clear(c)
		binary.BigEndian.PutUint64(c[8:], uint64(i))
		block.Encrypt(c, c)
	}
}

// BenchmarkExpand measures one element's expansion, and the same by one
// AES block per counter (no CTR stream, so one allocation fewer, but the
// blocks are encrypted one after another instead of eight at a time).
func BenchmarkExpand(b *testing.B) {
	elem := nonceElem(protocol.Address{1}, 7)
	var x [ltBytes]byte
	b.Run("ctr", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			expand(elem, &x)
		}
	})
	b.Run("blocks", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			expandBlocks(elem, &x)
		}
	})
}

// BenchmarkStateHash measures the state hash over n resources: computing
// it from scratch (what Restore does, and what a member would pay at each
// settlement without the incremental hash) and the incremental cost that
// Apply pays per changed resource.
func BenchmarkStateHash(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("full/resources=%d", n), func(b *testing.B) {
			st := make(protocol.State, n)
			for i := range n {
				var a protocol.Address
				a[0], a[1], a[2] = byte(i), byte(i>>8), byte(i>>16)
				st[protocol.ResourceKey{Account: a, Type: "t::Balance"}] = []byte(fmt.Sprintf("value-%032d", i))
			}
			cfg := testConfig(testKey(b, 0))
			cfg.Genesis.State = st
			m := newMachine(b, cfg)
			b.ResetTimer()
			for range b.N {
				m.recomputeStateHash()
			}
		})
	}
	b.Run("modify-one", func(b *testing.B) {
		var acc ltHash
		k := protocol.ResourceKey{Type: "t::Balance"}
		old, nw := []byte(fmt.Sprintf("value-%032d", 1)), []byte(fmt.Sprintf("value-%032d", 2))
		for range b.N {
			acc.sub(resourceElem(k, old))
			acc.add(resourceElem(k, nw))
		}
	})
	b.Run("finalize", func(b *testing.B) {
		var mt meta
		for range b.N {
			mt.stateHash()
		}
	})
}

// snapshotV2 encodes m's state in snapshot format version 2, which had no
// state hashes and no entry sizes.
func snapshotV2(m *Machine) []byte {
	st := m.st
	e := protocol.NewEncoder(1024)
	e.U8(2)
	e.Fixed(m.cfg.Channel[:])
	e.String(m.cfg.Contract)
	e.U64(st.height)
	e.Fixed(st.digest[:])
	e.U64(st.epoch)
	e.Fixed(st.leader[:])
	e.U64(st.timestampMs)
	e.U64(st.tick)
	e.U64(st.tickMs)
	e.U64(st.joinSeq)
	e.U64(st.settled)
	e.Fixed(st.settledDigest[:])
	e.U64(st.closing)
	ms := sortedMembers(st.members)
	e.Uleb(uint64(len(ms)))
	for _, mem := range ms {
		encodeMember(e, mem)
		e.U64(mem.LeaveHeight)
	}
	var senders []protocol.Address
	for a := range st.nonces {
		senders = append(senders, a)
	}
	slices.SortFunc(senders, protocol.Address.Compare)
	e.Uleb(uint64(len(senders)))
	for _, a := range senders {
		e.Fixed(a[:])
		e.U64(st.nonces[a])
	}
	st.res.Encode(e)
	e.Uleb(uint64(len(st.journal)))
	for _, je := range st.journal {
		e.Fixed(je.digest[:])
		je.cs.Encode(e)
	}
	sum := sha256.Sum256(e.Out())
	return append(e.Out(), sum[:]...)
}

// TestStateHashFromSnapshotV2: a machine restored from a version-2
// snapshot has the same state but knows no state hash for the heights it
// restored; the heights it applies itself have them again, equal to those
// of a machine that applied everything.
func TestStateHashFromSnapshotV2(t *testing.T) {
	a0, a1 := testKey(t, 0), testKey(t, 1)
	cfg := testConfig(a0, a1)
	full := newMachine(t, cfg)
	mustApply(t, full, honestBatch(full, []protocol.Entry{call(a0, 1, "put", "x=1"), request(a1, 1, protocol.RequestLeave), tick(1, 100)}, 1, a0, 100))

	old := newMachine(t, cfg)
	if err := old.Restore(bytes.NewReader(snapshotV2(full))); err != nil {
		t.Fatal(err)
	}
	for h := uint64(0); h <= old.Height(); h++ {
		if _, ok := old.StateHash(h); ok {
			t.Fatalf("a state hash at %d restored from a version-2 snapshot", h)
		}
	}
	if old.recomputeStateHash() != full.recomputeStateHash() {
		t.Fatal("the restored state differs")
	}
	b := honestBatch(full, []protocol.Entry{call(a0, 2, "put", "y=2")}, 1, a0, 200)
	mustApply(t, full, b)
	mustApply(t, old, roundTrip(t, b))
	want, _ := full.StateHash(full.Height())
	if got := checkStateHash(t, old); got != want {
		t.Fatalf("state hash after the restore: %s, want %s", got, want)
	}
}
