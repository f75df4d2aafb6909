package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/scraft/scraft/protocol"
)

// ClientAPI serves the client API (clientapi.ChannelAPI) from a Node: the
// channel operations a client's stream asks for. Its errors are the
// cluster's sentinels, which carry their protocol codes, so the stream
// answers them as they are. Get it with Node.ClientAPI.
//
// Threading: every method may be called from many goroutines at once.
type ClientAPI struct{ n *Node }

// ClientAPI returns the client API of n.
func (n *Node) ClientAPI() *ClientAPI { return &ClientAPI{n: n} }

// channel returns the channel; a channel the node is still opening (loading
// it from the chain, joining its members) is ErrNotReady, which a client
// retries, here or on another node.
func (a *ClientAPI) channel(id protocol.ChannelID) (*Channel, error) {
	c, ok := a.n.Channel(id)
	if !ok {
		if a.n.opening(id) {
			return nil, fmt.Errorf("%w: channel %s is still opening on this node", ErrNotReady, id)
		}
		return nil, fmt.Errorf("%w: %s", protocol.ErrNoChannel, id)
	}
	return c, nil
}

// Exists reports whether the node hosts the channel or is opening it.
func (a *ClientAPI) Exists(id protocol.ChannelID) bool {
	_, ok := a.n.Channel(id)
	return ok || a.n.opening(id)
}

// CheckMember returns nil when addr is a member of the channel in the
// applied state, ErrNotMember when it is not and the node is caught up,
// ErrNotReady when the node may just not know it yet (Channel.CheckMember).
func (a *ClientAPI) CheckMember(id protocol.ChannelID, addr protocol.Address) error {
	c, err := a.channel(id)
	if err != nil {
		return err
	}
	return c.CheckMember(addr)
}

// NextNonce returns the nonce addr's next tx must carry, as of the applied
// state.
func (a *ClientAPI) NextNonce(id protocol.ChannelID, addr protocol.Address) (uint64, error) {
	c, err := a.channel(id)
	if err != nil {
		return 0, err
	}
	return c.NextNonce(addr), nil
}

// Submit orders a signed tx and waits for its verified outcome
// (Channel.Submit).
func (a *ClientAPI) Submit(ctx context.Context, tx *protocol.SignedTx) (*protocol.Outcome, error) {
	c, err := a.channel(tx.Tx.Channel)
	if err != nil {
		return nil, err
	}
	return c.Submit(ctx, tx)
}

// subscriptionBuffer is how many applied batches a subscription may fall
// behind before it is dropped (the client resumes from its last height).
const subscriptionBuffer = 1024

// backlogChunk is the most retained outcomes one Next returns; a Next that
// gathers live batches stops adding once it holds this many.
const backlogChunk = 256

// Subscribe returns the channel's verified outcomes after from
// (Channel.SubscribeFrom), ended with ErrChannelClosed or ErrClosed when
// the node stops hosting the channel.
func (a *ClientAPI) Subscribe(ctx context.Context, id protocol.ChannelID, from uint64) (protocol.Subscription, error) {
	c, err := a.channel(id)
	if err != nil {
		return nil, err
	}
	if reason, ok := c.Retired(); ok {
		return nil, retiredError(id, reason)
	}
	f, err := c.SubscribeFrom(from, subscriptionBuffer)
	if err != nil {
		return nil, err
	}
	s := &subscription{ch: f.C, cancel: f.Cancel, after: f.Height, backlog: f.Backlog}
	if f.Snapshot != nil {
		snap := f.Snapshot
		s.snap = &protocol.Snapshot{Channel: id, Height: snap.Height, Digest: snap.Digest, State: snap.State, Members: snap.Members}
	}
	return closingSubscription{Subscription: s, c: c}, nil
}

// subscription serves a Feed: its retained backlog first, then the live
// batches above the feed's height. A Next returns every live batch
// already waiting (up to backlogChunk outcomes), so that a subscriber whose
// stream was busy catches up in one message.
type subscription struct {
	ch      <-chan Applied
	cancel  func()
	snap    *protocol.Snapshot
	after   uint64
	backlog []protocol.Outcome
}

func (s *subscription) Snapshot() *protocol.Snapshot { return s.snap }

func (s *subscription) Next(ctx context.Context) ([]protocol.Outcome, error) {
	if len(s.backlog) > 0 {
		n := min(len(s.backlog), backlogChunk)
		out := slices.Clone(s.backlog[:n])
		s.backlog = s.backlog[n:]
		return out, nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case a, ok := <-s.ch:
		if !ok {
			return nil, protocol.ErrSlowSubscriber
		}
		out := s.appendAbove(nil, a)
	gather:
		for len(out) < backlogChunk {
			select {
			case a, ok := <-s.ch:
				if !ok {
					break gather // the next Next reports the drop
				}
				out = s.appendAbove(out, a)
			default:
				break gather
			}
		}
		return out, nil
	}
}

// appendAbove appends the outcomes of a above the feed's starting height.
func (s *subscription) appendAbove(out []protocol.Outcome, a Applied) []protocol.Outcome {
	if out == nil {
		out = make([]protocol.Outcome, 0, len(a.Outcomes))
	}
	for _, o := range a.Outcomes {
		if o.Height > s.after {
			out = append(out, o)
		}
	}
	return out
}

func (s *subscription) Close() { s.cancel() }

// closingSubscription ends a subscription of a channel that this node
// stopped hosting (closed on chain, or its member left) with
// ErrChannelClosed or ErrClosed rather than as a slow subscriber, so that
// the client ends cleanly (or moves to another node) instead of
// resubscribing here.
type closingSubscription struct {
	protocol.Subscription
	c *Channel
}

func (s closingSubscription) Next(ctx context.Context) ([]protocol.Outcome, error) {
	outs, err := s.Subscription.Next(ctx)
	if errors.Is(err, protocol.ErrSlowSubscriber) {
		if reason, ok := s.c.Retired(); ok {
			return outs, retiredError(s.c.ID(), reason)
		}
	}
	return outs, err
}

// retiredError is the error for a channel this node stopped hosting:
// closed for good when the chain closed it, else (its member left)
// another node may still serve it.
func retiredError(id protocol.ChannelID, reason string) error {
	if reason == RetiredClosed {
		return fmt.Errorf("%w: %s", ErrChannelClosed, id)
	}
	return fmt.Errorf("%w: this node left channel %s", ErrClosed, id)
}

// statusTimeout bounds the member queries of a client status request.
const statusTimeout = 2 * time.Second

// Status returns the channel as this node sees it; with members, also
// every member's lag and heartbeat, asking the member nodes and the chain.
func (a *ClientAPI) Status(id protocol.ChannelID, members bool) (*protocol.ChannelStatus, error) {
	c, err := a.channel(id)
	if err != nil {
		return nil, err
	}
	st := c.Status()
	out := &protocol.ChannelStatus{Channel: id, Leader: st.Leader, Epoch: st.Epoch, Height: st.Height, Digest: st.Digest,
		SettledHeight: st.SettledHeight, Ready: st.Ready}
	if !members {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	ms, settled := c.MemberStatuses(ctx)
	out.SettledHeight = max(out.SettledHeight, settled)
	for _, m := range ms {
		out.Members = append(out.Members, protocol.MemberStatus{Address: m.Address, Lag: m.Lag,
			HeartbeatAge: m.HeartbeatAge, Leader: m.Leader})
	}
	return out, nil
}

// Leave orders the member's signed scraft::leave and returns once the
// member is out of the channel (Channel.Leave).
func (a *ClientAPI) Leave(ctx context.Context, tx *protocol.SignedTx) error {
	c, err := a.channel(tx.Tx.Channel)
	if err != nil {
		return err
	}
	return c.Leave(ctx, tx)
}

// Close orders the member's signed scraft::close and returns once the
// channel is closed on chain (Channel.RequestClose).
func (a *ClientAPI) Close(ctx context.Context, tx *protocol.SignedTx) error {
	c, err := a.channel(tx.Tx.Channel)
	if err != nil {
		return err
	}
	return c.RequestClose(ctx, tx)
}
