package fsm

import (
	"bytes"
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// meta holds the scalar part of the channel state.
type meta struct {
	height uint64        // last applied height
	digest protocol.Hash // D(height)
	// epoch and leader are those of the last batch applied; leader is zero
	// before the first batch.
	epoch       uint64
	leader      protocol.Address
	timestampMs uint64 // the last batch's leader timestamp
	tick        uint64 // last tick number, 0 before the first
	tickMs      uint64 // the last tick's timestamp
	joinSeq     uint64 // highest join sequence number seen
	// closing is the height of the first close request (a scraft::close
	// call or a scraft::Close event), 0 while the channel is open. From
	// then on no call, join or tick is ordered: the state is final.
	closing uint64
	// resources counts the resources, to keep the state decodable
	// (protocol.MaxStateEntries). It is derived, not encoded.
	resources int
	// acc is the lattice hash of the resources, nonces and members
	// (statehash.go), kept up to date by every write. It is derived, not
	// encoded.
	acc ltHash
}

// state is everything a member must agree on, plus the journal since the
// settled height. Once captured by a Snapshot a state is frozen: the machine
// clones it before the next change (copy-on-write), so a snapshot can be
// encoded on another goroutine while Apply goes on.
type state struct {
	meta
	res     protocol.State
	nonces  map[protocol.Address]uint64 // last nonce used per sender
	members map[protocol.Address]Member

	settled       uint64        // settled height; the journal starts after it
	settledDigest protocol.Hash // D(settled)
	settledState  protocol.Hash // the state hash at settled; zero if unknown
	journal       []journalEntry
	journalBytes  uint64 // the sum of the journal's entry sizes
}

// journalEntry is one height of the journal: its digest, the state hash
// after it (zero if unknown: restored from an old snapshot) and its change
// set.
type journalEntry struct {
	digest protocol.Hash
	state  protocol.Hash
	cs     protocol.ChangeSet
	// size is about what the entry took in its batch, result included
	// (entryBytes): the unsettled suffix a later snapshot will carry.
	size uint32
	// pos says whether the height ends its batch: settlements end at
	// batch ends, so that a snapshot carries whole signed batches.
	pos batchPos
}

// batchPos is where a journal height sits in its batch.
type batchPos uint8

const (
	// posUnknown: restored from a snapshot of version 3, which did not
	// say.
	posUnknown batchPos = iota
	posInside
	posEnd
)

func newState(cfg *Config) *state {
	g := &cfg.Genesis
	st := &state{
		res:     g.State.Clone(),
		nonces:  map[protocol.Address]uint64{},
		members: make(map[protocol.Address]Member, len(g.Members)),
	}
	for _, m := range g.Members {
		st.members[m.Address] = m
	}
	st.joinSeq = g.HighestJoinSeq
	st.resources = len(st.res)
	st.digest = GenesisDigest(cfg.Channel, cfg.Contract, *g)
	st.settledDigest = st.digest
	st.acc = recomputeAcc(st)
	st.settledState = st.stateHash()
	return st
}

// clone copies the maps; values, members and journal entries are immutable
// and shared.
func (s *state) clone() *state {
	c := *s
	c.res = s.res.Clone()
	c.nonces = make(map[protocol.Address]uint64, len(s.nonces))
	for k, v := range s.nonces {
		c.nonces[k] = v
	}
	c.members = make(map[protocol.Address]Member, len(s.members))
	for k, v := range s.members {
		c.members[k] = v
	}
	c.journal = s.journal[:len(s.journal):len(s.journal)]
	return &c
}

// slot is a layer's view of one resource: its value, or ok false when the
// layer deleted it.
type slot struct {
	v  []byte
	ok bool
}

type memberSlot struct {
	m  Member
	ok bool
}

// layer is the effect of one batch not yet folded into the state: what it
// wrote and the scalars after it. Apply runs a batch into a fresh layer and
// folds it; Propose keeps one layer per pending batch.
type layer struct {
	meta
	res     map[protocol.ResourceKey]slot
	nonces  map[protocol.Address]uint64
	members map[protocol.Address]memberSlot
	// states holds the state hash after each entry run into the layer.
	states []protocol.Hash
}

func newLayer(m meta) *layer {
	return &layer{
		meta:    m,
		res:     map[protocol.ResourceKey]slot{},
		nonces:  map[protocol.Address]uint64{},
		members: map[protocol.Address]memberSlot{},
	}
}

// fold writes l into s. Map order does not matter here: each key is
// written once and nothing is produced from the iteration.
func (s *state) fold(l *layer, journal []journalEntry) {
	for k, sl := range l.res {
		if sl.ok {
			s.res[k] = sl.v
		} else {
			delete(s.res, k)
		}
	}
	for k, n := range l.nonces {
		s.nonces[k] = n
	}
	for k, ms := range l.members {
		if ms.ok {
			s.members[k] = ms.m
		} else {
			delete(s.members, k)
		}
	}
	s.meta = l.meta
	s.journal = append(s.journal, journal...)
	for _, je := range journal {
		s.journalBytes += uint64(je.size)
	}
}

// view reads through a stack of layers down to the state and writes into
// the top layer. It is the protocol.StateReader an Executor sees.
type view struct {
	base  *state
	below []*layer // pending layers, oldest first
	top   *layer
	// nonceX, when set, caches nonce expansions (statehash.go).
	nonceX nonceCache
	// expX, when set, caches resource and member expansions.
	expX *expCache
}

// Get implements protocol.StateReader.
func (v *view) Get(k protocol.ResourceKey) ([]byte, bool) {
	if s, ok := v.top.res[k]; ok {
		return s.v, s.ok
	}
	for i := len(v.below) - 1; i >= 0; i-- {
		if s, ok := v.below[i].res[k]; ok {
			return s.v, s.ok
		}
	}
	b, ok := v.base.res[k]
	return b, ok
}

func (v *view) nonce(a protocol.Address) uint64 {
	if n, ok := v.top.nonces[a]; ok {
		return n
	}
	for i := len(v.below) - 1; i >= 0; i-- {
		if n, ok := v.below[i].nonces[a]; ok {
			return n
		}
	}
	return v.base.nonces[a]
}

func (v *view) member(a protocol.Address) (Member, bool) {
	if s, ok := v.top.members[a]; ok {
		return s.m, s.ok
	}
	for i := len(v.below) - 1; i >= 0; i-- {
		if s, ok := v.below[i].members[a]; ok {
			return s.m, s.ok
		}
	}
	m, ok := v.base.members[a]
	return m, ok
}

// applyChanges checks every old value of cs against the view, then writes
// cs into the top layer. On error nothing is written.
func (v *view) applyChanges(cs protocol.ChangeSet) error {
	for _, c := range cs.Changes {
		cur, ok := v.Get(c.Key)
		switch c.Kind {
		case protocol.OpNew:
			if ok {
				return fmt.Errorf("%w: new %s already exists", protocol.ErrInconsistent, c.Key)
			}
		case protocol.OpModify, protocol.OpDelete:
			if !ok || !bytes.Equal(cur, c.Old) {
				return fmt.Errorf("%w: %s %s: old value does not match", protocol.ErrInconsistent, c.Kind, c.Key)
			}
		}
		if len(c.New) > protocol.MaxValueLen {
			return fmt.Errorf("%w: %s: value of %d bytes", protocol.ErrBadChange, c.Key, len(c.New))
		}
	}
	n := v.top.resources
	for _, c := range cs.Changes {
		switch c.Kind {
		case protocol.OpNew:
			n++
		case protocol.OpDelete:
			n--
		}
	}
	if n > protocol.MaxStateEntries {
		return fmt.Errorf("%w: the state would hold %d resources, at most %d", protocol.ErrBadChange, n, protocol.MaxStateEntries)
	}
	v.top.resources = n
	for _, c := range cs.Changes {
		if c.Kind != protocol.OpNew {
			v.subElem(resourceElem(c.Key, c.Old))
		}
		if c.Kind == protocol.OpDelete {
			v.top.res[c.Key] = slot{}
		} else {
			v.addElem(resourceElem(c.Key, c.New))
			v.top.res[c.Key] = slot{v: nonNil(c.New), ok: true}
		}
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
