package delegate

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// channelState is a random channel as the chain could hold it: members
// with stakes, heartbeats and preferences, current candidates, and
// delegations that obey the chain's rules (only to a current candidate,
// never by one), some over today's capacity as if members had left.
func channelState(r *rand.Rand, n int) ([]Member, []protocol.Address) {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{
			Address: addr(r.IntN(60000) + 1),
			Stake:   uint64(r.IntN(5)) * 100, // few distinct stakes: many ties
			JoinSeq: uint64(i + 1),
			Valid:   r.IntN(8) != 0,
		}
		if r.IntN(3) == 0 {
			ms[i].Stake += uint64(r.IntN(50))
		}
	}
	// Distinct addresses.
	slices.SortFunc(ms, func(a, b Member) int { return a.Address.Compare(b.Address) })
	ms = slices.CompactFunc(ms, func(a, b Member) bool { return a.Address == b.Address })

	var current []protocol.Address
	for _, i := range r.Perm(len(ms))[:min(len(ms), Seats)] {
		current = append(current, ms[i].Address)
	}
	load := map[protocol.Address]int{}
	limit := int(Capacity(uint32(len(ms)))) + r.IntN(3)
	for i := range ms {
		if slices.Contains(current, ms[i].Address) {
			continue
		}
		for _, j := range r.Perm(len(ms)) {
			if len(ms[i].Prefs) == 7 {
				break
			}
			ms[i].Prefs = append(ms[i].Prefs, ms[j].Address)
		}
		if len(current) > 0 && r.IntN(4) != 0 {
			c := current[r.IntN(len(current))]
			if load[c] < limit {
				load[c]++
				ms[i].DelegatedTo = c
			}
		}
	}
	return ms, current
}

func shuffledAddrs(r *rand.Rand, as []protocol.Address) []protocol.Address {
	out := slices.Clone(as)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

const trials = 300

// TestPropertyDeterministic: the input order of members and of current
// candidates never changes the layout or the moves.
func TestPropertyDeterministic(t *testing.T) {
	r := newRand(t)
	for range trials {
		ms, cur := channelState(r, 1+r.IntN(60))
		want, err := Plan(ms, cur)
		if err != nil {
			t.Fatal(err)
		}
		wantMoves := want.Moves(ms)
		for range 3 {
			ms2, cur2 := shuffled(r, ms), shuffledAddrs(r, cur)
			got, err := Plan(ms2, cur2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Candidates, want.Candidates) || got.Capacity != want.Capacity || !slices.Equal(got.Assignments, want.Assignments) {
				t.Fatalf("layout depends on input order:\n%+v\n%+v", got, want)
			}
			if !slices.Equal(got.Moves(ms2), wantMoves) {
				t.Fatal("moves depend on input order")
			}
			if len(want.Candidates) == 0 {
				continue
			}
			as, err := Assign(ms2, shuffledAddrs(r, want.Candidates), want.Capacity)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(as, want.Assignments) {
				t.Fatal("Assign depends on the order of candidates")
			}
		}
	}
}

// TestPropertyCandidates: candidates are valid members, as many as seats
// allow, independent of input order, stable (a second pass changes
// nothing), no outsider clears the margin against the weakest, and an
// incumbent loses its seat only to one that clears it.
func TestPropertyCandidates(t *testing.T) {
	r := newRand(t)
	for range trials {
		ms, cur := channelState(r, 1+r.IntN(60))
		cands, err := Candidates(ms, cur)
		if err != nil {
			t.Fatal(err)
		}
		valid := 0
		for _, m := range ms {
			if m.Valid {
				valid++
			}
		}
		if len(cands) != min(valid, Seats) {
			t.Fatalf("%d candidates of %d valid members", len(cands), valid)
		}
		byAddr := func(a protocol.Address) Member {
			i := slices.IndexFunc(ms, func(m Member) bool { return m.Address == a })
			return ms[i]
		}
		for _, c := range cands {
			if !byAddr(c).Valid {
				t.Fatalf("candidate %s has no heartbeat", c)
			}
		}
		shuf, err := Candidates(shuffled(r, ms), shuffledAddrs(r, cur))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(shuf, cands) {
			t.Fatalf("input order changes the candidates: %v, then %v", cands, shuf)
		}
		again, err := Candidates(ms, cands)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(again, cands) {
			t.Fatalf("not stable: %v then %v", cands, again)
		}
		if len(cands) == 0 {
			continue
		}
		weakest := byAddr(cands[len(cands)-1])
		for _, m := range ms {
			if m.Valid && !slices.Contains(cands, m.Address) && outranks(&m, &weakest) {
				t.Fatalf("%s (stake %d) outranks candidate %s (stake %d) and is left out", m.Address, m.Stake, weakest.Address, weakest.Stake)
			}
		}
		for _, c := range cur {
			if byAddr(c).Valid && !slices.Contains(cands, c) {
				// An incumbent lost its seat: some candidate must outrank it.
				inc := byAddr(c)
				if !slices.ContainsFunc(cands, func(a protocol.Address) bool { m := byAddr(a); return outranks(&m, &inc) }) {
					t.Fatalf("incumbent %s lost its seat to nobody that outranks it", c)
				}
			}
		}
	}
}

// TestPropertyAssignment: no candidate holds more than its capacity;
// every delegator is assigned when the seats have room for all; a
// delegator leaves a candidate that kept its seat only when that candidate
// is full of earlier joiners.
func TestPropertyAssignment(t *testing.T) {
	r := newRand(t)
	for range trials {
		ms, cur := channelState(r, 1+r.IntN(80))
		cands, err := Candidates(ms, cur)
		if err != nil {
			t.Fatal(err)
		}
		capacity := Capacity(uint32(len(ms)))
		if r.IntN(4) == 0 {
			capacity = uint32(r.IntN(4)) // sometimes too small for all
		}
		got, err := Assign(ms, cands, capacity)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ms)-len(cands) {
			t.Fatalf("%d assignments for %d members and %d candidates", len(got), len(ms), len(cands))
		}
		load := make([]uint32, len(cands))
		unassigned := 0
		for _, a := range got {
			if slices.Contains(cands, a.Delegator) {
				t.Fatalf("candidate %s is assigned", a.Delegator)
			}
			if a.Candidate.IsZero() {
				unassigned++
				continue
			}
			load[slices.Index(cands, a.Candidate)]++
		}
		for i, l := range load {
			if l > capacity {
				t.Fatalf("candidate %s holds %d of %d", cands[i], l, capacity)
			}
		}
		room := uint64(len(cands)) * uint64(capacity)
		if want := max(0, len(got)-int(min(room, uint64(len(got))))); unassigned != want {
			t.Fatalf("%d unassigned, want %d (room %d for %d)", unassigned, want, room, len(got))
		}
		for _, a := range got {
			m := ms[slices.IndexFunc(ms, func(m Member) bool { return m.Address == a.Delegator })]
			if m.DelegatedTo.IsZero() || m.DelegatedTo == a.Candidate || !slices.Contains(cands, m.DelegatedTo) {
				continue
			}
			kept := 0
			for _, b := range got {
				o := ms[slices.IndexFunc(ms, func(x Member) bool { return x.Address == b.Delegator })]
				if b.Candidate == m.DelegatedTo && o.DelegatedTo == m.DelegatedTo && o.JoinSeq < m.JoinSeq {
					kept++
				}
			}
			if uint32(kept) != capacity {
				t.Fatalf("%s moved from %s, which keeps %d earlier joiners of %d places", m.Address, m.DelegatedTo, kept, capacity)
			}
		}
	}
}

// chain replays delegate calls with the contract's checks: no delegating
// to oneself, none by a member that holds delegators, none to a member
// that delegates, none to a candidate at capacity.
type chain struct {
	to       map[protocol.Address]protocol.Address
	capacity int
}

func (c *chain) holds(a protocol.Address) int {
	n := 0
	for _, t := range c.to {
		if t == a {
			n++
		}
	}
	return n
}

func (c *chain) delegate(d, cand protocol.Address) string {
	switch {
	case d == cand:
		return "to oneself"
	case c.holds(d) > 0:
		return "by a member with delegators"
	case c.to[d] == cand:
		return ""
	case !cand.IsZero() && !c.to[cand].IsZero():
		return "to a member that delegates"
	case !cand.IsZero() && c.holds(cand) >= c.capacity:
		return "to a candidate at capacity"
	}
	c.to[d] = cand
	return ""
}

// TestPropertyMovesReplay: the moves of a plan, sent to the chain one
// after the other, all pass its checks and leave it holding the plan; a
// new plan from there changes nothing.
func TestPropertyMovesReplay(t *testing.T) {
	r := newRand(t)
	for range trials {
		ms, cur := channelState(r, 6+r.IntN(60))
		l, err := Plan(ms, cur)
		if err != nil {
			t.Fatal(err)
		}
		c := &chain{to: map[protocol.Address]protocol.Address{}, capacity: int(l.Capacity)}
		for _, m := range ms {
			c.to[m.Address] = m.DelegatedTo
		}
		for _, mv := range l.Moves(ms) {
			if why := c.delegate(mv.Delegator, mv.Candidate); why != "" {
				t.Fatalf("the chain refuses %s → %s: %s\nmoves %v", mv.Delegator, mv.Candidate, why, l.Moves(ms))
			}
		}
		after := slices.Clone(ms)
		for i := range after {
			after[i].DelegatedTo = c.to[after[i].Address]
			if want := l.CandidateOf(after[i].Address); after[i].DelegatedTo != want {
				t.Fatalf("%s delegates to %s after the moves, want %s", after[i].Address, after[i].DelegatedTo, want)
			}
		}
		again, err := Plan(after, l.Candidates)
		if err != nil {
			t.Fatal(err)
		}
		if mv := again.Moves(after); len(mv) != 0 {
			t.Fatalf("a second plan moves %v", mv)
		}
	}
}

// TestPropertyAggregateDeterministic: the order of votes and of
// delegations never changes the tally, and every member counts once.
func TestPropertyAggregateDeterministic(t *testing.T) {
	r := newRand(t)
	ks := keys(t, 24)
	for range 40 {
		n := 6 + r.IntN(len(ks)-6)
		electorate := make([]protocol.Address, n)
		for i := range electorate {
			electorate[i] = ks[i].Address()
		}
		var ds []Assignment
		for i := Seats; i < n; i++ {
			if r.IntN(5) != 0 {
				ds = append(ds, Assignment{electorate[i], electorate[r.IntN(Seats)]})
			}
		}
		var vs []protocol.Vote
		for i := range n {
			if r.IntN(2) == 0 {
				vs = append(vs, vote(ks[i], protocol.VoteOption(r.IntN(3))))
			}
		}
		want, err := Aggregate(testChannel, 7, electorate, ds, vs)
		if err != nil {
			t.Fatal(err)
		}
		if want.Total() != uint64(n) {
			t.Fatalf("total %d of %d", want.Total(), n)
		}
		for range 3 {
			vs2, ds2 := slices.Clone(vs), slices.Clone(ds)
			r.Shuffle(len(vs2), func(i, j int) { vs2[i], vs2[j] = vs2[j], vs2[i] })
			r.Shuffle(len(ds2), func(i, j int) { ds2[i], ds2[j] = ds2[j], ds2[i] })
			got, err := Aggregate(testChannel, 7, shuffledAddrs(r, electorate), ds2, vs2)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("tally %+v, then %+v for the same votes in another order", want, got)
			}
		}
	}
}

// TestPropertyChooseAgrees: what a node chooses for itself from the
// records matches the full assignment for every member that keeps its
// candidate and for the earliest joined member still to place (the one
// whose choice no other pending choice can change).
func TestPropertyChooseAgrees(t *testing.T) {
	r := newRand(t)
	for range trials / 3 {
		ms, cur := channelState(r, 6+r.IntN(40))
		cands, err := Candidates(ms, cur)
		if err != nil {
			t.Fatal(err)
		}
		capacity := Capacity(uint32(len(ms)))
		all, err := Assign(ms, cands, capacity)
		if err != nil {
			t.Fatal(err)
		}
		firstPending := true
		for _, a := range all {
			m := ms[slices.IndexFunc(ms, func(m Member) bool { return m.Address == a.Delegator })]
			kept := !m.DelegatedTo.IsZero() && m.DelegatedTo == a.Candidate
			if !kept && !firstPending {
				continue
			}
			if !kept {
				firstPending = false
			}
			got, err := Choose(ms, cands, capacity, a.Delegator)
			if err != nil {
				t.Fatal(err)
			}
			if got != a.Candidate {
				t.Fatalf("%s chooses %s, the plan says %s", a.Delegator, got, a.Candidate)
			}
		}
	}
}
