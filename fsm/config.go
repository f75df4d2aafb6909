package fsm

import (
	"crypto/ed25519"
	"fmt"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/protocol"
)

// Member is a channel member as the machine knows it.
type Member struct {
	Address   protocol.Address
	PublicKey ed25519.PublicKey
	// JoinSeq is the join sequence number the settlement chain gave it.
	JoinSeq uint64
	// LeaveHeight is the height at which the member asked to leave (a
	// scraft::leave call or a scraft::Leave event naming it), 0 if it did
	// not. It is state, never genesis: the member stays until the leader
	// orders its leave entry, after settlement.
	LeaveHeight uint64
}

// Genesis is the channel as loaded from the settlement chain at start.
type Genesis struct {
	// State is the initial contract state. The machine does not modify it.
	State protocol.State
	// Members are the members at load.
	Members []Member
	// HighestJoinSeq is the highest join sequence number recorded at load;
	// every later join must carry a higher one. It is at least every
	// member's JoinSeq.
	HighestJoinSeq uint64
}

// Config configures a Machine. Every member of a channel must use the same
// Channel, Contract, GasLimit, TickIntervalMs, TickToleranceMs and Genesis;
// they are part of the channel's definition on chain.
type Config struct {
	// Channel is the channel id. Required.
	Channel protocol.ChannelID
	// Contract is the contract name that prefixes every function, e.g.
	// "chat" for "chat::send". Required.
	Contract string
	// GasLimit is the gas each entry function may use. Default
	// protocol.DefaultGasLimit (10,000,000).
	GasLimit uint64
	// TickIntervalMs is the game tick period in milliseconds; 0 (the
	// default) means the channel has no ticks and refuses tick entries.
	TickIntervalMs uint64
	// TickToleranceMs is how much earlier than TickIntervalMs after the
	// previous tick a tick may come, in milliseconds. Default 0; at most
	// TickIntervalMs.
	TickToleranceMs uint64
	// Genesis is the channel state at load.
	Genesis Genesis

	// MaxEvidence bounds the evidence the machine keeps for Evidence(); the
	// oldest is dropped first. Default 64.
	MaxEvidence int
	// MaxPending bounds the batches proposed but not yet applied. Default 64.
	MaxPending int
	// VerifyOnPropose makes Propose verify call signatures. Default false:
	// the leader verifies each tx when it is submitted, and an honest leader
	// must never propose a call whose signature fails.
	VerifyOnPropose bool

	// OnEvidence, when set, is called synchronously from Apply with each new
	// piece of evidence. It must not call back into the Machine.
	OnEvidence func(*Evidence)
	// Logger receives the machine's logs. Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default set. Channel, Contract
// and Genesis still need filling in.
func DefaultConfig() Config {
	return Config{
		GasLimit:    protocol.DefaultGasLimit,
		MaxEvidence: 64,
		MaxPending:  64,
	}
}

// Validate checks the fields and how they relate to each other.
func (c *Config) Validate() error {
	if c.Channel.IsZero() {
		return fmt.Errorf("%w: Channel is zero", ErrConfig)
	}
	if err := protocol.ValidateFunction(c.Contract + "::f"); err != nil {
		return fmt.Errorf("%w: Contract %q is not an identifier", ErrConfig, c.Contract)
	}
	if c.GasLimit == 0 {
		return fmt.Errorf("%w: GasLimit must be positive", ErrConfig)
	}
	if c.TickToleranceMs > c.TickIntervalMs {
		return fmt.Errorf("%w: TickToleranceMs (%d) cannot be larger than TickIntervalMs (%d)",
			ErrConfig, c.TickToleranceMs, c.TickIntervalMs)
	}
	if c.MaxEvidence < 1 {
		return fmt.Errorf("%w: MaxEvidence (%d) must be at least 1", ErrConfig, c.MaxEvidence)
	}
	if c.MaxPending < 1 {
		return fmt.Errorf("%w: MaxPending (%d) must be at least 1", ErrConfig, c.MaxPending)
	}
	return c.Genesis.validate()
}

func (g *Genesis) validate() error {
	if len(g.State) > protocol.MaxStateEntries {
		return fmt.Errorf("%w: genesis state of %d resources, at most %d", ErrConfig, len(g.State), protocol.MaxStateEntries)
	}
	for _, k := range g.State.Keys() {
		if k.Type == "" || len(k.Type) > protocol.MaxTypeLen {
			return fmt.Errorf("%w: genesis resource %s has a bad type", ErrConfig, k)
		}
		if len(g.State[k]) > protocol.MaxValueLen {
			return fmt.Errorf("%w: genesis resource %s is too large", ErrConfig, k)
		}
	}
	ms := slices.Clone(g.Members)
	slices.SortFunc(ms, func(a, b Member) int { return a.Address.Compare(b.Address) })
	for i, m := range ms {
		if len(m.PublicKey) != ed25519.PublicKeySize || protocol.AddressOf(m.PublicKey) != m.Address {
			return fmt.Errorf("%w: genesis member %s: public key does not match address", ErrConfig, m.Address)
		}
		if i > 0 && ms[i-1].Address == m.Address {
			return fmt.Errorf("%w: genesis member %s appears twice", ErrConfig, m.Address)
		}
		if m.JoinSeq > g.HighestJoinSeq {
			return fmt.Errorf("%w: genesis member %s has join seq %d above HighestJoinSeq (%d)",
				ErrConfig, m.Address, m.JoinSeq, g.HighestJoinSeq)
		}
	}
	return nil
}

// GenesisDigest is D(0), the digest before the first entry. It binds the
// channel, contract, initial state and members, so members loaded with
// different geneses disagree from the first height on.
func GenesisDigest(channel protocol.ChannelID, contract string, g Genesis) protocol.Hash {
	e := protocol.NewEncoder(256)
	e.Fixed(channel[:])
	e.String(contract)
	g.State.Encode(e)
	ms := slices.Clone(g.Members)
	slices.SortFunc(ms, func(a, b Member) int { return a.Address.Compare(b.Address) })
	e.Uleb(uint64(len(ms)))
	for _, m := range ms {
		encodeMember(e, m)
	}
	e.U64(g.HighestJoinSeq)
	return protocol.HashOf(domainGenesis, e.Out())
}

const domainGenesis = "scraft/genesis/v1"

func encodeMember(e *protocol.Encoder, m Member) {
	e.Fixed(m.Address[:])
	e.Fixed(padKey(m.PublicKey))
	e.U64(m.JoinSeq)
}

func padKey(b []byte) []byte {
	if len(b) == ed25519.PublicKeySize {
		return b
	}
	p := make([]byte, ed25519.PublicKeySize)
	copy(p, b)
	return p
}
