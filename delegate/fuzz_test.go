package delegate

import (
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
