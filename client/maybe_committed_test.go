package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

// forgetfulNode commits a tx on its first submission but answers
// "unavailable" (the leader was lost after ordering it), then, on the
// retry, answers "stale nonce" as a node does once the tx's outcome has left
// its caches.
type forgetfulNode struct {
	*memNode
	mu   sync.Mutex
	seen map[protocol.Hash]bool
}

func (n *forgetfulNode) Submit(ctx context.Context, tx *protocol.SignedTx) (*protocol.Outcome, error) {
	n.mu.Lock()
	again := n.seen[tx.Hash()]
	n.seen[tx.Hash()] = true
	n.mu.Unlock()
	if again {
		return nil, protocol.ErrStaleNonce
	}
	if _, err := n.memNode.Submit(ctx, tx); err != nil {
		return nil, err
	}
	return nil, protocol.ErrUnavailable
}

// A call retried after a lost answer must never be signed again with a new
// nonce when the node no longer knows the first try's outcome: that would
// run it twice. Call reports that it may have committed instead.
func TestCallNeverRunsTwice(t *testing.T) {
	alice := testKey(t, 1)
	mn := newMemNode()
	ch := testChannel(1)
	mn.addChannel(t, ch, alice)
	node := &forgetfulNode{memNode: mn, seen: map[protocol.Hash]bool{}}
	tn := startNode(t, node, nil)
	ctx := ctxT(t)
	ca := dial(t, alice, tn.addr)

	_, err := ca.Call(ctx, ch, "chat::join", chatArgs(t, "join", `{"nick":"a"}`))
	if !errors.Is(err, client.ErrMaybeCommitted) {
		t.Fatalf("Call = %v, want ErrMaybeCommitted", err)
	}
	st, err := mn.Status(ch, false)
	if err != nil || st.Height != 1 {
		t.Fatalf("the call ran %d times, want once (%v)", st.Height, err)
	}
}
