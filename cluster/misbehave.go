package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

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
	// equivocate reports whether this leader shows one follower another
	// batch in place of b (equivocatingTransport): b, signed again with a
	// timestamp one millisecond later. Only a node started with it set
	// has the wrapping transport.
	equivocate func(self protocol.Address, b *protocol.Batch) bool
	// dropVote reports whether this candidate answers a delegator's
	// carried vote as counted without carrying it (delegation_votes.go).
	dropVote func(self, voter protocol.Address) bool
	// flipVote reports whether this member votes on a settlement the
	// other way than it judged it (for and against swapped).
	flipVote func(self protocol.Address) bool
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

// equivocating returns tr, or, when the misbehaviour equivocates, tr
// wrapped to send one follower a second batch for a height.
func (c *Channel) equivocating(tr raft.Transport) raft.Transport {
	if mb := misbehaving.Load(); mb == nil || mb.equivocate == nil {
		return tr
	}
	t := &equivocatingTransport{Transport: tr, c: c, variants: map[protocol.Hash][]byte{}}
	if pv, ok := tr.(raft.WithPreVote); ok {
		return equivocatingPreVote{t, pv}
	}
	return t
}

// equivocatingPreVote keeps the pre-vote of a transport that has it.
type equivocatingPreVote struct {
	*equivocatingTransport
	pv raft.WithPreVote
}

func (t equivocatingPreVote) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.pv.RequestPreVote(id, target, args, resp)
}

// equivocatingTransport is a leader's Raft transport that sends the
// first follower to receive a batch the misbehaviour names a different
// batch in its place (same entries and results, a later timestamp, signed
// again), and the others the batch itself: two followers commit two
// signed histories at the same log index. It sends no pipeline, so that
// every append passes here.
type equivocatingTransport struct {
	raft.Transport
	c        *Channel
	mu       sync.Mutex
	victim   raft.ServerID
	variants map[protocol.Hash][]byte // by the log data they replace
}

func (t *equivocatingTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (t *equivocatingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	var out []*raft.Log
	for i, l := range args.Entries {
		if v := t.variant(id, l); v != nil {
			if out == nil {
				out = append([]*raft.Log(nil), args.Entries...)
			}
			cp := *l
			cp.Data = v
			out[i] = &cp
		}
	}
	if out != nil {
		cp := *args
		cp.Entries = out
		args = &cp
	}
	return t.Transport.AppendEntries(id, target, args, resp)
}

// variant returns the log data follower id gets in place of l's, nil for
// l's own.
func (t *equivocatingTransport) variant(id raft.ServerID, l *raft.Log) []byte {
	mb := misbehaving.Load()
	if mb == nil || mb.equivocate == nil || l.Type != raft.LogCommand || len(l.Data) == 0 || l.Data[0] != logBatch {
		return nil
	}
	b, err := protocol.DecodeBatch(l.Data[1:])
	if err != nil || b.Leader != t.c.me() || !mb.equivocate(t.c.me(), b) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.victim == "" {
		t.victim = id
	}
	if id != t.victim {
		return nil
	}
	k := protocol.HashOf(protocol.DomainBatch, l.Data)
	if v, ok := t.variants[k]; ok {
		return v
	}
	b.TimestampMs++
	b.Sign(t.c.cfg.Key)
	v := encodeLog(logBatch, b.Bytes())
	t.variants[k] = v
	t.c.logger.Warn("misbehaving: sending a follower another batch for the same heights", "follower", id, "first_height", b.FirstHeight)
	return v
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
//	equivocate:HEIGHT  send the first follower to receive the batch that
//	                  holds HEIGHT that batch signed again with a
//	                  timestamp one millisecond later, the others the
//	                  batch itself
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
	case "isolate":
		// isolate:PATH names the transport's fault file.
		return &misbehaviour{}, nil
	case "noattest":
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
	if kind == "equivocate" {
		return &misbehaviour{equivocate: func(_ protocol.Address, b *protocol.Batch) bool {
			return h >= b.FirstHeight && h <= b.LastHeight()
		}}, nil
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
		return nil, fmt.Errorf("misbehaviour %q: unknown kind %q (tamper, forgejoin, censor, falsereport, equivocate, isolate, noattest)", spec, kind)
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
	if mb.equivocate != nil {
		out.equivocate = func(leader protocol.Address, b *protocol.Batch) bool {
			return leader == self && mb.equivocate(leader, b)
		}
	}
	return out
}

// misvote applies the misbehaviour, if any, to this member's vote on a
// settlement.
func (c *Channel) misvote(opt protocol.VoteOption) protocol.VoteOption {
	mb := misbehaving.Load()
	if mb == nil || mb.flipVote == nil || !mb.flipVote(c.me()) {
		return opt
	}
	switch opt {
	case protocol.VoteFor:
		opt = protocol.VoteAgainst
	case protocol.VoteAgainst:
		opt = protocol.VoteFor
	}
	c.logger.Warn("misbehaving: voting the other way", "option", opt)
	return opt
}
