package contract

import (
	"crypto/ed25519"
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// Env is what the block gives a call: its height and time, and who signed
// the chain tx. Chain time comes only from here, never from a clock.
type Env struct {
	Height    uint64
	TimeMs    int64 // block time, Unix milliseconds
	Sender    protocol.Address
	SenderKey ed25519.PublicKey
	// TxHash identifies the chain tx; new channel ids derive from it.
	TxHash protocol.Hash
}

// Receipt is what a successful call returns: the ids it assigned, the events
// it emitted in order and the state writes it made in key order.
type Receipt struct {
	Channel  protocol.ChannelID // CreateChannel
	Proposal uint64             // CreateProposal
	JoinSeq  uint64             // Join
	Epoch    uint64             // ClaimLeader
	Events   []Event
	Writes   []Write
}

// Machine applies calls to chain state. It holds no state of its own: the
// same store, env and call always give the same result.
type Machine struct {
	legacy Params
}

// New returns a Machine. Calls read the chain's settings from the state
// (InitGenesis); legacy stands for them on a state that holds none, a
// chain from before they were stored, which ran with the defaults.
func New(legacy Params) *Machine { return &Machine{legacy: legacy} }

// Apply runs call against st. A refused call returns an error wrapping one
// of the sentinels and leaves st unchanged; an accepted one writes st and
// returns its receipt.
func (m *Machine) Apply(st Store, env Env, call Call) (rc Receipt, err error) {
	o := newOverlay(st)
	x := &exec{st: o, env: env}
	x.params = m.ParamsOf(st)
	defer func() {
		if r := recover(); r != nil {
			rc, err = Receipt{}, fmt.Errorf("contract: internal error in %s: %v", call.Kind(), r)
		}
	}()
	if err := x.run(call); err != nil {
		return Receipt{}, fmt.Errorf("%s: %w", call.Kind(), err)
	}
	x.rc.Events = x.events
	x.rc.Writes = o.flush()
	return x.rc, nil
}

// ParamsOf returns the chain settings st holds, or the machine's legacy
// settings when it holds none.
func (m *Machine) ParamsOf(st Store) Params {
	if p, ok := GetParams(st); ok {
		return p
	}
	return m.legacy
}

// exec is one call in progress.
type exec struct {
	st     *overlay
	env    Env
	params Params
	events []Event
	rc     Receipt
}

func (x *exec) emit(ev Event) { x.events = append(x.events, ev) }

// run applies call. A call that names an open channel first brings the
// channel's candidates up to its chain time and, once it has acted,
// up to date with what it changed (refreshCandidates).
func (x *exec) run(call Call) error {
	id, ok := channelOf(call)
	if ok {
		x.refreshCandidates(id)
	}
	if err := x.dispatch(call); err != nil {
		return err
	}
	if ok {
		x.refreshCandidates(id)
	}
	return nil
}

func (x *exec) dispatch(call Call) error {
	switch c := call.(type) {
	case *CreateChannel:
		return x.createChannel(c)
	case *Stake:
		return x.stake(c)
	case *Deposit:
		return x.deposit(c)
	case *Withdraw:
		return x.withdraw(c)
	case *Join:
		return x.join(c)
	case *Leave:
		return x.leave(c)
	case *KeepAlive:
		return x.keepAlive(c)
	case *ClaimLeader:
		return x.claimLeader(c)
	case *CreateProposal:
		return x.createProposal(c)
	case *Vote:
		return x.vote(c)
	case *SubmitVotes:
		return x.submitVotes(c)
	case *ExecuteProposal:
		return x.executeProposal(c)
	case *ProveInclusion:
		return x.proveInclusion(c)
	case *Delegate:
		return x.delegate(c)
	case *Close:
		return x.close(c)
	case *SetNodeAddress:
		return x.setNodeAddress(c)
	case *TransferLeader:
		return x.transferLeader(c)
	case nil:
		return fmt.Errorf("%w: nil call", ErrMalformed)
	}
	return fmt.Errorf("%w: %T", ErrUnknownCall, call)
}

// Record access. Each returns a copy the caller may change and put back.

func (x *exec) account(a protocol.Address) *Account {
	acc := &Account{Balance: x.params.InitialBalance}
	get(x.st, accountKey(a), accountRec{acc})
	return acc
}

func (x *exec) putAccount(a protocol.Address, acc *Account) {
	put(x.st, accountKey(a), accountRec{acc})
}

func (x *exec) channel(id protocol.ChannelID) (*Channel, error) {
	var ch Channel
	if !get(x.st, channelKey(id), &ch) {
		return nil, fmt.Errorf("%w: %s", ErrNoChannel, id)
	}
	return &ch, nil
}

// openChannel returns the channel if it exists and is not closed.
func (x *exec) openChannel(id protocol.ChannelID) (*Channel, error) {
	ch, err := x.channel(id)
	if err != nil {
		return nil, err
	}
	if ch.Closed {
		return nil, fmt.Errorf("%w: %s", ErrChannelClosed, id)
	}
	return ch, nil
}

func (x *exec) putChannel(ch *Channel) { put(x.st, channelKey(ch.ID), ch) }

func (x *exec) member(id protocol.ChannelID, a protocol.Address) (*Member, error) {
	var m Member
	if !get(x.st, memberKey(id, a), &m) {
		return nil, fmt.Errorf("%w: %s in %s", ErrNotMember, a, id)
	}
	return &m, nil
}

func (x *exec) putMember(id protocol.ChannelID, m *Member) { put(x.st, memberKey(id, m.Address), m) }

func (x *exec) memberList(id protocol.ChannelID) memberList {
	var l memberList
	get(x.st, membersKey(id), &l)
	return l
}

// members returns the channel's members in address order.
func (x *exec) members(id protocol.ChannelID) []*Member {
	l := x.memberList(id)
	out := make([]*Member, 0, len(l))
	for _, a := range l {
		m, err := x.member(id, a)
		if err != nil {
			panic(fmt.Sprintf("member list names %s without a record", a))
		}
		out = append(out, m)
	}
	return out
}

func addU64(a, b uint64) (uint64, error) {
	if a+b < a {
		return 0, fmt.Errorf("%w: amount overflows", ErrMalformed)
	}
	return a + b, nil
}
