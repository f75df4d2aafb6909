package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/tlsid"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/transport/raftpb"
)

// attackerConn dials addr over TLS presenting cert (none when nil).
func attackerConn(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func keyConn(t *testing.T, addr string, k *protocol.Key) *grpc.ClientConn {
	t.Helper()
	cfg, err := tlsid.ClientConfig(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return attackerConn(t, addr, cfg)
}

// raftAttacks are the Raft RPCs an attacker tries against a node of the
// channel: each would, if raft saw it, depose the leader, plant entries or
// a configuration, or start an election. who is the identity the header
// claims, at addr.
func raftAttacks(channel string, who string, addr string, term, last uint64) map[string]func(context.Context, raftpb.RaftClient) error {
	hdr := &raftpb.RPCHeader{Id: []byte(who), Addr: []byte(addr)}
	entry := func(i uint64) *raftpb.Log {
		return &raftpb.Log{Index: i, Term: term + 10, Type: uint32(raft.LogCommand), Data: []byte("evil")}
	}
	cfg := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(who), Address: raft.ServerAddress(addr)}}})
	return map[string]func(context.Context, raftpb.RaftClient) error{
		"AppendEntries higher term": func(ctx context.Context, c raftpb.RaftClient) error {
			_, err := c.AppendEntries(ctx, &raftpb.AppendEntriesRequest{Channel: channel, Header: hdr, Term: term + 10,
				Leader: []byte(addr), PrevLogEntry: last, PrevLogTerm: term, LeaderCommitIndex: last + 1})
			return err
		},
		"AppendEntries past the end of the log": func(ctx context.Context, c raftpb.RaftClient) error {
			_, err := c.AppendEntries(ctx, &raftpb.AppendEntriesRequest{Channel: channel, Header: hdr, Term: term + 10,
				Leader: []byte(addr), PrevLogEntry: last, PrevLogTerm: term, Entries: []*raftpb.Log{entry(last + 100)}, LeaderCommitIndex: last + 100})
			return err
		},
		"AppendEntries configuration entry": func(ctx context.Context, c raftpb.RaftClient) error {
			l := entry(last + 1)
			l.Type, l.Data = uint32(raft.LogConfiguration), cfg
			_, err := c.AppendEntries(ctx, &raftpb.AppendEntriesRequest{Channel: channel, Header: hdr, Term: term + 10,
				Leader: []byte(addr), PrevLogEntry: last, PrevLogTerm: term, Entries: []*raftpb.Log{l}, LeaderCommitIndex: last + 1})
			return err
		},
		"RequestVote": func(ctx context.Context, c raftpb.RaftClient) error {
			_, err := c.RequestVote(ctx, &raftpb.RequestVoteRequest{Channel: channel, Header: hdr, Term: term + 10,
				Candidate: []byte(addr), LastLogIndex: last + 1000, LastLogTerm: term + 9, LeadershipTransfer: true})
			return err
		},
		"RequestPreVote": func(ctx context.Context, c raftpb.RaftClient) error {
			_, err := c.RequestPreVote(ctx, &raftpb.RequestPreVoteRequest{Channel: channel, Header: hdr, Term: term + 10,
				LastLogIndex: last + 1000, LastLogTerm: term + 9})
			return err
		},
		"TimeoutNow": func(ctx context.Context, c raftpb.RaftClient) error {
			_, err := c.TimeoutNow(ctx, &raftpb.TimeoutNowRequest{Channel: channel, Header: hdr})
			return err
		},
		"InstallSnapshot": func(ctx context.Context, c raftpb.RaftClient) error {
			s, err := c.InstallSnapshot(ctx)
			if err != nil {
				return err
			}
			data := []byte("not a snapshot")
			req := &raftpb.InstallSnapshotRequest{Channel: channel, Header: hdr, SnapshotVersion: 1, Term: term + 10,
				Leader: []byte(addr), LastLogIndex: last + 1000, LastLogTerm: term + 10, Configuration: cfg,
				ConfigurationIndex: last + 1000, Size: int64(len(data))}
			if err := s.Send(&raftpb.InstallSnapshotChunk{Part: &raftpb.InstallSnapshotChunk_Request{Request: req}}); err != nil {
				_, err = s.CloseAndRecv()
				return err
			}
			if err := s.Send(&raftpb.InstallSnapshotChunk{Part: &raftpb.InstallSnapshotChunk_Data{Data: data}}); err != nil {
				_, err = s.CloseAndRecv()
				return err
			}
			_, err = s.CloseAndRecv()
			return err
		},
	}
}

// leaderTerm returns the Raft leader's id and term as node nd sees them.
func leaderTerm(c *Channel) (raft.ServerID, uint64) {
	_, id := c.raft.LeaderWithID()
	return id, c.raft.CurrentTerm()
}

// TestRaftOutsidersRefused: an outsider with a key of its own, a member of
// another channel, a member's node without a certificate, a member
// claiming another member's identity, and a member replaying another
// member's certificate all try to depose the leader, plant entries, a
// configuration or a snapshot, and start elections. Each RPC is refused
// before raft sees it; the leader keeps its term and the channel keeps
// committing.
func TestRaftOutsidersRefused(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	ctx := context.Background()
	leader := tc.waitLeader(10 * time.Second)
	lc := tc.channel(leader)
	wantLeader, wantTerm := leaderTerm(lc)
	var follower *testNode
	for _, nd := range tc.others(leader) {
		follower = nd
		break
	}
	channel := tc.id.String()

	// A member of another channel on the same chain.
	creator, _ := protocol.GenerateKey(nil)
	other, err := tc.chain.client(creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"),
		InitialState: protocol.State{}, Config: contract.ChannelConfig{SettleEveryTxs: noSettlement}})
	if err != nil {
		t.Fatal(err)
	}
	otherMember, _ := protocol.GenerateKey(nil)
	if _, err := tc.chain.client(otherMember).Join(ctx, other, false); err != nil {
		t.Fatal(err)
	}
	outsider, _ := protocol.GenerateKey(nil)

	// A member of this channel (a node of it), claiming another's ID.
	liar := follower
	var victim *testNode
	for _, nd := range tc.nodes {
		if nd != liar && nd != leader {
			victim = nd
		}
	}

	// A member replaying a victim's certificate without its private key.
	victimCert, err := tlsid.Certificate(victim.key)
	if err != nil {
		t.Fatal(err)
	}
	replay := tls.Certificate{Certificate: victimCert.Certificate, PrivateKey: ed25519.NewKeyFromSeed(liar.key.Seed())}
	replayCfg, _ := tlsid.ClientConfig(nil, nil)
	replayCfg.Certificates = []tls.Certificate{replay}
	noCertCfg, _ := tlsid.ClientConfig(nil, nil)

	attackers := []struct {
		name   string
		conn   func(addr string) *grpc.ClientConn
		who    func(target *testNode) (id, addr string)
		refuse func(error) bool
	}{
		{"outsider", func(a string) *grpc.ClientConn { return keyConn(t, a, outsider) },
			func(*testNode) (string, string) { return outsider.Address().String(), "127.0.0.1:1" }, isDenied},
		{"member of another channel", func(a string) *grpc.ClientConn { return keyConn(t, a, otherMember) },
			func(*testNode) (string, string) { return otherMember.Address().String(), "127.0.0.1:1" }, isDenied},
		{"no certificate", func(a string) *grpc.ClientConn { return attackerConn(t, a, noCertCfg) },
			func(*testNode) (string, string) { return victim.key.Address().String(), victim.addr }, isDenied},
		{"plaintext", func(a string) *grpc.ClientConn {
			conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			return conn
		}, func(*testNode) (string, string) { return victim.key.Address().String(), victim.addr }, isUnavailable},
		{"member claiming another's ID", func(a string) *grpc.ClientConn { return keyConn(t, a, liar.key) },
			func(*testNode) (string, string) { return victim.key.Address().String(), victim.addr }, isDenied},
		{"member claiming another's address", func(a string) *grpc.ClientConn { return keyConn(t, a, liar.key) },
			func(*testNode) (string, string) { return liar.key.Address().String(), victim.addr }, isDenied},
		{"member replaying another's certificate", func(a string) *grpc.ClientConn { return attackerConn(t, a, replayCfg) },
			func(*testNode) (string, string) { return victim.key.Address().String(), victim.addr }, isUnavailable},
	}
	for _, a := range attackers {
		for _, target := range []*testNode{leader, follower} {
			if a.name == "member claiming another's address" && target == liar {
				continue // its own node: a call to itself
			}
			conn := a.conn(target.addr)
			rc := raftpb.NewRaftClient(conn)
			c := tc.channel(target)
			last := c.raft.LastIndex()
			id, addr := a.who(target)
			for name, attack := range raftAttacks(channel, id, addr, c.raft.CurrentTerm(), last) {
				t.Run(fmt.Sprintf("%s/%s/%s", a.name, target.addr, name), func(t *testing.T) {
					actx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					err := attack(actx, rc)
					if !a.refuse(err) {
						t.Fatalf("not refused: %v", err)
					}
				})
			}
		}
	}

	// The leader kept its term and leadership, and the channel commits.
	if id, term := leaderTerm(lc); id != wantLeader || term != wantTerm {
		t.Fatalf("leader %s term %d after the attacks, was %s term %d", id, term, wantLeader, wantTerm)
	}
	for _, nd := range tc.nodes {
		if _, term := leaderTerm(tc.channel(nd)); term != wantTerm {
			t.Fatalf("node %s at term %d, want %d", nd.addr, term, wantTerm)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var acked []*protocol.Outcome
	for i, nd := range tc.nodes {
		out, err := tc.channel(nd).Submit(sctx, tc.tx(tc.users[i], "after;"))
		if err != nil {
			t.Fatalf("submit through %s after the attacks: %v", nd.addr, err)
		}
		acked = append(acked, out)
	}
	tc.checkConverged(acked, 20*time.Second)
}

// TestMalformedAppendRefused: the chain's leader (so past authorization)
// sends an AppendEntries whose entries start past the end of the
// follower's log. It is refused with an error; the follower does not crash
// and the channel keeps committing.
func TestMalformedAppendRefused(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.waitLeader(10 * time.Second)
	sender, target := leader, tc.others(leader)[0]
	c := tc.channel(target)
	term, last := c.raft.CurrentTerm(), c.raft.LastIndex()
	rc := raftpb.NewRaftClient(keyConn(t, target.addr, sender.key))
	hdr := &raftpb.RPCHeader{Id: []byte(sender.key.Address().String()), Addr: []byte(sender.addr)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, req := range []*raftpb.AppendEntriesRequest{
		{Term: term, PrevLogEntry: last, PrevLogTerm: term, Entries: []*raftpb.Log{{Index: last + 100, Term: term}}, LeaderCommitIndex: last + 100},
		{Term: term, PrevLogEntry: last, PrevLogTerm: term, Entries: []*raftpb.Log{{Index: last + 1, Term: term}, {Index: last + 3, Term: term}}},
		{Term: term, PrevLogEntry: last, PrevLogTerm: term, Entries: []*raftpb.Log{{Index: last + 1, Term: term + 1}}},
	} {
		req.Channel, req.Header, req.Leader = tc.id.String(), hdr, []byte(sender.addr)
		_, err := rc.AppendEntries(ctx, req)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("malformed AppendEntries answered %v", err)
		}
	}
	out, err := c.Submit(ctx, tc.tx(tc.users[0], "after;"))
	if err != nil {
		t.Fatal(err)
	}
	tc.checkConverged([]*protocol.Outcome{out}, 20*time.Second)
}

// TestPeerAPIOutsidersRefused: the peer API answers only a TLS caller that
// is a member of the channel on chain and signed the request itself.
func TestPeerAPIOutsidersRefused(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.waitLeader(10 * time.Second)
	outsider, _ := protocol.GenerateKey(nil)
	member := tc.nodes[1].key
	id := tc.id
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name      string
		tlsKey    *protocol.Key // nil: no client certificate
		signer    *protocol.Key
		wantError codes.Code
	}{
		{"outsider", outsider, outsider, codes.PermissionDenied},
		{"no certificate, member's signature", nil, member, codes.PermissionDenied},
		{"outsider relaying a member's request", outsider, member, codes.PermissionDenied},
		{"member", member, member, codes.OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := tlsid.ClientConfig(tt.tlsKey, nil)
			pc := peerpb.NewPeerClient(attackerConn(t, leader.addr, cfg))
			_, err := pc.Status(ctx, &peerpb.StatusRequest{Channel: id[:], Caller: signCaller(tt.signer, "Status", id[:])})
			if status.Code(err) != tt.wantError {
				t.Fatalf("Status: %v, want %s", err, tt.wantError)
			}
			_, err = pc.Attest(ctx, &peerpb.AttestRequest{Channel: id[:], Epoch: 1, Caller: signCaller(tt.signer, "Attest", id[:], u64bytes(1))})
			if tt.wantError != codes.OK && status.Code(err) != tt.wantError {
				t.Fatalf("Attest: %v, want %s", err, tt.wantError)
			}
			raw := [][]byte{}
			_, err = pc.ForwardTxs(ctx, &peerpb.ForwardTxsRequest{Channel: id[:], Caller: signCaller(tt.signer, "ForwardTxs", forwardAuth(id[:], 0, raw)...)})
			if status.Code(err) != tt.wantError {
				t.Fatalf("ForwardTxs: %v, want %s", err, tt.wantError)
			}
			if tt.wantError == codes.OK {
				return
			}
			_, err = pc.Join(ctx, &peerpb.JoinRequest{Channel: id[:], Address: "127.0.0.1:1", Caller: signCaller(tt.signer, "Join", id[:], []byte("127.0.0.1:1"))})
			if status.Code(err) != tt.wantError {
				t.Fatalf("Join: %v, want %s", err, tt.wantError)
			}
		})
	}
}

func isDenied(err error) bool { return status.Code(err) == codes.PermissionDenied }

// isUnavailable is a connection the TLS handshake refused.
func isUnavailable(err error) bool {
	return status.Code(err) == codes.Unavailable && !errors.Is(err, context.DeadlineExceeded) &&
		!strings.Contains(err.Error(), "context deadline")
}

// fakePeer answers every Status call, as a node with any key might.
type fakePeer struct {
	peerpb.UnimplementedPeerServer
}

func (fakePeer) Status(context.Context, *peerpb.StatusRequest) (*peerpb.StatusResponse, error) {
	return &peerpb.StatusResponse{Height: 1 << 40}, nil
}

// TestPeerAPIImpostorServer: a node's peer API calls accept an answer only
// from a node whose TLS key is a member's of the channel on chain; an
// outsider listening at an address a member was told cannot answer.
func TestPeerAPIImpostorServer(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	nd := tc.nodes[0]
	outsider, _ := protocol.GenerateKey(nil)
	scfg, err := tlsid.ServerConfig(outsider)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(scfg)))
	peerpb.RegisterPeerServer(g, fakePeer{})
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = nd.node.peers.status(ctx, ln.Addr().String(), tc.id)
	if !errors.Is(err, ErrNotMember) {
		t.Fatalf("an outsider's answer: %v, want ErrNotMember", err)
	}
	// The node's own peer API, a member's, answers.
	if _, err := nd.node.peers.status(ctx, nd.addr, tc.id); err != nil {
		t.Fatal(err)
	}
}

// TestChainLeaderOutsideConfiguration: a node's Raft configuration can
// predate the chain's leader (a delegator promoted to a candidate seat
// holds the configuration it last saw). The chain's leader may then feed
// it entries and snapshots, or it could never catch up; it may not start
// elections there, and a member that is neither in the configuration nor
// the chain's leader is refused as before.
func TestChainLeaderOutsideConfiguration(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 2, nil)
	ctx := context.Background()
	leader := tc.waitLeader(10 * time.Second)
	rec, err := tc.chain.client(leader.key).Channel(ctx, tc.id)
	if err != nil {
		t.Fatal(err)
	}
	newLeader, bystander := tc.users[3], tc.users[4]
	if err := tc.chain.client(newLeader).KeepAlive(ctx, tc.id); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.chain.client(leader.key).TransferLeader(ctx, tc.id, rec.Epoch, newLeader.Address()); err != nil {
		t.Fatal(err)
	}
	var follower *testNode
	for _, nd := range tc.others(leader) {
		follower = nd
		break
	}
	c := tc.channel(follower)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if l, _, _ := c.view.current(); l != newLeader.Address() {
			return fmt.Errorf("the follower's view names %s as the chain's leader", l)
		}
		return nil
	})
	for _, s := range c.raft.GetConfiguration().Configuration().Servers {
		if string(s.ID) == newLeader.Address().String() {
			t.Fatalf("%s is in the follower's configuration", s.ID)
		}
	}
	az := follower.node.RaftAuthorizer()
	call := func(rpc string, from *protocol.Key) protocol.RaftCall {
		return protocol.RaftCall{RPC: rpc, Channel: tc.id.String(), Caller: from.Address(),
			ID: from.Address().String(), Addr: "127.0.0.1:1", Claimed: "127.0.0.1:1", Term: c.raft.CurrentTerm() + 1}
	}
	if err := az.AuthorizeRaft(call("AppendEntries", newLeader)); err != nil {
		t.Errorf("the chain's leader's AppendEntries refused: %v", err)
	}
	for _, rpc := range []string{"RequestVote", "RequestPreVote", "TimeoutNow"} {
		if err := az.AuthorizeRaft(call(rpc, newLeader)); err == nil {
			t.Errorf("the chain's leader outside the configuration admitted for %s", rpc)
		}
	}
	if err := az.AuthorizeRaft(call("AppendEntries", bystander)); err == nil {
		t.Error("a member outside the configuration, not the chain's leader, admitted for AppendEntries")
	}
}
