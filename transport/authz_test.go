package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/tlsid"
	"github.com/scraft/scraft/transport/raftpb"
)

// allowList is an Authorizer that admits the listed callers under their
// own identity and records what it was asked.
type allowList struct {
	mu    sync.Mutex
	allow map[protocol.Address]bool
	asked []protocol.Address
}

func (a *allowList) AuthorizeRaft(call RaftCall) error {
	caller, id := call.Caller, call.ID
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, caller)
	if !a.allow[caller] || string(id) != caller.String() {
		return errors.New("not allowed")
	}
	return nil
}

func tlsConn(t *testing.T, addr string, cfg *tls.Config) raftpb.RaftClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return raftpb.NewRaftClient(conn)
}

// TestAuthorizedPeers: with a Key, the port speaks TLS only; a Raft RPC
// reaches raft only from a caller with a member certificate that the
// Authorizer admits. Every refusal is PERMISSION_DENIED (or a failed
// handshake) and counted, and raft sees none of them.
func TestAuthorizedPeers(t *testing.T) {
	nodeKey, _ := protocol.GenerateKey(nil)
	member, _ := protocol.GenerateKey(nil)
	outsider, _ := protocol.GenerateKey(nil)
	reg := prometheus.NewRegistry()
	cfg := testConfig(t, nil)
	cfg.Key = nodeKey
	cfg.Registerer = reg
	srv := newTestServer(t, cfg)
	authz := &allowList{allow: map[protocol.Address]bool{member.Address(): true}}
	srv.SetAuthorizer(authz)
	tr := mustTransport(t, srv, "ch")
	var delivered sync.Map
	respond(t, tr, func(rpc raft.RPC) {
		req := rpc.Command.(*raft.AppendEntriesRequest)
		delivered.Store(string(req.ID), true)
		rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: true}, nil)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	appendAs := func(c raftpb.RaftClient, id string) error {
		_, err := c.AppendEntries(ctx, &raftpb.AppendEntriesRequest{Channel: "ch", Header: &raftpb.RPCHeader{Id: []byte(id)}, Term: 5})
		return err
	}

	// The node's certificate carries its member key.
	var seen ed25519.PublicKey
	memberCfg, err := tlsid.ClientConfig(member, func(pub ed25519.PublicKey) error { seen = pub; return nil })
	require.NoError(t, err)
	require.NoError(t, appendAs(tlsConn(t, srv.Addr(), memberCfg), member.Address().String()))
	require.Equal(t, nodeKey.Address(), protocol.AddressOf(seen))

	outsiderCfg, _ := tlsid.ClientConfig(outsider, nil)
	noCertCfg, _ := tlsid.ClientConfig(nil, nil)
	// A member's certificate with the outsider's private key: the
	// handshake's signature does not verify against the certificate.
	memberCert, err := tlsid.Certificate(member)
	require.NoError(t, err)
	replayCfg, _ := tlsid.ClientConfig(nil, nil)
	replayCfg.Certificates = []tls.Certificate{{Certificate: memberCert.Certificate, PrivateKey: ed25519.NewKeyFromSeed(outsider.Seed())}}

	require.Equal(t, codes.PermissionDenied, status.Code(appendAs(tlsConn(t, srv.Addr(), outsiderCfg), outsider.Address().String())), "outsider")
	require.Equal(t, codes.PermissionDenied, status.Code(appendAs(tlsConn(t, srv.Addr(), outsiderCfg), member.Address().String())), "outsider claiming a member's id")
	require.Equal(t, codes.PermissionDenied, status.Code(appendAs(tlsConn(t, srv.Addr(), memberCfg), outsider.Address().String())), "member claiming another id")
	require.Equal(t, codes.PermissionDenied, status.Code(appendAs(tlsConn(t, srv.Addr(), noCertCfg), member.Address().String())), "no certificate")
	err = appendAs(tlsConn(t, srv.Addr(), replayCfg), member.Address().String())
	require.Equal(t, codes.Unavailable, status.Code(err), "replayed certificate: %v", err)
	plain, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer plain.Close()
	require.Equal(t, codes.Unavailable, status.Code(appendAs(raftpb.NewRaftClient(plain), member.Address().String())), "plaintext")

	_, ok := delivered.Load(outsider.Address().String())
	require.False(t, ok, "an outsider's RPC reached raft")
	require.Equal(t, 4.0, deniedCount(t, reg, "AppendEntries"))
}

// TestMalformedAppendEntries: entries that do not follow PrevLogEntry one
// index at a time, or whose terms go back or pass the request's, are
// refused with INVALID_ARGUMENT before raft sees them.
func TestMalformedAppendEntries(t *testing.T) {
	srv := newTestServer(t, testConfig(t, nil))
	tr := mustTransport(t, srv, "ch")
	var mu sync.Mutex
	delivered := 0
	respond(t, tr, func(rpc raft.RPC) {
		mu.Lock()
		delivered++
		mu.Unlock()
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	})
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	c := raftpb.NewRaftClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name    string
		prev    uint64
		entries []*raftpb.Log
		ok      bool
	}{
		{"heartbeat", 10, nil, true},
		{"contiguous", 10, []*raftpb.Log{{Index: 11, Term: 3}, {Index: 12, Term: 4}}, true},
		{"past the end", 10, []*raftpb.Log{{Index: 110, Term: 4}}, false},
		{"gap", 10, []*raftpb.Log{{Index: 11, Term: 4}, {Index: 13, Term: 4}}, false},
		{"overlap", 10, []*raftpb.Log{{Index: 10, Term: 4}}, false},
		{"term goes back", 10, []*raftpb.Log{{Index: 11, Term: 4}, {Index: 12, Term: 3}}, false},
		{"term past the request's", 10, []*raftpb.Log{{Index: 11, Term: 5}}, false},
		{"term before prev", 10, []*raftpb.Log{{Index: 11, Term: 2}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AppendEntries(ctx, &raftpb.AppendEntriesRequest{Channel: "ch", Header: &raftpb.RPCHeader{}, Term: 4,
				PrevLogEntry: tc.prev, PrevLogTerm: 3, Entries: tc.entries})
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, delivered)
}

// deniedCount reads scraft_rpc_denied_total{rpc} from reg.
func deniedCount(t *testing.T, reg *prometheus.Registry, rpc string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != "scraft_rpc_denied_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "rpc" && l.GetValue() == rpc {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestWrongServerRefused: with TLS on, a node's outgoing Raft RPCs accept
// an answer only from a node whose key is the raft server's ID, so a node
// that took over a member's address cannot answer for it.
func TestWrongServerRefused(t *testing.T) {
	ka, _ := protocol.GenerateKey(nil)
	kb, _ := protocol.GenerateKey(nil)
	cfgA, cfgB := testConfig(t, nil), testConfig(t, nil)
	cfgA.Key, cfgB.Key = ka, kb
	a, b := newTestServer(t, cfgA), newTestServer(t, cfgB)
	ta, tb := mustTransport(t, a, "ch"), mustTransport(t, b, "ch")
	respond(t, tb, func(rpc raft.RPC) {
		switch rpc.Command.(type) {
		case *raft.AppendEntriesRequest:
			rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
		default:
			rpc.Respond(&raft.TimeoutNowResponse{}, nil)
		}
	})
	req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte(ka.Address().String()), Addr: []byte(a.Addr())}, Term: 1}
	var resp raft.AppendEntriesResponse
	require.NoError(t, ta.AppendEntries(raft.ServerID(kb.Address().String()), raft.ServerAddress(b.Addr()), req, &resp))
	require.True(t, resp.Success)

	impostorOf := raft.ServerID(ka.Address().String()) // b's address, a's id
	err := ta.AppendEntries(impostorOf, raft.ServerAddress(b.Addr()), req, &resp)
	require.ErrorIs(t, err, ErrWrongServer)
	err = ta.TimeoutNow(impostorOf, raft.ServerAddress(b.Addr()), &raft.TimeoutNowRequest{RPCHeader: req.RPCHeader}, &raft.TimeoutNowResponse{})
	require.ErrorIs(t, err, ErrWrongServer)
	_, err = ta.AppendEntriesPipeline(impostorOf, raft.ServerAddress(b.Addr()))
	require.ErrorIs(t, err, ErrWrongServer)
	p, err := ta.AppendEntriesPipeline(raft.ServerID(kb.Address().String()), raft.ServerAddress(b.Addr()))
	require.NoError(t, err)
	require.NoError(t, p.Close())
}
