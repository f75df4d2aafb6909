package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/console"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// consoleNode is the console's view of a node (console.Node): each
// channel's status and its members as the cluster sees them, its open
// proposals and bans as the chain records them, and the tx commit times
// the node's metrics hold.
type consoleNode struct {
	n   *cluster.Node
	reg prometheus.Gatherer
	// chain reads channels, their proposals and ABIs; nil when the
	// node's chain cannot (the console then decodes with the demo
	// contracts' ABIs and shows no proposals).
	chain consoleChain
	// proposals follows each channel's proposals on chain.
	proposals *proposalWatch
}

// consoleChain is what the console reads of the chain, all of it
// read-only (settlement.Chain has it).
type consoleChain interface {
	abiReader
	Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error)
	Proposal(ctx context.Context, id protocol.ChannelID, proposal uint64) (*settlement.ProposalInfo, error)
	Params(ctx context.Context) (contract.Params, error)
}

// ABI returns the ABI recorded on chain with the channel's code, nil when
// there is none.
func (a consoleNode) ABI(ctx context.Context, id protocol.ChannelID) ([]byte, error) {
	if a.chain == nil {
		return nil, nil
	}
	rec, err := a.chain.ABI(ctx, id)
	if errors.Is(err, contract.ErrNoABI) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rec.JSON, nil
}

// commitTimes returns the running sum and count of scraft_tx_commit_seconds
// by channel label.
func (a consoleNode) commitTimes() map[string][2]float64 {
	out := map[string][2]float64{}
	if a.reg == nil {
		return out
	}
	mfs, err := a.reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "scraft_tx_commit_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "channel" {
					h := m.GetHistogram()
					out[l.GetValue()] = [2]float64{h.GetSampleSum(), float64(h.GetSampleCount())}
				}
			}
		}
	}
	return out
}

func (a consoleNode) Address() protocol.Address { return a.n.Address() }

func (a consoleNode) Channels(ctx context.Context, members bool) []console.ChannelState {
	self := a.n.Address()
	times := a.commitTimes()
	var out []console.ChannelState
	for _, c := range a.n.Channels() {
		st := c.Status()
		cs := console.ChannelState{
			Channel: st.Channel, Leader: st.Leader, Epoch: st.Epoch, Height: st.Height, SettledHeight: st.SettledHeight,
			Digest: st.Digest.String(), Ready: st.Ready, Leading: st.Leading, RaftState: st.RaftState, Lag: st.Lag,
			Voters: st.Voters, NonVoters: st.NonVoters, Evidence: st.Evidence, Holding: st.Holding, Diverged: st.Diverged,
			StoreError: st.StoreError,
		}
		if ct, ok := times[st.Channel.String()]; ok {
			cs.TxCommitSeconds, cs.TxCommits = ct[0], uint64(ct[1])
		}
		if reason, retired := c.Retired(); retired || !members {
			cs.Retired = reason
			out = append(out, cs)
			continue
		}
		ms, settled := c.MemberStatuses(ctx)
		cs.SettledHeight = max(cs.SettledHeight, settled)
		var info *settlement.ChannelInfo
		if a.chain != nil {
			var err error
			if info, err = a.chain.Channel(ctx, st.Channel); err != nil {
				info = nil // roles from the node's own reading, no delegations
			}
		}
		cs.Members = consoleMembers(self, st.Candidates, ms, info)
		cs.Candidates = slices.Clone(st.Candidates)
		if info != nil && a.proposals != nil {
			cs.Proposals, cs.Bans = a.proposals.read(ctx, a.chain, info)
		}
		out = append(out, cs)
	}
	return out
}

// consoleMembers returns a channel's members with their roles: the
// chain's leader; in a channel with candidates (as the node read them)
// the other candidates and the delegators; else followers. info, the
// chain's record when it could be read, adds each member's delegation.
func consoleMembers(self protocol.Address, candidates []protocol.Address, ms []cluster.MemberStatus, info *settlement.ChannelInfo) []console.Member {
	out := make([]console.Member, 0, len(ms))
	for _, m := range ms {
		role := console.RoleFollower
		switch {
		case m.Leader:
			role = console.RoleLeader
		case slices.Contains(candidates, m.Address):
			role = console.RoleCandidate
		case len(candidates) > 0:
			role = console.RoleDelegator
		}
		age := int64(-1)
		if m.HeartbeatAge >= 0 {
			age = m.HeartbeatAge.Milliseconds()
		}
		cm := console.Member{Address: m.Address, Role: role, Leader: m.Leader, Self: m.Address == self,
			Online: m.Lag >= 0, Lag: m.Lag, HeartbeatAgeMs: age, Valid: m.Valid}
		if info != nil {
			if rec, ok := info.Member(m.Address); ok {
				cm.Delegators = rec.Delegators
				if !rec.DelegatedTo.IsZero() {
					to := rec.DelegatedTo
					cm.DelegatedTo = &to
				}
			}
		}
		out = append(out, cm)
	}
	return out
}

// proposalWatch follows channels' proposals on chain for the console:
// it reads each proposal once it is filed and again while it is open,
// and keeps, of those closed, the bans of executed punishments. Only
// the console's polling goroutine calls read; mu guards against others.
type proposalWatch struct {
	mu struct {
		sync.Mutex
		channels map[protocol.ChannelID]*proposalLog
		// ban is the chain's ban duration, 0 until read.
		ban time.Duration
	}
}

// proposalLog is what proposalWatch knows of one channel.
type proposalLog struct {
	// next is the first proposal id not read yet.
	next uint64
	// open are the ids read while open, to read again.
	open []uint64
	// bans are those of the executed punishments read, by proposal id.
	bans []console.Ban
}

// proposalScan bounds how far back a first reading of a channel, or one
// after a long gap, looks: settlements are filed every few seconds, and
// a punishment's ban outlasts that many of them only on a busy chain.
// proposalOpenMax bounds the open proposals kept to read again.
const (
	proposalScan    = 256
	proposalOpenMax = 64
)

func newProposalWatch() *proposalWatch {
	w := &proposalWatch{}
	w.mu.channels = map[protocol.ChannelID]*proposalLog{}
	return w
}

// read returns the channel's open proposals, by id, and its bans still
// running at the chain time of info, by address. What the chain does not
// answer now is read again next time.
func (w *proposalWatch) read(ctx context.Context, chain consoleChain, info *settlement.ChannelInfo) ([]console.Proposal, []console.Ban) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.mu.channels[info.ID]
	if l == nil {
		l = &proposalLog{next: 1}
		w.mu.channels[info.ID] = l
	}
	last := info.LastProposal
	if last >= proposalScan && l.next < last-proposalScan+1 {
		l.next = last - proposalScan + 1
	}
	ids := slices.Clone(l.open)
	for pid := l.next; pid <= last; pid++ {
		ids = append(ids, pid)
	}
	var open []console.Proposal
	var stillOpen []uint64
	for _, pid := range ids {
		p, err := chain.Proposal(ctx, info.ID, pid)
		if err != nil {
			stillOpen = append(stillOpen, pid) // again next time
			continue
		}
		if p.Status == contract.ProposalOpen {
			stillOpen = append(stillOpen, pid)
			if cp, ok := consoleProposal(p, info.AtMs); ok {
				open = append(open, cp)
			}
			continue
		}
		if p.Kind != protocol.ProposalPunish || p.Status != contract.ProposalExecuted {
			continue
		}
		if w.mu.ban == 0 {
			params, err := chain.Params(ctx)
			if err != nil {
				stillOpen = append(stillOpen, pid)
				continue
			}
			w.mu.ban = max(params.BanDuration, time.Millisecond)
		}
		if b, ok := banOf(p, w.mu.ban); ok {
			l.bans = append(l.bans, b)
		}
	}
	l.next = max(l.next, last+1)
	slices.Sort(stillOpen)
	stillOpen = slices.Compact(stillOpen)
	if n := len(stillOpen) - proposalOpenMax; n > 0 {
		stillOpen = stillOpen[n:]
	}
	l.open = stillOpen
	l.bans = slices.DeleteFunc(l.bans, func(b console.Ban) bool { return b.UntilMs <= info.AtMs })
	return open, slices.Clone(l.bans)
}

// banOf returns the ban an executed punishment imposed, on a chain whose
// bans last ban; false for any other proposal.
func banOf(p *settlement.ProposalInfo, ban time.Duration) (console.Ban, bool) {
	if p.Kind != protocol.ProposalPunish || p.Status != contract.ProposalExecuted || p.ExecutedAtMs == 0 {
		return console.Ban{}, false
	}
	var pu protocol.Punish
	if protocol.Unmarshal(p.Data, &pu) != nil {
		return console.Ban{}, false
	}
	return console.Ban{Address: pu.Target, UntilMs: p.ExecutedAtMs + ban.Milliseconds(), Proposal: p.ID}, true
}

// consoleProposal returns an open proposal as the console shows it at
// chain time atMs; false when its voting closed without what it needed
// (it fails when next touched).
func consoleProposal(p *settlement.ProposalInfo, atMs int64) (console.Proposal, bool) {
	standing := p.Standing(atMs)
	if standing != contract.ProposalOpen && standing != contract.ProposalPassed {
		return console.Proposal{}, false
	}
	voters := p.ElectorateSize()
	if p.Kind == protocol.ProposalCensorship {
		voters = 0 // decided by the deadline, not by votes
	}
	cp := console.Proposal{ID: p.ID, Kind: p.Kind.String(), Proposer: p.Proposer, State: standing.String(),
		For: p.For, Against: p.Against, Abstain: p.Abstain, Needed: p.VotesNeeded(), Voters: voters, DeadlineMs: p.DeadlineMs,
		Votes: make([]console.Vote, 0, len(p.Votes))}
	target := func(a protocol.Address) { cp.Target = &a }
	switch p.Kind {
	case protocol.ProposalSettlement:
		var s protocol.Settlement
		if protocol.Unmarshal(p.Data, &s) == nil {
			cp.Height = s.To
		}
	case protocol.ProposalPunish:
		var pu protocol.Punish
		if protocol.Unmarshal(p.Data, &pu) == nil {
			target(pu.Target)
			cp.Height = pu.Height
		}
	case protocol.ProposalElection:
		var el protocol.Election
		if protocol.Unmarshal(p.Data, &el) == nil {
			target(el.Candidate)
		}
	case protocol.ProposalCensorship:
		var c protocol.Censorship
		if protocol.Unmarshal(p.Data, &c) == nil {
			target(c.Accused)
		}
	}
	for _, v := range p.Votes {
		cp.Votes = append(cp.Votes, console.Vote{Voter: v.Voter, Option: v.Option.String()})
	}
	return cp, true
}
