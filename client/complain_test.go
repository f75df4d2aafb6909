package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

// heldNode holds every submitted tx until released: a leader that does
// not order them.
type heldNode struct {
	*memNode
	release chan struct{}
}

func (n *heldNode) Submit(ctx context.Context, tx *protocol.SignedTx) (*protocol.Outcome, error) {
	select {
	case <-n.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return n.memNode.Submit(ctx, tx)
}

// complaintChain records the proposals filed and releases the held node
// on the first: the complaint makes the leader order the tx.
type complaintChain struct {
	mu      sync.Mutex
	filed   []protocol.Censorship
	release func()
}

func (c *complaintChain) CreateProposal(_ context.Context, _ protocol.ChannelID, kind protocol.ProposalKind, data []byte) (uint64, error) {
	var cs protocol.Censorship
	if kind != protocol.ProposalCensorship {
		panic("not a complaint: " + kind.String())
	}
	if err := protocol.Unmarshal(data, &cs); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.filed = append(c.filed, cs)
	c.release()
	return uint64(len(c.filed)), nil
}

func TestComplainAfter(t *testing.T) {
	alice, leader := testKey(t, 1), testKey(t, 2)
	mn := newMemNode()
	ch := testChannel(1)
	mc := mn.addChannel(t, ch, leader, alice)
	node := &heldNode{memNode: mn, release: make(chan struct{})}
	var once sync.Once
	chain := &complaintChain{release: func() { once.Do(func() { close(node.release) }) }}
	tn := startNode(t, node, nil)

	cfg := client.DefaultConfig()
	cfg.NodeKeys = []protocol.Address{nodeAddr}
	cfg.ComplainAfter = 50 * time.Millisecond
	cfg.Chain = chain
	ctx := ctxT(t)
	c, err := cfg.Dial(ctx, alice, tn.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Call(ctx, ch, "chat::join", chatArgs(t, "join", `{"nick":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Complaint != 1 {
		t.Fatalf("complaint %d, want 1", res.Complaint)
	}
	chain.mu.Lock()
	defer chain.mu.Unlock()
	if len(chain.filed) != 1 {
		t.Fatalf("%d complaints filed, want 1", len(chain.filed))
	}
	cs := chain.filed[0]
	if cs.Tx.Hash() != res.TxHash || cs.Accused != mc.leader.Address() || cs.Tx.Verify() != nil {
		t.Fatalf("complaint about %s against %s, want %s against the leader %s", cs.Tx.Hash(), cs.Accused, res.TxHash, mc.leader.Address())
	}
}

func TestComplainAfterNeedsChain(t *testing.T) {
	cfg := client.DefaultConfig()
	cfg.Plaintext = true
	cfg.ComplainAfter = time.Second
	if err := cfg.Validate(); err == nil {
		t.Fatal("ComplainAfter without a Chain validated")
	}
}

// A call committed in time files no complaint.
func TestComplainAfterNotNeeded(t *testing.T) {
	alice := testKey(t, 1)
	mn := newMemNode()
	ch := testChannel(1)
	mn.addChannel(t, ch, alice)
	tn := startNode(t, mn, nil)
	chain := &complaintChain{release: func() {}}
	cfg := client.DefaultConfig()
	cfg.NodeKeys = []protocol.Address{nodeAddr}
	cfg.ComplainAfter = time.Minute
	cfg.Chain = chain
	ctx := ctxT(t)
	c, err := cfg.Dial(ctx, alice, tn.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Call(ctx, ch, "chat::join", chatArgs(t, "join", `{"nick":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Complaint != 0 || len(chain.filed) != 0 {
		t.Fatalf("complaint %d filed for a call committed in time", res.Complaint)
	}
}

// With ComplainAfter, a call the leader does not order in time becomes a
// censorship complaint on the settlement chain (here a stand-in that
// makes the leader give in); the call goes on waiting for its outcome.
// An application passes its settlement.Chain client (the devchain's, say)
// as Chain, signing with the client's key.
func ExampleConfig_complainAfter() {
	t := &exampleTB{}
	defer t.done()
	alice, leader := testKey(t, 1), testKey(t, 2)
	ch := testChannel(1)
	mn := newMemNode()
	mn.addChannel(t, ch, leader, alice)
	node := &heldNode{memNode: mn, release: make(chan struct{})}
	var once sync.Once
	chain := &complaintChain{release: func() { once.Do(func() { close(node.release) }) }}
	addr := startNode(t, node, nil).addr

	cfg := client.DefaultConfig()
	cfg.NodeKeys = []protocol.Address{nodeAddr}
	cfg.ComplainAfter = 100 * time.Millisecond
	cfg.Chain = chain
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cfg.Dial(ctx, alice, addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	res, err := c.Call(ctx, ch, "chat::join", chatArgs(t, "join", `{"nick":"alice"}`))
	if err != nil {
		panic(err)
	}
	fmt.Println("height:", res.Height, "complaint:", res.Complaint, "against the leader:", chain.filed[0].Accused == leader.Address())
	// Output: height: 1 complaint: 1 against the leader: true
}
