package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/console"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// TestConsoleMemberRoles: a channel of three has a leader and followers;
// one of eight, a leader among its five candidates, the other four
// candidates and three delegators with the candidate each delegated to
// on chain. A member whose node did not answer is shown offline.
func TestConsoleMemberRoles(t *testing.T) {
	addrs := make([]protocol.Address, 8)
	for i := range addrs {
		k, _ := protocol.GenerateKey(nil)
		addrs[i] = k.Address()
	}
	statuses := func(n int) []cluster.MemberStatus {
		var out []cluster.MemberStatus
		for i, a := range addrs[:n] {
			lag := int64(i)
			if i == n-1 {
				lag = -1 // its node did not answer
			}
			out = append(out, cluster.MemberStatus{Address: a, Lag: lag, HeartbeatAge: time.Duration(i) * time.Second, Valid: true, Leader: i == 1})
		}
		return out
	}
	info := &settlement.ChannelInfo{}
	for i, a := range addrs {
		m := settlement.MemberInfo{Member: contract.Member{Address: a, JoinSeq: uint64(i + 1)}, Valid: true}
		if i >= 5 {
			m.DelegatedTo = addrs[i-5]
		}
		if i < 3 {
			m.Delegators = 1
		}
		info.Members = append(info.Members, m)
	}

	small := consoleMembers(addrs[0], nil, statuses(3), nil)
	for i, want := range []string{console.RoleFollower, console.RoleLeader, console.RoleFollower} {
		if small[i].Role != want {
			t.Fatalf("channel of 3, member %d: role %q, want %q (%+v)", i, small[i].Role, want, small)
		}
	}
	if !small[0].Self || small[1].Self || !small[0].Online || small[2].Online || small[2].Lag != -1 || small[1].HeartbeatAgeMs != 1000 {
		t.Fatalf("channel of 3: %+v", small)
	}

	big := consoleMembers(addrs[0], addrs[:5], statuses(8), info)
	want := []string{console.RoleCandidate, console.RoleLeader, console.RoleCandidate, console.RoleCandidate, console.RoleCandidate,
		console.RoleDelegator, console.RoleDelegator, console.RoleDelegator}
	for i, m := range big {
		if m.Role != want[i] {
			t.Fatalf("channel of 8, member %d: role %q, want %q", i, m.Role, want[i])
		}
		switch {
		case i >= 5 && (m.DelegatedTo == nil || *m.DelegatedTo != addrs[i-5]):
			t.Fatalf("delegator %d delegated to %v, want %s", i, m.DelegatedTo, addrs[i-5])
		case i < 5 && m.DelegatedTo != nil:
			t.Fatalf("candidate %d delegated to %s", i, m.DelegatedTo)
		case i < 3 && m.Delegators != 1:
			t.Fatalf("candidate %d: %d delegators, want 1", i, m.Delegators)
		}
	}
	b, _ := json.Marshal(big[5])
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"role", "online", "valid", "delegated_to", "delegators", "heartbeat_age_ms"} {
		if _, ok := back[name]; !ok {
			t.Fatalf("member JSON without %q: %s", name, b)
		}
	}
}

// TestConsoleProposalsAndBans: an open election shows with its target
// and votes, one whose voting closed without them does not, and an
// executed punishment's ban runs for the chain's ban duration from its
// execution, then is gone.
func TestConsoleProposalsAndBans(t *testing.T) {
	k1, _ := protocol.GenerateKey(nil)
	k2, _ := protocol.GenerateKey(nil)
	el := protocol.Election{Epoch: 3, Candidate: k2.Address()}
	p := &settlement.ProposalInfo{Proposal: contract.Proposal{ID: 7, Kind: protocol.ProposalElection, Proposer: k2.Address(),
		Data: protocol.Marshal(&el), Voters: []protocol.Address{k1.Address(), k2.Address()}, Against: 1, DeadlineMs: 5000},
		Votes: []contract.VoteRecord{{Voter: k1.Address(), Option: protocol.VoteAgainst}}}
	cp, ok := consoleProposal(p, 1000)
	if !ok || cp.Kind != "leader_election" || cp.State != "open" || cp.Target == nil || *cp.Target != k2.Address() ||
		cp.Against != 1 || cp.Voters != 2 || len(cp.Votes) != 1 || cp.Votes[0].Option != "against" || cp.Votes[0].Voter != k1.Address() {
		t.Fatalf("open election: %+v, %v", cp, ok)
	}
	if _, ok := consoleProposal(p, 6000); ok {
		t.Fatal("an election whose voting closed without the votes is shown open")
	}
	// Garbage in a proposal's data leaves its target out, nothing more.
	p.Data = []byte{0xff, 0x01}
	if cp, ok := consoleProposal(p, 1000); !ok || cp.Target != nil {
		t.Fatalf("election with bad data: %+v, %v", cp, ok)
	}

	pu := protocol.Punish{Target: k1.Address(), Height: 40, Reason: "result digest differs"}
	punish := &settlement.ProposalInfo{Proposal: contract.Proposal{ID: 9, Kind: protocol.ProposalPunish, Proposer: k2.Address(),
		Data: protocol.Marshal(&pu), Status: contract.ProposalExecuted, ExecutedAtMs: 10_000}}
	if b, ok := banOf(punish, time.Minute); !ok || b.Address != k1.Address() || b.UntilMs != 70_000 || b.Proposal != 9 {
		t.Fatalf("ban of an executed punishment: %+v, %v", b, ok)
	}
	for name, p := range map[string]*settlement.ProposalInfo{
		"open punishment":     {Proposal: contract.Proposal{Kind: protocol.ProposalPunish, Data: protocol.Marshal(&pu)}},
		"refuted punishment":  {Proposal: contract.Proposal{Kind: protocol.ProposalPunish, Data: protocol.Marshal(&pu), Status: contract.ProposalRefuted, ExecutedAtMs: 1}},
		"executed election":   {Proposal: contract.Proposal{Kind: protocol.ProposalElection, Data: protocol.Marshal(&el), Status: contract.ProposalExecuted, ExecutedAtMs: 1}},
		"punishment, garbage": {Proposal: contract.Proposal{Kind: protocol.ProposalPunish, Data: []byte{1, 2, 3}, Status: contract.ProposalExecuted, ExecutedAtMs: 1}},
	} {
		if b, ok := banOf(p, time.Minute); ok {
			t.Errorf("%s: ban %+v", name, b)
		}
	}
}

// TestConsoleClusterProposals: on a real chain, with three more members
// than the node's (no nodes of their own, so they never vote), the
// node's settlement proposal cannot pass; the console's cluster view
// lists it open with its height, the votes it needs of whom, and the
// node's own vote for it.
func TestConsoleClusterProposals(t *testing.T) {
	r, key, id, chain := startWorldNodeChain(t, nil)
	base := "http://" + r.adminAddr()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 3 {
		k, _ := protocol.GenerateKey(nil)
		if _, err := devchain.NewLocal(chain, k).Join(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	var view console.ClusterView
	testutil.WaitFor(t, 30*time.Second, func() error {
		code, body := httpGet(t, base+"/console/api/cluster", nil)
		if code != http.StatusOK {
			return fmt.Errorf("GET /console/api/cluster: %d %s", code, body)
		}
		view = console.ClusterView{}
		if err := json.Unmarshal([]byte(body), &view); err != nil {
			t.Fatal(err)
		}
		if len(view.Channels) != 1 || len(view.Channels[0].Proposals) == 0 {
			return fmt.Errorf("cluster view: %s", body)
		}
		return nil
	})
	c := view.Channels[0]
	p := c.Proposals[0]
	if p.Kind != "settlement" || p.State != "open" || p.Proposer != key.Address() || p.Height == 0 || p.Voters != 4 ||
		p.Needed != 3 || p.For != 1 || len(p.Votes) != 1 || p.Votes[0].Voter != key.Address() || p.Votes[0].Option != "for" {
		t.Fatalf("proposal %+v", p)
	}
	if c.Bans == nil || len(c.Bans) != 0 || c.Candidates == nil {
		t.Fatalf("bans %v, candidates %v: want empty lists", c.Bans, c.Candidates)
	}
	if len(c.Members) == 0 || c.Members[0].Role != console.RoleLeader || !c.Members[0].Online || !c.Members[0].Self {
		t.Fatalf("members %+v", c.Members)
	}
}
