package delegate

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/scraft/scraft/protocol"
)

// ChallengePercent is the margin by which a challenger's stake must exceed
// the weakest incumbent's for the challenger to take its seat: more than
// 10% more. It is a constant, not a setting: the chain and every member
// must draw the same line, or they would disagree on who is a candidate.
const ChallengePercent = 10

// Member is what the policy knows of one channel member, from the chain's
// records (and, for Prefs, from the member's node).
type Member struct {
	Address protocol.Address
	// Stake is the collateral the member holds in the channel.
	Stake uint64
	// JoinSeq is the member's join sequence number (1, 2, …).
	JoinSeq uint64
	// Valid says the member's heartbeat is within the TTL at chain time and
	// it has not asked to leave. Only a valid member can be a candidate.
	Valid bool
	// DelegatedTo is the candidate the member delegates to now (zero:
	// none).
	DelegatedTo protocol.Address
	// Prefs ranks candidates by the member's measured latency to them,
	// best first. Only the member's node knows it; the chain never needs it.
	Prefs []protocol.Address
}

// byRank orders members by stake (most first), then join order (earliest
// first), then address, so that even malformed input with equal join
// sequence numbers has one order.
func byRank(a, b *Member) int {
	if c := cmp.Compare(b.Stake, a.Stake); c != 0 {
		return c
	}
	if c := cmp.Compare(a.JoinSeq, b.JoinSeq); c != 0 {
		return c
	}
	return a.Address.Compare(b.Address)
}

// byJoin orders members by join order, then address.
func byJoin(a, b *Member) int {
	if c := cmp.Compare(a.JoinSeq, b.JoinSeq); c != 0 {
		return c
	}
	return a.Address.Compare(b.Address)
}

// index returns the members sorted by address, for lookups, or
// ErrDuplicateMember.
func index(members []Member) ([]*Member, error) {
	idx := make([]*Member, len(members))
	for i := range members {
		idx[i] = &members[i]
	}
	slices.SortFunc(idx, func(a, b *Member) int { return a.Address.Compare(b.Address) })
	for i := 1; i < len(idx); i++ {
		if idx[i].Address == idx[i-1].Address {
			return nil, fmt.Errorf("%w: %s", ErrDuplicateMember, idx[i].Address)
		}
	}
	return idx, nil
}

// lookup finds a in idx (sorted by address).
func lookup(idx []*Member, a protocol.Address) *Member {
	i, ok := slices.BinarySearchFunc(idx, a, func(m *Member, a protocol.Address) int { return m.Address.Compare(a) })
	if !ok {
		return nil
	}
	return idx[i]
}

// outranks reports whether challenger c takes the seat of incumbent w: its
// stake exceeds w's by more than ChallengePercent of w's stake. Written
// without multiplying, so no stake overflows.
func outranks(c, w *Member) bool {
	if c.Stake <= w.Stake {
		return false
	}
	gain := c.Stake - w.Stake
	// gain > w.Stake × P/100  ⇔  gain > ⌊w.Stake × P/100⌋ for integers.
	return gain > w.Stake/100*ChallengePercent+w.Stake%100*ChallengePercent/100
}

// Candidates returns the new candidates of a channel, best ranked first,
// given its members and its current candidates (in any order; addresses
// that are not valid members are dropped). The rules:
//
//  1. Only a valid member is a candidate: an incumbent that stopped
//     heartbeating or asked to leave loses its seat at once.
//  2. Incumbents keep their seats otherwise (hysteresis): every change of
//     candidate moves delegators, costs chain txs and a Raft voter change.
//  3. Empty seats go to the best ranked valid members: most stake, then
//     earliest joined.
//  4. Then, while the best ranked non-candidate has more than
//     ChallengePercent more stake than the weakest candidate, it takes
//     that seat.
//
// It returns at most Seats addresses, fewer when fewer members are valid.
// The result depends on current only as a set, and on members not at all
// on their order.
func Candidates(members []Member, current []protocol.Address) ([]protocol.Address, error) {
	idx, err := index(members)
	if err != nil {
		return nil, err
	}
	seated := make([]*Member, 0, Seats)
	for _, a := range current {
		m := lookup(idx, a)
		if m == nil || !m.Valid || slices.Contains(seated, m) {
			continue
		}
		seated = append(seated, m)
	}
	slices.SortFunc(seated, byRank)
	// More incumbents than seats (a malformed current set): the best ranked
	// keep theirs.
	if len(seated) > Seats {
		seated = seated[:Seats]
	}

	var others []*Member
	for _, m := range idx {
		if m.Valid && !slices.Contains(seated, m) {
			others = append(others, m)
		}
	}
	slices.SortFunc(others, byRank)

	// Fill the empty seats from the top of the ranking.
	for len(seated) < Seats && len(others) > 0 {
		seated = append(seated, others[0])
		others = others[1:]
	}
	slices.SortFunc(seated, byRank)

	// Challenges: the best outsider against the weakest candidate. The
	// weakest seat's stake never falls, so a displaced incumbent never
	// clears the margin again, and once five challengers are seated the
	// next outsider ranks below all of them: at most Seats swaps.
	for len(others) > 0 && len(seated) > 0 {
		weakest := seated[len(seated)-1]
		if !outranks(others[0], weakest) {
			break
		}
		seated[len(seated)-1] = others[0]
		others = others[1:]
		// The displaced incumbent competes again as an outsider, without
		// its incumbency: it must itself clear the margin to return.
		others = insertRanked(others, weakest)
		slices.SortFunc(seated, byRank)
	}

	out := make([]protocol.Address, len(seated))
	for i, m := range seated {
		out[i] = m.Address
	}
	return out, nil
}

// insertRanked inserts m into s, which is sorted by byRank.
func insertRanked(s []*Member, m *Member) []*Member {
	i, _ := slices.BinarySearchFunc(s, m, byRank)
	return slices.Insert(s, i, m)
}
