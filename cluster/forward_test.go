package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/protocol"
)

// TestForwardTxsResults sends one ForwardTxs request to the leader holding
// a genuine tx, a forged one, a malformed one and the genuine one again:
// each gets its own answer, in order, and the genuine tx runs once.
func TestForwardTxsResults(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.waitVoters(3, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := tc.waitLeader(10 * time.Second)
	follower := tc.others(leader)[0]
	u := tc.users[0]
	good := tc.tx(u, "forwarded;")
	forged := protocol.SignTx(u, protocol.Tx{Channel: tc.id, Nonce: 1 << 40, Function: "chat::send", Args: []byte("forged;")})
	forged.Signature[3] ^= 1
	txs := []*protocol.SignedTx{good, forged, good}
	raw := [][]byte{good.Bytes(), forged.Bytes(), good.Bytes()}
	txs = append(txs, good)
	raw = append(raw, []byte{1, 2, 3}) // malformed

	outs, errs := follower.node.peers.forwardTxs(ctx, leader.addr, tc.id, txs, raw, 1)
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("genuine tx: %v / %v", errs[0], errs[2])
	}
	if outs[0].Height != outs[2].Height || outs[0].Result.Status != protocol.StatusOK {
		t.Fatalf("the same tx twice: heights %d and %d, status %s", outs[0].Height, outs[2].Height, outs[0].Result.Status)
	}
	if !errors.Is(errs[1], ErrBadSignature) || !errors.Is(errs[1], ErrBadTx) {
		t.Fatalf("forged tx: %v, want ErrBadSignature", errs[1])
	}
	if !errors.Is(errs[3], ErrBadTx) {
		t.Fatalf("malformed tx: %v, want ErrBadTx", errs[3])
	}
}

// TestForwardTxsRefusesStrangers checks a request is answered only when
// its caller's signature covers it and the caller is a member.
func TestForwardTxsRefusesStrangers(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.waitVoters(3, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leader := tc.waitLeader(10 * time.Second)
	cl, err := leader.node.peers.client(leader.addr)
	if err != nil {
		t.Fatal(err)
	}
	tx := tc.tx(tc.users[0], "x;")
	raw := [][]byte{tx.Bytes()}
	stranger, _ := protocol.GenerateKey(nil)
	member := tc.nodes[1].key

	tests := []struct {
		name string
		req  *peerpb.ForwardTxsRequest
	}{
		{"no caller", &peerpb.ForwardTxsRequest{Channel: tc.id[:], Txs: raw, Hops: 1}},
		{"not a member", &peerpb.ForwardTxsRequest{Channel: tc.id[:], Txs: raw, Hops: 1,
			Caller: signCaller(stranger, "ForwardTxs", forwardAuth(tc.id[:], 1, raw)...)}},
		{"signature over other txs", &peerpb.ForwardTxsRequest{Channel: tc.id[:], Txs: raw, Hops: 1,
			Caller: signCaller(member, "ForwardTxs", forwardAuth(tc.id[:], 1, [][]byte{[]byte("other")})...)}},
		{"signature over other hops", &peerpb.ForwardTxsRequest{Channel: tc.id[:], Txs: raw, Hops: 2,
			Caller: signCaller(member, "ForwardTxs", forwardAuth(tc.id[:], 1, raw)...)}},
		{"too many txs", &peerpb.ForwardTxsRequest{Channel: tc.id[:], Txs: make([][]byte, maxForwardTxs+1), Hops: 1,
			Caller: signCaller(member, "ForwardTxs", forwardAuth(tc.id[:], 1, make([][]byte, maxForwardTxs+1))...)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp, err := cl.ForwardTxs(ctx, tt.req); err == nil {
				t.Fatalf("answered: %v", resp)
			}
		})
	}
	// Nothing of it was ordered: the same tx through a member commits now
	// with the nonce it carries.
	out, err := tc.channel(tc.nodes[1]).Submit(ctx, tx)
	if err != nil || out.Result.Status != protocol.StatusOK {
		t.Fatalf("tx after the refused requests: %v", err)
	}
}

// TestForwarderGroups submits many txs at once through a follower: every
// one commits once, and the follower sent fewer requests than txs.
func TestForwarderGroups(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 32, nil)
	tc.waitVoters(3, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := tc.waitLeader(10 * time.Second)
	follower := tc.others(leader)[0]
	const rounds = 8
	var mu sync.Mutex
	var acked []*protocol.Outcome
	var wg sync.WaitGroup
	for _, u := range tc.users[3:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				out, err := tc.channel(follower).Submit(ctx, tc.tx(u, "grouped;"))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, out)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	tc.checkConverged(acked, 20*time.Second)
	fwd := tc.channel(follower).fwd
	reqs, txs := fwd.requests.Load(), fwd.txs.Load()
	if txs < uint64(len(acked)) || reqs >= txs {
		t.Fatalf("%v txs forwarded in %v requests, want at least %d txs in fewer requests", txs, reqs, len(acked))
	}
}
