package cluster

import (
	"crypto/ed25519"
	"fmt"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
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
type genesis struct {
	Contract       string
	CodeHash       protocol.Hash
	GasLimit       uint64
	TickIntervalMs uint64
	State          protocol.State
	Members        []fsm.Member // ordered by join sequence
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
