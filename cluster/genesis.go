package cluster

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// Raft log commands: the first byte says what the rest is.
const (
	// logGenesis carries the channel as the first leader loaded it from the
	// chain (seed §6). It is the first command of every channel's log.
	logGenesis byte = 1
	// logBatch carries one leader-signed protocol.Batch.
	logBatch byte = 2
)

// genesis is what the first leader loaded from the chain: enough for every
// member to build the same fsm.Machine, and to check it against the chain.
// Every field is one the chain holds, and every member checks each of them
// (chainGenesis.check) before it builds a machine: the first leader is
// trusted with nothing. The genesis carries no field the chain does not
// hold. The chain's other settings (labels, settlement policy, stake,
// fine, censorship window) are not in it because the machine does not use
// them: the nodes read them from the chain where they act on them.
type genesis struct {
	Contract       string
	CodeHash       protocol.Hash
	GasLimit       uint64
	TickIntervalMs uint64
	State          protocol.State
	// Members are every membership the chain gave up to HighestJoinSeq,
	// ordered by join sequence, those ended since included (the departure
	// records keep them), so the list is a fact of history.
	Members        []fsm.Member
	HighestJoinSeq uint64
}

func (g *genesis) encode(e *protocol.Encoder) {
	e.String(g.Contract)
	e.Fixed(g.CodeHash[:])
	e.U64(g.GasLimit)
	e.U64(g.TickIntervalMs)
	g.State.Encode(e)
	e.Uleb(uint64(len(g.Members)))
	for _, m := range g.Members {
		e.Fixed(m.Address[:])
		e.Fixed(m.PublicKey)
		e.U64(m.JoinSeq)
	}
	e.U64(g.HighestJoinSeq)
}

func (g *genesis) decode(d *protocol.Decoder) {
	g.Contract = d.String(protocol.MaxNameLen)
	d.FixedInto(g.CodeHash[:])
	g.GasLimit = d.U64()
	g.TickIntervalMs = d.U64()
	g.State = protocol.DecodeState(d)
	n := d.Length(1 << 16)
	g.Members = nil
	for i := 0; i < n && d.Err() == nil; i++ {
		var m fsm.Member
		d.FixedInto(m.Address[:])
		m.PublicKey = ed25519.PublicKey(d.Fixed(ed25519.PublicKeySize))
		m.JoinSeq = d.U64()
		g.Members = append(g.Members, m)
	}
	g.HighestJoinSeq = d.U64()
}

func (g *genesis) bytes() []byte {
	e := protocol.NewEncoder(256)
	g.encode(e)
	return e.Out()
}

func decodeGenesis(b []byte) (*genesis, error) {
	d := protocol.NewDecoder(b)
	g := new(genesis)
	g.decode(d)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("decode genesis: %w", err)
	}
	return g, nil
}

// fsmConfig returns the machine configuration the genesis defines.
func (g *genesis) fsmConfig(id protocol.ChannelID) fsm.Config {
	cfg := fsm.DefaultConfig()
	cfg.Channel = id
	cfg.Contract = g.Contract
	// A gas limit of 0 on chain is the protocol's, never this node's.
	cfg.GasLimit = protocol.DefaultGasLimit
	if g.GasLimit > 0 {
		cfg.GasLimit = g.GasLimit
	}
	cfg.TickIntervalMs = g.TickIntervalMs
	cfg.Genesis = fsm.Genesis{State: g.State, Members: g.Members, HighestJoinSeq: g.HighestJoinSeq}
	return cfg
}

func encodeLog(kind byte, body []byte) []byte {
	b := make([]byte, 1+len(body))
	b[0] = kind
	copy(b[1:], body)
	return b
}

// chainGenesis is what the chain holds of a channel's genesis, read with
// the machine lock not held: the channel record, the initial state and
// the memberships the chain gave up to a highest join seq.
type chainGenesis struct {
	rec     *settlement.ChannelInfo
	state   protocol.State
	highest uint64
	// members are the memberships of join seq 1 … highest the chain keeps
	// a key of, ordered by join seq: a member record, else the departure
	// record of a membership that ended. A seq with neither, or with a
	// departure from before departures kept keys, is listed by no one.
	members []fsm.Member
}

// errSeqNotGiven means a genesis names a join seq the chain has not given
// yet: it cannot be judged until the chain gives it.
var errSeqNotGiven = errors.New("the genesis names a join seq the chain has not given yet")

// readChainGenesis reads what the chain holds of the channel's genesis up
// to join seq highest. It fails with errSeqNotGiven while the chain has
// not given highest.
func readChainGenesis(ctx context.Context, chain Chain, id protocol.ChannelID, highest uint64) (*chainGenesis, error) {
	rec, err := chain.Channel(ctx, id)
	if err != nil {
		return nil, err
	}
	if highest > rec.LastJoinSeq {
		return nil, fmt.Errorf("%w (%d; the chain's last is %d)", errSeqNotGiven, highest, rec.LastJoinSeq)
	}
	return readChainGenesisOf(ctx, chain, rec, highest)
}

// loadChainGenesis reads what the chain holds of the channel's genesis up
// to the last join seq it gave: what a first leader proposes.
func loadChainGenesis(ctx context.Context, chain Chain, id protocol.ChannelID) (*chainGenesis, error) {
	rec, err := chain.Channel(ctx, id)
	if err != nil {
		return nil, err
	}
	return readChainGenesisOf(ctx, chain, rec, rec.LastJoinSeq)
}

func readChainGenesisOf(ctx context.Context, chain Chain, rec *settlement.ChannelInfo, highest uint64) (*chainGenesis, error) {
	st, err := chain.InitialState(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	cg := &chainGenesis{rec: rec, state: st, highest: highest}
	current := make(map[uint64]*settlement.MemberInfo, len(rec.Members))
	for i := range rec.Members {
		current[rec.Members[i].JoinSeq] = &rec.Members[i]
	}
	for seq := uint64(1); seq <= highest; seq++ {
		if m, ok := current[seq]; ok {
			cg.members = append(cg.members, fsm.Member{Address: m.Address, PublicKey: m.PublicKey, JoinSeq: seq})
			continue
		}
		// Not a member when the record was read: the membership had
		// ended, and its departure record is written with its end.
		dp, err := chain.Departure(ctx, rec.ID, seq)
		switch {
		case errors.Is(err, contract.ErrNoDeparture):
			continue // a chain from before departure records
		case err != nil:
			return nil, err
		case len(dp.PublicKey) != ed25519.PublicKeySize || protocol.AddressOf(dp.PublicKey) != dp.Address:
			continue // a record from before departures kept keys
		}
		cg.members = append(cg.members, fsm.Member{Address: dp.Address, PublicKey: dp.PublicKey, JoinSeq: seq})
	}
	return cg, nil
}

// genesis returns the genesis the chain defines: what an honest first
// leader proposes.
func (cg *chainGenesis) genesis() *genesis {
	return &genesis{
		Contract:       cg.rec.Contract,
		CodeHash:       cg.rec.CodeHash,
		GasLimit:       cg.rec.Config.GasLimit,
		TickIntervalMs: tickMs(&cg.rec.Config),
		State:          cg.state,
		Members:        cg.members,
		HighestJoinSeq: cg.highest,
	}
}

func tickMs(c *contract.ChannelConfig) uint64 { return uint64(c.TickInterval.Milliseconds()) }

// check compares every field of g with what the chain holds and says what
// differs first. The chain's records it compares with never change (the
// record's contract, code and config, the initial state, who held each
// join seq), so every member, whenever it judges, judges alike.
func (cg *chainGenesis) check(g *genesis) error {
	rec := cg.rec
	switch {
	case g.Contract != rec.Contract:
		return fmt.Errorf("contract %q, the chain's is %q", g.Contract, rec.Contract)
	case g.CodeHash != rec.CodeHash:
		return fmt.Errorf("code %s, the chain's is %s", g.CodeHash, rec.CodeHash)
	case g.GasLimit != rec.Config.GasLimit:
		return fmt.Errorf("gas limit %d, the chain's is %d", g.GasLimit, rec.Config.GasLimit)
	case g.TickIntervalMs != tickMs(&rec.Config):
		return fmt.Errorf("tick interval %d ms, the chain's is %d ms", g.TickIntervalMs, tickMs(&rec.Config))
	case g.State.Hash() != cg.state.Hash():
		return fmt.Errorf("initial state %s, the chain's is %s", g.State.Hash(), cg.state.Hash())
	case g.HighestJoinSeq != cg.highest:
		return fmt.Errorf("highest join seq %d, read up to %d", g.HighestJoinSeq, cg.highest)
	}
	for i, want := range cg.members {
		if i >= len(g.Members) {
			return fmt.Errorf("member %s (join seq %d) missing", want.Address, want.JoinSeq)
		}
		got := g.Members[i]
		if got.Address != want.Address || got.JoinSeq != want.JoinSeq || !bytes.Equal(got.PublicKey, want.PublicKey) {
			return fmt.Errorf("member %d is %s (join seq %d), the chain's is %s (join seq %d)", i, got.Address, got.JoinSeq, want.Address, want.JoinSeq)
		}
	}
	if len(g.Members) > len(cg.members) {
		m := g.Members[len(cg.members)]
		return fmt.Errorf("member %s (join seq %d) not given by the chain", m.Address, m.JoinSeq)
	}
	return nil
}

// badGenesisError is a genesis that differs from the chain: the applier
// records it as evidence and does not install it.
type badGenesisError struct {
	detail string
}

func (e *badGenesisError) Error() string { return "genesis differs from the chain: " + e.detail }

// versioned is an executor that tells the VM and gas table versions it
// runs under (vm.Module does).
type versioned interface {
	Versions() (vmVersion, gasTable uint32)
}

// checkVersions refuses an executor whose VM or gas table version is not
// the channel's. An executor that tells none (one not backed by the VM, in
// tests) is taken as it is.
func checkVersions(exec fsm.Executor, cfg *contract.ChannelConfig) error {
	v, ok := exec.(versioned)
	if !ok {
		return nil
	}
	if vm, gas := v.Versions(); vm != cfg.VM() || gas != cfg.GasTable() {
		return fmt.Errorf("%w: the channel needs VM v%d with gas table v%d, this node runs VM v%d with gas table v%d",
			ErrVersion, cfg.VM(), cfg.GasTable(), vm, gas)
	}
	return nil
}
