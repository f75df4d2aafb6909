package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// chainOutage is a settlement chain fault shared by the nodes whose Chain
// it wraps: while it lasts, every chain call hangs until its context ends
// (as a chain that stopped answering would), and open event streams
// deliver nothing.
type chainOutage struct {
	mu sync.Mutex
	up chan struct{} // closed while the chain answers
}

func newChainOutage() *chainOutage {
	up := make(chan struct{})
	close(up)
	return &chainOutage{up: up}
}

// start begins an outage.
func (o *chainOutage) start() {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.up:
		o.up = make(chan struct{})
	default:
	}
}

// end ends the outage: waiting calls go on.
func (o *chainOutage) end() {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.up:
	default:
		close(o.up)
	}
}

func (o *chainOutage) wait(ctx context.Context) error {
	o.mu.Lock()
	up := o.up
	o.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("chain outage: %w", ctx.Err())
	}
}

func (o *chainOutage) wrap(c Chain) Chain { return &outageChain{Chain: c, o: o} }

// outageChain is a Chain behind a chainOutage.
type outageChain struct {
	Chain
	o *chainOutage
}

func (c *outageChain) Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	if err := c.o.wait(ctx); err != nil {
		return nil, err
	}
	return c.Chain.Channel(ctx, id)
}

func (c *outageChain) Code(ctx context.Context, hash protocol.Hash) ([]byte, error) {
	if err := c.o.wait(ctx); err != nil {
		return nil, err
	}
	return c.Chain.Code(ctx, hash)
}

func (c *outageChain) InitialState(ctx context.Context, id protocol.ChannelID) (protocol.State, error) {
	if err := c.o.wait(ctx); err != nil {
		return nil, err
	}
	return c.Chain.InitialState(ctx, id)
}

func (c *outageChain) Departure(ctx context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error) {
	if err := c.o.wait(ctx); err != nil {
		return nil, err
	}
	return c.Chain.Departure(ctx, id, joinSeq)
}

func (c *outageChain) EpochLeader(ctx context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error) {
	if err := c.o.wait(ctx); err != nil {
		return nil, err
	}
	return c.Chain.EpochLeader(ctx, id, epoch)
}

func (c *outageChain) Join(ctx context.Context, id protocol.ChannelID, usePool bool) (uint64, error) {
	if err := c.o.wait(ctx); err != nil {
		return 0, err
	}
	return c.Chain.Join(ctx, id, usePool)
}

func (c *outageChain) KeepAlive(ctx context.Context, id protocol.ChannelID) error {
	if err := c.o.wait(ctx); err != nil {
		return err
	}
	return c.Chain.KeepAlive(ctx, id)
}

func (c *outageChain) ClaimLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, atts []protocol.Attestation) (uint64, error) {
	if err := c.o.wait(ctx); err != nil {
		return 0, err
	}
	return c.Chain.ClaimLeader(ctx, id, epoch, atts)
}

func (c *outageChain) Head(ctx context.Context) (settlement.Head, error) {
	if err := c.o.wait(ctx); err != nil {
		return settlement.Head{}, err
	}
	return c.Chain.Head(ctx)
}

func (c *outageChain) Proposal(ctx context.Context, id protocol.ChannelID, proposal uint64) (*settlement.ProposalInfo, error) {
	if err := c.o.wait(ctx); err != nil {
		return nil, err
	}
	return c.Chain.Proposal(ctx, id, proposal)
}

func (c *outageChain) CreateProposal(ctx context.Context, id protocol.ChannelID, kind protocol.ProposalKind, data []byte) (uint64, error) {
	if err := c.o.wait(ctx); err != nil {
		return 0, err
	}
	return c.Chain.CreateProposal(ctx, id, kind, data)
}

func (c *outageChain) Vote(ctx context.Context, id protocol.ChannelID, proposal uint64, option protocol.VoteOption) error {
	if err := c.o.wait(ctx); err != nil {
		return err
	}
	return c.Chain.Vote(ctx, id, proposal, option)
}

func (c *outageChain) ExecuteProposal(ctx context.Context, id protocol.ChannelID, proposal uint64) error {
	if err := c.o.wait(ctx); err != nil {
		return err
	}
	return c.Chain.ExecuteProposal(ctx, id, proposal)
}

func (c *outageChain) Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error) {
	if err := c.o.wait(ctx); err != nil {
		return nil, err
	}
	s, err := c.Chain.Watch(ctx, from)
	if err != nil {
		return nil, err
	}
	return &outageStream{EventStream: s, ctx: ctx, o: c.o}, nil
}

func (c *outageChain) Leave(ctx context.Context, id protocol.ChannelID) error {
	if err := c.o.wait(ctx); err != nil {
		return err
	}
	return c.Chain.Leave(ctx, id)
}

func (c *outageChain) CloseChannel(ctx context.Context, id protocol.ChannelID) error {
	if err := c.o.wait(ctx); err != nil {
		return err
	}
	return c.Chain.CloseChannel(ctx, id)
}

// outageStream holds back events while the outage lasts.
type outageStream struct {
	settlement.EventStream
	ctx context.Context
	o   *chainOutage
}

func (s *outageStream) Recv() (settlement.Event, error) {
	ev, err := s.EventStream.Recv()
	if err != nil {
		return ev, err
	}
	if err := s.o.wait(s.ctx); err != nil {
		return settlement.Event{}, err
	}
	return ev, nil
}

// within fails the test unless fn returns within d, and with fn's error.
// fn runs on its own goroutine and must not touch t.
func within(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-timer.C:
		t.Fatalf("%s did not answer within %s", what, d)
	}
}

// TestChainOutageNeverBlocks: while the settlement chain does not answer,
// the leader goes on batching for its epoch, which every member knows, and
// every member applies its batches. Then a batch of an epoch nobody knows
// makes every member wait for the chain inside its apply; meanwhile, on
// every member, Status, the client reads (NextNonce, IsMember, Subscribe)
// answer at once, Submit answers by its deadline, and the leader's batcher
// still proposes.
func TestChainOutageNeverBlocks(t *testing.T) {
	outage := newChainOutage()
	tc := newTestClusterUsers(t, 3, 2, func(c *Config) { c.Chain = outage.wrap(c.Chain) })
	t.Cleanup(outage.end) // before the cluster closes: streams go on
	tc.submitN(3, "a")
	leader := tc.waitLeader(10 * time.Second)
	lc := tc.channel(leader)
	epoch := lc.leader.Load().epoch
	tc.waitVoters(3, 10*time.Second)

	outage.start()
	// The leader's epoch is known everywhere: batching and applying go on.
	for _, nd := range tc.nodes {
		out := tc.submitVia(nd, 2, "outage")
		if out.Result.Status != protocol.StatusOK {
			t.Fatalf("submit during the outage: %s", out.Result.Status)
		}
		tc.checkConverged([]*protocol.Outcome{out}, 10*time.Second)
	}

	// A batch of the next epoch: no member can judge it without the chain.
	next := tc.others(leader)[0]
	b := tc.signedBatch(leader, []protocol.Entry{{Kind: protocol.EntryCall, Call: tc.tx(tc.users[0], "x;")}}, next.key, epoch+1)
	go func() { _ = lc.raft.Apply(encodeLog(logBatch, b.Bytes()), time.Minute).Error() }()
	testutil.WaitFor(t, 10*time.Second, func() error {
		for i, nd := range tc.nodes {
			if tc.channel(nd).chainWaits.Load() == 0 {
				return fmt.Errorf("node %d is not waiting on the chain", i)
			}
		}
		return nil
	})

	const prompt = 2 * time.Second
	user := tc.users[1]
	for i, nd := range tc.nodes {
		c := tc.channel(nd)
		within(t, prompt, fmt.Sprintf("node %d's Status", i), func() error {
			if st := c.Status(); st.Height == 0 || st.Height >= b.FirstHeight {
				return fmt.Errorf("status at height %d, the batch waiting at %d", st.Height, b.FirstHeight)
			}
			return nil
		})
		within(t, prompt, fmt.Sprintf("node %d's reads", i), func() error {
			if n := c.NextNonce(user.Address()); n < 2 {
				return fmt.Errorf("next nonce %d", n)
			}
			if !c.IsMember(user.Address()) {
				return fmt.Errorf("the user is not a member")
			}
			_, cancel := c.Subscribe(1)
			cancel()
			snap, _, cancel := c.SubscribeWithSnapshot(1)
			cancel()
			if snap == nil || snap.Height >= b.FirstHeight {
				return fmt.Errorf("snapshot %+v", snap)
			}
			return nil
		})
		// Submit cannot be applied before the waiting batch; it answers
		// by its deadline.
		tx := tc.tx(user, fmt.Sprintf("wait%d;", i))
		within(t, 2*prompt, fmt.Sprintf("node %d's Submit", i), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), prompt)
			defer cancel()
			_, err := c.Submit(ctx, tx)
			if err == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrLeadershipLost) {
				return fmt.Errorf("submit behind a waiting batch: %v, want its deadline", err)
			}
			return nil
		})
	}
	// The leader's batcher proposed those txs on top of the waiting batch.
	var pending int
	within(t, prompt, "the leader's machine", func() error {
		lc.Machine(func(m *fsm.Machine) { pending, _ = m.Pending() })
		return nil
	})
	if pending == 0 {
		t.Fatal("the leader proposed nothing while its followers waited on the chain")
	}
	for i, nd := range tc.nodes {
		if tc.channel(nd).chainWaits.Load() == 0 {
			t.Fatalf("node %d stopped waiting on a chain that does not answer", i)
		}
	}
}
