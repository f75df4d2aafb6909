package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// punishConfig is a channel whose members lock a stake that a punishment
// can fine.
var punishConfig = contract.ChannelConfig{SettleEveryTxs: noSettlement, MinStake: 100, Fine: 60}

// balances reads the chain balance of every node's member.
func (tc *testCluster) balances() map[protocol.Address]uint64 {
	tc.t.Helper()
	out := map[protocol.Address]uint64{}
	for _, nd := range tc.nodes {
		acc, err := tc.chain.client(nd.key).Account(context.Background(), nd.key.Address())
		if err != nil {
			tc.t.Fatal(err)
		}
		out[nd.key.Address()] = acc.Balance
	}
	return out
}

// tamperFrom makes node liar misbehave (misbehaviour's kind) at the entry
// two heights above its applied height, and returns that height.
func (tc *testCluster) tamperFrom(liar *testNode, kind string) uint64 {
	h := tc.channel(liar).Status().Height + 2
	mb, err := parseMisbehaviour(fmt.Sprintf("%s:%d", kind, h))
	if err != nil {
		tc.t.Fatal(err)
	}
	misbehaving.Store(onlyLeader(liar.key.Address(), mb))
	tc.t.Cleanup(func() { misbehaving.Store(nil) })
	return h
}

// submitPast submits txs through nd, ignoring failures, until the chain
// leader is no longer who, or the deadline passes.
func (tc *testCluster) submitPast(nd *testNode, who protocol.Address, n int) {
	cl := tc.chain.client(nd.key)
	for i := 0; i < n; i++ {
		info, err := cl.Channel(context.Background(), tc.id)
		if err == nil && info.Leader != who {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = tc.channel(nd).Submit(ctx, tc.tx(tc.nodes[i%len(tc.nodes)].key, fmt.Sprintf("p%d;", i)))
		cancel()
	}
}

// punishCases returns the channel's punish proposals.
func (tc *testCluster) punishCases() []*settlement.ProposalInfo {
	ctx := context.Background()
	cl := tc.chain.client(tc.nodes[0].key)
	info, err := cl.Channel(ctx, tc.id)
	if err != nil {
		tc.t.Fatal(err)
	}
	var out []*settlement.ProposalInfo
	for pid := uint64(1); pid <= info.LastProposal; pid++ {
		p, err := cl.Proposal(ctx, tc.id, pid)
		if err == nil && p.Kind == protocol.ProposalPunish {
			out = append(out, p)
		}
	}
	return out
}

// TestPunishLyingLeader: the leader of a 4-member channel signs a wrong
// result (a wrong gas, a forged join). A follower files a punish case, the others vote for it, it
// executes: the liar is out and banned, the reporter leads and got the
// fine, the liar's node leaves the Raft configuration, writes go on, and
// the remaining members agree; no honest member's stake moved.
func TestPunishLyingLeader(t *testing.T) {
	for _, kind := range []string{"tamper", "forgejoin"} {
		t.Run(kind, func(t *testing.T) { testPunishLyingLeader(t, kind) })
	}
}

func testPunishLyingLeader(t *testing.T, kind string) {
	tc := newTestClusterSpec(t, 4, 0, punishConfig, nil)
	liar := tc.waitLeader(10 * time.Second)
	tc.submitAs(liar, tc.nodes, 4, "before")
	before := tc.balances()
	h := tc.tamperFrom(liar, kind)
	tc.submitPast(liar, liar.key.Address(), 40)

	ctx := context.Background()
	cl := tc.chain.client(tc.nodes[0].key)
	var info *settlement.ChannelInfo
	testutil.WaitFor(t, 30*time.Second, func() error {
		var err error
		if info, err = cl.Channel(ctx, tc.id); err != nil {
			return err
		}
		if _, in := info.Member(liar.key.Address()); in {
			return fmt.Errorf("the liar is still a member (leader %s)", info.Leader)
		}
		return nil
	})
	cases := tc.punishCases()
	if len(cases) != 1 || cases[0].Status != contract.ProposalExecuted {
		t.Fatalf("punish cases: %+v", cases)
	}
	var pu protocol.Punish
	if err := protocol.Unmarshal(cases[0].Data, &pu); err != nil || pu.Height != h || pu.Target != liar.key.Address() {
		t.Fatalf("case %+v (%v), want height %d", pu, err, h)
	}
	reporter := cases[0].Proposer
	if info.Leader != reporter {
		t.Fatalf("chain leader %s, want the reporter %s", info.Leader, reporter)
	}
	var rep *testNode
	rest := tc.others(liar)
	for _, nd := range rest {
		if nd.key.Address() == reporter {
			rep = nd
		}
	}
	if rep == nil {
		t.Fatalf("reporter %s is not an honest node", reporter)
	}
	// The reporter leads in Raft too, and the liar's node is out of the
	// configuration on every remaining member.
	testutil.WaitFor(t, 30*time.Second, func() error {
		if l := tc.leader(); l != rep {
			return fmt.Errorf("the reporter does not lead")
		}
		for _, nd := range rest {
			for _, s := range tc.raftServers(nd) {
				if s.ID == raft.ServerID(liar.key.Address().String()) {
					return fmt.Errorf("node %s still has the liar in its configuration", nd.addr)
				}
			}
		}
		return nil
	})
	// Writes resume and the remaining members agree.
	last := tc.submitAs(rep, rest, 4, "after")
	testutil.WaitFor(t, 20*time.Second, func() error {
		for _, nd := range rest {
			if d, ok := tc.channel(nd).Digest(last.Height); !ok || d != last.Digest {
				return fmt.Errorf("node %s: digest at %d %s (%v), want %s", nd.addr, last.Height, d, ok, last.Digest)
			}
		}
		return nil
	})
	for _, nd := range rest {
		if st := tc.channel(nd).Status(); st.Holding || st.Diverged {
			t.Errorf("node %s: holding %v, diverged %v", nd.addr, st.Holding, st.Diverged)
		}
	}
	// The liar's node stopped hosting the channel.
	testutil.WaitFor(t, 20*time.Second, func() error {
		if reason, ok := tc.channel(liar).Retired(); !ok || reason != RetiredLeft {
			return fmt.Errorf("the liar's node still hosts the channel")
		}
		return nil
	})
	// A remaining member restarted replays the liar's epoch as before (it
	// holds and refuses the same batches) and agrees with the others.
	var back *testNode
	for _, nd := range rest {
		if nd != rep {
			back = nd
			break
		}
	}
	tc.stopNode(back)
	tc.restartNode(back)
	last = tc.submitAs(rep, rest, 2, "again")
	testutil.WaitFor(t, 30*time.Second, func() error {
		for _, nd := range rest {
			if d, ok := tc.channel(nd).Digest(last.Height); !ok || d != last.Digest {
				return fmt.Errorf("node %s: digest at %d %s (%v), want %s", nd.addr, last.Height, d, ok, last.Digest)
			}
		}
		return nil
	})
	// Money: the reporter got the fine, other honest members kept theirs
	// and their stakes, the liar got its stake back less the fine and is
	// banned.
	after := tc.balances()
	for _, nd := range rest {
		a := nd.key.Address()
		want := before[a]
		if a == reporter {
			want += punishConfig.Fine
		}
		if after[a] != want {
			t.Errorf("member %s: balance %d, want %d", a, after[a], want)
		}
		if m, ok := info.Member(a); !ok || m.Locked != punishConfig.MinStake {
			t.Errorf("member %s: stake %+v", a, m)
		}
	}
	if got, want := after[liar.key.Address()], before[liar.key.Address()]+punishConfig.MinStake-punishConfig.Fine; got != want {
		t.Errorf("liar: balance %d, want %d", got, want)
	}
	if _, err := tc.chain.client(liar.key).Join(ctx, tc.id, false); !errors.Is(err, contract.ErrBanned) {
		t.Errorf("the liar joins again: %v, want ErrBanned", err)
	}
}

// buggyExec is counterExec on a node whose execution is wrong: it charges
// one more gas unit for a call whose args begin with "bug".
type buggyExec struct{ counterExec }

func (x buggyExec) Execute(call protocol.Call, st protocol.StateReader) protocol.CallResult {
	r := x.counterExec.Execute(call, st)
	if strings.HasPrefix(string(call.Args), "bug") {
		r.GasUsed++
	}
	return r
}

// falseReportConfig settles every few txs: a false reporter resyncs from
// the state the chain settled past its offence. Not before the members
// judged the case: they vote against only while they keep the height.
var falseReportConfig = contract.ChannelConfig{SettleEveryTxs: 8, MinStake: 100, Fine: 60}

// buggyNode starts the cluster's last node with buggyExec, also when the
// test restarts it.
func buggyNode(started *int) func(*Config) {
	return func(c *Config) {
		if *started++; *started >= 4 {
			c.Executors = func(string, []byte) (fsm.Executor, error) { return buggyExec{}, nil }
		}
	}
}

// waitResynced waits until nd neither holds nor diverges, writing
// through leader meanwhile (the chain settles past the offence), then
// that it applies the next writes with the others and agrees with them.
func (tc *testCluster) waitResynced(nd, leader *testNode, honest []*testNode) {
	tc.t.Helper()
	testutil.WaitFor(tc.t, 60*time.Second, func() error {
		tc.submitAs(leader, honest, 1, "z")
		if st := tc.channel(nd).Status(); st.Holding || st.Diverged {
			return fmt.Errorf("node %s: holding %v, diverged %v at height %d", nd.addr, st.Holding, st.Diverged, st.Height)
		}
		return nil
	})
	last := tc.submitAs(leader, honest, 2, "w")
	testutil.WaitFor(tc.t, 20*time.Second, func() error {
		for _, x := range append([]*testNode{nd}, honest...) {
			if st := tc.channel(x).Status(); st.Height != last.Height || st.Digest != last.Digest {
				return fmt.Errorf("node %s: at height %d digest %s, want %d %s", x.addr, st.Height, st.Digest, last.Height, last.Digest)
			}
		}
		return nil
	})
}

// TestPunishFalseReport: a member whose own execution is wrong accuses
// the honest leader. The others judge by their own execution and vote
// against; the case fails, the leader keeps leading and the others go on.
// The false reporter pays: it may not report again for
// contract.ReportCooldown. Once the chain settles past the offence it
// resyncs from a member's snapshot by itself and agrees with the others.
func TestPunishFalseReport(t *testing.T) {
	started := 0
	tc := newTestClusterSpec(t, 4, 0, falseReportConfig, buggyNode(&started))
	buggy := tc.nodes[3]
	leader := tc.waitLeader(10 * time.Second)
	if leader == buggy {
		t.Fatal("the node with the wrong execution leads")
	}
	honest := tc.others(buggy)
	tc.submitAs(leader, tc.nodes, 3, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, err := tc.channel(leader).Submit(ctx, tc.tx(leader.key, "bug"))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	cl := tc.chain.client(buggy.key)
	var pid uint64
	testutil.WaitFor(t, 30*time.Second, func() error {
		cases := tc.punishCases()
		if len(cases) != 1 {
			return fmt.Errorf("%d punish cases", len(cases))
		}
		p := cases[0]
		if p.Proposer != buggy.key.Address() {
			t.Fatalf("case filed by %s, not the member with the wrong execution", p.Proposer)
		}
		if p.Status != contract.ProposalFailed {
			return fmt.Errorf("case is %s (%d for, %d against)", p.Status, p.For, p.Against)
		}
		if p.Against < 2 {
			return fmt.Errorf("%d against", p.Against)
		}
		pid = p.ID
		return nil
	})
	// The cost on chain: no second report for a while.
	p, err := cl.Proposal(context.Background(), tc.id, pid)
	if err != nil {
		t.Fatal(err)
	}
	var pu protocol.Punish
	if err := protocol.Unmarshal(p.Data, &pu); err != nil {
		t.Fatal(err)
	}
	if pu.Height != out.Height {
		t.Fatalf("case at height %d, the wrong execution at %d", pu.Height, out.Height)
	}
	pu.Height = out.Height - 1
	if _, err := cl.CreateProposal(context.Background(), tc.id, protocol.ProposalPunish, protocol.Marshal(&pu)); !errors.Is(err, contract.ErrReportCooldown) {
		t.Fatalf("second report: %v, want ErrReportCooldown", err)
	}
	info, err := cl.Channel(context.Background(), tc.id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Leader != leader.key.Address() || len(info.Members) != 4 {
		t.Fatalf("leader %s, %d members", info.Leader, len(info.Members))
	}
	// The others go on; the reporter resyncs with no operator's help and
	// agrees with them.
	tc.waitResynced(buggy, leader, honest)
	if n := len(tc.punishCases()); n != 1 {
		t.Fatalf("%d punish cases, want the one", n)
	}
}

// TestPunishFalseReportDivergesAgain: a false reporter resynced after its
// case failed, and its execution is wrong again later in the same epoch.
// It does not accuse the leader a second time: it stops applying, says
// so, and the others go on.
func TestPunishFalseReportDivergesAgain(t *testing.T) {
	started := 0
	tc := newTestClusterSpec(t, 4, 0, falseReportConfig, buggyNode(&started))
	buggy := tc.nodes[3]
	leader := tc.waitLeader(10 * time.Second)
	if leader == buggy {
		t.Fatal("the node with the wrong execution leads")
	}
	honest := tc.others(buggy)
	tc.submitAs(leader, tc.nodes, 3, "x")
	tc.submitAs(leader, []*testNode{leader}, 1, "bug")
	testutil.WaitFor(t, 30*time.Second, func() error {
		if cases := tc.punishCases(); len(cases) != 1 || cases[0].Status != contract.ProposalFailed {
			return fmt.Errorf("punish cases %+v", cases)
		}
		return nil
	})
	tc.waitResynced(buggy, leader, honest)

	again := tc.submitAs(leader, []*testNode{leader}, 1, "bug")
	testutil.WaitFor(t, 20*time.Second, func() error {
		if st := tc.channel(buggy).Status(); !st.Diverged || st.Height != again.Height {
			return fmt.Errorf("the reporter: diverged %v at height %d, its wrong result at %d", st.Diverged, st.Height, again.Height)
		}
		return nil
	})
	last := tc.submitAs(leader, honest, 3, "y")
	testutil.WaitFor(t, 20*time.Second, func() error {
		for _, nd := range honest {
			if st := tc.channel(nd).Status(); st.Height != last.Height || st.Digest != last.Digest {
				return fmt.Errorf("node %s: %d %s, want %d %s", nd.addr, st.Height, st.Digest, last.Height, last.Digest)
			}
		}
		return nil
	})
	if n := len(tc.punishCases()); n != 1 {
		t.Fatalf("%d punish cases: the reporter accused the leader again", n)
	}
	if st := tc.channel(buggy).Status(); !st.Diverged || st.Height != again.Height {
		t.Fatalf("the reporter went on: %+v", st)
	}
}

// TestPunishFalseReportAbstained: a member with a wrong execution comes
// back after the others settled and pruned past the height it executes
// wrongly. Its case finds no member that can judge it: all abstain, and
// it fails with no vote against (no cooldown). The reporter resyncs as
// for a case voted down, and files nothing more.
func TestPunishFalseReportAbstained(t *testing.T) {
	started := 0
	tune := buggyNode(&started)
	tc := newTestClusterSpec(t, 4, 0, falseReportConfig, tune)
	buggy := tc.nodes[3]
	leader := tc.waitLeader(10 * time.Second)
	if leader == buggy {
		t.Fatal("the node with the wrong execution leads")
	}
	honest := tc.others(buggy)
	tc.submitAs(leader, tc.nodes, 3, "x")
	tc.stopNode(buggy)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, err := tc.channel(leader).Submit(ctx, tc.tx(leader.key, "bug"))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	cl := tc.chain.client(leader.key)
	testutil.WaitFor(t, 30*time.Second, func() error {
		tc.submitAs(leader, honest, 1, "y")
		info, err := cl.Channel(context.Background(), tc.id)
		if err != nil {
			return err
		}
		if info.SettledHeight <= out.Height {
			return fmt.Errorf("settled %d, the wrong execution at %d", info.SettledHeight, out.Height)
		}
		for _, nd := range honest {
			if _, ok := tc.channel(nd).Digest(out.Height); ok {
				return fmt.Errorf("node %s keeps height %d", nd.addr, out.Height)
			}
		}
		return nil
	})
	tc.startNode(buggy, tune)
	if err := buggy.node.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		cases := tc.punishCases()
		if len(cases) != 1 {
			return fmt.Errorf("%d punish cases", len(cases))
		}
		p := cases[0]
		if p.Proposer != buggy.key.Address() {
			t.Fatalf("case filed by %s, not the member with the wrong execution", p.Proposer)
		}
		if p.Status != contract.ProposalFailed {
			return fmt.Errorf("case is %s (%d for, %d against, %d abstain)", p.Status, p.For, p.Against, p.Abstain)
		}
		if p.Against != 0 || p.Abstain != 2 {
			t.Fatalf("case failed with %d against, %d abstain", p.Against, p.Abstain)
		}
		return nil
	})
	tc.waitResynced(buggy, leader, honest)
	if n := len(tc.punishCases()); n != 1 {
		t.Fatalf("%d punish cases, want the one", n)
	}
}

// TestPunishTwoMembers: in a channel of two, the follower's case passes on
// its own vote: the liar is out and banned with no fine, and the member
// left, which cannot commit in Raft alone, settles its own state and
// closes the channel.
func TestPunishTwoMembers(t *testing.T) {
	tc := newTestClusterSpec(t, 2, 0, punishConfig, nil)
	liar := tc.waitLeader(10 * time.Second)
	honest := tc.others(liar)[0]
	tc.submitAs(liar, tc.nodes, 4, "before")
	before := tc.balances()
	h := tc.tamperFrom(liar, "tamper")
	tc.submitPast(liar, liar.key.Address(), 20)

	ctx := context.Background()
	cl := tc.chain.client(honest.key)
	var info *settlement.ChannelInfo
	testutil.WaitFor(t, 30*time.Second, func() error {
		var err error
		if info, err = cl.Channel(ctx, tc.id); err != nil {
			return err
		}
		if !info.Closed {
			return fmt.Errorf("channel open, %d members", len(info.Members))
		}
		return nil
	})
	if _, in := info.Member(liar.key.Address()); in {
		t.Fatal("the liar is still a member")
	}
	// The final settlement is the honest member's state: its digest at
	// the settled height, which is at least the offence's.
	if info.SettledHeight < h {
		t.Fatalf("settled %d, offence at %d", info.SettledHeight, h)
	}
	if d, ok := tc.channel(honest).Digest(info.SettledHeight); !ok || d != info.SettledDigest {
		t.Fatalf("settled digest %s, the honest member's %s (%v)", info.SettledDigest, d, ok)
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		if reason, ok := tc.channel(honest).Retired(); !ok || reason != RetiredClosed {
			return fmt.Errorf("the honest node still hosts the channel")
		}
		return nil
	})
	// No fine: the liar got its whole stake back, and is banned.
	if got, want := tc.balances()[liar.key.Address()], before[liar.key.Address()]+punishConfig.MinStake; got != want {
		t.Errorf("liar: balance %d, want %d", got, want)
	}
	if _, err := tc.chain.client(liar.key).Join(ctx, tc.id, false); !errors.Is(err, contract.ErrBanned) && !errors.Is(err, contract.ErrChannelClosed) {
		t.Errorf("the liar joins again: %v", err)
	}
}

// committedBatch returns the batch in nd's Raft log that holds height h.
func (tc *testCluster) committedBatch(nd *testNode, h uint64) *protocol.Batch {
	tc.t.Helper()
	c := tc.channel(nd)
	for idx := c.raft.LastIndex(); idx > 0; idx-- {
		var l raft.Log
		if err := c.store.GetLog(idx, &l); err != nil {
			continue
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 || l.Data[0] != logBatch {
			continue
		}
		b, err := protocol.DecodeBatch(l.Data[1:])
		if err == nil && b.FirstHeight <= h && h <= b.LastHeight() {
			return b
		}
	}
	tc.t.Fatalf("no batch holds height %d", h)
	return nil
}

// TestPunishMisbehaviourSpec: the specs SCRAFT_MISBEHAVE takes in a
// scraft_misbehave build, and that each acts once, on its height only.
func TestPunishMisbehaviourSpec(t *testing.T) {
	for _, bad := range []string{"", "tamper", "tamper:0", "tamper:x", "lie:3", "censor:3"} {
		if _, err := parseMisbehaviour(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	k, _ := protocol.GenerateKey(nil)
	for _, kind := range []string{"tamper", "forgejoin"} {
		mb, err := parseMisbehaviour(kind + ":3")
		if err != nil {
			t.Fatal(err)
		}
		f := mb.tamper
		b := &protocol.Batch{FirstHeight: 1, Entries: make([]protocol.Entry, 2), Results: make([]protocol.Result, 2)}
		if f(k.Address(), b) {
			t.Errorf("%s: changed a batch without height 3", kind)
		}
		b.FirstHeight = 2
		if !f(k.Address(), b) || b.Results[1] == (protocol.Result{}) || b.Results[0] != (protocol.Result{}) {
			t.Errorf("%s: results %+v", kind, b.Results)
		}
		if f(k.Address(), b) {
			t.Errorf("%s: acted twice", kind)
		}
	}
	mb, err := parseMisbehaviour("censor:" + k.Address().String())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := protocol.GenerateKey(nil)
	mine := protocol.Entry{Kind: protocol.EntryCall, Call: protocol.SignTx(k, protocol.Tx{Nonce: 1})}
	theirs := protocol.Entry{Kind: protocol.EntryCall, Call: protocol.SignTx(other, protocol.Tx{Nonce: 1})}
	if !mb.censor(other.Address(), &mine) || mb.censor(other.Address(), &theirs) {
		t.Error("censor: wrong sender left out")
	}
	if only := onlyLeader(k.Address(), mb); only.censor(other.Address(), &mine) {
		t.Error("censor: acted on another leader's node")
	}
}

// TestPunishOffencesKept: an offence is kept on disk and a channel opened
// again holds its epoch's later batches as before.
func TestPunishOffencesKept(t *testing.T) {
	dir := t.TempDir()
	leader, _ := protocol.GenerateKey(nil)
	id := protocol.ChannelID{1}
	b := &protocol.Batch{Channel: id, Epoch: 3, FirstHeight: 5,
		Entries: []protocol.Entry{{Kind: protocol.EntryTick, Tick: &protocol.Tick{Number: 1, TimestampMs: 1}}},
		Results: []protocol.Result{{Status: protocol.StatusOK, GasUsed: 2}}}
	b.Sign(leader)
	ev := &fsm.Evidence{Reason: fsm.ReasonResultMismatch, Leader: leader.Address(), Epoch: 3, Height: 5, Index: 0,
		Batch: b.Bytes(), Claimed: b.Results[0], Honest: protocol.Result{Status: protocol.StatusOK, GasUsed: 1}}
	var p punishment
	if err := p.init(dir); err != nil {
		t.Fatal(err)
	}
	if added, err := p.offend(ev); !added || err != nil {
		t.Fatalf("offend: %v %v", added, err)
	}
	if added, _ := p.offend(ev); added {
		t.Fatal("the epoch's second offence was added")
	}
	var q punishment
	if err := q.init(dir); err != nil {
		t.Fatal(err)
	}
	later := &protocol.Batch{Channel: id, Epoch: 3, FirstHeight: 6, Leader: leader.Address()}
	o := q.held(later)
	if o == nil || o.pu.Height != 5 || o.leader != leader.Address() {
		t.Fatalf("reloaded offences %+v", q.offences)
	}
	if q.held(&protocol.Batch{Channel: id, Epoch: 4, FirstHeight: 6, Leader: leader.Address()}) != nil {
		t.Fatal("a batch of another epoch is held")
	}
}
