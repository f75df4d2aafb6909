package contract

import (
	"fmt"
	"slices"
	"time"

	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
)

// A channel of more than delegate.Seats members runs through candidates
// (delegate/DESIGN.md). The rules here apply package delegate's policy to
// the records; they decide nothing of their own.
//
// The candidate set is part of the channel record (Channel.Candidates).
// It depends on chain time (a candidate whose heartbeat is older than
// the chain's HeartbeatTTL loses its seat), and chain time moves only with blocks, so
// the set is brought up to date by every call that names an open channel:
// once before the call acts, at the call's chain time, so that its checks
// see the set as it stands then, and once after, so that the record
// reflects what the call changed (a join, a removal, a stake, a
// heartbeat). A channel nobody calls keeps the set its last call left; the
// next call, whoever sends it, sees the expiries first. Nodes reading the
// record between calls get the set as of the last call; the set a call
// would see now is delegate.Candidates of the members valid now, with the
// recorded set as the current one.

// channelOf returns the channel a call acts on, if it names one.
func channelOf(call Call) (protocol.ChannelID, bool) {
	switch c := call.(type) {
	case *Stake:
		return c.Channel, true
	case *Join:
		return c.Channel, true
	case *Leave:
		return c.Channel, true
	case *KeepAlive:
		return c.Channel, true
	case *ClaimLeader:
		return c.Channel, true
	case *CreateProposal:
		return c.Channel, true
	case *Vote:
		return c.Channel, true
	case *SubmitVotes:
		return c.Channel, true
	case *ExecuteProposal:
		return c.Channel, true
	case *ProveInclusion:
		return c.Channel, true
	case *Delegate:
		return c.Channel, true
	case *Close:
		return c.Channel, true
	case *SetNodeAddress:
		return c.Channel, true
	case *TransferLeader:
		return c.Channel, true
	}
	return protocol.ChannelID{}, false
}

// policyMembers returns ms as the delegate policy sees them at chain time
// nowMs: stake is the locked collateral (what a cheat loses), valid is a
// heartbeat within ttl and no leave asked.
func policyMembers(ms []*Member, nowMs int64, ttl time.Duration) []delegate.Member {
	out := make([]delegate.Member, len(ms))
	for i, m := range ms {
		out[i] = delegate.Member{
			Address:     m.Address,
			Stake:       m.Locked,
			JoinSeq:     m.JoinSeq,
			Valid:       m.ValidAt(nowMs, ttl) && !m.Leaving(),
			DelegatedTo: m.DelegatedTo,
		}
	}
	return out
}

// candidates returns the candidates of ch at this call's chain time, from
// the members on record now and ch.Candidates as the current set, without
// writing anything: none when the channel has at most delegate.Seats
// members.
func (x *exec) candidates(ch *Channel, ms []*Member) []protocol.Address {
	next, err := candidatesAt(ch, ms, x.env.TimeMs, x.params.HeartbeatTTL)
	if err != nil {
		// Only a member listed twice fails, and the member list is a set.
		panic(fmt.Sprintf("candidates of %s: %v", ch.ID, err))
	}
	return next
}

func candidatesAt(ch *Channel, ms []*Member, nowMs int64, ttl time.Duration) ([]protocol.Address, error) {
	if !delegate.Delegated(uint32(len(ms))) {
		return nil, nil
	}
	return delegate.Candidates(policyMembers(ms, nowMs, ttl), ch.Candidates)
}

// CandidatesAt returns the candidates the next call on ch would find at
// chain time nowMs, given the channel's members (every one, in any
// order): ch.Candidates is the set as the last call left it, and heartbeats
// that lapsed since count only from the next call on; ttl is the chain's
// Params.HeartbeatTTL. A node that reads the records between calls uses
// this to know the set it will be held to.
func CandidatesAt(ch *Channel, members []Member, nowMs int64, ttl time.Duration) ([]protocol.Address, error) {
	ms := make([]*Member, len(members))
	for i := range members {
		ms[i] = &members[i]
	}
	return candidatesAt(ch, ms, nowMs, ttl)
}

// isCandidate reports whether a may lead ch (and take delegations): any
// member in a channel of at most delegate.Seats members, else one of the
// recorded candidates (which the call brought up to date before acting).
func isCandidate(ch *Channel, a protocol.Address) bool {
	return !delegate.Delegated(ch.Members) || slices.Contains(ch.Candidates, a)
}

// refreshCandidates brings the candidate set of channel id and the
// delegations that depend on it up to date at this call's chain time. It
// writes only what changed. A delegation stands when it is by a member
// that is not a candidate, to a candidate, within delegate.Capacity(n),
// the earliest joined delegators of a candidate first (delegate.Assign's
// rule 1). The others are cleared and their members left undelegated, as
// delegate.Plan does before it places them: the chain does not know the
// members' latencies, so placing them again is their nodes' choice, each a
// delegate call (Layout.Moves). That covers a demoted candidate's
// delegators, a promoted member's own delegation, the latest joined
// delegators of a candidate over a capacity that shrank, and every
// delegation when the channel shrinks to delegate.Seats members or fewer.
// Each cleared delegation emits EventDelegated with no candidate; a change
// of the set emits EventCandidates. A closed or missing channel is left
// alone.
func (x *exec) refreshCandidates(id protocol.ChannelID) {
	ch, err := x.channel(id)
	if err != nil || ch.Closed {
		return
	}
	ms := x.members(id)
	next := x.candidates(ch, ms)
	capacity := delegate.Capacity(uint32(len(ms)))

	load := make([]uint32, len(next))
	keep := make([]protocol.Address, len(ms)) // keep[i]: ms[i]'s delegation after
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmpU64(ms[a].JoinSeq, ms[b].JoinSeq); c != 0 {
			return c
		}
		return ms[a].Address.Compare(ms[b].Address)
	})
	for _, i := range order {
		m := ms[i]
		k := slices.Index(next, m.DelegatedTo)
		if m.DelegatedTo.IsZero() || k < 0 || slices.Contains(next, m.Address) || load[k] >= capacity {
			continue
		}
		load[k]++
		keep[i] = m.DelegatedTo
	}
	for i, m := range ms {
		var delegators uint32
		if k := slices.Index(next, m.Address); k >= 0 {
			delegators = load[k]
		}
		if m.DelegatedTo == keep[i] && m.Delegators == delegators {
			continue
		}
		cleared := m.DelegatedTo != keep[i]
		m.DelegatedTo, m.Delegators = keep[i], delegators
		x.putMember(id, m)
		if cleared {
			x.emit(Event{Kind: EventDelegated, Channel: id, Member: m.Address})
		}
	}
	if !slices.Equal(next, ch.Candidates) {
		ch.Candidates = next
		x.putChannel(ch)
		x.emit(Event{Kind: EventCandidates, Channel: id})
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// delegate records the sender's delegation to a candidate, or withdraws it
// (zero candidate). Only a member that is not a candidate delegates, only
// to one of the channel's candidates (ErrNotCandidate; none in a channel
// of at most delegate.Seats members), and a candidate takes at most
// delegate.Capacity(n) delegators (ErrNoCapacity). The checks run after
// the call brought the candidate set up to its chain time.
func (x *exec) delegate(c *Delegate) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	me, err := x.member(ch.ID, x.env.Sender)
	if err != nil {
		return err
	}
	if c.Candidate == me.Address {
		return fmt.Errorf("%w: cannot delegate to oneself", ErrNotEligible)
	}
	if me.DelegatedTo == c.Candidate {
		return nil
	}
	var cand *Member
	if !c.Candidate.IsZero() {
		if slices.Contains(ch.Candidates, me.Address) {
			return fmt.Errorf("%w: %s is a candidate and votes for itself", ErrNotEligible, me.Address)
		}
		if cand, err = x.member(ch.ID, c.Candidate); err != nil {
			return err
		}
		if !slices.Contains(ch.Candidates, cand.Address) {
			return fmt.Errorf("%w: %s; the channel's candidates are %v", ErrNotCandidate, cand.Address, ch.Candidates)
		}
		if capacity := delegate.Capacity(ch.Members); cand.Delegators >= capacity {
			return fmt.Errorf("%w: %s has %d of %d", ErrNoCapacity, cand.Address, cand.Delegators, capacity)
		}
	}
	if !me.DelegatedTo.IsZero() {
		if old, err := x.member(ch.ID, me.DelegatedTo); err == nil && old.Delegators > 0 {
			old.Delegators--
			x.putMember(ch.ID, old)
		}
	}
	if cand != nil {
		cand.Delegators++
		x.putMember(ch.ID, cand)
	}
	me.DelegatedTo = c.Candidate
	x.putMember(ch.ID, me)
	x.emit(Event{Kind: EventDelegated, Channel: ch.ID, Member: me.Address, Other: c.Candidate})
	return nil
}

// delegatedWeight reports whether p is counted with delegated weight: a
// settlement filed in a channel with candidates (it recorded its
// electorate). Punish and election proposals never are: each voter must
// judge the evidence, or the leader, itself (docs/DESIGN.md §7, §10).
func (p *Proposal) delegatedWeight() bool {
	return p.Kind == protocol.ProposalSettlement && len(p.Voters) > 0
}

// recount sets p's tally with delegated weight (delegate.Count): each
// voter of its electorate counts its own vote; a silent one counts as its
// candidate voted, by the delegations on record now; the rest are silent.
// It runs after every vote call on p and before p's execution, so the
// weight follows delegations as they stand when the votes are counted. p
// is changed, not stored.
func (x *exec) recount(ch *Channel, p *Proposal) {
	if !p.delegatedWeight() {
		return
	}
	var ds []delegate.Assignment
	var cast []delegate.Cast
	for _, a := range p.Voters {
		if b := x.st.Get(voteKey(ch.ID, p.ID, a)); len(b) == 1 {
			cast = append(cast, delegate.Cast{Voter: a, Option: protocol.VoteOption(b[0])})
		}
		if m, err := x.member(ch.ID, a); err == nil && !m.DelegatedTo.IsZero() {
			ds = append(ds, delegate.Assignment{Delegator: a, Candidate: m.DelegatedTo})
		}
	}
	t, err := delegate.Count(p.Voters, ds, cast)
	if err != nil {
		// The records hold one vote per voter of the electorate, options
		// in range, and delegations only to candidates, which do not
		// delegate.
		panic(fmt.Sprintf("count of proposal %d in %s: %v", p.ID, ch.ID, err))
	}
	p.For, p.Against, p.Abstain = uint32(t.For), uint32(t.Against), uint32(t.Abstain)
}
