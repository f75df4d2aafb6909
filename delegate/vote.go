package delegate

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/scraft/scraft/protocol"
)

// Tally is the outcome of a vote, counted in members: each member weighs
// one, as on chain.
type Tally struct {
	For, Against, Abstain uint64
	// Silent counts the members whose weight nobody cast: they did not
	// vote and their candidate (if any) did not either.
	Silent uint64
}

// Total returns the members counted, silent ones included.
func (t Tally) Total() uint64 { return t.For + t.Against + t.Abstain + t.Silent }

func (t *Tally) add(o protocol.VoteOption) {
	switch o {
	case protocol.VoteFor:
		t.For++
	case protocol.VoteAgainst:
		t.Against++
	default:
		t.Abstain++
	}
}

// VerifyVote checks that v is a vote on proposal of channel, with an
// option in range, signed by the key of its voter. A candidate checks each
// vote a delegator sends it before carrying it to the chain; the chain
// checks the same on submit_votes.
func VerifyVote(v *protocol.Vote, channel protocol.ChannelID, proposal uint64) error {
	if v.Channel != channel || v.Proposal != proposal {
		return fmt.Errorf("%w: by %s on %s/%d, want %s/%d", ErrBadVote, v.Voter, v.Channel, v.Proposal, channel, proposal)
	}
	if err := v.Verify(); err != nil {
		return fmt.Errorf("%w: by %s: %w", ErrBadVote, v.Voter, err)
	}
	return nil
}

// Cast is one member's vote whose author is already established: the
// chain knows who signed the tx that carried it, or checked the vote's
// signature.
type Cast struct {
	Voter  protocol.Address
	Option protocol.VoteOption
}

// Aggregate counts the votes on proposal of channel cast by electorate
// (the members who may vote), given their delegations. votes holds the
// signed votes of candidates and of delegators alike, in any order; each
// is verified (VerifyVote). The rules:
//
//   - a member that voted counts its own vote: a delegator's vote
//     overrides its candidate's vote for it;
//   - a silent delegator counts as its candidate voted, when it did: that
//     is what delegating means;
//   - any other silent member counts in Silent.
//
// A delegation with a zero Candidate is none. A delegation by or to a
// member outside the electorate carries no weight (the caller may pass
// every delegation on record): such a delegator is not counted, and the
// delegators of such a candidate count as silent unless they vote.
//
// A bad vote, a voter outside the electorate, two votes by one voter, or a
// delegation the chain would refuse (to oneself, to a member that
// delegates itself, a member delegating twice) fails the whole count, as
// the chain takes a batch of votes whole; the error too is the same for
// every input order.
func Aggregate(channel protocol.ChannelID, proposal uint64, electorate []protocol.Address, delegations []Assignment, votes []protocol.Vote) (Tally, error) {
	c, err := newCounter(electorate, delegations)
	if err != nil {
		return Tally{}, err
	}
	vs := make([]*protocol.Vote, len(votes))
	for i := range votes {
		vs[i] = &votes[i]
	}
	slices.SortFunc(vs, func(a, b *protocol.Vote) int { return a.Voter.Compare(b.Voter) })
	// Who voted is checked before any signature, so the first fault found
	// does not depend on the order of two votes by one voter.
	cast := make([]Cast, len(vs))
	for k, v := range vs {
		cast[k] = Cast{Voter: v.Voter, Option: v.Option}
	}
	if err := c.checkVoters(cast); err != nil {
		return Tally{}, err
	}
	for _, v := range vs {
		if err := VerifyVote(v, channel, proposal); err != nil {
			return Tally{}, err
		}
	}
	return c.count(cast), nil
}

// Count is Aggregate for votes whose authors the caller has established
// itself (the chain stores a member's vote under the address that signed
// it): the same rules and the same refusals, without signatures. An option
// out of range fails the count (ErrBadVote).
func Count(electorate []protocol.Address, delegations []Assignment, votes []Cast) (Tally, error) {
	c, err := newCounter(electorate, delegations)
	if err != nil {
		return Tally{}, err
	}
	cast := slices.Clone(votes)
	slices.SortFunc(cast, func(a, b Cast) int { return a.Voter.Compare(b.Voter) })
	if err := c.checkVoters(cast); err != nil {
		return Tally{}, err
	}
	for _, v := range cast {
		if v.Option > protocol.VoteAbstain {
			return Tally{}, fmt.Errorf("%w: by %s: option %d", ErrBadVote, v.Voter, v.Option)
		}
	}
	return c.count(cast), nil
}

// counter is an electorate with its delegations resolved: the one
// implementation of the counting rules behind Aggregate and Count.
type counter struct {
	voters []protocol.Address // sorted
	// delegatedTo[i] is the position of voters[i]'s candidate, or -1.
	delegatedTo []int
}

func newCounter(electorate []protocol.Address, delegations []Assignment) (*counter, error) {
	voters := slices.Clone(electorate)
	slices.SortFunc(voters, protocol.Address.Compare)
	for i := 1; i < len(voters); i++ {
		if voters[i] == voters[i-1] {
			return nil, fmt.Errorf("%w: %s in the electorate", ErrDuplicateMember, voters[i])
		}
	}
	c := &counter{voters: voters, delegatedTo: make([]int, len(voters))}
	for i := range c.delegatedTo {
		c.delegatedTo[i] = -1
	}
	ds := slices.Clone(delegations)
	slices.SortFunc(ds, func(a, b Assignment) int {
		return cmp.Or(a.Delegator.Compare(b.Delegator), a.Candidate.Compare(b.Candidate))
	})
	delegates := func(a protocol.Address) bool {
		i, ok := slices.BinarySearchFunc(ds, a, func(d Assignment, a protocol.Address) int { return d.Delegator.Compare(a) })
		return ok && !ds[i].Candidate.IsZero()
	}
	for k, d := range ds {
		switch {
		case k > 0 && ds[k-1].Delegator == d.Delegator:
			return nil, fmt.Errorf("%w: %s delegates twice", ErrBadDelegation, d.Delegator)
		case d.Candidate.IsZero():
			continue
		case d.Candidate == d.Delegator:
			return nil, fmt.Errorf("%w: %s delegates to itself", ErrBadDelegation, d.Delegator)
		case delegates(d.Candidate):
			return nil, fmt.Errorf("%w: %s delegates to %s, which delegates itself", ErrBadDelegation, d.Delegator, d.Candidate)
		}
		// Weight flows only between members of the electorate.
		if i, c2 := c.pos(d.Delegator), c.pos(d.Candidate); i >= 0 && c2 >= 0 {
			c.delegatedTo[i] = c2
		}
	}
	return c, nil
}

func (c *counter) pos(a protocol.Address) int {
	i, ok := slices.BinarySearchFunc(c.voters, a, protocol.Address.Compare)
	if !ok {
		return -1
	}
	return i
}

// checkVoters refuses a voter outside the electorate or one who votes
// twice; cast is sorted by voter.
func (c *counter) checkVoters(cast []Cast) error {
	for k, v := range cast {
		if c.pos(v.Voter) < 0 {
			return fmt.Errorf("%w: voter %s", ErrUnknownMember, v.Voter)
		}
		if k > 0 && cast[k-1].Voter == v.Voter {
			return fmt.Errorf("%w: %s", ErrDuplicateVote, v.Voter)
		}
	}
	return nil
}

// count tallies checked votes.
func (c *counter) count(cast []Cast) Tally {
	opt := make([]int, len(c.voters)) // option + 1; 0: silent
	for _, v := range cast {
		opt[c.pos(v.Voter)] = int(v.Option) + 1
	}
	var t Tally
	for i := range c.voters {
		switch d := c.delegatedTo[i]; {
		case opt[i] != 0:
			t.add(protocol.VoteOption(opt[i] - 1))
		case d >= 0 && opt[d] != 0:
			t.add(protocol.VoteOption(opt[d] - 1))
		default:
			t.Silent++
		}
	}
	return t
}

// CountedAs returns the option a count of votes gives voter when it
// delegates to candidate (zero: it delegates to nobody), by the rules of
// Aggregate: its own vote when it cast one, else its candidate's when that
// one voted. ok is false when neither voted: voter counts as silent.
// A delegator uses it to tell whether its vote needs to reach the chain:
// a vote the count already gives it (its candidate voted the same) adds
// nothing there.
func CountedAs(votes []Cast, voter, candidate protocol.Address) (opt protocol.VoteOption, ok bool) {
	var byCandidate protocol.VoteOption
	fromCandidate := false
	for _, v := range votes {
		switch {
		case v.Voter == voter:
			return v.Option, true
		case !candidate.IsZero() && v.Voter == candidate:
			byCandidate, fromCandidate = v.Option, true
		}
	}
	return byCandidate, fromCandidate
}
