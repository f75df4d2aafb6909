package contract

import (
	"fmt"
	"slices"

	"github.com/scraft/scraft/protocol"
)

// Queries read chain state without changing it. They take any Store, so a
// node can read the committed state of devchain or a test's MemStore.

// GetChannel returns the channel's record.
func GetChannel(st Store, id protocol.ChannelID) (*Channel, error) {
	x := &exec{st: newOverlay(st)}
	return x.channel(id)
}

// GetMembers returns the channel's members ordered by join sequence.
func GetMembers(st Store, id protocol.ChannelID) ([]Member, error) {
	x := &exec{st: newOverlay(st)}
	if _, err := x.channel(id); err != nil {
		return nil, err
	}
	ms := x.members(id)
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = *m
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.JoinSeq < b.JoinSeq:
			return -1
		case a.JoinSeq > b.JoinSeq:
			return 1
		}
		return 0
	})
	return out, nil
}

// GetMember returns one member's record.
func GetMember(st Store, id protocol.ChannelID, a protocol.Address) (*Member, error) {
	x := &exec{st: newOverlay(st)}
	if _, err := x.channel(id); err != nil {
		return nil, err
	}
	return x.member(id, a)
}

// GetDeparture returns how the channel's membership of join sequence
// number joinSeq ended, or ErrNoDeparture while it has not (or was never
// given).
func GetDeparture(st Store, id protocol.ChannelID, joinSeq uint64) (*Departure, error) {
	x := &exec{st: newOverlay(st)}
	if _, err := x.channel(id); err != nil {
		return nil, err
	}
	var dp Departure
	if !get(x.st, departedKey(id, joinSeq), &dp) {
		return nil, fmt.Errorf("%w: join seq %d in %s", ErrNoDeparture, joinSeq, id)
	}
	return &dp, nil
}

// GetEpochLeader returns who led the channel's epoch epoch, or
// ErrNoEpochLeader while the channel has not reached it. Epoch 0, a
// channel's first, has no leader by the rules; every later epoch has the
// record the call that began it wrote. (A chain from before those records
// has none for epochs it began then.)
func GetEpochLeader(st Store, id protocol.ChannelID, epoch uint64) (*EpochLeader, error) {
	x := &exec{st: newOverlay(st)}
	ch, err := x.channel(id)
	if err != nil {
		return nil, err
	}
	if epoch == 0 {
		return &EpochLeader{Height: ch.CreatedHeight}, nil
	}
	var el EpochLeader
	if !get(x.st, epochKey(id, epoch), &el) {
		return nil, fmt.Errorf("%w: epoch %d of %s (the channel is at %d)", ErrNoEpochLeader, epoch, id, ch.Epoch)
	}
	return &el, nil
}

// GetProposal returns a proposal's record.
func GetProposal(st Store, id protocol.ChannelID, pid uint64) (*Proposal, error) {
	x := &exec{st: newOverlay(st)}
	if _, err := x.channel(id); err != nil {
		return nil, err
	}
	return x.proposal(id, pid)
}

// VoteRecord is one recorded vote.
type VoteRecord struct {
	Voter  protocol.Address
	Option protocol.VoteOption
}

// GetVotes returns the votes on a proposal in address order: of its
// electorate (Proposal.Voters) when it has one, else of the channel's
// current members.
func GetVotes(st Store, id protocol.ChannelID, pid uint64) ([]VoteRecord, error) {
	p, err := GetProposal(st, id, pid)
	if err != nil {
		return nil, err
	}
	x := &exec{st: newOverlay(st)}
	voters := p.Voters
	if len(voters) == 0 {
		voters = x.memberList(id)
	}
	var out []VoteRecord
	for _, a := range voters {
		if b := st.Get(voteKey(id, pid, a)); len(b) == 1 {
			out = append(out, VoteRecord{Voter: a, Option: protocol.VoteOption(b[0])})
		}
	}
	return out, nil
}

// GetAccount returns an account's money; an unused account holds
// p.InitialBalance.
func GetAccount(st Store, p Params, a protocol.Address) *Account {
	x := &exec{st: newOverlay(st), params: p}
	return x.account(a)
}

// GetStake returns a's stake in a channel.
func GetStake(st Store, id protocol.ChannelID, a protocol.Address) uint64 {
	return getU64(st, stakeKey(id, a))
}

// GetBan returns the chain time (Unix ms) until which a is banned from the
// channel, 0 when it never was.
func GetBan(st Store, id protocol.ChannelID, a protocol.Address) int64 {
	return int64(getU64(st, banKey(id, a)))
}

// GetCode returns the wasm code stored under hash.
func GetCode(st Store, hash protocol.Hash) ([]byte, error) {
	b := st.Get(codeKey(hash))
	if b == nil {
		return nil, fmt.Errorf("%w: no code stored under %s", ErrMalformed, hash)
	}
	return b, nil
}

// GetSettledState returns the channel's on-chain state as of its settled
// height (the initial state before the first settlement).
func GetSettledState(st Store, id protocol.ChannelID) (protocol.State, error) {
	x := &exec{st: newOverlay(st)}
	if _, err := x.channel(id); err != nil {
		return nil, err
	}
	return x.settledState(id), nil
}

// GetInitialState returns the state the channel was created with.
func GetInitialState(st Store, id protocol.ChannelID) (protocol.State, error) {
	if _, err := GetChannel(st, id); err != nil {
		return nil, err
	}
	d := protocol.NewDecoder(st.Get(initialKey(id)))
	s := protocol.DecodeState(d)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("initial state of %s: %w", id, err)
	}
	return s, nil
}
