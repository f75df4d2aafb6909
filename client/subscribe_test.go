package client_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
)

// chain follows a subscription's heights and digests: each outcome must be
// the next height and its digest must follow from the previous one.
type chain struct {
	t      *testing.T
	height uint64
	digest protocol.Hash
	// coalesced counts the Updates that carried more than one outcome.
	coalesced int
}

func (c *chain) updates(u *clientpb.Updates) {
	c.t.Helper()
	if len(u.GetOutcomes()) == 0 {
		c.t.Fatal("empty Updates")
	}
	if len(u.GetOutcomes()) > 1 {
		c.coalesced++
	}
	for _, p := range u.GetOutcomes() {
		o, err := clientapi.OutcomeFromPB(p)
		if err != nil {
			c.t.Fatal(err)
		}
		if o.Height != c.height+1 {
			c.t.Fatalf("height %d after %d", o.Height, c.height)
		}
		if protocol.NextDigest(c.digest, o.Hash, &o.Result) != o.Digest {
			c.t.Fatalf("digest at height %d does not chain", o.Height)
		}
		c.height, c.digest = o.Height, o.Digest
	}
}

// TestCoalescedUpdatesInOrder makes a subscriber's stream fall behind (it
// stops reading, so gRPC flow control holds the node's sends) while the
// channel moves: the node then sends several outcomes per message. The
// subscriber must still get every height once, in order, with digests
// that chain — through an unsubscribe in the middle of the coalesced run
// and a resume from the last height it got, and through an SDK
// subscription whose small buffer makes it pause and resume over
// coalesced messages.
func TestCoalescedUpdatesInOrder(t *testing.T) {
	alice, bob, carol := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	node := newMemNode()
	ch := testChannel(1)
	mc := node.addChannel(t, ch, alice, bob, carol)
	mc.subBuffer = 4096 // behind, but never dropped
	tn := startNode(t, node, nil)
	ctx := ctxT(t)

	ca := dial(t, alice, tn.addr)
	if _, err := ca.Call(ctx, ch, "chat::join", chatArgs(t, "join", `{"nick":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	// Outcomes of about 1 KiB: a hundred fill the raw stream's 64 KiB
	// window twice over.
	text := strings.Repeat("x", 1000)
	send := func(n int) {
		t.Helper()
		for i := range n {
			if _, err := ca.Call(ctx, ch, "chat::send", chatArgs(t, "send", fmt.Sprintf(`{"text":"%d %s"}`, i, text))); err != nil {
				t.Fatal(err)
			}
		}
	}

	cfg := client.DefaultConfig()
	cfg.NodeKeys = []protocol.Address{nodeAddr}
	cfg.SubscriptionBuffer = 8
	cc, err := cfg.Dial(ctx, carol, tn.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sdk, err := cc.Subscribe(ctx, ch, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()

	raw := openRaw(t, tn.addr)
	raw.bind(bob, tn.addr)
	raw.send(&clientpb.ClientMessage{Id: 5, Body: &clientpb.ClientMessage_Subscribe{Subscribe: &clientpb.SubscribeRequest{Channel: ch[:]}}})
	snap := raw.recv().GetSnapshot()
	if snap == nil {
		t.Fatal("no snapshot first")
	}
	c := &chain{t: t, height: snap.GetHeight()}
	copy(c.digest[:], snap.GetDigest())

	// The raw stream reads nothing while the channel moves.
	send(100)
	// Read until the first coalesced message, then unsubscribe: the rest
	// of the run is cut off wherever the node was.
	for c.coalesced == 0 {
		m := raw.recv()
		if m.GetId() != 5 || m.GetUpdates() == nil {
			t.Fatalf("unexpected %v", m)
		}
		c.updates(m.GetUpdates())
	}
	raw.send(&clientpb.ClientMessage{Id: 6, Body: &clientpb.ClientMessage_Unsubscribe{Unsubscribe: &clientpb.UnsubscribeRequest{SubscriptionId: 5}}})
	for done := false; !done; {
		m := raw.recv()
		switch {
		case m.GetId() == 6 && m.GetDone() != nil:
			done = true
		case m.GetId() == 5 && m.GetUpdates() != nil:
			c.updates(m.GetUpdates())
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	cut := c.height

	// More commits while unsubscribed, then resume after the last height.
	send(60)
	raw.send(&clientpb.ClientMessage{Id: 7, Body: &clientpb.ClientMessage_Subscribe{Subscribe: &clientpb.SubscribeRequest{Channel: ch[:], FromHeight: cut}}})
	if s := raw.recv().GetSnapshot(); !s.GetResumed() || s.GetHeight() != cut {
		t.Fatalf("resume answer %v", s)
	}
	st, err := ca.Status(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	resumed := c.coalesced
	for c.height < st.Height {
		m := raw.recv()
		if m.GetId() != 7 || m.GetUpdates() == nil {
			t.Fatalf("unexpected %v", m)
		}
		c.updates(m.GetUpdates())
	}
	if c.coalesced == resumed {
		t.Fatal("the resumed subscription's catch-up came one outcome a message")
	}
	t.Logf("cut at %d of %d; %d coalesced messages", cut, st.Height, c.coalesced)

	// The SDK subscriber read nothing either; its buffer of 8 made it stop
	// and resume many times over the coalesced catch-ups. It must see the
	// same heights once each, in order (it checks the digests itself).
	u, err := sdk.Next(ctx)
	if err != nil || u.Snapshot == nil {
		t.Fatalf("first update %+v, %v", u, err)
	}
	for h := u.Snapshot.Height + 1; h <= st.Height; h++ {
		u, err := sdk.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if u.Outcome == nil || u.Outcome.Height != h {
			t.Fatalf("SDK update %+v, want height %d", u, h)
		}
	}
}
