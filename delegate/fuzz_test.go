package delegate

import (
	"errors"
	"slices"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// FuzzPlan reads a channel from bytes (four per member: address, stake,
// flags, delegation target) and checks that a plan never fails on distinct
// members, never exceeds capacity, places everyone, and does not depend on
// the order of members.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{1, 10, 1, 0, 2, 20, 1, 0, 3, 30, 1, 0, 4, 40, 1, 0, 5, 50, 1, 0, 6, 60, 1, 0, 7, 5, 3, 1})
	f.Add([]byte{9, 0, 0, 0, 8, 0, 1, 9, 7, 0, 1, 9, 6, 0, 1, 9, 5, 0, 1, 9, 4, 0, 1, 9, 3, 0, 1, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ms []Member
		seen := map[protocol.Address]bool{}
		for i := 0; i+4 <= len(data) && len(ms) < 200; i += 4 {
			a := addr(int(data[i]) + 1)
			if seen[a] {
				continue
			}
			seen[a] = true
			m := Member{Address: a, Stake: uint64(data[i+1]), JoinSeq: uint64(len(ms) + 1), Valid: data[i+2]&1 == 1}
			if data[i+2]&2 != 0 {
				m.DelegatedTo = addr(int(data[i+3]) + 1)
			}
			m.Prefs = addrs(int(data[i+3])+1, int(data[i+1])+1, int(data[i])+2)
			ms = append(ms, m)
		}
		cur := addrs(1, 2, 3, 4, 5)
		l, err := Plan(ms, cur)
		if err != nil {
			t.Fatal(err)
		}
		rev := slices.Clone(ms)
		slices.Reverse(rev)
		l2, err := Plan(rev, cur)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(l.Candidates, l2.Candidates) || !slices.Equal(l.Assignments, l2.Assignments) {
			t.Fatalf("the order of members changes the plan")
		}
		load := map[protocol.Address]uint32{}
		for _, a := range l.Assignments {
			if a.Candidate.IsZero() {
				if len(l.Candidates) == Seats {
					t.Fatalf("%s unplaced with five candidates", a.Delegator)
				}
				continue
			}
			if !l.IsCandidate(a.Candidate) {
				t.Fatalf("%s assigned to %s, no candidate", a.Delegator, a.Candidate)
			}
			load[a.Candidate]++
			if load[a.Candidate] > l.Capacity {
				t.Fatalf("%s over capacity %d", a.Candidate, l.Capacity)
			}
		}
	})
}

// FuzzAggregate reads delegations and votes among eight members from bytes
// (two per member: its candidate, its vote) and checks that a count that
// succeeds counts every member once, does not depend on the order of its
// inputs, and that a vote overrides a delegation.
func FuzzAggregate(f *testing.F) {
	ks := keys(f, 8)
	electorate := make([]protocol.Address, len(ks))
	signed := make([][3]protocol.Vote, len(ks))
	for i, k := range ks {
		electorate[i] = k.Address()
		for o := range 3 {
			signed[i][o] = vote(k, protocol.VoteOption(o))
		}
	}
	f.Add([]byte{0, 2, 0, 0, 1, 1, 1, 0, 1, 3, 2, 0, 0, 0, 9, 9})
	f.Add([]byte{3, 1, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ds []Assignment
		var vs []protocol.Vote
		own := make([]int, len(ks)) // option + 1; 0: silent
		for i := 0; i < len(ks) && 2*i+1 < len(data); i++ {
			if c := int(data[2*i]); c > 0 && c <= len(ks) {
				ds = append(ds, Assignment{electorate[i], electorate[c-1]})
			}
			if o := int(data[2*i+1]); o > 0 && o <= 3 {
				vs = append(vs, signed[i][o-1])
				own[i] = o
			}
		}
		got, err := Aggregate(testChannel, 7, electorate, ds, vs)
		if err != nil {
			if !errors.Is(err, ErrBadDelegation) {
				t.Fatalf("only delegations can be bad here: %v", err)
			}
			return
		}
		if got.Total() != uint64(len(ks)) {
			t.Fatalf("total %d of %d", got.Total(), len(ks))
		}
		var voted Tally
		for _, o := range own {
			if o != 0 {
				voted.add(protocol.VoteOption(o - 1))
			}
		}
		if got.For < voted.For || got.Against < voted.Against || got.Abstain < voted.Abstain {
			t.Fatalf("tally %+v counts fewer than the members' own votes %+v", got, voted)
		}
		slices.Reverse(ds)
		slices.Reverse(vs)
		again, err := Aggregate(testChannel, 7, electorate, ds, vs)
		if err != nil || again != got {
			t.Fatalf("reversed inputs: %+v, %v; want %+v", again, err, got)
		}
	})
}
