package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// brokenChain serves a fixed list of events; each stream breaks after
// two events. It records where each stream started.
type brokenChain struct {
	Chain
	events []settlement.Event
	mu     sync.Mutex
	froms  []settlement.EventID
}

func (c *brokenChain) Head(context.Context) (settlement.Head, error) {
	return settlement.Head{Height: 1}, nil
}

func (c *brokenChain) Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error) {
	c.mu.Lock()
	c.froms = append(c.froms, from)
	c.mu.Unlock()
	var evs []settlement.Event
	for _, ev := range c.events {
		if !ev.ID.Less(from) {
			evs = append(evs, ev)
		}
	}
	return &brokenStream{ctx: ctx, evs: evs}, nil
}

type brokenStream struct {
	ctx  context.Context
	evs  []settlement.Event
	sent int
}

func (s *brokenStream) Recv() (settlement.Event, error) {
	if s.sent == 2 {
		return settlement.Event{}, errors.New("stream broken")
	}
	if len(s.evs) == 0 {
		<-s.ctx.Done()
		return settlement.Event{}, s.ctx.Err()
	}
	ev := s.evs[0]
	s.evs, s.sent = s.evs[1:], s.sent+1
	return ev, nil
}

// TestChainFeed: one stream fanned out by channel id, resumed after every
// break from the event after the last one delivered, each event delivered
// once and in order, and the subscribers told to resync after a break.
func TestChainFeed(t *testing.T) {
	x, y, other := protocol.ChannelID{1}, protocol.ChannelID{2}, protocol.ChannelID{3}
	ch := &brokenChain{}
	for i, id := range []protocol.ChannelID{x, y, x, other, x, y, y, x} {
		ch.events = append(ch.events, settlement.Event{ID: settlement.EventID{Block: 1 + uint64(i/3), Index: uint32(i % 3)},
			Event: contract.Event{Kind: contract.EventLeaderChanged, Channel: id, Epoch: uint64(i)}})
	}
	f := newChainFeed(ch, hclog.NewNullLogger(), prometheus.NewCounter(prometheus.CounterOpts{Name: "resumes"}))
	defer f.close()
	sx, sy := f.subscribe(x), f.subscribe(y)
	defer sx.unsubscribe()
	defer sy.unsubscribe()
	recv := func(s *feedSub, want ...uint64) {
		t.Helper()
		for _, e := range want {
			select {
			case ev := <-s.events:
				if ev.Channel != s.id || ev.Epoch != e {
					t.Fatalf("got event %d of %s, want %d of %s", ev.Epoch, ev.Channel, e, s.id)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no event %d of %s", e, s.id)
			}
		}
	}
	recv(sx, 0, 2, 4, 7)
	recv(sy, 1, 5, 6)
	select {
	case ev := <-sx.events:
		t.Fatalf("extra event %v", ev)
	default:
	}
	for _, s := range []*feedSub{sx, sy} {
		select {
		case <-s.resync:
		default:
			t.Fatalf("%s not told to resync after a break", s.id)
		}
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for i, from := range ch.froms {
		if want := (settlement.EventID{Block: 1}); i > 0 {
			want = ch.events[2*i-1].ID.Next()
			if from != want {
				t.Fatalf("stream %d started at %s, want %s", i, from, want)
			}
		} else if from != want {
			t.Fatalf("first stream started at %s, want the head's block %s", from, want)
		}
	}
	if len(ch.froms) < 4 {
		t.Fatalf("%d streams for 8 events broken every 2", len(ch.froms))
	}
}

// TestGroupStopsInReverse: the group stops its goroutines last started
// first, each before the one started before it.
func TestGroupStopsInReverse(t *testing.T) {
	var g group
	var mu sync.Mutex
	var order []int
	for i := 0; i < 3; i++ {
		g.start(context.Background(), func(ctx context.Context) {
			<-ctx.Done()
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
	}
	g.stop()
	g.stop()
	if len(order) != 3 || order[0] != 2 || order[1] != 1 || order[2] != 0 {
		t.Fatalf("stopped in order %v, want [2 1 0]", order)
	}
	g.start(context.Background(), func(context.Context) { t.Error("started after stop") })
}

// TestChainLeaderChangeActsAtOnce: with no poll to speak of, the chain
// feed alone brings a chain leader change to the Raft leader, which hands
// Raft leadership to the new chain leader.
func TestChainLeaderChangeActsAtOnce(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) { c.ChainPollInterval = time.Hour })
	tc.submitN(1, "a")
	leader := tc.waitLeader(10 * time.Second)
	epoch := tc.channel(leader).leader.Load().epoch
	next := tc.others(leader)
	e := tc.claimAs(next[0], epoch, next...)
	tc.waitLeadingAt(next[0], e)
}

// TestRaftLeaderRereadsChain: a node that gains Raft leadership rereads
// the chain before it acts, so it leads when the chain named it meanwhile
// instead of handing leadership back to the leader its view still holds.
// No feed, no poll: only the gain of Raft leadership rereads the chain.
func TestRaftLeaderRereadsChain(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) { c.ChainPollInterval = time.Hour; c.Chain = noFeed{c.Chain} })
	tc.submitN(1, "a")
	leader := tc.waitLeader(10 * time.Second)
	lc := tc.channel(leader)
	epoch := lc.leader.Load().epoch
	next := tc.others(leader)
	e := tc.claimAs(next[0], epoch, next...)
	nc := tc.channel(next[0])
	if _, cur, _ := nc.view.current(); cur != epoch {
		t.Fatalf("the view moved to epoch %d without a read", cur)
	}
	// The old leader does not know either: make next[0] the Raft leader.
	srv, _ := lc.raftServer(next[0].key.Address())
	if err := lc.raft.LeadershipTransferToServer(srv.ID, srv.Address).Error(); err != nil {
		t.Fatal(err)
	}
	tc.waitLeadingAt(next[0], e)
	if nc.raft.State() != raft.Leader {
		t.Fatal("the new chain leader handed Raft leadership away")
	}
}

// waitLeadingAt waits until nd leads epoch e (chain and Raft).
func (tc *testCluster) waitLeadingAt(nd *testNode, e uint64) {
	tc.t.Helper()
	c := tc.channel(nd)
	testutil.WaitFor(tc.t, 10*time.Second, func() error {
		if run := c.leader.Load(); run == nil || run.epoch != e {
			return errors.New("not leading the new epoch yet")
		}
		if c.raft.State() != raft.Leader {
			return errors.New("not the Raft leader")
		}
		return nil
	})
}
