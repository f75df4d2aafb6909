package main

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/console"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// consoleNode is the console's view of a node (console.Node): each
// channel's status and its members as the cluster sees them, and the tx
// commit times the node's metrics hold.
type consoleNode struct {
	n   *cluster.Node
	reg prometheus.Gatherer
	// chain reads channels' ABIs; nil when the node's chain cannot
	// (the console then decodes with the demo contracts' ABIs).
	chain abiReader
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
		for _, m := range ms {
			role := console.RoleMember
			switch {
			case m.Leader:
				role = console.RoleLeader
			case m.Address == self && st.RaftState == "Candidate":
				role = console.RoleCandidate
			case m.Lag >= 0:
				role = console.RoleFollower
			}
			age := int64(-1)
			if m.HeartbeatAge >= 0 {
				age = m.HeartbeatAge.Milliseconds()
			}
			cs.Members = append(cs.Members, console.Member{Address: m.Address, Role: role, Leader: m.Leader,
				Self: m.Address == self, Lag: m.Lag, HeartbeatAgeMs: age})
		}
		out = append(out, cs)
	}
	return out
}
