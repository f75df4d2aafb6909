package delegate

import (
	"fmt"
	"slices"

	"github.com/scraft/scraft/protocol"
)

// Assignment is one member's delegation: Candidate is zero when the member
// delegates to no one.
type Assignment struct {
	Delegator protocol.Address
	Candidate protocol.Address
}

// Assign gives every member that is not a candidate a candidate with room,
// at most capacity delegators each. The rules:
//
//  1. A delegator keeps its candidate while that candidate has room,
//     earliest joined first: when capacity shrinks (members left), the
//     latest joined delegators of a full candidate are the ones that move.
//  2. The others (new members, those of a candidate that lost its seat,
//     those moved by rule 1) are placed in join order, each with the first
//     of its Prefs that has room.
//  3. A delegator none of whose Prefs has room goes to the candidate with
//     the most room, the best ranked on a tie: it has no measurement to
//     go by, so it evens the load.
//  4. When no candidate has room, Candidate is zero. Capacity(n) always
//     leaves room for every member; a smaller capacity may not.
//
// A member that is not valid is still assigned: until it is removed it is
// a member, and its candidate votes for it while it is silent.
//
// The result holds one Assignment per non-candidate member, in join order;
// it does not depend on the order of members or of candidates.
func Assign(members []Member, candidates []protocol.Address, capacity uint32) ([]Assignment, error) {
	return assign(members, candidates, capacity, nil)
}

// Choose returns the candidate self should delegate to now, from the
// chain's records (members with their current delegations) and self's own
// Prefs: Assign's rule 1 for every member, then rules 2–4 for self alone.
// Other members' Prefs are not needed, nor known to a node: members that
// still have to be placed are not counted, and when two of them pick the
// last place of a candidate the chain's capacity check takes the first
// call and refuses the second, whose node chooses again from the new
// records. The zero address means self is a candidate, is no member, or
// has no place.
func Choose(members []Member, candidates []protocol.Address, capacity uint32, self protocol.Address) (protocol.Address, error) {
	as, err := assign(members, candidates, capacity, &self)
	if err != nil {
		return protocol.Address{}, err
	}
	for _, a := range as {
		if a.Delegator == self {
			return a.Candidate, nil
		}
	}
	return protocol.Address{}, nil
}

// assign is Assign; with only set, rules 2–4 place that member alone.
func assign(members []Member, candidates []protocol.Address, capacity uint32, only *protocol.Address) ([]Assignment, error) {
	idx, err := index(members)
	if err != nil {
		return nil, err
	}
	cands, err := candidateList(idx, candidates)
	if err != nil {
		return nil, err
	}
	load := make([]uint32, len(cands))
	seat := func(a protocol.Address) int {
		return slices.IndexFunc(cands, func(c *Member) bool { return c.Address == a })
	}

	var delegators []*Member
	for _, m := range idx {
		if seat(m.Address) < 0 {
			delegators = append(delegators, m)
		}
	}
	slices.SortFunc(delegators, byJoin)

	out := make([]Assignment, len(delegators))
	placed := make([]bool, len(delegators))
	// Rule 1: keep, earliest joined first.
	for i, d := range delegators {
		out[i].Delegator = d.Address
		if d.DelegatedTo.IsZero() {
			continue
		}
		if s := seat(d.DelegatedTo); s >= 0 && load[s] < capacity {
			load[s]++
			out[i].Candidate = d.DelegatedTo
			placed[i] = true
		}
	}
	// Rules 2–4: place the rest, in join order.
	for i, d := range delegators {
		if placed[i] || (only != nil && d.Address != *only) {
			continue
		}
		s := -1
		for _, p := range d.Prefs {
			if k := seat(p); k >= 0 && load[k] < capacity {
				s = k
				break
			}
		}
		if s < 0 {
			for k := range cands {
				if load[k] < capacity && (s < 0 || load[k] < load[s]) {
					s = k
				}
			}
		}
		if s >= 0 {
			load[s]++
			out[i].Candidate = cands[s].Address
		}
	}
	return out, nil
}

// candidateList resolves candidates against idx, best ranked first, or
// fails on an unknown or repeated address.
func candidateList(idx []*Member, candidates []protocol.Address) ([]*Member, error) {
	cands := make([]*Member, 0, len(candidates))
	for _, a := range candidates {
		m := lookup(idx, a)
		if m == nil {
			return nil, fmt.Errorf("%w: candidate %s", ErrUnknownMember, a)
		}
		if slices.Contains(cands, m) {
			return nil, fmt.Errorf("%w: candidate %s", ErrDuplicateMember, a)
		}
		cands = append(cands, m)
	}
	slices.SortFunc(cands, byRank)
	return cands, nil
}

// Layout is a channel's delegate arrangement: its candidates, their
// capacity and every other member's delegation.
type Layout struct {
	// Candidates are best ranked first; empty when the channel has at most
	// Seats members (all of them vote, none delegates).
	Candidates []protocol.Address
	// Capacity is Capacity(n) for the channel's n members.
	Capacity uint32
	// Assignments holds one entry per non-candidate member, in join order.
	Assignments []Assignment
}

// Plan computes a channel's layout from its members and its current
// candidates: Candidates, then Assign with Capacity(n). When a candidate
// fails or leaves (it is no longer valid) the plan promotes the best ranked
// valid member in its place and moves its delegators to candidates with
// room, by their Prefs.
func Plan(members []Member, current []protocol.Address) (Layout, error) {
	if !Delegated(uint32(len(members))) {
		if _, err := index(members); err != nil {
			return Layout{}, err
		}
		return Layout{}, nil
	}
	cands, err := Candidates(members, current)
	if err != nil {
		return Layout{}, err
	}
	capacity := Capacity(uint32(len(members)))
	as, err := Assign(members, cands, capacity)
	if err != nil {
		return Layout{}, err
	}
	return Layout{Candidates: cands, Capacity: capacity, Assignments: as}, nil
}

// CandidateOf returns a's candidate in l: zero when a is a candidate, has
// none, or is not in l.
func (l Layout) CandidateOf(a protocol.Address) protocol.Address {
	for _, as := range l.Assignments {
		if as.Delegator == a {
			return as.Candidate
		}
	}
	return protocol.Address{}
}

// byDelegator returns l's assignments sorted by delegator, for lookups.
func (l Layout) byDelegator() []Assignment {
	s := slices.Clone(l.Assignments)
	slices.SortFunc(s, func(a, b Assignment) int { return a.Delegator.Compare(b.Delegator) })
	return s
}

// candidateIn returns a's candidate in s (sorted by delegator).
func candidateIn(s []Assignment, a protocol.Address) protocol.Address {
	i, ok := slices.BinarySearchFunc(s, a, func(as Assignment, a protocol.Address) int { return as.Delegator.Compare(a) })
	if !ok {
		return protocol.Address{}
	}
	return s[i].Candidate
}

// IsCandidate reports whether a is one of l's candidates.
func (l Layout) IsCandidate(a protocol.Address) bool {
	return slices.Contains(l.Candidates, a)
}

// Moves returns the delegations that must change to go from members'
// current delegations to l: each is one delegate call on chain. They are in
// an order the chain's checks accept when sent one after the other:
// first a member that becomes a candidate withdraws its own delegation (a
// candidate may not delegate, and nobody may delegate to one that does);
// then members that hold no delegators move, in join order (a candidate
// that receives a delegator loses none, so each fits its capacity); last a
// former candidate delegates, once its delegators have moved away.
func (l Layout) Moves(members []Member) []Assignment {
	sorted := make([]*Member, len(members))
	holds := make([]protocol.Address, 0, len(members))
	for i := range members {
		sorted[i] = &members[i]
		if !members[i].DelegatedTo.IsZero() {
			holds = append(holds, members[i].DelegatedTo)
		}
	}
	slices.SortFunc(sorted, byJoin)
	slices.SortFunc(holds, protocol.Address.Compare)
	stage := func(m *Member, want protocol.Address) int {
		switch _, held := slices.BinarySearchFunc(holds, m.Address, protocol.Address.Compare); {
		case want.IsZero():
			return 0
		case held:
			return 2
		}
		return 1
	}
	wants := l.byDelegator()
	var out []Assignment
	for st := 0; st < 3; st++ {
		for _, m := range sorted {
			want := candidateIn(wants, m.Address)
			if want != m.DelegatedTo && stage(m, want) == st {
				out = append(out, Assignment{Delegator: m.Address, Candidate: want})
			}
		}
	}
	return out
}
