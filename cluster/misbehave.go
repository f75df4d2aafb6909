package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// misbehaviour is how a leader lies, to test the followers' side of
// accountability: only tests and binaries built with the scraft_misbehave
// tag (misbehave_tag.go) ever set one. Each hook gets the address of the
// node that leads, so that in-process tests can make one node of several
// lie.
type misbehaviour struct {
	// tamper changes a batch this leader signed before it reaches Raft
	// and reports whether it did (the batch is then signed again).
	tamper func(self protocol.Address, b *protocol.Batch) bool
	// censor reports whether the leader leaves an entry out of its
	// batches (answering its submitter as if leadership were lost).
	censor func(self protocol.Address, en *protocol.Entry) bool
	// execute wraps this node's contract executor: a member whose own
	// execution is wrong, to test a false report.
	execute func(fsm.Executor) fsm.Executor
}

// misbehaving is nil in every ordinary build: the leader signs what it
// executed, and orders what it is given.
var misbehaving atomic.Pointer[misbehaviour]

// tamper applies the misbehaviour, if any, to a batch this node signed.
func (c *Channel) tamper(b *protocol.Batch) {
	if mb := misbehaving.Load(); mb != nil && mb.tamper != nil && mb.tamper(c.me(), b) {
		c.logger.Warn("misbehaving: signing a tampered batch", "first_height", b.FirstHeight)
		b.Sign(c.cfg.Key)
	}
}

// censored drops, from what the leader is about to order, the entries the
// misbehaviour censors, and answers their submitters.
func (run *leaderRun) censored(subs []*submission) []*submission {
	mb := misbehaving.Load()
	if mb == nil || mb.censor == nil {
		return subs
	}
	c := run.c
	kept := subs[:0]
	for _, s := range subs {
		if mb.censor(c.me(), &s.entry) {
			c.logger.Warn("misbehaving: leaving an entry out", "kind", s.entry.Kind)
			c.answer(s, nil, ErrLeadershipLost)
			continue
		}
		kept = append(kept, s)
	}
	return kept
}

// misexecute returns exec as the misbehaviour, if any, makes this node
// run its channels' contract.
func misexecute(exec fsm.Executor) fsm.Executor {
	if mb := misbehaving.Load(); mb != nil && mb.execute != nil {
		return mb.execute(exec)
	}
	return exec
}

// wrongGas is an executor that charges one more gas unit than the
// contract used for the entry at one height.
type wrongGas struct {
	fsm.Executor
	height uint64
}

func (x wrongGas) Execute(call protocol.Call, st protocol.StateReader) protocol.CallResult {
	r := x.Executor.Execute(call, st)
	if call.Height == x.height {
		r.GasUsed++
	}
	return r
}

// parseMisbehaviour returns the misbehaviour a spec names:
//
//	tamper:HEIGHT     claim one more gas unit than the entry at HEIGHT used
//	forgejoin:HEIGHT  put in place of the entry at HEIGHT the join of a
//	                  made-up member under join seq 1, claimed to succeed
//	censor:ADDRESS    never order a call sent by ADDRESS
//	falsereport:HEIGHT  compute one more gas unit than the contract used
//	                  for the entry at HEIGHT, as every member's own
//	                  result (led or followed)
//
// The first two act once per channel, on the batch that holds HEIGHT, and
// give a result a follower computes otherwise: evidence the chain can
// judge. The third is for censorship complaints. The fourth makes this
// member's own execution wrong: as a follower it accuses an honest
// leader. isolate and noattest act at the node's port (transport
// misbehave_tag.go), not here: they give an empty misbehaviour.
func parseMisbehaviour(spec string) (*misbehaviour, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "isolate", "noattest":
		if arg != "" {
			return nil, fmt.Errorf("misbehaviour %q: %s takes no argument", spec, kind)
		}
		return &misbehaviour{}, nil
	case "censor":
		a, err := protocol.ParseAddress(arg)
		if err != nil {
			return nil, fmt.Errorf("misbehaviour %q: %v", spec, err)
		}
		return &misbehaviour{censor: func(_ protocol.Address, en *protocol.Entry) bool {
			return en.Kind == protocol.EntryCall && en.Call != nil && en.Call.Tx.Sender == a
		}}, nil
	}
	h, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || h == 0 {
		return nil, fmt.Errorf("misbehaviour %q: want KIND:HEIGHT, censor:ADDRESS, isolate or noattest", spec)
	}
	if kind == "falsereport" {
		return &misbehaviour{execute: func(x fsm.Executor) fsm.Executor { return wrongGas{Executor: x, height: h} }}, nil
	}
	var change func(b *protocol.Batch, i uint64)
	switch kind {
	case "tamper":
		change = func(b *protocol.Batch, i uint64) { b.Results[i].GasUsed++ }
	case "forgejoin":
		change = func(b *protocol.Batch, i uint64) {
			k, _ := protocol.GenerateKey(nil)
			b.Entries[i] = protocol.Entry{Kind: protocol.EntryJoin,
				Join: &protocol.MemberJoin{Member: k.Address(), PublicKey: k.Public(), JoinSeq: 1}}
			b.Results[i] = protocol.Result{Status: protocol.StatusOK, ChangeSet: protocol.ChangeSet{}.Hash()}
		}
	default:
		return nil, fmt.Errorf("misbehaviour %q: unknown kind %q (tamper, forgejoin, censor, falsereport, isolate, noattest)", spec, kind)
	}
	var mu sync.Mutex
	done := map[protocol.ChannelID]bool{}
	return &misbehaviour{tamper: func(_ protocol.Address, b *protocol.Batch) bool {
		mu.Lock()
		defer mu.Unlock()
		if h < b.FirstHeight || h > b.LastHeight() || done[b.Channel] {
			return false
		}
		done[b.Channel] = true
		change(b, h-b.FirstHeight)
		return true
	}}, nil
}

// onlyLeader restricts mb to the node of leader self: in-process tests
// run every node with the one misbehaviour.
func onlyLeader(self protocol.Address, mb *misbehaviour) *misbehaviour {
	out := &misbehaviour{}
	if mb.tamper != nil {
		out.tamper = func(leader protocol.Address, b *protocol.Batch) bool {
			return leader == self && mb.tamper(leader, b)
		}
	}
	if mb.censor != nil {
		out.censor = func(leader protocol.Address, en *protocol.Entry) bool {
			return leader == self && mb.censor(leader, en)
		}
	}
	return out
}
