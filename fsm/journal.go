package fsm

import (
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// The journal keeps, for every height after the settled height, the digest
// and the change set. Settlement proposals are built and checked from it;
// PruneTo drops what the chain has settled.

// SettledHeight returns the height up to which the chain has settled; the
// journal covers SettledHeight()+1 .. Height().
func (m *Machine) SettledHeight() uint64 { return m.st.settled }

// UnsettledBytes returns about how many bytes the entries of heights
// SettledHeight()+1 .. Height() took in their batches, results included:
// what the leader-signed batches since the settled height weigh, which a
// snapshot of the settled state must carry (cluster bounds it). Each entry
// counts its call's function, type args and args plus a fixed overhead for
// the signature, key, nonce and result; it is an estimate, the same on
// every member.
func (m *Machine) UnsettledBytes() uint64 { return m.st.journalBytes }

// entryOverhead is about what an entry takes besides its call's variable
// fields: kind, sender, channel, nonce, timestamp, key and signature, and
// its result (status, abort code, gas, three hashes).
const entryOverhead = 256

// entryBytes estimates what en takes in its batch, result included.
func entryBytes(en *protocol.Entry) uint32 {
	n := entryOverhead
	if en.Kind == protocol.EntryCall && en.Call != nil {
		t := &en.Call.Tx
		n += len(t.Function) + len(t.Args)
		for _, ta := range t.TypeArgs {
			n += 1 + len(ta)
		}
	}
	return uint32(min(n, 1<<31))
}

// Digest returns D(h) for h from the settled height to the applied height.
func (m *Machine) Digest(h uint64) (protocol.Hash, bool) {
	st := m.st
	switch {
	case h == st.settled:
		return st.settledDigest, true
	case h < st.settled || h > st.height:
		return protocol.Hash{}, false
	}
	return st.journal[h-st.settled-1].digest, true
}

// ChangeSet returns the change set of height h, which must be in the
// journal.
func (m *Machine) ChangeSet(h uint64) (protocol.ChangeSet, error) {
	st := m.st
	if h <= st.settled || h > st.height {
		return protocol.ChangeSet{}, fmt.Errorf("%w: %d not in %d..%d", ErrRange, h, st.settled+1, st.height)
	}
	return st.journal[h-st.settled-1].cs, nil
}

// NetChangeSet merges the change sets of heights from..to (DESIGN §3), the
// change set a settlement of that range carries. from must be above the
// settled height and to at most the applied height.
func (m *Machine) NetChangeSet(from, to uint64) (protocol.ChangeSet, error) {
	st := m.st
	if from <= st.settled || to < from || to > st.height {
		return protocol.ChangeSet{}, fmt.Errorf("%w: %d..%d not in %d..%d", ErrRange, from, to, st.settled+1, st.height)
	}
	sets := make([]protocol.ChangeSet, 0, to-from+1)
	for _, je := range st.journal[from-st.settled-1 : to-st.settled] {
		if je.cs.Len() > 0 {
			sets = append(sets, je.cs)
		}
	}
	cs, err := mergeTree(sets)
	if err != nil {
		// The journal is built from applied change sets, so this is a bug.
		return protocol.ChangeSet{}, fmt.Errorf("fsm: journal %d..%d does not merge: %w", from, to, err)
	}
	return cs, nil
}

// mergeTree merges change sets in order, pairwise in rounds, with
// protocol.Merge: the same result as protocol.MergeAll (each key's changes
// fold to the diff between the two ends of the range, whatever the
// grouping), in O(changes × log sets) instead of O(changes × sets) when
// the merged set grows large.
func mergeTree(sets []protocol.ChangeSet) (protocol.ChangeSet, error) {
	if len(sets) == 0 {
		return protocol.ChangeSet{}, nil
	}
	for len(sets) > 1 {
		next := make([]protocol.ChangeSet, 0, (len(sets)+1)/2)
		for i := 0; i+1 < len(sets); i += 2 {
			cs, err := protocol.Merge(sets[i], sets[i+1])
			if err != nil {
				return protocol.ChangeSet{}, err
			}
			next = append(next, cs)
		}
		if len(sets)%2 == 1 {
			next = append(next, sets[len(sets)-1])
		}
		sets = next
	}
	return sets[0], nil
}

// Settlement returns the settlement of heights SettledHeight()+1 .. to: the
// net change set, D(to) and the state hash at to (zero if unknown here).
func (m *Machine) Settlement(to uint64) (protocol.Settlement, error) {
	from := m.st.settled + 1
	cs, err := m.NetChangeSet(from, to)
	if err != nil {
		return protocol.Settlement{}, err
	}
	d, _ := m.Digest(to)
	sh, _ := m.StateHash(to)
	return protocol.Settlement{From: from, To: to, ChangeSet: cs, Digest: d, StateHash: sh}, nil
}

// PruneTo drops the journal up to height h, once a settlement up to h has
// executed on chain. A height at or below the settled height does nothing.
func (m *Machine) PruneTo(h uint64) error {
	st := m.st
	if h <= st.settled {
		return nil
	}
	if h > st.height {
		return fmt.Errorf("%w: prune to %d above applied height %d", ErrRange, h, st.height)
	}
	// A shallow copy leaves a snapshot's view alone; the maps stay shared
	// (and frozen) since pruning does not touch them.
	cp := *st
	st = &cp
	m.st = st
	k := h - st.settled
	st.settledDigest = st.journal[k-1].digest
	st.settledState = st.journal[k-1].state
	for _, je := range st.journal[:k] {
		st.journalBytes -= uint64(je.size)
	}
	// Copy the rest so the pruned change sets can be collected.
	st.journal = append([]journalEntry(nil), st.journal[k:]...)
	st.settled = h
	m.advanceBase(h)
	return nil
}

// LastBatchEnd returns the highest height of from..to that ends a batch,
// the only heights a settlement may end at (a snapshot carries the whole
// signed batches since the settled height). A height restored from a
// snapshot of version 3 counts as an end: the journal does not know.
func (m *Machine) LastBatchEnd(from, to uint64) (uint64, bool) {
	st := m.st
	if from <= st.settled || to < from || to > st.height {
		return 0, false
	}
	for h := to; h >= from; h-- {
		if st.journal[h-st.settled-1].pos != posInside {
			return h, true
		}
	}
	return 0, false
}

// NextBatchEnd returns the lowest height from from on that ends a batch.
func (m *Machine) NextBatchEnd(from uint64) (uint64, bool) {
	st := m.st
	if from <= st.settled {
		return 0, false
	}
	for h := from; h <= st.height; h++ {
		if st.journal[h-st.settled-1].pos != posInside {
			return h, true
		}
	}
	return 0, false
}

// InsideBatch reports whether height h, in the journal, is known not to
// end its batch: a settlement that ends there is voted against.
func (m *Machine) InsideBatch(h uint64) bool {
	st := m.st
	if h <= st.settled || h > st.height {
		return false
	}
	return st.journal[h-st.settled-1].pos == posInside
}
