package delegate

import (
	"errors"
	"slices"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// as is a compact assignment: delegator d to candidate c (0: none).
type as struct{ d, c int }

func assignments(l ...as) []Assignment {
	out := make([]Assignment, len(l))
	for i, a := range l {
		out[i].Delegator = addr(a.d)
		if a.c != 0 {
			out[i].Candidate = addr(a.c)
		}
	}
	return out
}

// five returns candidates 1…5 with stake 100.
func five() []Member {
	return []Member{mem(1, 100), mem(2, 100), mem(3, 100), mem(4, 100), mem(5, 100)}
}

func TestAssign(t *testing.T) {
	cases := []struct {
		name     string
		members  []Member
		capacity uint32
		want     []Assignment
	}{
		{"each delegator takes its first preference with room",
			append(five(), delegating(mem(6, 1), 0, 3, 1), delegating(mem(7, 1), 0, 4)),
			1, assignments(as{6, 3}, as{7, 4})},
		{"a full first preference sends the later joiner to its second",
			append(five(), delegating(mem(6, 1), 0, 3, 1), delegating(mem(7, 1), 0, 3, 2)),
			1, assignments(as{6, 3}, as{7, 2})},
		{"a delegator keeps its candidate even when it now prefers another",
			append(five(), delegating(mem(6, 1), 2, 3)),
			1, assignments(as{6, 2})},
		{"after members leave, the latest joined of a full candidate move",
			append(five(), delegating(mem(6, 1), 1, 1, 2), delegating(mem(7, 1), 1, 1, 2), delegating(mem(8, 1), 1, 1, 3)),
			1, assignments(as{6, 1}, as{7, 2}, as{8, 3})},
		{"a moved delegator never displaces one that kept its seat",
			append(five(), delegating(mem(6, 1), 1, 1), delegating(mem(7, 1), 1, 2), delegating(mem(8, 1), 2, 2)),
			1, assignments(as{6, 1}, as{7, 3}, as{8, 2})},
		{"no preference with room: the candidate with most room, best ranked on a tie",
			append(five(), delegating(mem(6, 1), 1), delegating(mem(7, 1), 0)),
			2, assignments(as{6, 1}, as{7, 2})},
		{"preferences naming non-candidates are skipped",
			append(five(), delegating(mem(6, 1), 0, 9, 7, 4)),
			1, assignments(as{6, 4})},
		{"delegators of a candidate that is gone are placed again",
			append(five(), delegating(mem(6, 1), 9, 5)),
			1, assignments(as{6, 5})},
		{"members without a heartbeat are assigned too",
			append(five(), invalid(delegating(mem(6, 1), 0, 2))),
			1, assignments(as{6, 2})},
		{"no room anywhere: no candidate",
			append(five(), delegating(mem(6, 1), 0, 1), mem(7, 1)),
			0, assignments(as{6, 0}, as{7, 0})},
		{"assigned in join order, not address order",
			append(five(), delegating(Member{Address: addr(20), JoinSeq: 6, Valid: true}, 0, 1), delegating(Member{Address: addr(10), JoinSeq: 7, Valid: true}, 0, 1, 2)),
			1, assignments(as{20, 1}, as{10, 2})},
	}
	cands := addrs(1, 2, 3, 4, 5)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Assign(tc.members, cands, tc.capacity)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Assign =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestAssignRefuses(t *testing.T) {
	cases := []struct {
		name       string
		members    []Member
		candidates []protocol.Address
		want       error
	}{
		{"a candidate that is no member", five(), addrs(1, 2, 9), ErrUnknownMember},
		{"a candidate twice", five(), addrs(1, 2, 2), ErrDuplicateMember},
		{"a member twice", append(five(), mem(1, 3)), addrs(1), ErrDuplicateMember},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Assign(tc.members, tc.candidates, 1); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	// Seven members: capacity 1. Candidate 3 stops heartbeating: 6 takes
	// its seat (the best ranked outsider) and withdraws its delegation to
	// 1; 3's delegator 7 goes to its first preference with room (4, as 1
	// is taken by 3, which joined earlier and, with no preference, took
	// the best ranked of the emptiest).
	members := []Member{
		mem(1, 100), mem(2, 100), invalid(mem(3, 100)), mem(4, 100), mem(5, 100),
		delegating(mem(6, 90), 1),
		delegating(mem(7, 80), 3, 1, 4),
	}
	l, err := Plan(members, addrs(1, 2, 3, 4, 5))
	if err != nil {
		t.Fatal(err)
	}
	if want := addrs(1, 2, 4, 5, 6); !slices.Equal(l.Candidates, want) {
		t.Fatalf("candidates %v, want %v", l.Candidates, want)
	}
	if l.Capacity != 1 {
		t.Fatalf("capacity %d, want 1", l.Capacity)
	}
	if want := assignments(as{3, 1}, as{7, 4}); !slices.Equal(l.Assignments, want) {
		t.Fatalf("assignments %v, want %v", l.Assignments, want)
	}
	// 6 withdraws first (it is a candidate now), then 7 moves, then 3,
	// which held 7, delegates.
	if got, want := l.Moves(members), assignments(as{6, 0}, as{7, 4}, as{3, 1}); !slices.Equal(got, want) {
		t.Fatalf("moves %v, want %v", got, want)
	}
	if c := l.CandidateOf(addr(7)); c != addr(4) {
		t.Fatalf("CandidateOf(7) = %s", c)
	}
	if !l.IsCandidate(addr(6)) || l.IsCandidate(addr(3)) {
		t.Fatal("IsCandidate wrong")
	}
}

func TestPlanSmallChannelHasNoDelegates(t *testing.T) {
	l, err := Plan(five(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Candidates) != 0 || len(l.Assignments) != 0 || l.Capacity != 0 {
		t.Fatalf("layout %+v for five members, want none", l)
	}
}

// TestMovesOrder: a demoted candidate delegates only after its delegators
// have moved away, and a promoted one withdraws before anyone moves.
func TestMovesOrder(t *testing.T) {
	members := []Member{
		mem(1, 100), mem(2, 100), mem(3, 100), mem(4, 100), mem(5, 10),
		delegating(mem(6, 200), 1),
		delegating(mem(7, 1), 5, 5, 2),
		mem(8, 1), mem(9, 1), mem(10, 1), mem(11, 1),
	}
	l, err := Plan(members, addrs(1, 2, 3, 4, 5))
	if err != nil {
		t.Fatal(err)
	}
	if want := addrs(6, 1, 2, 3, 4); !slices.Equal(l.Candidates, want) {
		t.Fatalf("candidates %v, want %v", l.Candidates, want)
	}
	moves := l.Moves(members)
	at := func(d int) int {
		return slices.IndexFunc(moves, func(a Assignment) bool { return a.Delegator == addr(d) })
	}
	if at(6) != 0 || moves[0].Candidate != (protocol.Address{}) {
		t.Fatalf("the promoted member does not withdraw first: %v", moves)
	}
	if at(5) < at(7) {
		t.Fatalf("the demoted candidate delegates before its delegator moved: %v", moves)
	}
}

func TestChoose(t *testing.T) {
	cases := []struct {
		name    string
		members []Member
		self    int
		want    int
	}{
		{"a new member takes its first preference with room",
			append(five(), delegating(mem(6, 1), 1), delegating(mem(7, 1), 0, 1, 2)), 7, 2},
		{"a placed member stays, whatever it now prefers",
			append(five(), delegating(mem(6, 1), 1, 2)), 6, 1},
		{"earlier joiners still to place are not counted",
			append(five(), delegating(mem(6, 1), 0, 1), delegating(mem(7, 1), 0, 1)), 7, 1},
		{"the latest joined of an over-full candidate moves",
			append(five(), delegating(mem(6, 1), 1), delegating(mem(7, 1), 1, 3)), 7, 3},
		{"the earliest joined of an over-full candidate stays",
			append(five(), delegating(mem(6, 1), 1), delegating(mem(7, 1), 1, 3)), 6, 1},
		{"a candidate delegates to no one", append(five(), mem(6, 1)), 2, 0},
		{"a stranger gets nothing", five(), 9, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Choose(tc.members, addrs(1, 2, 3, 4, 5), 1, addr(tc.self))
			if err != nil {
				t.Fatal(err)
			}
			want := protocol.Address{}
			if tc.want != 0 {
				want = addr(tc.want)
			}
			if got != want {
				t.Fatalf("Choose = %s, want %s", got, want)
			}
		})
	}
}
