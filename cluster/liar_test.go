package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/transport/raftpb"
)

// The tests of the leader rule (liar.go): a member that IS in every node's
// configuration, with its own key and TLS identity, speaks raw Raft RPCs
// to the other nodes. None of its lies may depose the leader, remove an
// honest member, get a batch applied or stall the channel beyond the
// failover target.

// failoverTarget is how long the channel may stall after the chain has
// spoken.
const failoverTarget = 2 * time.Second

// liarSetup is a healthy 3-node channel, its leader and term, and a
// follower that lies.
type liarSetup struct {
	tc       *testCluster
	leader   *testNode
	liar     *testNode
	honest   *testNode // the follower that does not lie
	leaderID raft.ServerID
	term     uint64
}

func newLiarSetup(t *testing.T) *liarSetup {
	tc := newTestCluster(t, 3, nil)
	tc.waitVoters(3, 20*time.Second)
	leader := tc.waitLeader(10 * time.Second)
	s := &liarSetup{tc: tc, leader: leader}
	others := tc.others(leader)
	s.liar, s.honest = others[0], others[1]
	s.leaderID, s.term = leaderTerm(tc.channel(leader))
	return s
}

// client is a Raft client with the liar's key, its header, to target.
func (s *liarSetup) client(t *testing.T, target *testNode) (raftpb.RaftClient, *raftpb.RPCHeader) {
	return raftpb.NewRaftClient(keyConn(t, target.addr, s.liar.key)),
		&raftpb.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Id: []byte(s.liar.key.Address().String()), Addr: []byte(s.liar.addr)}
}

// targets are the nodes the liar speaks to.
func (s *liarSetup) targets() []*testNode { return []*testNode{s.leader, s.honest} }

// check asserts that the leader and every node's term are unchanged, that
// every node still has all three servers, and that the channel commits
// through every node, the first within failoverTarget.
func (s *liarSetup) check(t *testing.T) {
	t.Helper()
	tc := s.tc
	for _, nd := range tc.nodes {
		c := tc.channel(nd)
		if id, term := leaderTerm(c); id != s.leaderID || term != s.term {
			t.Fatalf("node %s follows %q at term %d, was %s at term %d", nd.addr, id, term, s.leaderID, s.term)
		}
		if n := len(c.raft.GetConfiguration().Configuration().Servers); n != 3 {
			t.Fatalf("node %s has %d servers, want 3", nd.addr, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), failoverTarget)
	first, err := tc.channel(s.leader).Submit(ctx, tc.tx(tc.users[0], "first;"))
	cancel()
	if err != nil {
		t.Fatalf("no commit within %s after the lies: %v", failoverTarget, err)
	}
	acked := []*protocol.Outcome{first}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, nd := range tc.nodes {
		out, err := tc.channel(nd).Submit(ctx, tc.tx(tc.users[i], "after;"))
		if err != nil {
			t.Fatalf("submit through %s after the lies: %v", nd.addr, err)
		}
		acked = append(acked, out)
	}
	tc.checkConverged(acked, 20*time.Second)
}

func mustDeny(t *testing.T, what string, err error) {
	t.Helper()
	if !isDenied(err) {
		t.Fatalf("%s: %v, want PERMISSION_DENIED", what, err)
	}
}

// TestLiarInflatedTerm: a member sends appends and votes with a huge term
// (and a vote one term up) to the leader and to the other follower. All
// are refused; the leader keeps leading at its term and the channel keeps
// committing.
func TestLiarInflatedTerm(t *testing.T) {
	s := newLiarSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, target := range s.targets() {
		rc, hdr := s.client(t, target)
		c := s.tc.channel(target)
		term, last := c.raft.CurrentTerm(), c.raft.LastIndex()
		_, err := rc.AppendEntries(ctx, &raftpb.AppendEntriesRequest{Channel: s.tc.id.String(), Header: hdr, Term: term + 1_000_000,
			Leader: []byte(s.liar.addr), PrevLogEntry: last, PrevLogTerm: term, LeaderCommitIndex: last})
		mustDeny(t, "AppendEntries with a huge term", err)
		_, err = rc.AppendEntries(ctx, &raftpb.AppendEntriesRequest{Channel: s.tc.id.String(), Header: hdr, Term: term + 1,
			Leader: []byte(s.liar.addr), PrevLogEntry: last, PrevLogTerm: term, LeaderCommitIndex: last})
		mustDeny(t, "AppendEntries one term up", err)
		for _, vt := range []uint64{term + 1_000_000, term + 1} {
			_, err = rc.RequestVote(ctx, &raftpb.RequestVoteRequest{Channel: s.tc.id.String(), Header: hdr, Term: vt,
				Candidate: []byte(s.liar.addr), LastLogIndex: last + 1000, LastLogTerm: vt})
			mustDeny(t, "RequestVote", err)
			_, err = rc.RequestPreVote(ctx, &raftpb.RequestPreVoteRequest{Channel: s.tc.id.String(), Header: hdr, Term: vt,
				LastLogIndex: last + 1000, LastLogTerm: vt})
			mustDeny(t, "RequestPreVote", err)
		}
		_, err = rc.TimeoutNow(ctx, &raftpb.TimeoutNowRequest{Channel: s.tc.id.String(), Header: hdr})
		mustDeny(t, "TimeoutNow", err)
	}
	s.check(t)
}

// TestLiarEndlessElections: a member keeps asking every other node for
// pre-votes and votes, term after term, while the channel is in use. No
// leader change, and commits continue throughout.
func TestLiarEndlessElections(t *testing.T) {
	s := newLiarSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 20; i++ {
			sctx, scancel := context.WithTimeout(ctx, failoverTarget)
			_, err := s.tc.channel(s.leader).Submit(sctx, s.tc.tx(s.tc.users[i%len(s.tc.users)], "during;"))
			scancel()
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	clients := map[*testNode]raftpb.RaftClient{}
	var hdr *raftpb.RPCHeader
	for _, target := range s.targets() {
		clients[target], hdr = s.client(t, target)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for round := uint64(1); time.Now().Before(deadline); round++ {
		for target, rc := range clients {
			c := s.tc.channel(target)
			term, last := c.raft.CurrentTerm(), c.raft.LastIndex()
			_, err := rc.RequestPreVote(ctx, &raftpb.RequestPreVoteRequest{Channel: s.tc.id.String(), Header: hdr, Term: term + 1,
				LastLogIndex: last + round, LastLogTerm: term})
			mustDeny(t, "RequestPreVote", err)
			_, err = rc.RequestVote(ctx, &raftpb.RequestVoteRequest{Channel: s.tc.id.String(), Header: hdr, Term: term + 1,
				Candidate: []byte(s.liar.addr), LastLogIndex: last + round, LastLogTerm: term})
			mustDeny(t, "RequestVote", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("commits stalled during the elections: %v", err)
	}
	s.check(t)
}

// TestLiarForgedTransferVote: a member that is not the chain's leader asks
// for votes flagged as a leadership transfer, which stock raft grants even
// with a leader in place. Refused; the leader stays.
func TestLiarForgedTransferVote(t *testing.T) {
	s := newLiarSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, target := range s.targets() {
		rc, hdr := s.client(t, target)
		c := s.tc.channel(target)
		term, last := c.raft.CurrentTerm(), c.raft.LastIndex()
		_, err := rc.RequestVote(ctx, &raftpb.RequestVoteRequest{Channel: s.tc.id.String(), Header: hdr, Term: term + 1,
			Candidate: []byte(s.liar.addr), LastLogIndex: last + 1000, LastLogTerm: term, LeadershipTransfer: true})
		mustDeny(t, "transfer vote", err)
	}
	s.check(t)
}

// TestLiarConfigChangeRemovesMember: a member appends a configuration
// entry that removes an honest member: refused. A snapshot whose
// configuration names an outsider is refused too, even from the chain's
// leader's key (a compromised leader).
func TestLiarConfigChangeRemovesMember(t *testing.T) {
	s := newLiarSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var kept []raft.Server
	for _, srv := range s.tc.channel(s.leader).raft.GetConfiguration().Configuration().Servers {
		if string(srv.ID) != s.honest.key.Address().String() {
			kept = append(kept, srv)
		}
	}
	removal := raft.EncodeConfiguration(raft.Configuration{Servers: kept})
	for _, target := range s.targets() {
		rc, hdr := s.client(t, target)
		c := s.tc.channel(target)
		term, last := c.raft.CurrentTerm(), c.raft.LastIndex()
		_, err := rc.AppendEntries(ctx, &raftpb.AppendEntriesRequest{Channel: s.tc.id.String(), Header: hdr, Term: term,
			Leader: []byte(s.liar.addr), PrevLogEntry: last, PrevLogTerm: term, LeaderCommitIndex: last + 1,
			Entries: []*raftpb.Log{{Index: last + 1, Term: term, Type: uint32(raft.LogConfiguration), Data: removal}}})
		mustDeny(t, "configuration entry removing a member", err)
	}

	outsider, _ := protocol.GenerateKey(nil)
	withOutsider := raft.EncodeConfiguration(raft.Configuration{Servers: append(kept,
		raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(outsider.Address().String()), Address: "127.0.0.1:1"})})
	for _, sender := range []*testNode{s.liar, s.leader} {
		c := s.tc.channel(s.honest)
		term, last := c.raft.CurrentTerm(), c.raft.LastIndex()
		hdr := &raftpb.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Id: []byte(sender.key.Address().String()), Addr: []byte(sender.addr)}
		rc := raftpb.NewRaftClient(keyConn(t, s.honest.addr, sender.key))
		err := sendSnapshot(ctx, rc, &raftpb.InstallSnapshotRequest{Channel: s.tc.id.String(), Header: hdr, SnapshotVersion: 1,
			Term: term, Leader: []byte(sender.addr), LastLogIndex: last + 1000, LastLogTerm: term,
			Configuration: withOutsider, ConfigurationIndex: last + 1000}, []byte("not a snapshot"))
		mustDeny(t, "snapshot naming an outsider", err)
		if sender == s.leader && !strings.Contains(err.Error(), "not a member") {
			t.Fatalf("the leader's snapshot was refused for another reason: %v", err)
		}
	}
	s.check(t)
}

func sendSnapshot(ctx context.Context, rc raftpb.RaftClient, req *raftpb.InstallSnapshotRequest, data []byte) error {
	st, err := rc.InstallSnapshot(ctx)
	if err != nil {
		return err
	}
	req.Size = int64(len(data))
	if err := st.Send(&raftpb.InstallSnapshotChunk{Part: &raftpb.InstallSnapshotChunk_Request{Request: req}}); err == nil {
		_ = st.Send(&raftpb.InstallSnapshotChunk{Part: &raftpb.InstallSnapshotChunk_Data{Data: data}})
	}
	_, err = st.CloseAndRecv()
	return err
}

// TestLiarBatchFromNonLeader: a member signs a batch for the current epoch
// and appends it itself: refused at the RPC. Put in the log anyway (as by
// a compromised leader), every machine refuses it: none applies it.
func TestLiarBatchFromNonLeader(t *testing.T) {
	s := newLiarSetup(t)
	tc := s.tc
	lc := tc.channel(s.leader)
	run := lc.leader.Load()
	if run == nil {
		t.Fatal("the Raft leader runs no batcher")
	}
	epoch := run.epoch
	var before uint64
	lc.Machine(func(m *fsm.Machine) { before = m.Height() })
	call := []protocol.Entry{{Kind: protocol.EntryCall, Call: tc.tx(tc.users[0], "forged;")}}
	forged := tc.signedBatch(s.leader, call, s.liar.key, epoch)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, hdr := s.client(t, s.honest)
	c := tc.channel(s.honest)
	term, last := c.raft.CurrentTerm(), c.raft.LastIndex()
	_, err := rc.AppendEntries(ctx, &raftpb.AppendEntriesRequest{Channel: tc.id.String(), Header: hdr, Term: term,
		Leader: []byte(s.liar.addr), PrevLogEntry: last, PrevLogTerm: term, LeaderCommitIndex: last + 1,
		Entries: []*raftpb.Log{{Index: last + 1, Term: term, Type: uint32(raft.LogCommand), Data: encodeLog(logBatch, forged.Bytes())}}})
	mustDeny(t, "a batch appended by a member", err)

	fut := lc.raft.Apply(encodeLog(logBatch, forged.Bytes()), 30*time.Second)
	if err := fut.Error(); err != nil {
		t.Fatalf("raft apply: %v", err)
	}
	if err := fut.Response().(*applyResult).err; !errors.Is(err, ErrRefused) {
		t.Fatalf("the leader's verdict on a batch by %s: %v, want ErrRefused", s.liar.key.Address(), err)
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		for _, nd := range tc.nodes {
			var n uint64
			tc.channel(nd).Machine(func(m *fsm.Machine) { _, n = m.Evidence() })
			if n < 1 {
				return errors.New("a node has not judged the batch yet")
			}
		}
		return nil
	})
	for i, nd := range tc.nodes {
		tc.channel(nd).Machine(func(m *fsm.Machine) {
			evs, _ := m.Evidence()
			switch {
			case m.Height() != before:
				t.Fatalf("node %d applied the batch: height %d, was %d", i, m.Height(), before)
			case len(evs) != 1 || evs[0].Reason != fsm.ReasonBadLeader || evs[0].Leader != s.liar.key.Address():
				t.Fatalf("node %d evidence %v, want one %s against %s", i, evs, fsm.ReasonBadLeader, s.liar.key.Address())
			}
		})
	}
	s.check(t)
}

// TestLiarAttestationRefused: a member asks the other follower to attest
// that the healthy leader is unreachable. The follower has admitted the
// leader's appends under its TLS identity within attestAfter, so it
// refuses, and no claim can gather its signature.
func TestLiarAttestationRefused(t *testing.T) {
	s := newLiarSetup(t)
	c := s.tc.channel(s.honest)
	_, epoch, _ := c.view.current()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if c.node.authz.lastContact(c.id, s.leader.key.Address()).IsZero() {
			return errors.New("no contact from the leader yet")
		}
		return nil
	})
	if a, err := c.attest(s.liar.key.Address(), epoch); err == nil {
		t.Fatalf("attested %v against a live leader", a)
	}
	s.check(t)
}

// TestLiarLeaderlessWindow: the leader of a 5-member channel dies, and a
// member that runs no honest Raft of its own asks the three others for
// votes term after term, claiming a longer log, so that it wins every
// round and never leads. Once the chain has spoken (the dead leader's
// heartbeat expired), an honest member claims the channel and wins Raft,
// and the channel commits again within the failover target of that.
func TestLiarLeaderlessWindow(t *testing.T) {
	tc := newTestCluster(t, 5, nil)
	tc.waitVoters(5, 30*time.Second)
	leader := tc.waitLeader(10 * time.Second)
	others := tc.others(leader)
	liar, honest := others[0], others[1:]
	liarClient := func(target *testNode) (raftpb.RaftClient, *raftpb.RPCHeader) {
		return raftpb.NewRaftClient(keyConn(t, target.addr, liar.key)),
			&raftpb.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Id: []byte(liar.key.Address().String()), Addr: []byte(liar.addr)}
	}
	clients := map[*testNode]raftpb.RaftClient{}
	var hdr *raftpb.RPCHeader
	for _, h := range honest {
		clients[h], hdr = liarClient(h)
	}
	// The liar runs no honest Raft: only its lies speak for it.
	tc.stopNode(liar)
	tc.stopNode(leader)

	stop := make(chan struct{})
	lies := make(chan int, 1)
	go func() {
		granted := 0
		defer func() { lies <- granted }()
		ctx := context.Background()
		for round := uint64(1); ; round++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, h := range honest {
				c, ok := h.get().Channel(tc.id)
				if !ok {
					continue
				}
				term, last := c.raft.CurrentTerm(), c.raft.LastIndex()
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				if r, err := clients[h].RequestPreVote(rctx, &raftpb.RequestPreVoteRequest{Channel: tc.id.String(), Header: hdr, Term: term + 1,
					LastLogIndex: last + 1000 + round, LastLogTerm: term}); err == nil && r.Granted {
					granted++
				}
				if r, err := clients[h].RequestVote(rctx, &raftpb.RequestVoteRequest{Channel: tc.id.String(), Header: hdr, Term: term + 1,
					Candidate: []byte(liar.addr), LastLogIndex: last + 1000 + round, LastLogTerm: term}); err == nil && r.Granted {
					granted++
				}
				cancel()
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()

	// The chain speaks: the dead leader's heartbeat expires.
	tc.chain.clock.Advance(contract.DefaultHeartbeatTTL + time.Second)
	spoke := time.Now()
	var next *testNode
	testutil.WaitFor(t, 60*time.Second, func() error {
		for _, h := range honest {
			if st := tc.channel(h).Status(); st.Leading {
				next = h
				return nil
			}
		}
		return errors.New("no honest member leads")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := tc.channel(next).Submit(ctx, tc.tx(tc.users[0], "after the lies;")); err != nil {
		t.Fatalf("no commit under %s: %v", next.addr, err)
	}
	took := time.Since(spoke)
	close(stop)
	t.Logf("%s leads and commits %s after the chain spoke; the liar won %d votes", next.addr, took.Round(time.Millisecond), <-lies)
}
